"""The one object through which all SQL of the crawl goes: the work queue, the ingest log, runs.

:class:`StateStore` is synchronous and thread-safe (an engine with a connection pool, one
transaction per method call); Scrapy components call it in threads. It owns the engine, the
tables, the transactions and the ``runs`` rows; the statements live by concern in
``store_queue`` (adding and requeueing work), ``store_leases`` (claims and leases),
``store_records`` (outcomes and ingest records) and ``store_budget`` (the shared politeness
budget); the few dialect differences are in ``store_sql``. One code path serves SQLite,
PostgreSQL and SQL Server."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.schema import CreateSchema

from holocron_scrapy.model import (
    NO_RETRIES,
    Applied,
    IngestRow,
    NewWorkItem,
    Outcome,
    RetryPolicy,
    Status,
    WorkItem,
    canonical_json,
)
from holocron_scrapy.store import budget as store_budget
from holocron_scrapy.store import leases as store_leases
from holocron_scrapy.store import queue as store_queue
from holocron_scrapy.store import records as store_records
from holocron_scrapy.store import runs as store_runs
from holocron_scrapy.store import sources as store_sources
from holocron_scrapy.store import sync as store_sync
from holocron_scrapy.store.dburl import masked, validate_schema_name
from holocron_scrapy.store.leases import Outlook
from holocron_scrapy.store.retry import retry_conflicts
from holocron_scrapy.store.runs import RunState
from holocron_scrapy.store.schema import ADDED_COLUMNS, RUN_COUNT_COLUMNS, Tables, build_tables
from holocron_scrapy.store.sql import (
    InsertStyle,
    dedupe_hash,
    default_insert_style,
    serialize_ddl,
    sqlite_engine,
    utcnow,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from sqlalchemy.engine import Connection, Engine

    from holocron_scrapy.store.sync import KnownItem, Reach, SyncPoint

__all__ = [
    "InsertStyle",
    "Outlook",
    "RunState",
    "StateStore",
    "canonical_json",
    "dedupe_hash",
    "utcnow",
]

logger = logging.getLogger(__name__)

_RUNNING = "running"


class StateStore:
    """Crawl state in SQL: the ``work_items`` queue, ``IngestRecords`` and ``runs``.

    Each method is one transaction; one that lost a conflict with another (a deadlock victim,
    a serialization failure) is run again, a few times (:func:`store_retry.retry_conflicts`).

    ``insert_style`` picks how :meth:`add_work_items` inserts if new; by default
    ``"on_conflict"`` (``INSERT ... ON CONFLICT DO NOTHING``) on SQLite and PostgreSQL, else
    ``"not_exists"`` (``INSERT ... SELECT ... WHERE NOT EXISTS`` under ``UPDLOCK, HOLDLOCK``, for
    SQL Server). Tests force ``"not_exists"`` on SQLite to run the SQL Server path.
    """

    def __init__(
        self, engine: Engine, tables: Tables, *, insert_style: InsertStyle | None = None
    ) -> None:
        self.engine = engine
        self.tables = tables
        self.insert_style: InsertStyle = insert_style or default_insert_style(engine.dialect.name)

    @classmethod
    def from_url(cls, url: str | URL, schema: str | None = "ingest") -> StateStore:
        """A store on a new engine for ``url``; ``schema`` is ignored (``None``) on SQLite."""
        url = make_url(url)
        if url.get_backend_name() == "sqlite":
            engine = sqlite_engine(url)
            schema = None
        else:
            if schema is not None:
                validate_schema_name(schema)
            engine = sa.create_engine(url, pool_pre_ping=True)
        store = cls(engine, build_tables(schema))
        logger.debug(
            "State store on %(url)s (schema %(schema)s)",
            {"url": store.url_for_log, "schema": schema},
        )
        return store

    @property
    def url_for_log(self) -> str:
        return masked(self.engine.url)

    @property
    def dialect_name(self) -> str:
        return self.engine.dialect.name

    def create_tables(self) -> None:
        """Create the schema (if missing) and the tables and indexes (if missing)."""
        schema = self.tables.metadata.schema
        with self.engine.begin() as conn:
            serialize_ddl(conn)
            if schema is not None and not sa.inspect(conn).has_schema(schema):
                conn.execute(CreateSchema(schema))
            self.tables.metadata.create_all(conn, checkfirst=True)
            self._add_missing_columns(conn)
            self._add_missing_indexes(conn)
        logger.debug("State tables ready on %(url)s", {"url": self.url_for_log})

    def dispose(self) -> None:
        self.engine.dispose()

    def _add_missing_indexes(self, conn: Connection) -> None:
        """Create the indexes that tables created by an older version lack."""
        inspector = sa.inspect(conn)
        for table in self.tables.metadata.sorted_tables:
            present = {i["name"] for i in inspector.get_indexes(table.name, table.schema)}
            for index in sorted(table.indexes, key=lambda i: str(i.name)):
                if index.name not in present and not index.unique:
                    index.create(conn)
                    logger.info("Created the index %(index)s", {"index": index.name})

    def _add_missing_columns(self, conn: Connection) -> None:
        """Add the :data:`ADDED_COLUMNS` that tables created by an older version lack."""
        inspector = sa.inspect(conn)
        preparer = conn.dialect.identifier_preparer
        for table in self.tables.metadata.sorted_tables:
            added = ADDED_COLUMNS.get(table.name, ())
            if not added:
                continue
            present = {c["name"] for c in inspector.get_columns(table.name, table.schema)}
            for name in added:
                if name in present:
                    continue
                column = sa.schema.CreateColumn(table.c[name]).compile(dialect=conn.dialect)
                conn.execute(sa.text(f"ALTER TABLE {preparer.format_table(table)} ADD {column}"))
                logger.info(
                    "Added the column %(column)s to %(table)s", {"column": name, "table": table}
                )

    # -- runs ---------------------------------------------------------------------------------

    @retry_conflicts
    def start_run(
        self,
        *,
        source_system: str,
        source_name: str,
        worker_id: str,
        hostname: str,
        pid: int,
        pid_namespace: str | None = None,
    ) -> str:
        """Record a new run as ``running`` (its first heartbeat) and return its id
        (``uuid4().hex``); ``pid_namespace`` tells whose ``pid`` it is (see ``runs``)."""
        run_id = uuid.uuid4().hex
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(self.tables.runs).values(
                    run_id=run_id,
                    source_system=source_system,
                    source_name=source_name,
                    worker_id=worker_id,
                    hostname=hostname,
                    pid=pid,
                    pid_namespace=pid_namespace,
                    status=_RUNNING,
                    started_at=now,
                    heartbeat_at=now,
                )
            )
        return run_id

    @retry_conflicts
    def finish_run(
        self, run_id: str, *, status: str, reason: str | None, counts: Mapping[str, int]
    ) -> None:
        """Close a run; ``counts`` keys are ``runs`` count columns (other keys are ignored)."""
        runs = self.tables.runs
        values: dict[str, Any] = {
            name: int(value) for name, value in counts.items() if name in RUN_COUNT_COLUMNS
        }
        with self.engine.begin() as conn:
            result = conn.execute(
                sa.update(runs)
                .where(runs.c.run_id == run_id)
                .values(status=status, finish_reason=reason, finished_at=utcnow(), **values)
            )
        if result.rowcount == 0:
            logger.warning("finish_run: no run %(run_id)s", {"run_id": run_id})

    # -- the queue ----------------------------------------------------------------------------

    @retry_conflicts
    def add_work_items(self, items: Sequence[NewWorkItem]) -> int:
        """Insert the items whose dedupe key is new; return how many were inserted.

        Duplicates within ``items`` collapse to the smallest depth. A known item reached at a
        smaller depth than stored takes the new depth, priority and ``discovered_from``, and if it
        was ``completed`` or ``skipped`` goes back to ``pending`` (attempt 0), so that it is
        expanded again at the smaller depth; its ``content_hash`` is kept.
        """
        if not items:
            return 0
        now = utcnow()
        rows = store_queue.new_rows(items, now)
        wi = self.tables.work_items
        with self.engine.begin() as conn:
            inserted = store_queue.insert_new(conn, wi, rows, self.insert_style)
            known = [row for row in rows if row["dedupe_hash"] not in inserted]
            improved = store_queue.improve_depth(conn, wi, known, now)
        logger.debug(
            "Added %(new)d of %(n)d work items (%(improved)d reached at a smaller depth)",
            {"new": len(inserted), "n": len(items), "improved": improved},
        )
        return len(inserted)

    @retry_conflicts
    def claim(
        self,
        *,
        source_system: str,
        source_name: str,
        owner: str,
        run_id: str,
        limit: int,
        lease_seconds: float,
    ) -> list[WorkItem]:
        """Lease up to ``limit`` due items of the source to ``owner`` (highest priority first).

        Due: ``pending`` (and past ``next_retry_at``), or ``in_progress`` with an expired lease.
        One atomic ``UPDATE ... RETURNING``; concurrent claimers skip each other's locked rows.
        """
        if limit <= 0:
            return []
        with self.engine.begin() as conn:
            return store_leases.claim(
                conn,
                self.tables.work_items,
                source_system=source_system,
                source_name=source_name,
                owner=owner,
                run_id=run_id,
                limit=limit,
                lease_seconds=lease_seconds,
            )

    @retry_conflicts
    def finish_items(
        self,
        outcomes: Sequence[Outcome],
        *,
        owner: str | None = None,
        retry: RetryPolicy = NO_RETRIES,
    ) -> Applied:
        """Apply outcomes to items still ``in_progress`` (and, given an ``owner``, still leased
        to it) under the claim an outcome names (its ``attempt``: never a later claim of the
        item, even by the same owner); a failure below ``retry.max_attempts`` goes back to
        ``pending`` until its ``next_retry_at``. The others are dropped and listed in
        :attr:`Applied.stale`."""
        if not outcomes:
            return Applied()
        with self.engine.begin() as conn:
            return store_records.apply_outcomes(
                conn, self.tables.work_items, outcomes, owner, retry
            )

    @retry_conflicts
    def commit_records(
        self,
        rows: Sequence[IngestRow],
        outcomes: Sequence[Outcome],
        *,
        owner: str | None = None,
        retry: RetryPolicy = NO_RETRIES,
    ) -> Applied:
        """Apply ``outcomes`` (as :meth:`finish_items`) and insert ``rows`` into
        ``IngestRecords``, all or nothing. The row of a stale outcome's item is not inserted.

        :attr:`Applied.ingest_ids` holds the new ``ingest_id`` values, in the order of ``rows``.
        """
        params = [store_records.ingest_params(row) for row in rows]  # before the transaction
        wi = self.tables.work_items
        with self.engine.begin() as conn:
            applied = (
                store_records.apply_outcomes(conn, wi, outcomes, owner, retry)
                if outcomes
                else Applied()
            )
            stale = set(applied.stale)
            params = [p for p in params if p["work_item_id"] not in stale]
            if params:
                applied.ingest_ids = store_records.insert_records(
                    conn, self.tables.ingest_records, params
                )
        return applied

    @retry_conflicts
    def renew_leases(
        self,
        *,
        owner: str,
        claims: Mapping[int, int],
        lease_seconds: float,
        run_id: str | None = None,
    ) -> int:
        """Extend ``owner``'s leases on these claims (work item id -> the claim's attempt;
        items still ``in_progress`` under that very claim) by ``lease_seconds`` from now: a live
        crawl keeps its long-running claims. Given a ``run_id``, the run's heartbeat
        (``runs.heartbeat_at``) is written in the same transaction, claims or none. Returns how
        many leases were renewed."""
        now = utcnow()
        if not claims and run_id is None:
            return 0
        with self.engine.begin() as conn:
            if run_id is not None:
                store_runs.heartbeat(conn, self.tables.runs, run_id, now)
            return store_leases.renew(
                conn,
                self.tables.work_items,
                owner=owner,
                claims=claims,
                now=now,
                lease_seconds=lease_seconds,
            )

    @retry_conflicts
    def run_states(self, run_ids: Sequence[str]) -> list[RunState]:
        """What tells whether these runs are alive: status, process, last heartbeat."""
        ids = sorted(set(run_ids))
        if not ids:
            return []
        with self.engine.connect() as conn:
            return store_runs.run_states(conn, self.tables.runs, ids)

    @retry_conflicts
    def leased_ids(self, *, owner: str) -> list[int]:
        """The ids of the items ``in_progress`` under ``owner``'s lease."""
        with self.engine.connect() as conn:
            return store_leases.leased_ids(conn, self.tables.work_items, owner=owner)

    @retry_conflicts
    def outlook(self, *, source_system: str, source_name: str, owner: str) -> Outlook:
        """What may still come of a source when nothing is claimable now: failures scheduled
        for a later attempt, and items in flight under other owners' live leases."""
        with self.engine.connect() as conn:
            return store_leases.outlook(
                conn,
                self.tables.work_items,
                source_system=source_system,
                source_name=source_name,
                owner=owner,
            )

    @retry_conflicts
    def save_cursor(
        self,
        work_item_id: int,
        cursor: str | None,
        *,
        owner: str,
        lease_seconds: float,
        attempt: int | None = None,
    ) -> bool:
        """Store a listing's continuation (``work_items.cursor``) and renew its lease.

        Only while the item is ``in_progress`` and leased to ``owner`` (under the claim
        ``attempt``, when given); returns whether it was (False: the claim was lost, e.g. its
        lease expired and another worker took it).
        """
        with self.engine.begin() as conn:
            return store_leases.save_cursor(
                conn,
                self.tables.work_items,
                work_item_id,
                cursor,
                owner=owner,
                lease_seconds=lease_seconds,
                attempt=attempt,
            )

    @retry_conflicts
    def release(
        self,
        *,
        owner: str,
        work_item_ids: Sequence[int] | None = None,
        source: tuple[str, str] | None = None,
    ) -> int:
        """Return ``owner``'s leased items (or only ``work_item_ids``) to ``pending``; given a
        ``source`` (system, name), only that source's (found by the claim index, not a scan).

        A released claim does not count as an attempt. Returns how many items were released.
        """
        with self.engine.begin() as conn:
            return store_leases.release(
                conn,
                self.tables.work_items,
                owner=owner,
                work_item_ids=work_item_ids,
                source=source,
            )

    @retry_conflicts
    def completed_versions(
        self,
        *,
        source_system: str,
        source_name: str,
        resource_type: str,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[tuple[int, str, str | None]]:
        """``(id, resource_id, version)`` of up to ``limit`` completed items with ``id >
        after_id``, by id: page through them passing the last id back as ``after_id``."""
        with self.engine.connect() as conn:
            return store_queue.completed_versions(
                conn,
                self.tables.work_items,
                source_system=source_system,
                source_name=source_name,
                resource_type=resource_type,
                after_id=after_id,
                limit=limit,
            )

    @retry_conflicts
    def requeue_ids(self, work_item_ids: Sequence[int]) -> int:
        """Put the given ``completed`` items back to ``pending`` (attempt 0), keeping their
        ``content_hash`` and ``version``; return how many were requeued."""
        ids = sorted(set(work_item_ids))
        if not ids:
            return 0
        with self.engine.begin() as conn:
            return store_queue.requeue_ids(conn, self.tables.work_items, ids)

    @retry_conflicts
    def requeue_keys(self, dedupe_keys: Sequence[str]) -> int:
        """Put the items with these dedupe keys back to ``pending`` (attempt 0) if they ended
        ``completed`` or ``skipped``, keeping their ``content_hash`` and ``version``; unknown keys
        and items pending, in flight or failed are left alone. Return how many were requeued.

        ``recrawl=changed`` refreshes a changed page's other resources this way (``html``,
        ``revisions``, ``info``: one key per resource type and title). Chunked IN lists on the
        unique ``dedupe_hash``.
        """
        hashes = sorted({dedupe_hash(key) for key in dedupe_keys})
        if not hashes:
            return 0
        with self.engine.begin() as conn:
            return store_queue.requeue_hashes(conn, self.tables.work_items, hashes)

    @retry_conflicts
    def lease_owners(self, *, source_system: str, source_name: str) -> list[str]:
        """The owners holding leases on the source's ``in_progress`` items."""
        with self.engine.connect() as conn:
            return store_leases.lease_owners(
                conn, self.tables.work_items, source_system=source_system, source_name=source_name
            )

    @retry_conflicts
    def requeue(self, *, source_system: str, source_name: str, statuses: Sequence[Status]) -> int:
        """Put the source's items in ``statuses`` back to ``pending`` with attempt 0."""
        if not statuses:
            return 0
        with self.engine.begin() as conn:
            return store_queue.requeue_source(
                conn,
                self.tables.work_items,
                source_system=source_system,
                source_name=source_name,
                statuses=sorted({str(status) for status in statuses}),
            )

    def source_url(self, *, source_system: str, source_name: str, url: str) -> str:
        """The URL recorded for a source on its first crawl (``url`` if this is the first);
        see :mod:`holocron_scrapy.store.sources`."""
        return store_sources.source_url(
            self.engine,
            self.tables.source_identities,
            source_system=source_system,
            source_name=source_name,
            url=url,
        )

    @retry_conflicts
    def reserve_request(
        self, *, source_system: str, source_name: str, interval_seconds: float
    ) -> float:
        """Reserve the source's next request slot; return the seconds to wait for it.

        The source's ``source_budget`` row holds the earliest time of its next request. In one
        transaction, under a row lock (``FOR UPDATE``; ``UPDLOCK`` on SQL Server; SQLite's
        ``BEGIN IMMEDIATE``), the slot is ``max(next_request_at, now)`` and ``next_request_at``
        moves ``interval_seconds`` past it: every process crawling the source gets its own
        slot, ``interval_seconds`` apart, so together they make one request per interval.
        """
        return store_budget.reserve_request(
            self.engine,
            self.tables.source_budget,
            source_system=source_system,
            source_name=source_name,
            interval_seconds=interval_seconds,
        )

    @retry_conflicts
    def counts(self, *, source_system: str, source_name: str) -> dict[str, int]:
        """Items of the source per status, every :class:`Status` value present."""
        wi = self.tables.work_items
        stmt = (
            sa.select(wi.c.status, sa.func.count())
            .where(wi.c.source_system == source_system, wi.c.source_name == source_name)
            .group_by(wi.c.status)
        )
        result = {status.value: 0 for status in Status}
        with self.engine.begin() as conn:
            for status, count in conn.execute(stmt):
                result[status] = int(count)
        return result

    def work_item(self, work_item_id: int) -> Mapping[str, Any] | None:
        """The whole ``work_items`` row (for tests and tools)."""
        wi = self.tables.work_items
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(wi).where(wi.c.id == work_item_id)).first()
        return None if row is None else dict(row._mapping)

    # -- change feeds (recrawl=changed) ------------------------------------------------------------

    def sync_point(self, *, source_system: str, source_name: str) -> SyncPoint | None:
        """Where the source's change feeds were read to (see :mod:`holocron_scrapy.store.sync`)."""
        with self.engine.connect() as conn:
            return store_sync.read_sync_point(
                conn, self.tables.sync_points, source_system=source_system, source_name=source_name
            )

    def set_sync_point(
        self,
        point: SyncPoint,
        *,
        source_system: str,
        source_name: str,
        run_id: str,
        only_if_absent: bool = False,
    ) -> bool:
        """Record the source's sync point (``only_if_absent``: unless it has one)."""
        return store_sync.write_sync_point(
            self.engine,
            self.tables.sync_points,
            point,
            source_system=source_system,
            source_name=source_name,
            run_id=run_id,
            only_if_absent=only_if_absent,
        )

    def widen(
        self, reach: Reach, *, source_system: str, source_name: str, resource_types: Sequence[str]
    ) -> int:
        """Record what the source's archive is expanded with; requeue what a wider ``reach``
        expands further (see :func:`holocron_scrapy.store.sync.widen`)."""
        return store_sync.widen(
            self.engine,
            (self.tables.sync_points, self.tables.work_items),
            reach,
            source_system=source_system,
            source_name=source_name,
            resource_types=resource_types,
        )

    def items_by_keys(self, dedupe_keys: Sequence[str]) -> list[KnownItem]:
        """The work items with these dedupe keys (unknown keys: absent from the answer)."""
        hashes = [dedupe_hash(key) for key in dedupe_keys]
        if not hashes:
            return []
        with self.engine.connect() as conn:
            return store_sync.items_by_hashes(conn, self.tables.work_items, hashes)

    def completed_pages(
        self,
        *,
        source_system: str,
        source_name: str,
        resource_type: str,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[tuple[int, str, str | None, datetime | None]]:
        """``(id, resource_id, version, finished_at)`` of up to ``limit`` completed items with
        ``id > after_id``, by id: the full ``prop=info`` pass pages through them."""
        with self.engine.connect() as conn:
            return store_sync.completed_pages(
                conn,
                self.tables.work_items,
                source_system=source_system,
                source_name=source_name,
                resource_type=resource_type,
                after_id=after_id,
                limit=limit,
            )

    def first_run_started(self, *, source_system: str, source_name: str) -> datetime | None:
        """When the source's first run started (its first crawl: the first sync point)."""
        with self.engine.connect() as conn:
            return store_sync.first_run_started(
                conn,
                self.tables.runs,
                source_system=source_system,
                source_name=source_name,
            )
