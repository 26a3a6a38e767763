"""``resources:`` — html, revisions and info records beside the page, offline.

The callbacks run on responses recorded from the test bed wiki (MediaWiki 1.39, 300 pages,
seed 1) at 127.0.0.1:8091, replayed from tests/fixtures/cassettes as in
tests/unit/test_mediawiki_spider.py (under CI: replayed only; to record again, start the test
bed on that port and delete the cassette).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.http import TextResponse
from scrapy.settings import Settings
from scrapy.utils.test import get_reactor_settings

from holocron_scrapy.config.sources import SourceConfigError, load_source
from holocron_scrapy.items import ResourceRecord
from holocron_scrapy.mediawiki import resources
from holocron_scrapy.model import NewWorkItem, Outcome, Status, WorkItem
from holocron_scrapy.spiders.mediawiki import MediaWikiSpider
from tests.unit.test_mediawiki_spider import API, fetch, run
from tests.unit.test_sources import VALID, with_, write

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

__all__ = ["fetch"]  # the cassette fixture, used by name


def params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def make_spider(
    tmp_path: Path,
    kinds: Sequence[str],
    settings: dict[str, Any] | None = None,
    namespaces: Sequence[int] = (0,),
) -> MediaWikiSpider:
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
  max_depth: 1
  namespaces: [{", ".join(map(str, namespaces))}]
resources: [{", ".join(kinds)}]
""",
        encoding="utf-8",
    )
    # The cassettes were recorded without maxlag.
    base = {"TELNETCONSOLE_ENABLED": False, "MEDIAWIKI_MAXLAG": 0, **get_reactor_settings()}
    crawler = Crawler(MediaWikiSpider, Settings({**base, **(settings or {})}))
    spider = MediaWikiSpider.from_crawler(crawler, source=str(path))
    crawler._apply_settings()
    assert isinstance(spider, MediaWikiSpider)
    return spider


def items_of(kind: str, *titles: str, depth: int = 0) -> list[WorkItem]:
    return [
        WorkItem(i + 1, "mediawiki", "testwiki", kind, t, depth, -depth, 1)
        for i, t in enumerate(titles)
    ]


# --- URLs ------------------------------------------------------------------------------------


def test_parse_url() -> None:
    url = resources.parse_url("https://w.test/api.php", "1+1 (A/B)", maxlag=5)
    assert url.startswith("https://w.test/api.php?action=parse&")
    assert "page=1%2B1%20%28A%2FB%29" in url
    assert params(url) == {
        "action": "parse",
        "format": "json",
        "formatversion": "2",
        "prop": "text|sections|links|categories|revid|displaytitle",
        "disablelimitreport": "1",
        "page": "1+1 (A/B)",
        "maxlag": "5",
    }
    assert "maxlag" not in resources.parse_url("https://w.test/api.php", "A", maxlag=0)


def test_history_url_with_and_without_content_and_continued() -> None:
    url = resources.history_url("https://w.test/api.php", "Yoda")
    assert params(url) == {
        "action": "query",
        "format": "json",
        "formatversion": "2",
        "prop": "revisions",
        "rvprop": "ids|timestamp|flags|comment|user|sha1|size",
        "rvslots": "main",
        "rvlimit": "max",
        "rvdir": "newer",
        "titles": "Yoda",
    }
    with_content = params(resources.history_url("https://w.test/api.php", "Yoda", content=True))
    assert with_content["rvprop"].endswith("|content")
    cont = {"rvcontinue": "20260101000000|42", "continue": "||"}
    assert params(resources.history_url("https://w.test/api.php", "Yoda", cont)) == {
        **params(url),
        **cont,
    }
    assert params(resources.continued(url, cont)) == {**params(url), **cont}


def test_info_url_batches_titles_without_redirects() -> None:
    url = resources.info_url("https://w.test/api.php", ["A", "B", "Yoda"], maxlag=2.5)
    got = params(url)
    assert got["titles"] == "A|B|Yoda"
    assert got["prop"] == "info|pageprops"
    assert got["inprop"] == "protection|url|displaytitle|talkid|subjectid"
    assert got["maxlag"] == "2.5"
    assert "redirects" not in got


def test_requests_per_resource_type(tmp_path: Path) -> None:
    spider = make_spider(tmp_path, ["page", "html", "revisions", "info"])
    titles = [f"T{i}" for i in range(60)]
    html = spider.requests_for(items_of("html", *titles))
    history = spider.requests_for(items_of("revisions", *titles))
    info = spider.requests_for(items_of("info", *titles))
    assert len(html) == len(history) == 60  # the API takes one title per parse / history
    assert [len(r.meta["holocron_work_items"]) for r in info] == [50, 10]
    assert all(r.dont_filter for r in html + history + info)
    assert params(html[0].url)["page"] == "T0"
    assert params(history[1].url)["titles"] == "T1"
    assert "content" not in params(history[0].url)["rvprop"]
    with_content = make_spider(tmp_path, ["page"], {"MEDIAWIKI_REVISIONS_CONTENT": True})
    [req] = with_content.requests_for(items_of("revisions", "T0"))
    assert params(req.url)["rvprop"].endswith("|content")


# --- the source file -------------------------------------------------------------------------


BAD_RESOURCES = [
    pytest.param("html", "resources", "expected a list", id="not-a-list"),
    pytest.param([], "resources", "at least one resource", id="empty"),
    pytest.param(["page", "htlm"], "resources[1]", "did you mean 'html'?", id="typo"),
    pytest.param(
        ["page", "wikitext"], "resources[1]", "allowed: page, html, revisions, info", id="unknown"
    ),
    pytest.param(["page", 3], "resources[1]", "expected a string, got integer 3", id="int"),
    pytest.param(["html", "info"], "resources", "must include 'page'", id="no-page"),
]


@pytest.mark.parametrize(("value", "key", "fragment"), BAD_RESOURCES)
def test_bad_resources(tmp_path: Path, value: Any, key: str, fragment: str) -> None:
    path = write(tmp_path / "sources" / "x.yaml", with_("resources", value))
    with pytest.raises(SourceConfigError) as info:
        load_source(str(path))
    assert info.value.key == key
    assert fragment in info.value.message


def test_resources_default_and_dedupe(tmp_path: Path) -> None:
    assert load_source(str(write(tmp_path / "a.yaml", VALID))).resources == ("page",)
    both = with_("resources", ["info", "page", "html", "info", "revisions"])
    config = load_source(str(write(tmp_path / "b.yaml", both)))
    assert config.resources == ("info", "page", "html", "revisions")


# --- callbacks on recorded responses ---------------------------------------------------------


def test_completed_page_queues_its_other_resources(tmp_path: Path, fetch: Any) -> None:
    spider = make_spider(tmp_path, ["page", "html", "info"])
    [req] = spider.requests_for(items_of("page", "Anakin", "Ezra Bridger", depth=1))
    out = run(spider, fetch, req)
    others = [o for o in out if isinstance(o, NewWorkItem) and o.resource_type != "page"]
    assert others == [
        NewWorkItem("mediawiki", "testwiki", "html", "Ezra Bridger", 1, -1, 2),
        NewWorkItem("mediawiki", "testwiki", "info", "Ezra Bridger", 1, -1, 2),
    ]
    assert others[0].dedupe_key == "mediawiki:testwiki:html:Ezra Bridger"
    # Queued before the record (a crash cannot leave a completed page without them); nothing
    # for the redirect: its target is queued as a page, whose completion queues them.
    record = next(o for o in out if isinstance(o, ResourceRecord))
    assert out.index(others[-1]) < out.index(record)


def test_html_record_and_missing_title(tmp_path: Path, fetch: Any) -> None:
    spider = make_spider(tmp_path, ["page", "html"])
    found, missing = spider.requests_for(items_of("html", "Ezra Bridger", "No such page"))
    [record] = run(spider, fetch, found)
    assert isinstance(record, ResourceRecord)
    assert (record.resource_type, record.resource_id) == ("html", "Ezra Bridger")
    parsed = record.payload
    assert parsed["title"] == "Ezra Bridger"
    assert record.version == str(parsed["revid"])
    assert {"text", "sections", "links", "categories", "displaytitle"} <= set(parsed)
    assert "Ezra" in parsed["text"]
    assert "NewPP limit report" not in parsed["text"]  # no per-parse noise in the hash
    assert record.request_uri == found.url
    [outcome] = run(spider, fetch, missing)
    assert isinstance(outcome, Outcome)
    assert outcome.status == Status.SKIPPED
    assert str(outcome.error_message).startswith("MediaWiki API error missingtitle")


def test_revisions_follow_continue_into_one_record(tmp_path: Path, fetch: Any) -> None:
    spider = make_spider(tmp_path, ["page", "revisions"])
    [item] = items_of("revisions", "Battle of Driya")
    # rvlimit=2 instead of max: the 6 revisions of the page come in 3 responses.
    url = resources.history_url(API, item.resource_id).replace("rvlimit=max", "rvlimit=2")
    req = spider.resource_fetch.request(url, [item], spider.parse_history)
    [record] = run(spider, fetch, req)
    assert isinstance(record, ResourceRecord)
    assert spider.crawler.stats is not None
    assert spider.crawler.stats.get_value("holocron/mediawiki/continuations") == 2
    revisions = record.payload["revisions"]
    ids = [r["revid"] for r in revisions]
    assert len(ids) == 6
    assert ids == sorted(ids)  # oldest first, none lost or repeated
    assert all("content" not in r["slots"]["main"] for r in revisions if "slots" in r)
    assert record.payload["title"] == "Battle of Driya"
    assert record.version == str(ids[-1])
    assert record.request_uri == url


def test_info_records_per_page_and_skips(tmp_path: Path, fetch: Any) -> None:
    spider = make_spider(tmp_path, ["page", "info"])
    titles = ["Ezra Bridger", "No such page", "Foo[bar]", "Anakin"]
    [req] = spider.requests_for(items_of("info", *titles))
    out = run(spider, fetch, req)
    records = {o.resource_id: o for o in out if isinstance(o, ResourceRecord)}
    outcomes = {o.work_item_id: o for o in out if isinstance(o, Outcome)}
    assert set(records) == {"Ezra Bridger", "Anakin"}
    ezra = records["Ezra Bridger"].payload
    assert ezra["fullurl"].endswith("Ezra_Bridger")
    assert "protection" in ezra
    assert records["Ezra Bridger"].version == str(ezra["lastrevid"])
    assert records["Ezra Bridger"].resource_type == "info"
    assert records["Anakin"].payload.get("redirect") is True  # not followed
    assert outcomes[2].status == outcomes[3].status == Status.SKIPPED
    assert "missing" in str(outcomes[2].error_message)
    assert "invalid title" in str(outcomes[3].error_message)


# --- file items (namespace 6 in discovery.namespaces) ---------------------------------------


def test_file_items_are_recorded_with_their_image_info(tmp_path: Path, fetch: Any) -> None:
    """The test bed's files were uploaded by tests/e2e/testbed/import.sh (gen_files.py)."""
    spider = make_spider(tmp_path, ["page"], namespaces=(0, 6))
    titles = ("File:Holocron.png", "File:Kyber crystal.png", "File:No such file.png")
    [request] = spider.requests_for(items_of("file", *titles))
    query = params(request.url)
    assert query["prop"] == "revisions|links|info|imageinfo"
    assert query["iiprop"] == "url|size|sha1|mime|timestamp|user"
    out = run(spider, fetch, request)
    records = {o.resource_id: o for o in out if isinstance(o, ResourceRecord)}
    assert set(records) == {"File:Holocron.png", "File:Kyber crystal.png"}
    for title, record in records.items():
        payload = record.payload
        assert (record.resource_type, payload["ns"], payload["title"]) == ("file", 6, title)
        assert record.version == str(payload["lastrevid"])
        assert payload["revisions"][0]["slots"]["main"]["content"]  # the description page
        [info] = payload["imageinfo"]
        assert info["mime"] == "image/png"
        assert info["size"] > 0
        assert len(info["sha1"]) == 40
        assert info["url"].endswith("/" + title.removeprefix("File:").replace(" ", "_"))
        assert info["user"] == "Admin"
    [missing] = [o for o in out if isinstance(o, Outcome)]
    assert (missing.status, missing.error_message) == (
        Status.SKIPPED,
        "missing: the page does not exist",
    )
    # Page items of the same crawl do not ask for image info.
    [page_request] = spider.requests_for(items_of("page", "Ezra Bridger"))
    assert "imageinfo" not in params(page_request.url)["prop"]


def answer(request: Request, data: dict[str, Any]) -> TextResponse:
    return TextResponse(request.url, body=json.dumps(data).encode(), request=request)


def test_a_file_with_older_versions_is_recorded_with_its_current_one(tmp_path: Path) -> None:
    """A query for one file continues into its older versions (``iistart``; the real answer of
    the test bed for a file uploaded twice): not followed; with links still to come, the
    continuation goes on without ``iistart`` and the current version is kept once."""
    spider = make_spider(tmp_path, ["page"], namespaces=(0, 6))
    latest = {"timestamp": "2026-11-22T08:39:44Z", "user": "Admin", "size": 79, "mime": "x/y"}
    page = {"pageid": 304, "ns": 6, "title": "File:Holocron.png", "lastrevid": 459}
    first = {
        "continue": {"iistart": "2026-11-22T08:35:04Z", "continue": "||revisions|links|info"},
        "query": {"pages": [{**page, "revisions": [{"revid": 459}], "imageinfo": [latest]}]},
    }
    [request] = spider.requests_for(items_of("file", "File:Holocron.png"))
    [record] = list(request.callback(answer(request, first)))
    assert isinstance(record, ResourceRecord)
    assert record.payload["imageinfo"] == [latest]

    with_links = {
        "continue": {
            "plcontinue": "304|0|Yoda",
            "iistart": "2026-11-22T08:35:04Z",
            "continue": "||revisions|info",
        },
        "query": {"pages": [{**page, "imageinfo": [latest], "links": [{"ns": 0, "title": "A"}]}]},
    }
    rest = {
        "query": {"pages": [{**page, "imageinfo": [latest], "links": [{"ns": 0, "title": "B"}]}]}
    }
    [request] = spider.requests_for(items_of("file", "File:Holocron.png"))
    [again] = list(request.callback(answer(request, with_links)))
    assert isinstance(again, Request)
    assert "plcontinue" in params(again.url)
    assert "iistart" not in params(again.url)
    out = list(again.callback(answer(again, rest)))
    [record] = [o for o in out if isinstance(o, ResourceRecord)]
    assert record.payload["imageinfo"] == [latest]
    assert [link["title"] for link in record.payload["links"]] == ["A", "B"]
