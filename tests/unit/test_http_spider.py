"""The http spider's requests and callbacks, offline: constructed Scrapy responses, a real
frontier on SQLite in tmp_path (the spider is built as ``Crawler.crawl()`` builds it)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest, UsageError
from scrapy.http import HtmlResponse, Request, Response, TextResponse
from scrapy.settings import Settings
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from holocron_scrapy.frontier.extension import Frontier
from holocron_scrapy.items import ResourceRecord
from holocron_scrapy.model import NewWorkItem, Outcome, Status, WorkItem
from holocron_scrapy.spiders.http import HttpSpider
from tests.unit.conftest import base_settings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from twisted.internet.task import Clock

BASE = "http://127.0.0.1:8092/"
API_SOURCE = f"""\
name: api
type: http
base_url: {BASE}api/
user_agent: "HolocronScrapy/0.1 (holocron tests; tests@holocron.invalid)"
headers: {{Accept: application/json}}
params: {{mailto: tests@holocron.invalid}}
seeds:
  - "works?per-page=2"
  - {{url: /api/search, method: POST, json: {{q: x}}}}
resource_type: work
resource_id: id
pagination: {{json_next: meta.next_cursor, param: cursor, start: "*"}}
discovery:
  json_fields:
    - {{field: results.id, url: "works/{{last_segment}}"}}
    - {{field: referenced_works, url: "works/{{last_segment}}"}}
  max_depth: 1
"""
SITE_SOURCE = f"""\
name: site
type: http
base_url: {BASE}
user_agent: "HolocronScrapy/0.1 (holocron tests; tests@holocron.invalid)"
seeds: ["/site/", {{url: /api/form, method: POST, form: {{q: jedi}}}}]
resource_type: page
discovery:
  html_links: {{allow: ["/site/"], deny: ["/logout"]}}
  max_depth: 2
  strategy: depth
"""


@pytest.fixture
def make_spider(tmp_path: Path, clock: Clock) -> Iterator[Callable[..., HttpSpider]]:
    made: list[Frontier] = []

    def make(source: str = API_SOURCE, **kwargs: Any) -> HttpSpider:
        path = tmp_path / "source.yaml"
        path.write_text(source, "utf-8")
        crawler = Crawler(HttpSpider, Settings(base_settings(tmp_path)))
        spider = HttpSpider.from_crawler(crawler, source=str(path), **kwargs)
        crawler._apply_settings()
        assert isinstance(spider, HttpSpider)
        frontier = crawler.get_extension(Frontier)
        assert frontier is not None
        made.append(frontier)
        return spider

    yield make
    for frontier in made:
        frontier.store.dispose()


def item(resource_id: str, *, depth: int = 0, resource_type: str = "work", **kw: Any) -> WorkItem:
    return WorkItem(1, "http", "api", resource_type, resource_id, depth, 0, 1, **kw)


def json_response(request: Request, data: Any, **kwargs: Any) -> TextResponse:
    body = json.dumps(data).encode() if not isinstance(data, bytes) else data
    headers = {"Content-Type": "application/json"}
    return TextResponse(url=request.url, body=body, headers=headers, request=request, **kwargs)


def test_settings_and_recrawl_modes(make_spider: Callable[..., HttpSpider]) -> None:
    spider = make_spider()
    assert spider.crawler.settings.getbool("ROBOTSTXT_OBEY") is True
    assert spider.crawler.settings["USER_AGENT"].startswith("HolocronScrapy/0.1")
    assert make_spider(recrawl="all").recrawl == "all"
    with pytest.raises(UsageError, match="recrawl='some': expected one of all, changed"):
        make_spider(recrawl="some")
    with pytest.raises(UsageError, match="missing -a source"):
        HttpSpider()


def test_seeds_are_listings_with_pagination(make_spider: Callable[..., HttpSpider]) -> None:
    seeds = make_spider().seed_work_items()
    assert [(s.resource_type, s.resource_id, s.depth) for s in seeds] == [
        ("listing", f"{BASE}api/works?per-page=2", 0),
        ("listing", f'POST {BASE}api/search {{"q":"x"}}', 0),
    ]
    site = make_spider(SITE_SOURCE).seed_work_items()
    assert [(s.resource_type, s.resource_id) for s in site] == [
        ("page", f"{BASE}site/"),
        ("page", f"POST {BASE}api/form q=jedi"),
    ]


def test_a_resource_is_one_record_after_its_discoveries(
    make_spider: Callable[..., HttpSpider],
) -> None:
    spider = make_spider()
    work = item(f"{BASE}api/works/W1")
    (request,) = spider.requests_for([work])
    assert request.url == f"{BASE}api/works/W1?mailto=tests%40holocron.invalid"
    assert request.headers["Accept"] == b"application/json"
    assert request.meta["dont_redirect"] is True
    data = {
        "id": "https://w.test/W1",
        "referenced_works": ["https://w.test/W2", "https://w.test/W2"],
    }
    out = list(request.callback(json_response(request, data)))
    assert out[0] == NewWorkItem("http", "api", "work", f"{BASE}api/works/W2", 1, -1, work.id)
    assert len(out) == 2  # W2 once
    record = out[1]
    assert isinstance(record, ResourceRecord)
    assert (record.resource_id, record.payload, record.resource_type) == (
        "https://w.test/W1",
        data,
        "work",
    )
    assert record.request_uri == f"{BASE}api/works/W1"  # the source's params are not stored
    assert record.request_method == "GET"
    # at max_depth: the record only
    deep = item(f"{BASE}api/works/W2", depth=1)
    (request,) = spider.requests_for([deep])
    assert [type(o) for o in request.callback(json_response(request, data))] == [ResourceRecord]


def test_unreadable_or_unnamed_records_fail_their_item(
    make_spider: Callable[..., HttpSpider],
) -> None:
    spider = make_spider()
    work = item(f"{BASE}api/works/BAD")
    (request,) = spider.requests_for([work])
    (outcome,) = request.callback(json_response(request, b'{"id": "x", '))
    assert outcome.status == Status.FAILED
    assert outcome.error_message.startswith("not JSON (")
    assert "Content-Type 'application/json'" in outcome.error_message
    (outcome,) = request.callback(json_response(request, {"title": "no id"}))
    assert outcome == Outcome(work.id, Status.FAILED, "no resource_id at 'id' in the response")
    assert spider.crawler.stats.get_value("holocron/http/bad_payload") == 1


def test_redirects_are_skipped_and_their_target_queued(
    make_spider: Callable[..., HttpSpider],
) -> None:
    spider = make_spider(SITE_SOURCE)
    old = item(f"{BASE}site/old", depth=1, resource_type="page")
    (request,) = spider.requests_for([old])
    moved = Response(request.url, status=301, headers={"Location": "/site/new#x"}, request=request)
    target, outcome = request.callback(moved)
    assert target == NewWorkItem("http", "site", "page", f"{BASE}site/new", 1, 1, old.id, hops=1)
    assert outcome == Outcome.skipped(old, f"redirect to '{BASE}site/new'")
    away = Response(
        request.url, status=302, headers={"Location": "https://else.test/"}, request=request
    )
    (outcome,) = request.callback(away)
    assert outcome == Outcome.skipped(
        old, "redirect to 'https://else.test/', outside allowed_domains"
    )


def test_html_pages_are_text_records_and_follow_allowed_links(
    make_spider: Callable[..., HttpSpider],
) -> None:
    spider = make_spider(SITE_SOURCE)
    page = item(f"{BASE}site/", resource_type="page")
    (request,) = spider.requests_for([page])
    html = (
        '<a href="a.html#top">a</a><a href="a.html">again</a><a href="/site/logout">out</a>'
        '<a href="/other/">other</a><a href="https://else.test/site/">away</a>'
        '<a href="b.html">b</a>'
    )
    body = f"<html><body>{html}</body></html>"
    response = HtmlResponse(
        request.url,
        body=body.encode(),
        encoding="utf-8",
        request=request,
        headers={"Content-Type": "text/html; charset=utf-8"},
    )
    *found, record = request.callback(response)
    assert [(n.resource_id, n.depth, n.priority) for n in found] == [
        (f"{BASE}site/a.html", 1, 1),
        (f"{BASE}site/b.html", 1, 1),
    ]
    assert record.payload == {
        "content_type": "text/html; charset=utf-8",
        "encoding": "utf-8",
        "text": body,
    }
    assert record.resource_id == f"{BASE}site/"


def test_post_seeds_send_their_body(make_spider: Callable[..., HttpSpider]) -> None:
    spider = make_spider(SITE_SOURCE)
    form = item(f"POST {BASE}api/form q=jedi", resource_type="page")
    (request,) = spider.requests_for([form])
    assert (request.method, request.body) == ("POST", b"q=jedi")
    assert request.headers["Content-Type"] == b"application/x-www-form-urlencoded"
    api = make_spider()
    (request,) = api.requests_for(
        [item(f'POST {BASE}api/search {{"q":"x"}}', resource_type="listing")]
    )
    assert (request.method, json.loads(request.body)) == ("POST", {"q": "x"})
    assert request.url == f"{BASE}api/search?cursor=%2A&mailto=tests%40holocron.invalid"


def test_errors_end_the_item(make_spider: Callable[..., HttpSpider]) -> None:
    spider = make_spider(SITE_SOURCE)
    frontier = spider.frontier()
    page = item(f"{BASE}site/private/x", resource_type="page")
    frontier.in_flight.add(page.id)
    (request,) = spider.requests_for([page])

    def fail(error: Exception) -> Outcome:
        frontier.in_flight.add(page.id)
        failure = Failure(error)
        failure.request = request  # type: ignore[attr-defined]
        spider.request_failed(failure)
        return frontier.writes.outcomes.pop(page.id)

    robots = fail(IgnoreRequest("Forbidden by robots.txt"))
    assert (robots.status, robots.error_message) == (
        Status.SKIPPED,
        f"Forbidden by robots.txt: {request.url}",
    )
    gone = fail(HttpError(Response(request.url, status=404, request=request)))
    assert (gone.status, gone.error_message) == (Status.SKIPPED, f"HTTP 404 from {request.url}")
    broken = fail(HttpError(Response(request.url, status=500, request=request)))
    assert (broken.status, broken.error_message) == (Status.FAILED, f"HTTP 500 from {request.url}")


def test_a_listing_pages_saves_its_cursor_resumes_and_ends(
    make_spider: Callable[..., HttpSpider],
) -> None:
    spider = make_spider()
    frontier = spider.frontier()
    page1 = {
        "meta": {"next_cursor": "c2"},
        "results": [{"id": "https://w.test/W1"}, {"id": "https://w.test/W2"}],
    }
    page2 = {"meta": {"next_cursor": None}, "results": [{"id": "https://w.test/W3"}]}

    async def drain(request: Request, data: Any) -> list[Any]:
        return [o async for o in request.callback(json_response(request, data))]

    async def run() -> tuple[list[Any], list[Any], list[Any]]:
        await frontier.spider_opened(spider)
        claimed = await frontier.claim_batch()
        listing = next(i for i in claimed if "works" in i.resource_id)
        (first,) = spider.requests_for([listing])
        assert first.url == f"{BASE}api/works?per-page=2&cursor=%2A&mailto=tests%40holocron.invalid"
        after_first = await drain(first, page1)
        # the next run claims the listing with its cursor and resumes from it
        (resumed,) = spider.requests_for([replace(listing, cursor=sql(f"SELECT cursor {where}"))])
        end = await drain(resumed, page2)
        await frontier.flush()
        return after_first, [resumed], end

    def sql(statement: str) -> Any:
        with frontier.store.engine.connect() as conn:
            return conn.exec_driver_sql(statement).all()[0][0]

    where = "FROM work_items WHERE resource_type = 'listing' AND resource_id LIKE '%works%'"

    after_first, (resumed,), end = asyncio.run(run())
    (next_request,) = after_first
    assert (
        next_request.url == f"{BASE}api/works?per-page=2&cursor=c2&mailto=tests%40holocron.invalid"
    )
    assert resumed.url == next_request.url
    assert spider.crawler.stats.get_value("holocron/http/listings_resumed") == 1
    assert spider.crawler.stats.get_value("holocron/frontier/cursors_saved") == 1
    with frontier.store.engine.connect() as conn:
        queued = dict(
            conn.exec_driver_sql(
                "SELECT resource_id, depth FROM work_items WHERE resource_type = 'work'"
            ).all()
        )
    assert queued == {f"{BASE}api/works/W1": 0, f"{BASE}api/works/W2": 0, f"{BASE}api/works/W3": 0}
    (outcome,) = end
    assert (outcome.status, outcome.depth) == (Status.COMPLETED, 0)


def test_recrawl_changed_asks_with_the_validators_and_304_keeps_the_record(
    make_spider: Callable[..., HttpSpider],
) -> None:
    spider = make_spider()
    work = item(f"{BASE}api/works/W1")
    (request,) = spider.requests_for([work])
    headers = {"ETag": '"v1"', "Last-Modified": "Sat, 21 Nov 2026 10:00:00 GMT"}
    response = json_response(request, {"id": "https://w.test/W1"})
    response.headers.update(headers)
    (record,) = request.callback(response)
    assert record.version == 'etag:"v1"'
    assert "If-None-Match" not in request.headers  # only recrawl=changed asks conditionally

    changed = make_spider(recrawl="changed")
    known = item(f"{BASE}api/works/W1", content_hash="abc", version='etag:"v1"')
    (request,) = changed.requests_for([known])
    assert request.headers["If-None-Match"] == b'"v1"'
    (outcome,) = request.callback(Response(request.url, status=304, request=request))
    assert outcome == Outcome(known.id, Status.COMPLETED, None, "abc", 0, 'etag:"v1"')
    dated = replace(known, version="last-modified:Sat, 21 Nov 2026 10:00:00 GMT")
    (request,) = changed.requests_for([dated])
    assert request.headers["If-Modified-Since"] == b"Sat, 21 Nov 2026 10:00:00 GMT"
    assert changed.crawler.stats.get_value("holocron/http/not_modified") == 1


def test_secrets_are_not_stored_nor_logged(
    make_spider: Callable[..., HttpSpider], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOLOCRON_TEST_KEY", "k3y")
    source = API_SOURCE.replace(
        "headers: {Accept: application/json}",
        'headers: {Accept: application/json, X-Key: "${HOLOCRON_TEST_KEY}", Cookie: "a=b"}',
    ).replace("params: {mailto:", 'params: {key: "${HOLOCRON_TEST_KEY}", mailto:')
    spider = make_spider(source)
    work = item(f"{BASE}api/works/W1")
    spider.frontier().in_flight.add(work.id)
    (request,) = spider.requests_for([work])
    assert "key=k3y" in request.url
    assert request.headers["X-Key"] == b"k3y"
    (record,) = request.callback(json_response(request, {"id": "W1"}))
    assert record.request_headers["X-Key"] == "***"
    assert record.request_headers["Cookie"] == "***"
    assert record.request_headers["Accept"] == "application/json"
    assert "k3y" not in record.request_uri
    failure = Failure(HttpError(Response(request.url, status=500, request=request)))
    failure.request = request  # type: ignore[attr-defined]
    spider.request_failed(failure)
    outcome = spider.frontier().writes.outcomes[work.id]
    assert outcome.error_message == f"HTTP 500 from {BASE}api/works/W1"
