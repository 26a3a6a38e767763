"""``-a recrawl=changed``: the revision check (batched ``prop=info``), the requeues it makes, the
deletion record of the refetch, and that no recrawl mode seeds."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
from scrapy import Request
from scrapy.http import TextResponse

from holocron_scrapy.items import ResourceRecord
from holocron_scrapy.mediawiki.recrawl import KnownPage, compare, deletion_payload, info_url
from holocron_scrapy.model import NewWorkItem, Outcome, Status, WorkItem
from holocron_scrapy.spiders.mediawiki import revision_check
from tests.unit.conftest import SOURCE_NAME, RecordingEngine, wait_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.unit.conftest import Crawl

API = "http://127.0.0.1:8091/api.php"

# The shape MediaWiki 1.39 answers action=query&prop=info&formatversion=2 with (no redirects=1:
# a redirect is answered as the redirect page, with "redirect": true).
INFO_RESPONSE: dict[str, Any] = {
    "batchcomplete": True,
    "query": {
        "normalized": [{"fromencoded": False, "from": "ezra_Bridger", "to": "Ezra Bridger"}],
        "pages": [
            {
                "pageid": 1,
                "ns": 0,
                "title": "Changed",
                "contentmodel": "wikitext",
                "pagelanguage": "en",
                "touched": "2024-05-04T12:00:00Z",
                "lastrevid": 501,
                "length": 1200,
            },
            {"pageid": 2, "ns": 0, "title": "Unchanged", "lastrevid": 200, "length": 10},
            {"ns": 0, "title": "Deleted", "missing": True},
            {"ns": 0, "title": "Still deleted", "missing": True},
            {
                "pageid": 5,
                "ns": 0,
                "title": "Now a redirect",
                "redirect": True,
                "lastrevid": 502,
                "length": 30,
            },
            {"pageid": 6, "ns": 0, "title": "Ezra Bridger", "lastrevid": 600, "length": 99},
            {"pageid": 7, "ns": 0, "title": "Undeleted", "lastrevid": 700, "length": 9},
        ],
    },
}

KNOWN = [
    KnownPage(11, "Changed", "100"),
    KnownPage(12, "Unchanged", "200"),
    KnownPage(13, "Deleted", "300"),
    KnownPage(14, "Still deleted", "deleted"),
    KnownPage(15, "Now a redirect", "400"),
    KnownPage(16, "ezra_Bridger", "600"),  # answered under its normalized title
    KnownPage(17, "Undeleted", "deleted"),  # deleted, then created again
    KnownPage(18, "Not answered", "800"),
    KnownPage(19, "Never versioned", None),
]


def test_compare_sorts_pages_by_their_current_revision() -> None:
    data = {
        **INFO_RESPONSE,
        "query": {
            **INFO_RESPONSE["query"],
            "pages": [
                *INFO_RESPONSE["query"]["pages"],
                {"pageid": 9, "ns": 0, "title": "Never versioned", "lastrevid": 900},
            ],
        },
    }
    verdict = compare(data, KNOWN)
    assert [p.title for p in verdict.changed] == [
        "Changed",
        "Now a redirect",
        "Undeleted",
        "Never versioned",
    ]
    assert [p.title for p in verdict.deleted] == ["Deleted"]
    assert [p.title for p in verdict.unchanged] == ["Unchanged", "Still deleted", "ezra_Bridger"]
    assert [p.title for p in verdict.unanswered] == ["Not answered"]
    assert verdict.to_refetch == verdict.changed + verdict.deleted


def test_info_url_asks_for_page_info_without_following_redirects() -> None:
    url = info_url(API, ["A+B", "C|D?", "Ü"])
    query = parse_qs(urlsplit(url).query)
    assert query == {
        "action": ["query"],
        "format": ["json"],
        "formatversion": ["2"],
        "prop": ["info"],
        "titles": ["A+B|C|D?|Ü"],
    }
    assert "redirects" not in query


def test_deletion_payload() -> None:
    page = {"ns": 0, "title": "Deleted", "missing": True}
    assert deletion_payload(page, "300") == {
        "ns": 0,
        "title": "Deleted",
        "missing": True,
        "deleted": True,
        "lastrevid_before": 300,
    }


# -- the spider ----------------------------------------------------------------------------------


def complete(crawl: Crawl, versions: dict[str, str | None], kind: str = "page") -> dict[str, int]:
    """Put completed items of type ``kind`` (page items by default) with these versions into
    the crawl's (opened) state database."""
    store = crawl.store
    store.add_work_items([NewWorkItem("mediawiki", SOURCE_NAME, kind, title) for title in versions])
    claimed = store.claim(
        source_system="mediawiki",
        source_name=SOURCE_NAME,
        owner="earlier-run",
        run_id="0" * 32,
        limit=len(versions),
        lease_seconds=60,
    )
    store.finish_items([Outcome.completed(w, "a" * 64, versions[w.resource_id]) for w in claimed])
    return {w.resource_id: w.id for w in claimed}


def info_response(request: Request, data: dict[str, Any]) -> TextResponse:
    return TextResponse(
        request.url,
        body=json.dumps(data).encode(),
        encoding="utf-8",
        headers={"Content-Type": "application/json; charset=utf-8"},
        request=request,
    )


@pytest.fixture
def opened(make_crawl: Callable[..., Crawl]) -> Crawl:
    crawl = make_crawl(recrawl="changed")
    crawl.crawler.engine = RecordingEngine()  # type: ignore[assignment]
    asyncio.run(crawl.frontier.spider_opened(crawl.spider))
    return crawl


async def _collect(crawl: Crawl) -> list[Any]:
    return [obj async for obj in crawl.spider.start()]


async def _checks(crawl: Crawl) -> list[Any]:
    """The full prop=info pass (when the change feeds do not reach back to the sync point)."""
    return [obj async for obj in crawl.spider.revision_check.requests()]


def test_info_pass_checks_every_completed_page_in_full_batches(
    opened: Crawl, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(revision_check, "RECRAWL_READ_SIZE", 7)  # batches span the reads
    titles = [f"Page {i:03d}" for i in range(120)]
    ids = complete(opened, {t: str(i) for i, t in enumerate(titles)})
    complete(opened, {"Completed later": "5"})
    opened.store.requeue_ids([ids["Page 000"]])  # pending again: not checked
    requests = asyncio.run(_checks(opened))
    assert len(requests) == 3  # ceil(119 / 50)
    asked = []
    for request in requests:
        assert isinstance(request, Request)
        assert request.callback == opened.spider.parse_revisions
        assert request.dont_filter
        assert "holocron_work_items" not in request.meta
        query = parse_qs(urlsplit(request.url).query)
        assert query["prop"] == ["info"]
        pages = request.cb_kwargs["pages"]
        assert query["titles"] == ["|".join(p.title for p in pages)]
        asked.extend(pages)
    assert [len(r.cb_kwargs["pages"]) for r in requests] == [50, 50, 20]
    by_id = [t for t in sorted(ids, key=ids.__getitem__) if t != "Page 000"]
    assert [p.title for p in asked] == [*by_id, "Completed later"]
    assert [p.version for p in asked[:-1]] == [str(titles.index(t)) for t in by_id]
    assert {p.work_item_id for p in asked} == {*ids.values(), max(ids.values()) + 1} - {
        ids["Page 000"]
    }


def test_info_pass_checks_category_template_and_file_items_too(opened: Crawl) -> None:
    """Pages of other namespaces are recorded under their own types; their version is their
    lastrevid too. Listings and a page's other resources are not checked."""
    ids = complete(opened, {"Ezra Bridger": "10"})
    ids |= complete(opened, {"Category:Jedi": "11"}, "category")
    ids |= complete(opened, {"Template:Infobox": "12"}, "template")
    ids |= complete(opened, {"File:Saber.png": "13"}, "file")
    complete(opened, {"Ezra Bridger": "14"}, "html")
    complete(opened, {"allpages?apnamespace=0": None}, "listing")
    [request] = asyncio.run(_checks(opened))
    assert isinstance(request, Request)
    pages = request.cb_kwargs["pages"]
    assert [(p.work_item_id, p.title, p.version) for p in pages] == [
        (ids["Ezra Bridger"], "Ezra Bridger", "10"),
        (ids["Category:Jedi"], "Category:Jedi", "11"),
        (ids["Template:Infobox"], "Template:Infobox", "12"),
        (ids["File:Saber.png"], "File:Saber.png", "13"),
    ]
    titles = parse_qs(urlsplit(request.url).query)["titles"]
    assert titles == ["Ezra Bridger|Category:Jedi|Template:Infobox|File:Saber.png"]


def test_parse_revisions_requeues_a_changed_category_and_template(opened: Crawl) -> None:
    ids = complete(opened, {"Category:Jedi": "11", "Category:Sith": "21"}, "category")
    ids |= complete(opened, {"Template:Infobox": "12"}, "template")
    pages = [
        KnownPage(ids["Category:Jedi"], "Category:Jedi", "11"),
        KnownPage(ids["Category:Sith"], "Category:Sith", "21"),
        KnownPage(ids["Template:Infobox"], "Template:Infobox", "12"),
    ]
    answer = {
        "batchcomplete": True,
        "query": {
            "pages": [
                {"pageid": 5, "ns": 14, "title": "Category:Jedi", "lastrevid": 31},
                {"pageid": 6, "ns": 14, "title": "Category:Sith", "lastrevid": 21},
                {"pageid": 7, "ns": 10, "title": "Template:Infobox", "lastrevid": 32},
            ]
        },
    }
    request = Request(info_url(API, [p.title for p in pages]))
    engine = opened.crawler.engine
    assert isinstance(engine, RecordingEngine)

    async def run() -> None:
        await opened.spider.parse_revisions(info_response(request, answer), pages)
        await wait_for(lambda: bool(engine.requests))

    asyncio.run(run())
    reopened = {
        (row["resource_type"], row["resource_id"])
        for row in opened.rows("work_items")
        if row["status"] != "completed"
    }
    assert reopened == {("category", "Category:Jedi"), ("template", "Template:Infobox")}
    assert opened.stat("holocron/recrawl/changed") == 2


def test_start_yields_nothing_without_recrawl_changed(make_crawl: Callable[..., Crawl]) -> None:
    for mode in (None, "all"):
        crawl = make_crawl(recrawl=mode)
        asyncio.run(crawl.frontier.spider_opened(crawl.spider))
        assert asyncio.run(_collect(crawl)) == []


def test_parse_revisions_requeues_changed_and_deleted_pages(opened: Crawl) -> None:
    versions = {p.title: p.version for p in KNOWN if p.title != "ezra_Bridger"}
    versions["Ezra Bridger"] = "600"
    ids = complete(opened, versions)
    pages = [KnownPage(ids.get(p.title, ids["Ezra Bridger"]), p.title, p.version) for p in KNOWN]
    request = Request(info_url(API, [p.title for p in pages]))
    engine = opened.crawler.engine
    assert isinstance(engine, RecordingEngine)

    async def run() -> None:
        assert (
            await opened.spider.parse_revisions(info_response(request, INFO_RESPONSE), pages)
            is None
        )
        await wait_for(lambda: bool(engine.requests))

    asyncio.run(run())
    rows = opened.item_rows()
    requeued = {"Changed", "Deleted", "Now a redirect", "Undeleted", "Never versioned"}
    # Never versioned is absent from this answer: it is not requeued.
    requeued.discard("Never versioned")
    assert {t for t, row in rows.items() if row["status"] != "completed"} == requeued
    assert all(rows[t]["version"] == versions[t] for t in versions)  # kept until refetched
    # The frontier claimed them at once and handed the page query to the engine.
    [refetch] = engine.requests
    assert sorted(w.resource_id for w in refetch.meta["holocron_work_items"]) == sorted(requeued)
    assert opened.stat("holocron/recrawl/checked") == len(KNOWN)
    assert opened.stat("holocron/recrawl/changed") == 3
    assert opened.stat("holocron/recrawl/deleted") == 1
    assert opened.stat("holocron/recrawl/unanswered") == 2
    assert opened.stat("holocron/frontier/requeued") == 4


def test_parse_revisions_on_an_api_error_requeues_nothing(opened: Crawl) -> None:
    ids = complete(opened, {"Changed": "100"})
    pages = [KnownPage(ids["Changed"], "Changed", "100")]
    request = Request(info_url(API, ["Changed"]))
    error = {"error": {"code": "maxlag", "info": "Waiting for a database server: 6 s lagged"}}
    asyncio.run(opened.spider.parse_revisions(info_response(request, error), pages))
    assert opened.item_rows()["Changed"]["status"] == "completed"
    assert opened.stat("holocron/recrawl/check_errors") == 1
    assert opened.stat("holocron/recrawl/checked") is None


def test_parse_revisions_requeues_the_other_resources_of_changed_and_deleted_pages(
    opened: Crawl,
) -> None:
    opened.spider.config = dataclasses.replace(
        opened.spider.config, resources=("page", "html", "info")
    )
    titles = ["Changed", "Unchanged", "Deleted"]
    versions = {"Changed": "100", "Unchanged": "200", "Deleted": "300"}
    ids = complete(opened, versions)
    store = opened.store
    others = [
        NewWorkItem("mediawiki", SOURCE_NAME, kind, title)
        for kind in ("html", "info", "revisions")  # revisions: no longer configured
        for title in titles
    ]
    store.add_work_items(others)
    claimed = store.claim(
        source_system="mediawiki",
        source_name=SOURCE_NAME,
        owner="earlier-run",
        run_id="0" * 32,
        limit=len(others),
        lease_seconds=60,
    )
    store.finish_items([Outcome.completed(w, "b" * 64, "1") for w in claimed])
    pages = [KnownPage(ids[t], t, versions[t]) for t in titles]
    request = Request(info_url(API, titles))
    engine = opened.crawler.engine
    assert isinstance(engine, RecordingEngine)

    async def run() -> None:
        await opened.spider.parse_revisions(info_response(request, INFO_RESPONSE), pages)
        await wait_for(lambda: bool(engine.requests))

    asyncio.run(run())
    status = {
        (row["resource_type"], row["resource_id"]): row["status"]
        for row in opened.rows("work_items")
    }
    reopened = {key for key, value in status.items() if value != "completed"}
    assert reopened == {
        (kind, title) for kind in ("page", "html", "info") for title in ("Changed", "Deleted")
    }
    assert opened.stat("holocron/frontier/requeued") == 6
    assert opened.stat("holocron/frontier/requeued_related") == 4


def test_no_recrawl_mode_seeds(make_crawl: Callable[..., Crawl]) -> None:
    for mode in ("changed", "all"):
        crawl = make_crawl(recrawl=mode)
        asyncio.run(crawl.frontier.spider_opened(crawl.spider))
        assert crawl.rows("work_items") == []
        assert crawl.stat("holocron/frontier/seeded") == 0
    crawl = make_crawl()
    asyncio.run(crawl.frontier.spider_opened(crawl.spider))
    assert crawl.stat("holocron/frontier/seeded") == 3


def test_unknown_recrawl_mode_is_a_usage_error(make_crawl: Callable[..., Crawl]) -> None:
    from scrapy.exceptions import UsageError

    with pytest.raises(UsageError, match="expected one of all, changed"):
        make_crawl(recrawl="some")


# -- the refetch -----------------------------------------------------------------------------------


def _finish(crawl: Crawl, item: WorkItem, page: dict[str, Any]) -> list[Any]:
    from holocron_scrapy.mediawiki import api as mwapi

    pages = mwapi.PageSet()
    pages.add({"query": {"pages": [page]}})
    state = {
        "first_url": f"{API}?titles={item.resource_id}",
        "request_headers": {},
        "response_headers": {},
        "fetched_at": datetime(2024, 5, 4, 12, 0, 0),
        "latency": 0.25,
    }
    response = TextResponse(state["first_url"], body=b"{}", encoding="utf-8")
    return list(crawl.spider.page_query.finish(item, pages, state, response))


def work_item(title: str, version: str | None) -> WorkItem:
    return WorkItem(1, "mediawiki", SOURCE_NAME, "page", title, 0, 0, 1, "a" * 64, version)


def test_a_missing_page_that_had_a_record_gets_a_deletion_record(opened: Crawl) -> None:
    page = {"ns": 0, "title": "Deleted", "missing": True}
    [record] = _finish(opened, work_item("Deleted", "300"), page)
    assert isinstance(record, ResourceRecord)
    assert record.version == "deleted"
    assert record.payload == {**page, "deleted": True, "lastrevid_before": 300}
    assert (record.resource_type, record.resource_id) == ("page", "Deleted")
    assert not record.unchanged
    # Never recorded, or its deletion already recorded: skipped, no record.
    for version in (None, "deleted"):
        [outcome] = _finish(opened, work_item("Deleted", version), page)
        assert isinstance(outcome, Outcome)
        assert outcome.status == Status.SKIPPED


def test_a_page_record_carries_its_lastrevid(opened: Crawl) -> None:
    page = {"pageid": 1, "ns": 0, "title": "Changed", "lastrevid": 501, "revisions": []}
    [record] = _finish(opened, work_item("Changed", "100"), page)
    assert isinstance(record, ResourceRecord)
    assert record.version == "501"


def _finish_redirect(crawl: Crawl, item: WorkItem, target: str) -> list[Any]:
    from holocron_scrapy.mediawiki import api as mwapi

    pages = mwapi.PageSet()
    pages.add(
        {
            "query": {
                "redirects": [{"from": item.resource_id, "to": target}],
                "pages": [{"pageid": 9, "ns": 0, "title": target, "lastrevid": 900}],
            }
        }
    )
    state = {
        "first_url": f"{API}?titles={item.resource_id}",
        "request_headers": {},
        "response_headers": {},
        "fetched_at": datetime(2024, 5, 4, 12, 0, 0),
        "latency": 0.25,
    }
    response = TextResponse(state["first_url"], body=b"{}", encoding="utf-8")
    return list(crawl.spider.page_query.finish(item, pages, state, response))


def test_a_moved_page_that_had_a_record_gets_a_redirect_record(opened: Crawl) -> None:
    for version in ("300", "redirect"):
        queued, record = _finish_redirect(opened, work_item("Bossk", version), "Bossk (moved)")
        assert isinstance(queued, NewWorkItem)
        assert queued.resource_id == "Bossk (moved)"
        assert isinstance(record, ResourceRecord)
        assert record.version == "redirect"
        moved = {"title": "Bossk", "redirect": True, "redirect_to": "Bossk (moved)"}
        assert record.payload == moved
    # Never recorded: skipped, the target queued.
    queued, outcome = _finish_redirect(opened, work_item("Bossk", None), "Bossk (moved)")
    assert isinstance(outcome, Outcome)
    assert outcome.status == Status.SKIPPED


def test_a_recorded_redirect_is_unchanged_while_it_redirects() -> None:
    known = [KnownPage(1, "Still", "redirect"), KnownPage(2, "Page again", "redirect")]
    data = {
        "query": {
            "pages": [
                {"pageid": 1, "ns": 0, "title": "Still", "redirect": True, "lastrevid": 5},
                {"pageid": 2, "ns": 0, "title": "Page again", "lastrevid": 6},
            ]
        }
    }
    verdict = compare(data, known)
    assert [p.title for p in verdict.unchanged] == ["Still"]
    assert [p.title for p in verdict.changed] == ["Page again"]
