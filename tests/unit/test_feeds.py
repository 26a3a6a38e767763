"""``recrawl=changed`` by change feeds, offline: the probe, the feeds and ``embeddedin`` as the test
MediaWiki answered them, what :func:`feed_plan.plan` queues, and the spider's feed sync on a real
SQLite state database.

tests/fixtures/feeds/*.json were recorded from the test bed wiki (tests/e2e/testbed, 300 pages,
seed 1) after a move (Bossk), a deletion (4-LOM), a new page, an edit of Yoda and one of
Template:Starship infobox (then edits of benchmarks/refresh_requests.py); URLs are written with
port 8091 like the cassettes'.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
from scrapy import Request
from scrapy.http import TextResponse

from holocron_scrapy.mediawiki import feed_plan, feeds
from holocron_scrapy.model import NewWorkItem, Outcome
from holocron_scrapy.store.sync import KnownItem, SyncPoint
from tests.unit.conftest import SOURCE_NAME, RecordingEngine

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.unit.conftest import Crawl

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
API = "http://127.0.0.1:8091/api.php"
POINT = SyncPoint(datetime(2026, 12, 3, 8, 5, 0))


def recorded(name: str) -> tuple[str, dict[str, Any]]:
    fixture = json.loads((FIXTURES / f"{name}.json").read_text("utf-8"))
    return fixture["url"], json.loads(fixture["body"])


def response(name: str, **cb_kwargs: Any) -> TextResponse:
    fixture = json.loads((FIXTURES / f"{name}.json").read_text("utf-8"))
    request = Request(fixture["url"], cb_kwargs=cb_kwargs)
    return TextResponse(
        fixture["url"],
        body=fixture["body"].encode(),
        encoding="utf-8",
        headers={"Content-Type": "application/json; charset=utf-8"},
        request=request,
    )


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# -- URLs ---------------------------------------------------------------------------------------


def test_feed_url_reads_both_feeds_from_before_the_sync_point() -> None:
    params = query(feeds.feed_url(API, POINT, maxlag=5))
    assert params["list"] == "recentchanges|logevents"
    assert params["rcstart"] == params["lestart"] == "2026-12-03T08:00:00Z"  # 5 min before
    assert (params["rcdir"], params["ledir"]) == ("newer", "newer")
    assert params["rcprop"] == "ids|title|timestamp|loginfo"
    assert params["rctype"] == "edit|new|categorize"
    assert params["maxlag"] == "5"
    cont = {"rccontinue": "20261203082657|469", "continue": "-||"}
    assert query(feeds.feed_url(API, POINT, cont))["rccontinue"] == "20261203082657|469"
    # The recorded requests are these very URLs.
    assert recorded("feed_page1")[0] == feeds.feed_url(API, POINT, limit="3")


def test_probe_says_whether_recent_changes_reach_back_to_the_sync_point() -> None:
    url, covered = recorded("probe_covered")
    assert url == feeds.probe_url(API, POINT)
    assert query(url)["rcdir"] == "older"
    assert feeds.covered(covered)
    _, purged = recorded("probe_not_covered")  # a sync point of 2000: before the oldest (2008)
    assert not feeds.covered(purged)
    after = feeds.point_of_probe(purged)
    assert after == SyncPoint(datetime(2026, 12, 3, 8, 27, 6), None, 14)


# -- reading the feeds --------------------------------------------------------------------------


def test_read_feed_turns_entries_into_changes_and_advances_the_ids() -> None:
    _, first = recorded("feed_page1")
    _, second = recorded("feed_page2")
    page1 = feeds.read_feed(first, POINT)
    assert [(c.kind, c.title) for c in page1.changes] == [
        ("new", "Main Page"),
        ("new", "New page h11b"),
        ("edit", "Template:Starship infobox"),
        ("upload/upload", "File:Kyber crystal.png"),  # "create" log entries are not changes
    ]
    assert page1.changes[2].revid == 462
    page2 = feeds.read_feed(second, POINT)
    moves = [c for c in page2.changes if c.kind == "move/move"]
    assert [(c.title, c.target) for c in moves] == [("Bossk", (0, "Bossk (moved)"))]
    assert ("delete/delete", "4-LOM") in [(c.kind, c.title) for c in page2.changes]
    assert ("edit", "Yoda", 463) in [(c.kind, c.title, c.revid) for c in page2.changes]
    reached = page2.advance(page1.advance(POINT))
    assert (reached.rc_id, reached.log_id) == (594, 14)
    assert reached.timestamp == datetime(2026, 12, 3, 8, 47, 37)
    # Entries up to the point's ids were applied already.
    again = feeds.read_feed(second, SyncPoint(POINT.timestamp, rc_id=594, log_id=12))
    assert [(c.kind, c.title) for c in again.changes] == [("delete/delete", "4-LOM")]


def test_embedding_titles_of_a_recorded_embeddedin() -> None:
    _, data = recorded("embeddedin_page1")
    titles = feeds.embedding_titles(data)
    assert len(titles) == 20
    assert (0, "Death Star") in titles
    assert data["continue"]["eicontinue"] == "0|274"


# -- what goes back into the queue --------------------------------------------------------------


def known(title: str, status: str = "completed", version: str | None = "100", depth: int = 1):  # type: ignore[no-untyped-def]
    return KnownItem(len(title), "h" * 64, "page", title, status, version, depth)


def test_plan() -> None:
    items = {
        k.resource_id: k
        for k in (
            known("Same", version="200"),
            known("Older", version="150"),
            known("Red link", status="skipped", version=None),
            known("Gone", version="300"),
            known("Gone before", version="deleted"),
            known("Moved", depth=2),
            known("Busy", status="pending"),
        )
    }
    changes = [
        feeds.Change("edit", 0, "Same", 200),  # its record holds it
        feeds.Change("edit", 0, "Older", 200),
        feeds.Change("new", 0, "Red link", 201),
        feeds.Change("new", 0, "Brand new", 202),  # allpages namespace 0
        feeds.Change("new", 4, "Project:Not crawled", 203),
        feeds.Change("delete/delete", 0, "Gone"),
        feeds.Change("delete/delete", 0, "Gone before"),
        feeds.Change("move/move", 0, "Moved", None, (0, "Moved to")),
        feeds.Change("edit", 0, "Busy", 204),  # pending: it is fetched anyway
        feeds.Change("edit", 10, "Template:Infobox", 205),
        feeds.Change("edit", 0, "Unknown", 206),
        feeds.Change("categorize", 14, "Category:Jedi", 207),  # a member added or removed
    ]
    plan = feed_plan.plan(changes, items, allpages=[0], namespaces=[0])
    assert plan.requeue == {"Older", "Red link", "Gone", "Moved"}
    assert plan.new == {"Brand new": (0, 0), "Moved to": (0, 2), "Unknown": (0, 0)}
    assert plan.transcluded == {"Template:Infobox"}
    assert plan.categories == {"Category:Jedi"}
    # Without an allpages seed, titles the queue does not know do not join (links bring them).
    assert feed_plan.plan(changes, items, allpages=[], namespaces=[0]).new == {"Moved to": (0, 2)}


# -- the spider's feed sync ---------------------------------------------------------------------


def complete(crawl: Crawl, versions: dict[str, str | None]) -> None:
    store = crawl.store
    store.add_work_items([NewWorkItem("mediawiki", SOURCE_NAME, "page", t) for t in versions])
    claimed = store.claim(
        source_system="mediawiki",
        source_name=SOURCE_NAME,
        owner="earlier-run",
        run_id="0" * 32,
        limit=len(versions),
        lease_seconds=60,
    )
    store.finish_items(
        [
            Outcome.completed(w, "a" * 64, versions[w.resource_id])
            if versions[w.resource_id]
            else Outcome.skipped(w, "missing: the page does not exist")
            for w in claimed
        ]
    )


@pytest.fixture
def opened(make_crawl: Callable[..., Crawl]) -> Crawl:
    crawl = make_crawl(recrawl="changed")
    crawl.crawler.engine = RecordingEngine()  # type: ignore[assignment]
    asyncio.run(crawl.frontier.spider_opened(crawl.spider))
    return crawl


async def _all(generator: Any) -> list[Any]:
    return [obj async for obj in generator]


def test_feed_sync_requeues_the_changes_then_moves_the_sync_point(opened: Crawl) -> None:
    spider, store = opened.spider, opened.store
    complete(
        opened,
        {"Yoda": "265", "4-LOM": "229", "Bossk": "118", "Death Star": "239", "New page h11b": None},
    )
    source = {"source_system": "mediawiki", "source_name": SOURCE_NAME}
    store.set_sync_point(POINT, **source, run_id="r0")

    [probe] = asyncio.run(_all(spider.feed_sync.requests()))
    assert query(probe.url) == {**query(recorded("probe_covered")[0]), "maxlag": "5"}
    run = probe.cb_kwargs["run"]
    assert run == opened.frontier.run_id
    [feed] = asyncio.run(_all(spider.parse_feed_probe(response("probe_covered"), run)))
    assert feed.cb_kwargs == {"run": run}
    assert query(feed.url)["list"] == "recentchanges|logevents"
    [next_page] = asyncio.run(_all(spider.parse_feed(response("feed_page1"), run)))
    assert query(next_page.url)["rccontinue"] == "20261203082657|469"
    assert store.sync_point(**source) == POINT  # not until the feeds are read to the end
    [users] = asyncio.run(_all(spider.parse_feed(response("feed_page2"), run)))
    assert query(users.url)["eititle"] == "Template:Starship infobox"
    template = "Template:Starship infobox"
    first_users = response("embeddedin_page1")
    [more] = asyncio.run(_all(spider.parse_feed_embeddedin(first_users, template, run)))
    assert query(more.url)["eicontinue"] == "0|274"
    assert (
        asyncio.run(_all(spider.parse_feed_embeddedin(response("embeddedin_page2"), template, run)))
        == []
    )
    rows = {row["resource_id"]: row for row in opened.rows("work_items")}
    requeued = {t for t, row in rows.items() if row["status"] in ("pending", "in_progress")}
    # Yoda edited, 4-LOM deleted, Bossk moved (and its new title), the red link created, Death
    # Star uses the template.
    assert requeued == {"Yoda", "4-LOM", "Bossk", "Bossk (moved)", "New page h11b", "Death Star"}
    assert rows["Yoda"]["version"] == "265"  # kept until refetched
    point = store.sync_point(**source)
    assert point == SyncPoint(datetime(2026, 12, 3, 8, 47, 37), 594, 14)
    assert opened.stat("holocron/recrawl/transcluding") == 1
    assert opened.stat("holocron/recrawl/synced") == 1


def test_an_api_error_leaves_the_sync_point(opened: Crawl) -> None:
    spider, store = opened.spider, opened.store
    source = {"source_system": "mediawiki", "source_name": SOURCE_NAME}
    store.set_sync_point(POINT, **source, run_id="r0")
    [probe] = asyncio.run(_all(spider.feed_sync.requests()))
    url = recorded("feed_page2")[0]
    error = TextResponse(
        url,
        body=b'{"error": {"code": "maxlag", "info": "Waiting for a database server"}}',
        encoding="utf-8",
        headers={"Content-Type": "application/json"},
        request=Request(url),
    )
    assert asyncio.run(_all(spider.parse_feed(error, probe.cb_kwargs["run"]))) == []
    assert opened.stat("holocron/recrawl/feed_errors") == 1
    assert store.sync_point(**source) == POINT
    # A feed request of an earlier run (restored by JOBDIR) is not applied.
    assert asyncio.run(_all(spider.parse_feed(response("feed_page2"), "an earlier run"))) == []
    assert opened.stat("holocron/recrawl/feed_stale_requests") == 1
    assert opened.stat("holocron/recrawl/feed_changes") is None


def test_a_crawl_records_the_start_of_the_sources_first_run(
    make_crawl: Callable[..., Crawl],
) -> None:
    crawl = make_crawl()
    asyncio.run(crawl.frontier.spider_opened(crawl.spider))
    assert asyncio.run(_all(crawl.spider.start())) == []
    source = {"source_system": "mediawiki", "source_name": SOURCE_NAME}
    point = crawl.store.sync_point(**source)
    assert point is not None
    assert point.timestamp == crawl.store.first_run_started(**source)
    assert (point.rc_id, point.log_id) == (None, None)
