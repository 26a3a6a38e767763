"""The mediawiki spider's callbacks, offline, on responses recorded from a real MediaWiki.

The cassettes in tests/fixtures/cassettes were recorded with scrapy-mock (vcrpy) from the test
bed wiki (tests/e2e/testbed: MediaWiki 1.39, generated wiki of 300 pages, seed 1) served at
127.0.0.1:8091. Under CI they are replayed only (scrapy-mock's record mode "none"); to record
them again, start the test bed on that port and delete the cassette.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
import requests
from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.http import TextResponse
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler, get_reactor_settings

from holocron_scrapy.items import ResourceRecord
from holocron_scrapy.mediawiki import api as mwapi
from holocron_scrapy.model import NewWorkItem, Outcome, Status, WorkItem
from holocron_scrapy.spiders.mediawiki import MediaWikiSpider

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

API = "http://127.0.0.1:8091/api.php"


def write_source(tmp_path: Path, max_depth: int = 1, strategy: str = "breadth") -> Path:
    path = tmp_path / "testwiki.yaml"
    path.write_text(
        f"""
name: testwiki
type: mediawiki
api_url: {API}
user_agent: "HolocronScrapy/0.1 (tests; tests@example.org)"
seeds:
  titles: ["Ezra Bridger"]
discovery:
  max_depth: {max_depth}
  strategy: {strategy}
  namespaces: [0]
settings:
  DOWNLOAD_DELAY: 0.25
""",
        encoding="utf-8",
    )
    return path


def make_spider(tmp_path: Path, *, maxlag: float = 0, **kwargs: Any) -> MediaWikiSpider:
    """As ``Crawler.crawl()`` does: the spider first (it adds its source's settings), then the
    settings are applied and frozen."""
    # The cassettes were recorded without maxlag (tests/unit/test_api_errors.py tests it).
    settings = {
        "TELNETCONSOLE_ENABLED": False,
        "MEDIAWIKI_MAXLAG": maxlag,
        **get_reactor_settings(),
    }
    crawler = Crawler(MediaWikiSpider, Settings(settings))
    spider = MediaWikiSpider.from_crawler(crawler, source=str(write_source(tmp_path, **kwargs)))
    crawler._apply_settings()
    assert isinstance(spider, MediaWikiSpider)
    return spider


def work_items(*titles: str, depth: int = 0) -> list[WorkItem]:
    return [
        WorkItem(i + 1, "mediawiki", "testwiki", "page", t, depth, -depth, 1)
        for i, t in enumerate(titles)
    ]


@pytest.fixture
def fetch(
    request: pytest.FixtureRequest, vcr_settings: Any
) -> Iterator[Callable[[Request], TextResponse]]:
    """GET a request's URL through scrapy-mock's VCR: replayed from the test's cassette."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
    with vcr_settings.use_cassette(f"{name}.yaml"), requests.Session() as session:

        def get(req: Request) -> TextResponse:
            r = session.get(req.url, timeout=30)
            return TextResponse(
                url=req.url,
                status=r.status_code,
                body=r.content,
                headers={
                    k: v
                    for k, v in r.headers.items()
                    if k.lower().startswith(("content-type", "mediawiki"))
                },
                request=req,
            )

        yield get


def run(
    spider: MediaWikiSpider, fetch: Callable[[Request], TextResponse], req: Request
) -> list[Any]:
    """Feed a request's response to its callback, following continuation requests."""
    out: list[Any] = []
    pending = [req]
    while pending:
        r = pending.pop()
        for obj in r.callback(fetch(r)):  # type: ignore[misc]
            (pending if isinstance(obj, Request) else out).append(obj)
    return out


def test_settings_of_the_source_apply(tmp_path: Path) -> None:
    spider = make_spider(tmp_path)
    settings = spider.crawler.settings
    assert settings.getfloat("DOWNLOAD_DELAY") == 0.25
    assert settings.get("USER_AGENT") == "HolocronScrapy/0.1 (tests; tests@example.org)"
    assert settings.getbool("ROBOTSTXT_OBEY") is False  # the API is not governed by robots.txt


def test_requests_batch_titles_and_encode_them(tmp_path: Path) -> None:
    spider = make_spider(tmp_path)
    items = work_items(*[f"T{i}" for i in range(120)], "1+1=2 (holonet show)")
    reqs = spider.requests_for(items)
    assert [len(r.meta["holocron_work_items"]) for r in reqs] == [50, 50, 21]
    assert all(r.dont_filter for r in reqs)
    assert "1%2B1%3D2%20%28holonet%20show%29" in reqs[-1].url


def test_batch_resolves_pages_redirects_missing_and_invalid(tmp_path: Path, fetch: Any) -> None:
    spider = make_spider(tmp_path)
    titles = [
        "Anakin",
        "Ezra Bridger",
        "ezra_Bridger",
        "No such page",
        "Foo[bar]",
        "Timeline of galactic history",
        "X-2711 shuttle",
    ]
    items = work_items(*titles)
    [req] = spider.requests_for(items)
    out = run(spider, fetch, req)
    records = {o.resource_id: o for o in out if isinstance(o, ResourceRecord)}
    outcomes = {o.work_item_id: o for o in out if isinstance(o, Outcome)}
    new = [o for o in out if isinstance(o, NewWorkItem)]

    assert set(records) == {"Ezra Bridger", "Timeline of galactic history", "X-2711 shuttle"}
    assert outcomes[1].status == Status.SKIPPED
    assert "redirect to 'Anakin Skywalker'" in str(outcomes[1].error_message)
    assert outcomes[3].status == Status.SKIPPED
    assert "normalized to 'Ezra Bridger'" in str(outcomes[3].error_message)
    assert outcomes[4].status == Status.SKIPPED
    assert "missing" in str(outcomes[4].error_message)
    assert outcomes[5].status == Status.SKIPPED
    assert "invalid title" in str(outcomes[5].error_message)
    # The links of the whole batch span several plcontinue responses; the merge loses none.
    timeline = records["Timeline of galactic history"].payload
    links = [(link["ns"], link["title"]) for link in timeline["links"]]
    assert len(links) == len(set(links)) == 621
    assert timeline["revisions"][0]["slots"]["main"]["content"]
    assert timeline["lastrevid"] == timeline["revisions"][0]["revid"]
    # Redirect target at the same depth; links of the pages at depth + 1, ns 0 only.
    assert NewWorkItem("mediawiki", "testwiki", "page", "Anakin Skywalker", 0, 0, 1, hops=1) in new
    linked = {n.resource_id for n in new if n.depth == 1}
    assert {t for ns, t in links if ns == 0} <= linked
    assert all(n.priority == -n.depth for n in new)  # breadth first


def test_no_discovery_at_max_depth(tmp_path: Path, fetch: Any) -> None:
    spider = make_spider(tmp_path, max_depth=1, strategy="depth")
    [req] = spider.requests_for(work_items("Ezra Bridger", depth=1))
    out = run(spider, fetch, req)
    assert [type(o) for o in out] == [ResourceRecord]
    assert out[0].payload["title"] == "Ezra Bridger"


def test_api_error_envelope_fails_the_items(tmp_path: Path, fetch: Any) -> None:
    spider = make_spider(tmp_path)
    [req] = spider.requests_for(work_items("Ezra Bridger", "Yoda"))
    req = req.replace(url=req.url + "&maxlag=-1")  # a real wiki always refuses maxlag=-1
    out = run(spider, fetch, req)
    assert [o.status for o in out] == [Status.FAILED, Status.FAILED]
    assert out[0].error_message.startswith("MediaWiki API error maxlag: Waiting for a database")


@pytest.mark.parametrize(
    ("body", "ctype", "fragment"),
    [
        (b'{"batchcomplete": true, "query": {"pa', "application/json", "not JSON"),
        (b"<html><body>Internal error</body></html>", "text/html", "body starts '<html>"),
        (b"", "application/json", "not JSON"),
        (b"[1, 2]", "application/json", "expected a JSON object"),
    ],
)
def test_bad_responses_fail_the_items_with_a_clear_message(
    tmp_path: Path, body: bytes, ctype: str, fragment: str
) -> None:
    spider = make_spider(tmp_path)
    [req] = spider.requests_for(work_items("Ezra Bridger"))
    resp = TextResponse(url=req.url, body=body, headers={"Content-Type": ctype}, request=req)
    out = list(spider.parse_query(resp))
    assert len(out) == 1
    assert out[0].status == Status.FAILED
    assert fragment in out[0].error_message


def test_page_set_merges_continuations_by_page_id() -> None:
    pages = mwapi.PageSet()
    pages.add(
        {
            "query": {
                "pages": [
                    {
                        "pageid": 1,
                        "title": "A",
                        "revisions": [{"revid": 9}],
                        "links": [{"ns": 0, "title": "B"}],
                    }
                ]
            }
        }
    )
    pages.add(
        {
            "query": {
                "pages": [
                    {"pageid": 1, "title": "A", "links": [{"ns": 0, "title": "C"}]},
                    {"pageid": 2, "title": "D"},
                ]
            }
        }
    )
    assert pages.page("A") == {
        "pageid": 1,
        "title": "A",
        "revisions": [{"revid": 9}],
        "links": [{"ns": 0, "title": "B"}, {"ns": 0, "title": "C"}],
    }
    assert pages.page("D") == {"pageid": 2, "title": "D"}


def test_missing_source_is_a_usage_error(tmp_path: Path) -> None:
    from scrapy.exceptions import UsageError

    with pytest.raises(UsageError, match="nope"):
        MediaWikiSpider.from_crawler(
            get_crawler(MediaWikiSpider), source=str(tmp_path / "nope.yaml")
        )
