"""The one object through which all SQL of the crawl goes: the work queue, the ingest log, runs.

:class:`StateStore` is synchronous and thread-safe (an engine with a connection pool, one
transaction per method call); Scrapy components call it in threads. It owns the engine, the
tables and the transactions. Its methods are grouped by concern in mixins of one object:
``work_api`` (the queue: adding, requeueing, outcomes, counts), ``claim_api`` (claims and
leases), ``run_api`` (runs, source identities, the politeness budget) and ``feed_api``
(``recrawl=changed``); each method opens its transaction and runs the statements of its
concern's module: ``queue``, ``leases`` and ``sweep``, ``records``, ``runs``, ``budget``,
``sync``. The few dialect differences are in ``sql``. One code path serves SQLite, PostgreSQL
and SQL Server."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.schema import CreateSchema

from holocron_scrapy.model import canonical_json
from holocron_scrapy.store import counts as store_counts
from holocron_scrapy.store.claim_api import ClaimMethods
from holocron_scrapy.store.dburl import masked, validate_schema_name
from holocron_scrapy.store.feed_api import FeedMethods
from holocron_scrapy.store.outlook import Outlook
from holocron_scrapy.store.resume import ResumePoints
from holocron_scrapy.store.run_api import RunMethods
from holocron_scrapy.store.runs import RunState
from holocron_scrapy.store.schema import ADDED_COLUMNS, Tables, build_tables
from holocron_scrapy.store.sql import (
    InsertStyle,
    dedupe_hash,
    default_insert_style,
    serialize_ddl,
    sqlite_engine,
    utcnow,
)
from holocron_scrapy.store.work_api import WorkMethods

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

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


class StateStore(WorkMethods, ClaimMethods, RunMethods, FeedMethods):
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
        self.resume = ResumePoints()

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
            created = self.tables.created_on(conn.dialect.name)
            self.tables.metadata.create_all(conn, tables=created, checkfirst=True)
            self._add_missing_columns(conn)
            self._add_missing_indexes(conn)
            if store_counts.install(conn, self.tables):
                logger.info("Counted the work items by source, type and status (once)")
        logger.debug("State tables ready on %(url)s", {"url": self.url_for_log})

    def dispose(self) -> None:
        self.engine.dispose()

    def _add_missing_indexes(self, conn: Connection) -> None:
        """Create the indexes that tables created by an older version lack."""
        inspector = sa.inspect(conn)
        for table in self.tables.created_on(conn.dialect.name):
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
