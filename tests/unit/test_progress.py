"""CrawlProgress: the progress line, with queue counts read from the real state database."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING

import pytest
from scrapy import Spider
from scrapy.exceptions import NotConfigured
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler

from holocron_scrapy.extensions.progress import CrawlProgress
from holocron_scrapy.model import Outcome, Status
from holocron_scrapy.store.state_store import StateStore
from tests.unit.conftest import wait_for

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from twisted.internet.task import Clock

    from tests.unit.conftest import Crawl

SIX_SEEDS = ("A1", "A2", "A3", "A4", "A5", "A6")
QUEUE = "queue: pending=2, in_progress=1, completed=1, failed=1, skipped=1"
PROGRESS_LOGGER = "holocron_scrapy.extensions.progress"


@pytest.fixture(autouse=True)
def _log_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=PROGRESS_LOGGER)


def progress_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        msg
        for name, level, msg in caplog.record_tuples
        if name == PROGRESS_LOGGER and level == logging.INFO
    ]


async def one_of_each_status(crawl: Crawl) -> None:
    """Six items: 2 pending, 1 in progress, 1 completed, 1 failed, 1 skipped."""
    frontier = crawl.frontier
    await frontier.spider_opened(crawl.spider)
    a, b, c, _ = await frontier.claim_batch()
    frontier.finish(Outcome(a.id, Status.COMPLETED, content_hash="cd" * 32))
    frontier.fail([b], "HTTP 404")
    frontier.finish(Outcome(c.id, Status.SKIPPED, "missing"))
    await frontier.flush()


def test_log_progress_logs_pages_per_minute_and_the_queue_from_the_database(
    make_crawl: Callable[..., Crawl], caplog: pytest.LogCaptureFixture
) -> None:
    crawl = make_crawl({"HOLOCRON_CLAIM_SIZE": 4, "HOLOCRON_MAX_ATTEMPTS": 1}, seeds=SIX_SEEDS)
    progress = build_from_crawler(CrawlProgress, crawl.crawler)

    async def run() -> None:
        await one_of_each_status(crawl)
        progress.spider_opened(crawl.spider)
        await progress.log_progress()
        await progress.log_progress()  # no page since the last line: 0/min

    asyncio.run(run())
    first, second = progress_lines(caplog)
    assert re.fullmatch(rf"Progress: 1 pages \(\d+/min\); {QUEUE}", first), first
    assert second == f"Progress: 1 pages (0/min); {QUEUE}"


def test_the_progress_line_says_when_the_queue_cannot_be_read(
    make_crawl: Callable[..., Crawl], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    crawl = make_crawl({"HOLOCRON_MAX_ATTEMPTS": 1}, seeds=SIX_SEEDS)
    progress = build_from_crawler(CrawlProgress, crawl.crawler)
    gone = StateStore.from_url(f"sqlite:///file:{tmp_path / 'gone' / 'state.db'}?mode=ro&uri=true")

    async def run() -> None:
        await crawl.frontier.spider_opened(crawl.spider)
        progress.spider_opened(crawl.spider)
        crawl.frontier.store, store = gone, crawl.frontier.store  # the database is out of reach
        try:
            await progress.log_progress()
        finally:
            crawl.frontier.store = store

    asyncio.run(run())
    gone.dispose()
    [line] = progress_lines(caplog)
    assert line == (
        "Progress: 0 pages (0/min); queue: not readable now "
        "(OperationalError: unable to open database file)"
    )


def test_a_progress_line_every_interval_and_a_last_one_at_close(
    make_crawl: Callable[..., Crawl], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    crawl = make_crawl(
        {"HOLOCRON_CLAIM_SIZE": 4, "HOLOCRON_PROGRESS_INTERVAL": 30, "HOLOCRON_MAX_ATTEMPTS": 1},
        seeds=SIX_SEEDS,
    )
    progress = build_from_crawler(CrawlProgress, crawl.crawler)

    async def run() -> None:
        await one_of_each_status(crawl)
        progress.spider_opened(crawl.spider)
        clock.advance(29)
        await asyncio.sleep(0.05)
        assert progress_lines(caplog) == []
        clock.advance(1)
        await wait_for(lambda: len(progress_lines(caplog)) == 1)
        await progress.spider_closed(crawl.spider, "finished")
        await crawl.frontier.spider_closed(crawl.spider, "finished")

    asyncio.run(run())
    tick, final, finished = progress_lines(caplog)
    assert re.fullmatch(rf"Progress: 1 pages \(\d+/min\); {QUEUE}", tick), tick
    assert re.fullmatch(rf"Progress: 1 pages \(\d+/min\); {QUEUE}", final), final
    lake = crawl.tmp_path / "lake"
    assert finished == f"Finished (finished). Lake: {lake} · Database: {crawl.store.url_for_log}"
    assert clock.getDelayedCalls() == []  # both periodic calls stopped at close


def test_progress_without_the_frontier_logs_a_warning_and_nothing_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crawler = get_crawler(settings_dict={"HOLOCRON_DB_URL": f"sqlite:///{tmp_path}/s.db"})
    progress = build_from_crawler(CrawlProgress, crawler)

    async def run() -> None:
        progress.spider_opened(Spider("progress"))
        await progress.log_progress()

    asyncio.run(run())
    assert [t for t in caplog.record_tuples if t[0] == PROGRESS_LOGGER] == [
        (
            PROGRESS_LOGGER,
            logging.WARNING,
            "CrawlProgress needs the holocron Frontier extension: disabled",
        )
    ]


@pytest.mark.parametrize("interval", [0, -5])
def test_progress_is_not_configured_without_an_interval(interval: float, tmp_path: Path) -> None:
    crawler = get_crawler(
        settings_dict={
            "HOLOCRON_PROGRESS_INTERVAL": interval,
            "HOLOCRON_DB_URL": f"sqlite:///{tmp_path}/s.db",
        }
    )
    with pytest.raises(NotConfigured, match="HOLOCRON_PROGRESS_INTERVAL"):
        build_from_crawler(CrawlProgress, crawler)
