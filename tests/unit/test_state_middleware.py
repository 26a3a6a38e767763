"""The spider middleware feeding the frontier, and the downloader middleware checking claims."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from scrapy import Request
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import TextResponse
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler

from holocron_scrapy.middlewares.budget import SharedBudgetMiddleware
from holocron_scrapy.middlewares.claims import ClaimCheckMiddleware, StaleClaim
from holocron_scrapy.middlewares.state import StateMiddleware
from holocron_scrapy.model import Outcome, Status, WorkItem
from holocron_scrapy.store.sql import utcnow
from tests.unit.conftest import SOURCE_NAME
from tests.unit.test_frontier import read_only_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from tests.unit.conftest import Crawl

API = "http://127.0.0.1:8091/api.php"


def request_for(items: list[WorkItem], url: str = f"{API}?action=query") -> Request:
    return Request(url, meta={"holocron_work_items": items}, dont_filter=True)


def response_to(request: Request) -> TextResponse:
    return TextResponse(request.url, body=b"{}", encoding="utf-8", request=request)


def claim(crawl: Crawl) -> list[WorkItem]:
    """Open the frontier and claim the three seeds (in the same event loop as the test)."""

    async def run() -> list[WorkItem]:
        await crawl.frontier.spider_opened(crawl.spider)
        return await crawl.frontier.claim_batch()

    return asyncio.run(run())


def state_logs(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, str]]:
    return [t for t in caplog.record_tuples if t[0] == "holocron_scrapy.middlewares.state"]


def not_claimed(item_id: int = 999) -> WorkItem:
    return WorkItem(item_id, "mediawiki", SOURCE_NAME, "page", "Not claimed", 0, 0, 1)


# -- StateMiddleware ----------------------------------------------------------------------------


def test_discoveries_and_outcomes_leave_the_output_for_the_frontier(crawl: Crawl) -> None:
    mw = build_from_crawler(StateMiddleware, crawl.crawler)
    items = claim(crawl)
    request = request_for(items)
    next_request = request_for(items, f"{API}?action=query&continue=1")
    discovered = crawl.spider.new_work_item("Chopper", 1, items[0])
    skipped = Outcome(items[1].id, Status.SKIPPED, "missing: the page does not exist")
    item = {"title": "Ezra Bridger"}
    spider_output: list[Any] = [next_request, discovered, item, skipped, "text", discovered]

    async def output() -> AsyncIterator[Any]:
        for obj in spider_output:
            yield obj

    async def run() -> list[Any]:
        out = [obj async for obj in mw.process_spider_output(response_to(request), output())]
        await crawl.frontier.flush()
        return out

    assert asyncio.run(run()) == [next_request, item, "text"]  # the rest, in order
    assert not crawl.frontier.is_claimed(items[1])
    assert crawl.frontier.is_claimed(items[0])
    assert crawl.stat("holocron/work_items/skipped") == 1
    assert crawl.stat("holocron/frontier/discovered_new") == 1
    rows = crawl.item_rows()
    assert (rows["Chopper"]["status"], rows["Chopper"]["depth"]) == ("pending", 1)
    assert rows["Chopper"]["discovered_from"] == items[0].id
    assert (rows[items[1].resource_id]["status"], rows[items[1].resource_id]["error_message"]) == (
        "skipped",
        "missing: the page does not exist",
    )


def test_the_response_of_an_earlier_claim_neither_ends_nor_fetches_the_later_one(
    crawl: Crawl,
) -> None:
    """This run's claim of an item expired (a database outage longer than the lease) and this
    run claimed it again (attempt 2); the response to attempt 1's request then comes back: its
    outcome (built from the id alone, as a spider does) is dropped as stale, and attempt 2
    stays in flight, its own request still fetched and attempt 1's queued one dropped."""
    mw = build_from_crawler(StateMiddleware, crawl.crawler)
    check = build_from_crawler(ClaimCheckMiddleware, crawl.crawler)
    items = claim(crawl)
    first = items[0]
    wi = crawl.store.tables.work_items
    with crawl.store.engine.begin() as conn:
        conn.execute(sa.update(wi).where(wi.c.id == first.id).values(lease_expires_at=utcnow()))

    async def run() -> list[WorkItem]:
        again = await crawl.frontier.claim_batch()
        old = Outcome(first.id, Status.SKIPPED, "missing: the page does not exist")

        async def output() -> AsyncIterator[Any]:
            yield old

        out = mw.process_spider_output(response_to(request_for([first])), output())
        assert [obj async for obj in out] == []
        await crawl.frontier.flush()
        return again

    [second] = asyncio.run(run())
    assert (second.id, second.attempt) == (first.id, 2)
    assert crawl.stat("holocron/outcomes/stale_lease") == 1
    row = crawl.item_rows()[first.resource_id]
    assert (row["status"], row["attempt"], row["error_message"]) == ("in_progress", 2, None)
    assert crawl.frontier.is_claimed(second)
    assert not crawl.frontier.is_claimed(first)
    with pytest.raises(StaleClaim):
        check.process_request(request_for([first]))
    assert check.process_request(request_for([second])) is None


def test_an_earlier_claims_outcome_never_takes_the_place_of_the_held_claims(
    crawl: Crawl,
) -> None:
    """Attempt 2's outcome is buffered first, attempt 1's late one after it (both of this run):
    the buffer keeps attempt 2's, which ends the item."""
    items = claim(crawl)
    first = items[0]
    wi = crawl.store.tables.work_items
    with crawl.store.engine.begin() as conn:
        conn.execute(sa.update(wi).where(wi.c.id == first.id).values(lease_expires_at=utcnow()))

    async def run() -> None:
        [second] = await crawl.frontier.claim_batch()
        assert second.attempt == 2
        crawl.frontier.finish(Outcome.skipped(second, "redirect to 'Chopper'"))
        crawl.frontier.finish(Outcome.failed(first, "HTTP 500 from the first try"))
        await crawl.frontier.flush()

    asyncio.run(run())
    row = crawl.item_rows()[first.resource_id]
    assert (row["status"], row["error_message"]) == ("skipped", "redirect to 'Chopper'")
    assert crawl.stat("holocron/outcomes/stale_lease") == 1
    assert crawl.stat("holocron/work_items/skipped") == 1


def test_a_callback_exception_fails_the_claimed_items_of_the_response(
    make_crawl: Callable[..., Crawl], caplog: pytest.LogCaptureFixture
) -> None:
    crawl = make_crawl({"HOLOCRON_MAX_ATTEMPTS": 1})
    mw = build_from_crawler(StateMiddleware, crawl.crawler)
    items = claim(crawl)
    request = request_for([items[0], items[1], not_claimed()])
    response = response_to(request)

    result = mw.process_spider_exception(response, KeyError("pages"))

    assert result == []
    assert crawl.frontier.in_flight == {items[2].id}
    assert crawl.stat("holocron/spider_exceptions/KeyError") == 1
    assert state_logs(caplog) == [
        (
            "holocron_scrapy.middlewares.state",
            logging.ERROR,
            f"Failing 2 work items of {request.url}: KeyError: 'pages'",
        )
    ]
    asyncio.run(crawl.frontier.flush())
    rows = {row["id"]: row for row in crawl.rows("work_items")}
    assert [(rows[i.id]["status"], rows[i.id]["error_message"]) for i in items] == [
        ("failed", "KeyError: 'pages'"),
        ("failed", "KeyError: 'pages'"),
        ("in_progress", None),
    ]
    assert crawl.stat("holocron/work_items/failed") == 2


def test_an_exception_of_a_request_without_claimed_items_is_left_to_scrapy(
    crawl: Crawl, caplog: pytest.LogCaptureFixture
) -> None:
    mw = build_from_crawler(StateMiddleware, crawl.crawler)
    items = claim(crawl)

    plain = response_to(Request(f"{API}?action=query"))
    assert mw.process_spider_exception(plain, ValueError("x")) is None
    stale = response_to(request_for([not_claimed()]))
    assert mw.process_spider_exception(stale, ValueError("x")) is None

    assert crawl.frontier.in_flight == {i.id for i in items}
    assert crawl.stat("holocron/spider_exceptions/ValueError") is None
    assert state_logs(caplog) == []


# -- ClaimCheckMiddleware -----------------------------------------------------------------------


def test_a_request_with_a_claimed_item_is_fetched(crawl: Crawl) -> None:
    mw = build_from_crawler(ClaimCheckMiddleware, crawl.crawler)
    items = claim(crawl)
    assert mw.process_request(request_for(items)) is None
    assert mw.process_request(request_for([not_claimed(), items[2]])) is None  # one is enough
    assert crawl.stat("holocron/frontier/stale_requests") is None


def test_a_request_none_of_whose_items_is_claimed_is_dropped(crawl: Crawl) -> None:
    mw = build_from_crawler(ClaimCheckMiddleware, crawl.crawler)
    items = claim(crawl)
    crawl.frontier.fail(items[:2], "gone")  # no longer claimed by this run
    request = request_for([items[0], items[1], not_claimed()])

    with pytest.raises(StaleClaim, match=r"^no longer claimed: http://127\.0\.0\.1:8091/api\.php"):
        mw.process_request(request)
    assert issubclass(StaleClaim, IgnoreRequest)  # Scrapy drops it and calls the errback
    assert crawl.stat("holocron/frontier/stale_requests") == 1


def test_a_request_without_work_items_is_fetched(crawl: Crawl) -> None:
    mw = build_from_crawler(ClaimCheckMiddleware, crawl.crawler)
    claim(crawl)
    assert mw.process_request(Request("http://127.0.0.1:8091/robots.txt")) is None
    assert crawl.stat("holocron/frontier/stale_requests") is None


@pytest.mark.parametrize(
    "middleware", [StateMiddleware, ClaimCheckMiddleware, SharedBudgetMiddleware]
)
def test_the_middlewares_need_the_frontier(middleware: type[Any], tmp_path: Path) -> None:
    crawler = get_crawler(
        settings_dict={"HOLOCRON_DB_URL": f"sqlite:///{tmp_path}/s.db", "DOWNLOAD_DELAY": 1}
    )
    with pytest.raises(NotConfigured, match="Frontier extension is not enabled"):
        build_from_crawler(middleware, crawler)


# -- the shared request budget (SharedBudgetMiddleware) ------------------------------------------


def test_requests_wait_for_their_slot_of_the_sources_shared_budget(
    make_crawl: Callable[..., Crawl],
) -> None:
    first = make_crawl({"HOLOCRON_BUDGET_DELAY": 0.3})
    other = make_crawl({"HOLOCRON_BUDGET_DELAY": 0.3})  # a second process on the same source
    mws = [build_from_crawler(SharedBudgetMiddleware, c.crawler) for c in (first, other)]
    request = Request(f"{API}?action=query")

    async def run() -> list[float]:
        for crawl in (first, other):
            await crawl.frontier.spider_opened(crawl.spider)
        started = time.monotonic()
        times = []
        for mw in (mws[0], mws[1], mws[0], mws[1]):
            assert await mw.process_request(request) is None
            times.append(time.monotonic() - started)
        return times

    times = asyncio.run(run())
    # One budget for both: four requests take three intervals, whoever sends them.
    assert times[0] < 0.3
    assert times[-1] >= 0.85, times
    assert all(b - a >= 0.2 for a, b in itertools.pairwise(times)), times
    assert (first.stat("holocron/budget/reserved"), other.stat("holocron/budget/reserved")) == (
        2,
        2,
    )
    assert first.stat("holocron/budget/waited") + other.stat("holocron/budget/waited") >= 3


def test_the_budget_follows_download_delay_and_is_off_without_a_delay(
    make_crawl: Callable[..., Crawl],
) -> None:
    polite = make_crawl({"DOWNLOAD_DELAY": 1.5})
    assert build_from_crawler(SharedBudgetMiddleware, polite.crawler).interval == 1.5
    for settings in (
        {"DOWNLOAD_DELAY": 0},
        {"DOWNLOAD_DELAY": 1, "HOLOCRON_BUDGET_ENABLED": False},
    ):
        crawl = make_crawl(settings)
        with pytest.raises(NotConfigured):
            build_from_crawler(SharedBudgetMiddleware, crawl.crawler)


def test_an_unreachable_budget_lets_requests_go_on_as_a_database_outage(
    make_crawl: Callable[..., Crawl], caplog: pytest.LogCaptureFixture
) -> None:
    crawl = make_crawl({"HOLOCRON_BUDGET_DELAY": 5})
    mw = build_from_crawler(SharedBudgetMiddleware, crawl.crawler)
    read_only = read_only_store(crawl)

    async def run() -> None:
        await crawl.frontier.spider_opened(crawl.spider)
        writable, crawl.frontier.store.engine = crawl.frontier.store.engine, read_only.engine
        try:
            for _ in range(2):  # the second within the outage's back-off: not even tried
                assert await asyncio.wait_for(mw.process_request(Request(API)), 2) is None
            assert crawl.frontier.db_outage.failures == 1
        finally:
            crawl.frontier.store.engine = writable
        crawl.frontier.db_outage.next_try = 0.0
        assert await mw.process_request(Request(API)) is None
        assert not crawl.frontier.db_outage.active  # the reservation saw the database back

    asyncio.run(run())
    assert crawl.stat("holocron/budget/errors") == 2
    assert crawl.stat("holocron/budget/reserved") == 1
    [warning] = [m for n, lvl, m in caplog.record_tuples if lvl == logging.WARNING]
    assert warning.startswith("State database unreachable (OperationalError: attempt to write")
