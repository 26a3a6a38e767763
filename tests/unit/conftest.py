"""Fixtures of the Scrapy component tests: frontier, middlewares, pipelines, progress, add-on.

Each test gets a real :class:`MediaWikiSpider` on a source file in ``tmp_path``, a crawler built
the way ``Crawler.crawl()`` builds it (the spider first, then the settings, with the holocron
add-on), and a real SQLite state database in ``tmp_path``. Nothing is fetched: the tests drive
the components' public methods, awaiting their coroutines with :func:`asyncio.run`, so that
Scrapy's ``run_in_thread`` really hops to a thread.

Periodic calls (the frontier's flush, the progress line) run on a Twisted ``Clock`` that only
moves when a test advances it: no reactor is installed and nothing happens behind a test's back.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from scrapy.crawler import Crawler
from scrapy.settings import Settings
from scrapy.utils.test import get_reactor_settings
from twisted.internet.task import Clock, LoopingCall

from holocron_scrapy.addon import HolocronAddon
from holocron_scrapy.extensions import progress as progress_module
from holocron_scrapy.frontier import extension as frontier_module
from holocron_scrapy.frontier.extension import Frontier
from holocron_scrapy.spiders.mediawiki import MediaWikiSpider

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from pathlib import Path

    from scrapy import Request
    from scrapy.statscollectors import StatsCollector

    from holocron_scrapy.store.state_store import StateStore

SOURCE_NAME = "testwiki"
SEEDS = ("Ezra Bridger", "Kanan Jarrus", "Hera Syndulla")
WORKER_ID = "worker-1"


def write_source(
    tmp_path: Path,
    *,
    seeds: Sequence[str] = SEEDS,
    strategy: str = "breadth",
    max_depth: int = 2,
    name: str = SOURCE_NAME,
) -> Path:
    """A valid mediawiki source file in ``tmp_path`` (nothing is ever fetched from its API)."""
    titles = ", ".join(f'"{title}"' for title in seeds)
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"""\
name: {name}
type: mediawiki
api_url: http://127.0.0.1:8091/api.php
user_agent: "HolocronScrapy/0.1 (holocron tests; tests@holocron.invalid)"
seeds:
  titles: [{titles}]
discovery:
  max_depth: {max_depth}
  strategy: {strategy}
  namespaces: [0]
""",
        encoding="utf-8",
    )
    return path


def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'state.db'}"


def base_settings(tmp_path: Path) -> dict[str, Any]:
    """Settings every crawler of these tests gets: the add-on, and state and lake in tmp_path."""
    return {
        "TELNETCONSOLE_ENABLED": False,
        **get_reactor_settings(),
        "ADDONS": {HolocronAddon: 0},
        "HOLOCRON_DB_URL": db_url(tmp_path),
        "HOLOCRON_LAKE_DIR": str(tmp_path / "lake"),
        "HOLOCRON_WORKER_ID": WORKER_ID,
        "HOLOCRON_FLUSH_INTERVAL": 1.0,
    }


class RecordingEngine:
    """Stands in for ``crawler.engine`` where the frontier schedules claimed work by itself.

    It records the requests the frontier hands over and the close it asks for; it downloads
    nothing. Only the few tests of ``spider_idle``'s own claims need it.
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.close_reasons: list[str] = []
        self.idle = True

    def crawl(self, request: Request) -> None:
        self.requests.append(request)

    def spider_is_idle(self) -> bool:
        return self.idle

    async def close_spider_async(self, *, reason: str) -> None:
        self.close_reasons.append(reason)


@dataclass
class Crawl:
    """A crawler, its spider and its frontier, on a state database in ``tmp_path``."""

    crawler: Crawler
    spider: MediaWikiSpider
    frontier: Frontier
    tmp_path: Path
    stores: list[StateStore] = field(default_factory=list)

    @property
    def stats(self) -> StatsCollector:
        assert self.crawler.stats is not None
        return self.crawler.stats

    @property
    def store(self) -> StateStore:
        return self.frontier.store

    def stat(self, key: str) -> Any:
        return self.stats.get_value(key)

    def rows(self, table: str, order_by: str = "id") -> list[dict[str, Any]]:
        """All rows of a state table, read with a separate connection."""
        tables = self.store.tables
        t = {
            "work_items": tables.work_items,
            "runs": tables.runs,
            "IngestRecords": tables.ingest_records,
        }[table]
        with self.store.engine.connect() as conn:
            result = conn.execute(sa.select(t).order_by(t.c[order_by]))
            return [dict(row._mapping) for row in result]

    def item_rows(self) -> dict[str, dict[str, Any]]:
        """``work_items`` rows by resource id."""
        return {row["resource_id"]: row for row in self.rows("work_items")}

    def counts(self) -> dict[str, int]:
        return self.store.counts(source_system="mediawiki", source_name=SOURCE_NAME)

    def close(self) -> None:
        self.store.dispose()
        for store in self.stores:
            store.dispose()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The clock of every LoopingCall of the frontier and the progress extension."""
    shared = Clock()

    class ClockLoopingCall(LoopingCall):
        def __init__(self, f: Callable[..., object], *a: object, **kw: object) -> None:
            # LoopingCall.__init__ would import (and so install) the global reactor.
            self.f, self.a, self.kw = f, a, kw
            self.clock = shared

    monkeypatch.setattr(frontier_module, "LoopingCall", ClockLoopingCall)
    monkeypatch.setattr(progress_module, "LoopingCall", ClockLoopingCall)
    return shared


@pytest.fixture
def make_crawl(tmp_path: Path, clock: Clock) -> Iterator[Callable[..., Crawl]]:
    """``make_crawl(settings=..., recrawl=..., seeds=..., strategy=...)``: a new crawler with its
    spider (as ``Crawler.crawl()`` builds them) on the test's state database. Several crawls of
    one test share the database, as consecutive runs do."""
    made: list[Crawl] = []

    def make(
        settings: Mapping[str, Any] | None = None,
        *,
        recrawl: str | None = None,
        seeds: Sequence[str] = SEEDS,
        strategy: str = "breadth",
    ) -> Crawl:
        source = write_source(tmp_path, seeds=seeds, strategy=strategy)
        crawler = Crawler(
            MediaWikiSpider, Settings({**base_settings(tmp_path), **(settings or {})})
        )
        spider = MediaWikiSpider.from_crawler(crawler, source=str(source), recrawl=recrawl)
        crawler._apply_settings()
        assert isinstance(spider, MediaWikiSpider)
        frontier = crawler.get_extension(Frontier)
        assert frontier is not None
        crawl = Crawl(crawler, spider, frontier, tmp_path)
        made.append(crawl)
        return crawl

    yield make
    for crawl in made:
        crawl.close()


@pytest.fixture
def crawl(make_crawl: Callable[..., Crawl]) -> Crawl:
    """One crawl with the default settings (3 seeds, breadth first)."""
    return make_crawl()


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the event loop (and its threads) run until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {condition}")
        await asyncio.sleep(0.005)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_settings(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Settings naming the state database for ``make_crawl``: SQLite in tmp_path (none), or a
    fresh PostgreSQL schema on ``HOLOCRON_TEST_PG_URL``, dropped afterwards."""
    if request.param == "sqlite":
        yield {}
        return
    url = os.environ.get("HOLOCRON_TEST_PG_URL", "").strip()
    if not url:
        pytest.skip("HOLOCRON_TEST_PG_URL is not set")
    schema = f"unit_{uuid.uuid4().hex[:12]}"
    try:
        yield {"HOLOCRON_DB_URL": url, "HOLOCRON_DB_SCHEMA": schema}
    finally:
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()
