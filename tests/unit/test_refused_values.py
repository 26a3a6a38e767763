"""Values the state database refuses (too long, NUL, a lone surrogate, a constraint) fail their
own work item and never the batch they came in: the frontier's buffered writes and the
IngestRecords pipeline, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from scrapy.exceptions import DropItem
from scrapy.utils.misc import build_from_crawler

from holocron_scrapy.model import NewWorkItem, Outcome, Status
from holocron_scrapy.pipelines.ingest import IngestRecordsPipeline
from holocron_scrapy.store.state_store import StateStore
from tests.conftest import PG_URL_ENV, _drop_schema, server_url
from tests.unit.conftest import SOURCE_NAME
from tests.unit.test_frontier import read_only_store
from tests.unit.test_pipelines import FIVE_SEEDS, claim, record_for

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.unit.conftest import Crawl

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The state database of the test's crawls: SQLite in tmp_path, or a fresh PostgreSQL
    schema (dropped afterwards, see :func:`make_db_crawl`)."""
    return str(request.param)


@pytest.fixture
def make_db_crawl(backend: str, make_crawl: Callable[..., Crawl]) -> Iterator[Callable[..., Crawl]]:
    """``make_crawl`` on the test's backend."""
    settings: dict[str, Any] = {}
    dropped: list[Crawl] = []
    if backend == "postgresql":
        schema = f"t_{uuid.uuid4().hex[:12]}"
        settings = {"HOLOCRON_DB_URL": server_url(PG_URL_ENV), "HOLOCRON_DB_SCHEMA": schema}

    def make(extra: dict[str, Any] | None = None, **kwargs: Any) -> Crawl:
        crawl = make_crawl({**settings, **(extra or {})}, **kwargs)
        dropped.append(crawl)
        return crawl

    yield make
    if settings and dropped:
        dropped[0].store.dispose()
        _drop_schema(settings["HOLOCRON_DB_URL"], schema, dropped[0].store.tables.metadata)


def refuse_resource_id(crawl: Crawl, value: str) -> None:
    """Make the database itself refuse an ``IngestRecords`` row of ``resource_id`` ``value``
    (a constraint no value check in the crawler can know of)."""
    with crawl.store.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(
                'CREATE TRIGGER refuse BEFORE INSERT ON "IngestRecords" '
                f"WHEN NEW.resource_id = '{value}' "
                "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"
            )
        else:
            table = crawl.store.tables.ingest_records
            name = conn.dialect.identifier_preparer.format_table(table)
            conn.exec_driver_sql(
                f"ALTER TABLE {name} ADD CONSTRAINT ck_refuse CHECK (resource_id <> '{value}')"
            )


def writes_logs(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    name = "holocron_scrapy.frontier.writes"
    return [(level, msg) for logger, level, msg in caplog.record_tuples if logger == name]


# -- the frontier's buffered writes ---------------------------------------------------------


def test_a_discovery_the_database_refuses_is_logged_and_the_others_are_queued(
    backend: str, make_db_crawl: Callable[..., Crawl], caplog: pytest.LogCaptureFixture
) -> None:
    crawl = make_db_crawl()
    claim(crawl)
    # Past the frontier's own checks: SQLite's driver cannot encode a lone surrogate,
    # PostgreSQL refuses a NUL in text.
    bad = "Bad \ud800 title" if backend == "sqlite" else "Bad \x00 title"
    titles = ["Good one", bad, "Good two", "Good three"]
    for title in titles:
        crawl.frontier.writes.discover(
            NewWorkItem("mediawiki", SOURCE_NAME, "page", title, depth=1)
        )

    assert asyncio.run(crawl.frontier.flush()) is True

    assert not crawl.frontier.writes.pending()
    known = crawl.item_rows()
    assert [t for t in titles if t in known] == ["Good one", "Good two", "Good three"]
    assert crawl.stat("holocron/frontier/discovered_new") == 3
    assert crawl.stat("holocron/frontier/refused/discovery") == 1
    [(level, message)] = writes_logs(caplog)
    assert level == logging.WARNING
    assert message.startswith(
        "The crawl state database refused the discovery 'mediawiki:testwiki:page:Bad "
    )
    error = "UnicodeEncodeError: 'utf-8' codec" if backend == "sqlite" else "DataError: "
    assert error in message


def test_an_outcome_the_database_refuses_fails_its_item_for_good_and_the_others_are_written(
    backend: str, make_db_crawl: Callable[..., Crawl], caplog: pytest.LogCaptureFixture
) -> None:
    crawl = make_db_crawl(seeds=FIVE_SEEDS)  # HOLOCRON_MAX_ATTEMPTS 3: failures are retried
    items = sorted(claim(crawl), key=lambda i: i.id)
    # Past the frontier's own checks: a version too long for its column (PostgreSQL) or one
    # that SQLite's driver cannot encode.
    bad_version = "etag:" + ("\ud800" if backend == "sqlite" else "x" * 200)
    writes = crawl.frontier.writes
    writes.finish(Outcome.skipped(items[0], "redirect to 'X'"))
    writes.finish(Outcome(items[1].id, Status.COMPLETED, content_hash="a" * 64, version="1"))
    writes.finish(
        Outcome(items[2].id, Status.COMPLETED, content_hash="b" * 64, version=bad_version)
    )
    writes.finish(Outcome(items[3].id, Status.FAILED, "HTTP 503 from …"))

    assert asyncio.run(crawl.frontier.flush()) is True

    assert not writes.pending()
    rows = [crawl.store.work_item(item.id) for item in items]
    assert [(r or {}).get("status") for r in rows] == [
        "skipped",
        "completed",
        "failed",
        "pending",  # a failure of its own: tried again
        "in_progress",  # no outcome yet
    ]
    refused = rows[2]
    assert refused is not None
    assert refused["next_retry_at"] is None  # refused data is refused again: not retried
    assert refused["version"] is None
    reason = (
        "UnicodeEncodeError: 'utf-8' codec can't encode character '\\ud800' in position 5: "
        "surrogates not allowed"
        if backend == "sqlite"
        else "StringDataRightTruncation: value too long for type character varying(64)"
    )
    assert refused["error_message"] == f"the crawl state database refused this outcome: {reason}"
    assert crawl.stat("holocron/frontier/refused/outcome") == 1
    assert crawl.stat("holocron/work_items/failed") == 1
    assert crawl.stat("holocron/work_items/completed") == 1
    assert writes_logs(caplog) == [
        (
            logging.WARNING,
            f"The crawl state database refused the outcome of work item {items[2].id}: {reason}",
        )
    ]


def test_a_database_outage_still_keeps_the_whole_batch_for_the_next_try(
    backend: str, make_db_crawl: Callable[..., Crawl]
) -> None:
    crawl = make_db_crawl()
    items = claim(crawl)
    for item in items:
        crawl.frontier.writes.finish(Outcome.skipped(item, "missing"))
    down = (
        read_only_store(crawl)  # its writes fail as an unreachable database's do
        if backend == "sqlite"
        else StateStore.from_url("postgresql+psycopg://postgres@127.0.0.1:1/test")
    )
    writable, crawl.frontier.store = crawl.frontier.store, down
    try:
        assert asyncio.run(crawl.frontier.flush()) is False
    finally:
        crawl.frontier.store = writable
        down.dispose()
    assert crawl.stat("holocron/frontier/write_errors") == 1
    assert sorted(crawl.frontier.writes.outcomes) == sorted(i.id for i in items)
    assert crawl.stat("holocron/frontier/refused/outcome") is None
    assert crawl.frontier.db_outage.active


# -- the IngestRecords pipeline ---------------------------------------------------------------


def test_a_record_the_database_refuses_fails_alone_and_the_batch_is_written(
    backend: str, make_db_crawl: Callable[..., Crawl], caplog: pytest.LogCaptureFixture
) -> None:
    crawl = make_db_crawl({"HOLOCRON_INGEST_BATCH_SIZE": 5}, seeds=FIVE_SEEDS)
    pipeline = build_from_crawler(IngestRecordsPipeline, crawl.crawler)
    items = sorted(claim(crawl), key=lambda i: i.id)
    refuse_resource_id(crawl, "Poison")
    records = [record_for(item) for item in items]
    records[3].resource_id = "Poison"

    async def run() -> list[Any]:
        results = await asyncio.gather(
            *(pipeline.process_item(r) for r in records), return_exceptions=True
        )
        await crawl.frontier.flush()
        return list(results)

    results = asyncio.run(run())

    assert [type(r).__name__ for r in results] == ["ResourceRecord"] * 3 + [
        "DropItem",
        "ResourceRecord",
    ]
    assert isinstance(results[3], DropItem)
    message = str(results[3])
    violation = (
        "IntegrityError: refused by a test trigger"
        if backend == "sqlite"
        else (
            'CheckViolation: new row for relation "IngestRecords" violates check constraint '
            '"ck_refuse"'
        )
    )
    assert message == f"IngestRecords write failed: {violation}"
    rows = crawl.rows("IngestRecords", order_by="work_item_id")
    assert [row["work_item_id"] for row in rows] == [i.id for i in items if i != items[3]]
    statuses = [(crawl.store.work_item(i.id) or {}).get("status") for i in items]
    assert statuses == ["completed"] * 3 + ["failed", "completed"]
    failed = crawl.store.work_item(items[3].id)
    assert failed is not None
    assert (failed["error_message"], failed["next_retry_at"]) == (message, None)
    assert crawl.stat("holocron/records/written") == 4
    assert crawl.stat("holocron/ingest/errors") == 1
    assert crawl.stat("holocron/ingest/split") == 3  # 5 -> 2 + 3 -> 2 + 1 + 2 -> 2 + 1 + 1 + 1
    assert crawl.stat("holocron/ingest/batches") == 3
    assert crawl.frontier.in_flight == set()
    ingest_logs = [
        (level, msg)
        for logger, level, msg in caplog.record_tuples
        if logger == "holocron_scrapy.pipelines.ingest"
    ]
    assert ingest_logs == [(logging.ERROR, f"{message} (1 items)")]


# -- values fitted where they enter ---------------------------------------------------------


def test_values_too_long_or_unencodable_are_stored_fitted_and_still_deduplicated(
    make_db_crawl: Callable[..., Crawl],
) -> None:
    crawl = make_db_crawl({"HOLOCRON_INGEST_BATCH_SIZE": 3}, seeds=FIVE_SEEDS)
    pipeline = build_from_crawler(IngestRecordsPipeline, crawl.crawler)
    items = sorted(claim(crawl), key=lambda i: i.id)
    frontier = crawl.frontier
    long_title = "Long " + "x" * 4995
    titles = [long_title, "Nul\x00title", "Lone \ud800 surrogate"]
    for title in [*titles, long_title]:  # found twice: one work item
        frontier.discover(NewWorkItem("mediawiki", SOURCE_NAME, "page", title, depth=1))
    records = [record_for(item) for item in items[:3]]
    records[0] = dataclasses.replace(records[0], resource_id="Name " + "n" * 1996)  # 2,001
    records[1].version = "etag:" + "e" * 195  # a 200-character ETag
    records[2].request_uri += "&bad=\x00\ud800"
    records[2].payload = {"title": "Lone \udc00 in the payload"}
    frontier.finish(Outcome(items[3].id, Status.FAILED, "server said \x00 and \ud800"))

    async def run() -> list[Any]:
        results = await asyncio.gather(*(pipeline.process_item(r) for r in records))
        assert await frontier.flush()
        return list(results)

    assert asyncio.run(run()) == records

    assert crawl.stat("holocron/frontier/discovered_new") == 3
    assert crawl.stat("holocron/ingest/errors") is None
    assert crawl.stat("holocron/frontier/write_errors") is None
    fitted_long = long_title[:1928] + "…sha256:" + hashlib.sha256(long_title.encode()).hexdigest()
    known = crawl.item_rows()
    assert {fitted_long, "Nul\\x00title", "Lone \\ud800 surrogate"} <= set(known)
    assert len(known[fitted_long]["dedupe_key"]) == len("mediawiki:testwiki:page:") + 2000
    rows = {row["work_item_id"]: row for row in crawl.rows("IngestRecords", "ingest_id")}
    assert len(rows) == 3
    name = rows[items[0].id]["resource_id"]
    assert len(name) == 2000
    assert name.startswith("Name nnn")
    assert name.endswith(hashlib.sha256(("Name " + "n" * 1996).encode()).hexdigest())
    assert rows[items[2].id]["request_uri"].endswith("&bad=\\x00\\ud800")
    payload = rows[items[2].id]["payload"]
    assert payload == '{"title":"Lone \\udc00 in the payload"}'
    assert json.loads(payload) == records[2].payload  # the same value read back
    versions = [(crawl.store.work_item(i.id) or {}).get("version") for i in items[:2]]
    assert versions[0] is None
    etag = "etag:" + "e" * 195
    assert versions[1] == f"sha256:{hashlib.sha256(etag.encode()).hexdigest()}"[:64]
    failed = crawl.store.work_item(items[3].id)
    assert failed is not None
    assert failed["error_message"] == "server said \\x00 and \\ud800"


def test_a_cursor_with_a_lone_surrogate_or_nul_is_saved_and_read_back(
    make_db_crawl: Callable[..., Crawl],
) -> None:
    crawl = make_db_crawl()
    [item, *_] = claim(crawl)
    cursor = {"apcontinue": "Lone \ud800 and \x00"}

    assert asyncio.run(crawl.frontier.save_cursor(item, cursor)) is True

    row = crawl.store.work_item(item.id)
    assert row is not None
    assert row["cursor"] == '{"apcontinue":"Lone \\ud800 and \\u0000"}'
    assert json.loads(row["cursor"]) == cursor


def test_a_write_that_keeps_failing_otherwise_is_logged_once_and_kept(
    crawl: Crawl, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="holocron_scrapy.frontier.writes")
    items = claim(crawl)
    crawl.frontier.writes.finish(Outcome.skipped(items[0], "missing"))

    def rename(old: str, new: str) -> None:
        with crawl.store.engine.begin() as conn:
            conn.exec_driver_sql(f"ALTER TABLE {old} RENAME TO {new}")

    rename("work_items", "work_items_away")  # a mistake, not an outage nor a refused value
    assert asyncio.run(crawl.frontier.flush()) is False
    assert asyncio.run(crawl.frontier.flush()) is False
    rename("work_items_away", "work_items")
    assert asyncio.run(crawl.frontier.flush()) is True

    assert (crawl.store.work_item(items[0].id) or {}).get("status") == "skipped"
    assert crawl.stat("holocron/frontier/write_errors") == 2
    assert [(level, msg) for level, msg in writes_logs(caplog) if level > logging.DEBUG] == [
        (
            logging.WARNING,
            "Could not write crawl state (OperationalError: no such table: work_items); will retry",
        ),
        (logging.INFO, "Crawl state written again after 2 failed tries"),
    ]
