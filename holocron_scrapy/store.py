"""The one object through which all SQL of the crawl goes: the work queue, the ingest log, runs.

:class:`StateStore` is synchronous and thread-safe (an engine with a connection pool, one
transaction per method call); Scrapy components call it in threads. One code path serves SQLite,
PostgreSQL and SQL Server; the few dialect differences are the small helpers at the bottom.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.schema import CreateSchema

from holocron_scrapy.dburl import masked, validate_schema_name
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
from holocron_scrapy.schema import (
    ADDED_COLUMNS,
    HASH_HEX,
    RUN_COUNT_COLUMNS,
    VERSION_LENGTH,
    Tables,
    build_tables,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from sqlalchemy.engine import Connection, Engine

logger = logging.getLogger(__name__)

InsertStyle = Literal["on_conflict", "not_exists"]
_T = TypeVar("_T")

SQLITE_BUSY_TIMEOUT_MS = 30_000
ERROR_MESSAGE_MAX_CHARS = 4000
# SQL Server takes at most 2100 parameters per statement: chunk long IN lists well below that.
IN_LIST_CHUNK = 1000
# pg_advisory_xact_lock key serializing concurrent create_tables() ("holocron" in ASCII).
_PG_DDL_LOCK_KEY = 0x686F6C6F63726F6E

_RUNNING = "running"
_REOPENABLE = (Status.COMPLETED.value, Status.SKIPPED.value)


def utcnow() -> datetime:
    """Now as a naive UTC datetime, the form every timestamp column holds."""
    return datetime.now(UTC).replace(tzinfo=None)


def dedupe_hash(dedupe_key: str) -> str:
    """``work_items.dedupe_hash``: sha256 hex of the UTF-8 dedupe key."""
    return hashlib.sha256(dedupe_key.encode("utf-8")).hexdigest()


def _chunks(values: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _collapse(items: Sequence[NewWorkItem]) -> list[tuple[str, NewWorkItem]]:
    """One item per dedupe key (the smallest depth; the first on ties), sorted by hash.

    Sorting gives concurrent writers one lock order, which avoids deadlocks between batches.
    """
    best: dict[str, NewWorkItem] = {}
    for item in items:
        key = dedupe_hash(item.dedupe_key)
        kept = best.get(key)
        if kept is None or item.depth < kept.depth:
            best[key] = item
    return sorted(best.items())


class StateStore:
    """Crawl state in SQL: the ``work_items`` queue, ``IngestRecords`` and ``runs``.

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
        self.insert_style: InsertStyle = insert_style or _default_insert_style(engine.dialect.name)

    @classmethod
    def from_url(cls, url: str | URL, schema: str | None = "ingest") -> StateStore:
        """A store on a new engine for ``url``; ``schema`` is ignored (``None``) on SQLite."""
        url = make_url(url)
        if url.get_backend_name() == "sqlite":
            engine = _sqlite_engine(url)
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
            _serialize_ddl(conn)
            if schema is not None and not sa.inspect(conn).has_schema(schema):
                conn.execute(CreateSchema(schema))
            self.tables.metadata.create_all(conn, checkfirst=True)
            self._add_missing_columns(conn)
        logger.debug("State tables ready on %(url)s", {"url": self.url_for_log})

    def dispose(self) -> None:
        self.engine.dispose()

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

    def start_run(
        self, *, source_system: str, source_name: str, worker_id: str, hostname: str, pid: int
    ) -> str:
        """Record a new run as ``running`` and return its id (``uuid4().hex``)."""
        run_id = uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(self.tables.runs).values(
                    run_id=run_id,
                    source_system=source_system,
                    source_name=source_name,
                    worker_id=worker_id,
                    hostname=hostname,
                    pid=pid,
                    status=_RUNNING,
                    started_at=utcnow(),
                )
            )
        return run_id

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
        rows = [
            {
                "dedupe_hash": key,
                "dedupe_key": item.dedupe_key,
                "source_system": item.source_system,
                "source_name": item.source_name,
                "resource_type": item.resource_type,
                "resource_id": item.resource_id,
                "status": Status.PENDING.value,
                "priority": item.priority,
                "depth": item.depth,
                "attempt": 0,
                "run_id": item.run_id,
                "discovered_from": item.discovered_from,
                "created_at": now,
                "updated_at": now,
            }
            for key, item in _collapse(items)
        ]
        with self.engine.begin() as conn:
            if self.insert_style == "on_conflict":
                inserted = self._insert_on_conflict(conn, rows)
            else:
                inserted = self._insert_not_exists(conn, rows)
            known = [row for row in rows if row["dedupe_hash"] not in inserted]
            improved = self._improve_depth(conn, known, now)
        logger.debug(
            "Added %(new)d of %(n)d work items (%(improved)d reached at a smaller depth)",
            {"new": len(inserted), "n": len(items), "improved": improved},
        )
        return len(inserted)

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
            return self._claim(
                conn,
                source_system=source_system,
                source_name=source_name,
                owner=owner,
                run_id=run_id,
                limit=limit,
                lease_seconds=lease_seconds,
            )

    def finish_items(
        self,
        outcomes: Sequence[Outcome],
        *,
        owner: str | None = None,
        retry: RetryPolicy = NO_RETRIES,
    ) -> Applied:
        """Apply outcomes to items still ``in_progress`` (and, given an ``owner``, still leased
        to it); a failure below ``retry.max_attempts`` goes back to ``pending`` until its
        ``next_retry_at``. The others are dropped and listed in :attr:`Applied.stale`."""
        if not outcomes:
            return Applied()
        with self.engine.begin() as conn:
            return self._apply_outcomes(conn, outcomes, owner, retry)

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
        params = [_ingest_params(row) for row in rows]  # serialize before the transaction
        records = self.tables.ingest_records
        with self.engine.begin() as conn:
            applied = self._apply_outcomes(conn, outcomes, owner, retry) if outcomes else Applied()
            stale = set(applied.stale)
            params = [p for p in params if p["work_item_id"] not in stale]
            if params:
                result = conn.execute(
                    sa.insert(records).returning(records.c.ingest_id, sort_by_parameter_order=True),
                    params,
                )
                applied.ingest_ids = [int(ingest_id) for ingest_id in result.scalars()]
        return applied

    def renew_leases(
        self, *, owner: str, work_item_ids: Sequence[int], lease_seconds: float
    ) -> int:
        """Extend ``owner``'s leases on these items (still ``in_progress``) by ``lease_seconds``
        from now: a live crawl keeps its long-running claims. Returns how many were renewed."""
        wi = self.tables.work_items
        now = utcnow()
        stmt = (
            sa.update(wi)
            .where(wi.c.status == Status.IN_PROGRESS.value, wi.c.lease_owner == owner)
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
        )
        ids = sorted(set(work_item_ids))
        if not ids:
            return 0
        with self.engine.begin() as conn:
            return _update_in(conn, stmt, wi.c.id, ids)

    def leased_ids(self, *, owner: str) -> list[int]:
        """The ids of the items ``in_progress`` under ``owner``'s lease."""
        wi = self.tables.work_items
        stmt = sa.select(wi.c.id).where(
            wi.c.status == Status.IN_PROGRESS.value, wi.c.lease_owner == owner
        )
        with self.engine.connect() as conn:
            return sorted(int(i) for i in conn.scalars(stmt))

    def outlook(self, *, source_system: str, source_name: str, owner: str) -> Outlook:
        """What may still come of a source when nothing is claimable now: failures scheduled
        for a later attempt, and items in flight under other owners' live leases."""
        wi = self.tables.work_items
        now = utcnow()
        scheduled = sa.and_(wi.c.status == Status.PENDING.value, wi.c.next_retry_at > now)
        elsewhere = sa.and_(
            wi.c.status == Status.IN_PROGRESS.value,
            sa.or_(wi.c.lease_owner.is_(None), wi.c.lease_owner != owner),
            wi.c.lease_expires_at >= now,
        )
        stmt = sa.select(
            sa.func.count(sa.case((scheduled, wi.c.id))),
            sa.func.min(sa.case((scheduled, wi.c.next_retry_at))),
            sa.func.count(sa.case((elsewhere, wi.c.id))),
            sa.func.min(sa.case((elsewhere, wi.c.lease_expires_at))),
        ).where(
            wi.c.source_system == source_system,
            wi.c.source_name == source_name,
            wi.c.status.in_([Status.PENDING.value, Status.IN_PROGRESS.value]),
        )
        with self.engine.connect() as conn:
            n_scheduled, first_retry, n_elsewhere, first_expiry = conn.execute(stmt).one()
        return Outlook(
            scheduled=int(n_scheduled or 0),
            next_retry_at=_as_datetime(first_retry),
            in_flight_elsewhere=int(n_elsewhere or 0),
            first_lease_expiry=_as_datetime(first_expiry),
        )

    def save_cursor(
        self, work_item_id: int, cursor: str | None, *, owner: str, lease_seconds: float
    ) -> bool:
        """Store a listing's continuation (``work_items.cursor``) and renew its lease.

        Only while the item is ``in_progress`` and leased to ``owner``; returns whether it was
        (False: the claim was lost, e.g. its lease expired and another worker took it).
        """
        wi = self.tables.work_items
        now = utcnow()
        stmt = (
            sa.update(wi)
            .where(
                wi.c.id == work_item_id,
                wi.c.status == Status.IN_PROGRESS.value,
                wi.c.lease_owner == owner,
            )
            .values(
                cursor=cursor,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                updated_at=now,
            )
        )
        with self.engine.begin() as conn:
            return bool(conn.execute(stmt).rowcount)

    def release(self, *, owner: str, work_item_ids: Sequence[int] | None = None) -> int:
        """Return ``owner``'s leased items (or only ``work_item_ids``) to ``pending``.

        A released claim does not count as an attempt. Returns how many items were released.
        """
        wi = self.tables.work_items
        stmt = (
            sa.update(wi)
            .where(wi.c.status == Status.IN_PROGRESS.value, wi.c.lease_owner == owner)
            .values(
                status=Status.PENDING.value,
                attempt=sa.case((wi.c.attempt > 0, wi.c.attempt - 1), else_=0),
                lease_owner=None,
                lease_expires_at=None,
                updated_at=utcnow(),
            )
        )
        with self.engine.begin() as conn:
            if work_item_ids is None:
                return conn.execute(stmt).rowcount
            ids = sorted(set(work_item_ids))
            return _update_in(conn, stmt, wi.c.id, ids)

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
        wi = self.tables.work_items
        stmt = (
            sa.select(wi.c.id, wi.c.resource_id, wi.c.version)
            .where(
                wi.c.source_system == source_system,
                wi.c.source_name == source_name,
                wi.c.resource_type == resource_type,
                wi.c.status == Status.COMPLETED.value,
                wi.c.id > after_id,
            )
            .order_by(wi.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [(int(row.id), row.resource_id, row.version) for row in conn.execute(stmt)]

    def requeue_ids(self, work_item_ids: Sequence[int]) -> int:
        """Put the given ``completed`` items back to ``pending`` (attempt 0), keeping their
        ``content_hash`` and ``version``; return how many were requeued."""
        wi = self.tables.work_items
        stmt = (
            sa.update(wi).where(wi.c.status == Status.COMPLETED.value).values(**_requeued_values())
        )
        ids = sorted(set(work_item_ids))
        if not ids:
            return 0
        with self.engine.begin() as conn:
            return _update_in(conn, stmt, wi.c.id, ids)

    def requeue_keys(self, dedupe_keys: Sequence[str]) -> int:
        """Put the items with these dedupe keys back to ``pending`` (attempt 0) if they ended
        ``completed`` or ``skipped``, keeping their ``content_hash`` and ``version``; unknown keys
        and items pending, in flight or failed are left alone. Return how many were requeued.

        ``recrawl=changed`` refreshes a changed page's other resources this way (``html``,
        ``revisions``, ``info``: one key per resource type and title). Chunked IN lists on the
        unique ``dedupe_hash``.
        """
        wi = self.tables.work_items
        stmt = sa.update(wi).where(wi.c.status.in_(_REOPENABLE)).values(**_requeued_values())
        hashes = sorted({dedupe_hash(key) for key in dedupe_keys})
        if not hashes:
            return 0
        with self.engine.begin() as conn:
            return _update_in(conn, stmt, wi.c.dedupe_hash, hashes)

    def lease_owners(self, *, source_system: str, source_name: str) -> list[str]:
        """The owners holding leases on the source's ``in_progress`` items."""
        wi = self.tables.work_items
        stmt = (
            sa.select(wi.c.lease_owner)
            .where(
                wi.c.source_system == source_system,
                wi.c.source_name == source_name,
                wi.c.status == Status.IN_PROGRESS.value,
                wi.c.lease_owner.is_not(None),
            )
            .distinct()
        )
        with self.engine.connect() as conn:
            return sorted(str(owner) for owner in conn.scalars(stmt))

    def requeue(self, *, source_system: str, source_name: str, statuses: Sequence[Status]) -> int:
        """Put the source's items in ``statuses`` back to ``pending`` with attempt 0."""
        if not statuses:
            return 0
        wi = self.tables.work_items
        stmt = (
            sa.update(wi)
            .where(
                wi.c.source_system == source_system,
                wi.c.source_name == source_name,
                wi.c.status.in_(sorted({str(status) for status in statuses})),
            )
            .values(**_requeued_values())
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount

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
        budget = self.tables.source_budget
        key = sa.and_(budget.c.source_system == source_system, budget.c.source_name == source_name)
        locked = (
            sa.select(budget.c.next_request_at)
            .where(key)
            .with_for_update()
            .with_hint(budget, "WITH (UPDLOCK, ROWLOCK)", dialect_name="mssql")
        )
        for _ in range(2):  # the second time after losing a race to create the row
            try:
                with self.engine.begin() as conn:
                    now = utcnow()
                    row = conn.execute(locked).first()
                    slot = now if row is None else max(_as_datetime(row[0]) or now, now)
                    values = {
                        "next_request_at": slot + timedelta(seconds=interval_seconds),
                    }
                    if row is None:
                        conn.execute(
                            sa.insert(budget).values(
                                source_system=source_system,
                                source_name=source_name,
                                requests=1,
                                **values,
                            )
                        )
                    else:
                        conn.execute(
                            sa.update(budget)
                            .where(key)
                            .values(requests=budget.c.requests + 1, **values)
                        )
                    return max(0.0, (slot - now).total_seconds())
            except sa.exc.IntegrityError:
                continue
        raise RuntimeError("could not create the source_budget row")  # pragma: no cover

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

    # -- statements ---------------------------------------------------------------------------

    def _insert_on_conflict(self, conn: Connection, rows: list[dict[str, Any]]) -> set[str]:
        """``INSERT ... ON CONFLICT (dedupe_hash) DO NOTHING RETURNING dedupe_hash``."""
        wi = self.tables.work_items
        stmt = (
            _dialect_insert(conn.dialect.name, wi)
            .on_conflict_do_nothing(index_elements=[wi.c.dedupe_hash])
            .returning(wi.c.dedupe_hash)
        )
        return set(conn.execute(stmt, rows).scalars())

    def _insert_not_exists(self, conn: Connection, rows: list[dict[str, Any]]) -> set[str]:
        """``INSERT ... SELECT :values WHERE NOT EXISTS (... WITH (UPDLOCK, HOLDLOCK) ...)``.

        The lock hints (SQL Server only) hold the key range until commit, so a concurrent
        insert of the same key waits instead of failing on the unique constraint. Runs one
        statement per row: pyodbc reports no per-row counts for executemany.
        """
        wi = self.tables.work_items
        existing = wi.alias("existing")
        names = list(rows[0])
        values = [
            # NULL-able values get an explicit type: SQL Server cannot infer a bare NULL's.
            sa.cast(sa.bindparam(f"b_{name}"), wi.c[name].type)
            if wi.c[name].nullable
            else sa.bindparam(f"b_{name}", type_=wi.c[name].type)
            for name in names
        ]
        exists: sa.Select[Any] = (
            sa.select(sa.literal_column("1"))
            .select_from(existing)
            .where(existing.c.dedupe_hash == sa.bindparam("b_dedupe_hash", type_=HASH_HEX))
            .with_hint(existing, "WITH (UPDLOCK, HOLDLOCK)", dialect_name="mssql")
        )
        stmt = sa.insert(wi).from_select(names, sa.select(*values).where(~sa.exists(exists)))
        inserted: set[str] = set()
        for row in rows:
            if conn.execute(stmt, {f"b_{name}": value for name, value in row.items()}).rowcount:
                inserted.add(row["dedupe_hash"])
        return inserted

    def _improve_depth(self, conn: Connection, rows: list[dict[str, Any]], now: datetime) -> int:
        """Known items now reached at a smaller depth: take the new depth; reopen finished ones."""
        if not rows:
            return 0
        wi = self.tables.work_items
        # Not in_(): an expanding IN cannot be part of an executemany.
        reopen = sa.or_(*(wi.c.status == status for status in _REOPENABLE))
        stmt = (
            sa.update(wi)
            .where(
                wi.c.dedupe_hash == sa.bindparam("b_dedupe_hash"),
                wi.c.depth > sa.bindparam("b_depth"),
            )
            .values(
                depth=sa.bindparam("b_depth"),
                priority=sa.bindparam("b_priority"),
                discovered_from=sa.bindparam("b_discovered_from"),
                run_id=sa.func.coalesce(
                    sa.bindparam("b_run_id", type_=wi.c.run_id.type), wi.c.run_id
                ),
                status=sa.case((reopen, Status.PENDING.value), else_=wi.c.status),
                attempt=sa.case((reopen, 0), else_=wi.c.attempt),
                finished_at=sa.case((reopen, sa.null()), else_=wi.c.finished_at),
                updated_at=now,
            )
        )
        params = [
            {
                "b_dedupe_hash": row["dedupe_hash"],
                "b_depth": row["depth"],
                "b_priority": row["priority"],
                "b_discovered_from": row["discovered_from"],
                "b_run_id": row["run_id"],
            }
            for row in rows
        ]
        return _execute_counting(conn, stmt, params)

    def _claim(
        self,
        conn: Connection,
        *,
        source_system: str,
        source_name: str,
        owner: str,
        run_id: str,
        limit: int,
        lease_seconds: float,
    ) -> list[WorkItem]:
        """The claim statement on ``conn`` (the caller owns the transaction)."""
        wi = self.tables.work_items
        now = utcnow()
        due = sa.or_(
            sa.and_(
                wi.c.status == Status.PENDING.value,
                sa.or_(wi.c.next_retry_at.is_(None), wi.c.next_retry_at <= now),
            ),
            sa.and_(wi.c.status == Status.IN_PROGRESS.value, wi.c.lease_expires_at < now),
        )
        candidates = (
            sa.select(wi.c.id)
            .where(wi.c.source_system == source_system, wi.c.source_name == source_name, due)
            .order_by(wi.c.priority.desc(), wi.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .with_hint(wi, "WITH (UPDLOCK, READPAST, ROWLOCK)", dialect_name="mssql")
        )
        stmt = (
            sa.update(wi)
            .where(wi.c.id.in_(candidates))
            .values(
                status=Status.IN_PROGRESS.value,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                claimed_at=now,
                attempt=wi.c.attempt + 1,
                run_id=run_id,
                updated_at=now,
            )
            .returning(
                wi.c.id,
                wi.c.source_system,
                wi.c.source_name,
                wi.c.resource_type,
                wi.c.resource_id,
                wi.c.depth,
                wi.c.priority,
                wi.c.attempt,
                wi.c.content_hash,
                wi.c.version,
                wi.c.cursor,
            )
        )
        claimed = [
            WorkItem(
                id=int(row.id),
                source_system=row.source_system,
                source_name=row.source_name,
                resource_type=row.resource_type,
                resource_id=row.resource_id,
                depth=row.depth,
                priority=row.priority,
                attempt=row.attempt,
                content_hash=row.content_hash,
                version=row.version,
                cursor=row.cursor,
            )
            for row in conn.execute(stmt)
        ]
        claimed.sort(key=lambda item: (-item.priority, item.id))  # RETURNING order is arbitrary
        if claimed:
            logger.debug(
                "%(owner)s claimed %(n)d work items of %(system)s:%(name)s",
                {"owner": owner, "n": len(claimed), "system": source_system, "name": source_name},
            )
        return claimed

    def _live(
        self, conn: Connection, ids: Sequence[int], owner: str | None
    ) -> dict[int, tuple[int, int]]:
        """id -> (attempt, depth) of the items among ``ids`` still ``in_progress`` (under
        ``owner``'s lease when given), locked until the end of the transaction."""
        wi = self.tables.work_items
        live = [wi.c.status == Status.IN_PROGRESS.value]
        if owner is not None:
            live.append(wi.c.lease_owner == owner)
        stmt = (
            sa.select(wi.c.id, wi.c.attempt, wi.c.depth)
            .where(*live)
            .with_for_update()
            .with_hint(wi, "WITH (UPDLOCK, ROWLOCK)", dialect_name="mssql")
        )
        found: dict[int, tuple[int, int]] = {}
        for chunk in _chunks(list(ids), IN_LIST_CHUNK):
            for row in conn.execute(stmt.where(wi.c.id.in_(chunk))):
                found[int(row.id)] = (int(row.attempt), int(row.depth))
        return found

    def _apply_outcomes(
        self,
        conn: Connection,
        outcomes: Sequence[Outcome],
        owner: str | None,
        retry: RetryPolicy,
    ) -> Applied:
        wi = self.tables.work_items
        now = utcnow()
        by_id = {outcome.work_item_id: outcome for outcome in outcomes}
        ids = sorted(by_id)  # one lock order for concurrent writers
        live = self._live(conn, ids, owner)
        applied = Applied(stale=[i for i in ids if i not in live])
        params = []
        for work_item_id in ids:
            if work_item_id not in live:
                continue
            outcome = by_id[work_item_id]
            attempt, depth = live[work_item_id]
            status, retry_at = str(outcome.status), None
            closer = outcome.depth is not None and depth < outcome.depth
            if outcome.status in _REOPENABLE and closer:
                status = Status.PENDING.value  # found closer while in flight: expand it again
            elif outcome.status == Status.FAILED and retry.retries(attempt):
                status = Status.PENDING.value
                retry_at = now + timedelta(seconds=retry.delay(attempt))
            if retry_at is None:
                applied.statuses[str(outcome.status)] += 1
            else:
                applied.retried += 1
            params.append(
                {
                    "b_id": work_item_id,
                    "b_status": status,
                    "b_error_message": _truncate(outcome.error_message),
                    "b_content_hash": outcome.content_hash,
                    "b_version": outcome.version,
                    "b_next_retry_at": retry_at,
                    "b_finished_at": None if retry_at else now,
                    # A listing tried again resumes from its cursor; an ended one starts over.
                    "b_keep_cursor": retry_at is not None,
                }
            )
        where = [wi.c.id == sa.bindparam("b_id"), wi.c.status == Status.IN_PROGRESS.value]
        if owner is not None:
            where.append(wi.c.lease_owner == owner)
        stmt = (
            sa.update(wi)
            .where(*where)
            .values(
                status=sa.bindparam("b_status"),
                error_message=sa.bindparam("b_error_message"),
                content_hash=sa.func.coalesce(
                    sa.bindparam("b_content_hash", type_=HASH_HEX), wi.c.content_hash
                ),
                version=sa.func.coalesce(
                    sa.bindparam("b_version", type_=sa.Unicode(VERSION_LENGTH)), wi.c.version
                ),
                cursor=sa.case(
                    (sa.bindparam("b_keep_cursor", type_=sa.Boolean), wi.c.cursor),
                    else_=sa.null(),
                ),
                next_retry_at=sa.bindparam("b_next_retry_at", type_=wi.c.next_retry_at.type),
                finished_at=sa.bindparam("b_finished_at", type_=wi.c.finished_at.type),
                updated_at=now,
                lease_owner=None,
                lease_expires_at=None,
            )
        )
        _execute_counting(conn, stmt, params)
        if applied.stale:
            logger.debug(
                "Dropped the outcomes of %(n)d work items no longer leased to %(owner)s",
                {"n": len(applied.stale), "owner": owner},
            )
        return applied


def _update_in(
    conn: Connection, stmt: sa.Update, column: sa.ColumnElement[Any], values: Sequence[Any]
) -> int:
    """Run ``stmt`` for rows whose ``column`` is in ``values``, in chunks of IN lists (SQL
    Server takes at most 2,100 parameters a statement); return how many rows changed."""
    return sum(
        conn.execute(stmt.where(column.in_(chunk))).rowcount
        for chunk in _chunks(list(values), IN_LIST_CHUNK)
    )


def _requeued_values() -> dict[str, Any]:
    """An item back in the queue as new: pending, attempt 0, no error, lease or retry time
    (its ``content_hash`` and ``version`` stay, so unchanged content is still recognised)."""
    return {
        "status": Status.PENDING.value,
        "attempt": 0,
        "error_message": None,
        "next_retry_at": None,
        "lease_owner": None,
        "lease_expires_at": None,
        "finished_at": None,
        "updated_at": utcnow(),
    }


@dataclass(frozen=True, slots=True)
class Outlook:
    """See :meth:`StateStore.outlook` (times are naive UTC)."""

    scheduled: int  # pending items whose next_retry_at is still to come
    next_retry_at: datetime | None
    in_flight_elsewhere: int  # in_progress under another owner's unexpired lease
    first_lease_expiry: datetime | None


def _as_datetime(value: Any) -> datetime | None:
    """A MIN() of a timestamp column: a datetime (SQLite may hand back its text form)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _truncate(message: str | None) -> str | None:
    if message is None or len(message) <= ERROR_MESSAGE_MAX_CHARS:
        return message
    return message[: ERROR_MESSAGE_MAX_CHARS - 1] + "…"


def _ingest_params(row: IngestRow) -> dict[str, Any]:
    return {
        "source_system": row.source_system,
        "source_name": row.source_name,
        "resource_type": row.resource_type,
        "resource_id": row.resource_id,
        "request_uri": row.request_uri,
        "request_method": row.request_method,
        "request_headers": canonical_json(row.request_headers),
        "status_code": row.status_code,
        "response_headers": canonical_json(row.response_headers),
        "payload": row.payload_json or canonical_json(row.payload),
        "fetched_at_utc": row.fetched_at_utc,
        "hash_sha256": row.hash_sha256,
        "run_id": row.run_id,
        "work_item_id": row.work_item_id,
        "attempt": row.attempt,
        "error_message": row.error_message,
        "duration_ms": row.duration_ms,
    }


# -- dialect differences ------------------------------------------------------------------------


def _default_insert_style(dialect_name: str) -> InsertStyle:
    return "on_conflict" if dialect_name in ("sqlite", "postgresql") else "not_exists"


def _dialect_insert(dialect_name: str, table: sa.Table) -> Any:
    """The dialect's own ``insert()`` (the one with ``on_conflict_do_nothing``)."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    if dialect_name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    raise NotImplementedError(f"No INSERT ... ON CONFLICT on {dialect_name}")


def _execute_counting(conn: Connection, stmt: sa.Update, params: list[dict[str, Any]]) -> int:
    """executemany ``stmt`` and return the rows it changed.

    Where the driver cannot count rows across an executemany (pyodbc), one execute per row.
    """
    if not params:
        return 0
    if len(params) == 1 or conn.dialect.supports_sane_multi_rowcount:
        return conn.execute(stmt, params).rowcount
    return sum(conn.execute(stmt, param).rowcount for param in params)


def _serialize_ddl(conn: Connection) -> None:
    """Make concurrent ``create_tables`` calls (several crawl processes) take turns."""
    name = conn.dialect.name
    if name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_DDL_LOCK_KEY)))
    elif name == "mssql":
        conn.execute(
            sa.text(
                "EXEC sp_getapplock @Resource = N'holocron_scrapy.create_tables', "
                "@LockMode = 'Exclusive', @LockOwner = 'Transaction', @LockTimeout = 60000"
            )
        )
    # SQLite: every transaction begins IMMEDIATE, which already serializes writers.


def _sqlite_engine(url: URL) -> Engine:
    """A SQLite engine: file in a created directory, WAL, busy timeout, BEGIN IMMEDIATE."""
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False})
    sa.event.listen(engine, "connect", _sqlite_on_connect)
    sa.event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _connection_record: Any) -> None:
    # Let SQLAlchemy's "begin" event (below) emit BEGIN, not pysqlite.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock up front (waiting up to busy_timeout): a deferred
    # transaction that reads then writes can fail at once with SQLITE_BUSY under concurrency.
    conn.exec_driver_sql("BEGIN IMMEDIATE")
