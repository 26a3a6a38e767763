"""The SQL tables of the crawl state and the ingest log (SQLAlchemy Core, all dialects).

``work_items`` is the durable queue, ``IngestRecords`` the log of fetched resources (one row per
lake file), ``runs`` one row per crawl process, ``source_budget`` the request budget of a source
shared by all the processes crawling it, ``sync_points`` where each source's change feeds were
read to (``recrawl=changed``), ``work_item_counts`` the ledger of the queue's counts per source,
type and status, kept by triggers (:mod:`holocron_scrapy.store.counts`; not on SQL Server,
where an indexed view holds them). The SQL Server DDL in ``sql/`` is generated from
these definitions (:mod:`holocron_scrapy.store.ddl`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mssql

from holocron_scrapy.model import Status

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}

# Portable column types: SQL Server gets DATETIME2 and NVARCHAR(max) rather than DATETIME / NTEXT.
UTC_DATETIME = sa.DateTime().with_variant(mssql.DATETIME2, "mssql")
LONG_TEXT = sa.UnicodeText().with_variant(mssql.NVARCHAR(), "mssql")
# BIGINT identity; on SQLite it must be INTEGER PRIMARY KEY (the rowid) to autoincrement.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
HASH_HEX = sa.String(64)  # sha256 hex digest
RESOURCE_ID_LENGTH = 2000
# "{source_system}:{source_name}:{resource_type}:{resource_id}" at their maximum lengths.
DEDUPE_KEY_LENGTH = 64 + 128 + 64 + RESOURCE_ID_LENGTH + 3

VERSION_LENGTH = 64
PID_NAMESPACE_LENGTH = 100

#: Nullable columns added after a table was first released: create_tables() and the SQL Server
#: script add them to tables created by an older version.
ADDED_COLUMNS: dict[str, tuple[str, ...]] = {
    "work_items": ("version", "cursor", "hops"),
    "runs": ("heartbeat_at", "pid_namespace"),
}

RUN_COUNT_COLUMNS = (
    "items_discovered",
    "items_completed",
    "items_failed",
    "items_skipped",
    "records_written",
    "requests_made",
)


@dataclass(frozen=True, slots=True)
class Tables:
    """The state tables bound to one :class:`~sqlalchemy.MetaData` (and schema)."""

    metadata: sa.MetaData
    work_items: sa.Table
    ingest_records: sa.Table
    runs: sa.Table
    source_budget: sa.Table
    source_identities: sa.Table
    sync_points: sa.Table
    work_item_counts: sa.Table

    def created_on(self, dialect: str) -> list[sa.Table]:
        """The tables made on ``dialect``, in dependency order (SQL Server keeps the counts
        in an indexed view, not in the ledger)."""
        tables = self.metadata.sorted_tables
        if dialect == "mssql":
            return [table for table in tables if table is not self.work_item_counts]
        return tables


def _zero() -> sa.TextClause:
    return sa.text("0")


def _work_items(metadata: sa.MetaData) -> sa.Table:
    statuses = ", ".join(f"'{status.value}'" for status in Status)
    table = sa.Table(
        "work_items",
        metadata,
        sa.Column("id", BIG_ID, sa.Identity(), primary_key=True),
        # sha256 hex of dedupe_key: keys can be longer than SQL Server allows in an index.
        sa.Column("dedupe_hash", HASH_HEX, nullable=False, unique=True),
        sa.Column("dedupe_key", sa.Unicode(DEDUPE_KEY_LENGTH), nullable=False),
        sa.Column("source_system", sa.Unicode(64), nullable=False),
        sa.Column("source_name", sa.Unicode(128), nullable=False),
        sa.Column("resource_type", sa.Unicode(64), nullable=False),
        sa.Column("resource_id", sa.Unicode(RESOURCE_ID_LENGTH), nullable=False),
        sa.Column("status", sa.Unicode(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False, server_default=_zero()),
        sa.Column("depth", sa.Integer(), nullable=False, server_default=_zero()),
        sa.Column("attempt", sa.Integer(), nullable=False, server_default=_zero()),
        sa.Column("run_id", sa.Unicode(32), nullable=True),  # the last run that touched it
        sa.Column("discovered_from", sa.BigInteger(), nullable=True),
        sa.Column("lease_owner", sa.Unicode(200), nullable=True),
        sa.Column("lease_expires_at", UTC_DATETIME, nullable=True),
        sa.Column("claimed_at", UTC_DATETIME, nullable=True),
        sa.Column("next_retry_at", UTC_DATETIME, nullable=True),
        sa.Column("content_hash", HASH_HEX, nullable=True),  # of the last record ingested for it
        # The resource's version at its last completion (a page's lastrevid, or "deleted").
        sa.Column("version", sa.Unicode(VERSION_LENGTH), nullable=True),
        # Where an unfinished listing stands: the JSON of the API's last ``continue`` object.
        sa.Column("cursor", LONG_TEXT, nullable=True),
        # The redirects that led here from a resource that was no redirect (NULL: none), which
        # count toward HOLOCRON_MAX_REDIRECTS (holocron_scrapy.bounds).
        sa.Column("hops", sa.Integer(), nullable=True),
        sa.Column("error_message", LONG_TEXT, nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.CheckConstraint(f"status IN ({statuses})", name="status"),
        sa.Index(
            "ix_work_items_claim",
            "source_system",
            "source_name",
            "status",
            "priority",
            "id",
        ),
    )
    _frontier_indexes(table)
    return table


def _partial(condition: sa.ColumnElement[bool]) -> dict[str, Any]:
    """A partial index's condition on every dialect (SQL Server: a filtered index)."""
    return {f"{dialect}_where": condition for dialect in ("sqlite", "postgresql", "mssql")}


def _frontier_indexes(wi: sa.Table) -> None:
    """The indexes that keep every repeated query of the crawl off a scan of the frontier, each
    in its statements' exact filter and order; the partial ones hold only the few rows their
    statements look for (leased, scheduled for a retry), however large the frontier grows."""
    c = wi.c
    # The claim: pending, not waiting for a retry, by priority then id. A failure scheduled for
    # a retry has a next_retry_at and is outside this index until the sweep clears it.
    sa.Index(
        "ix_work_items_ready",
        c.source_system,
        c.source_name,
        c.status,
        c.priority.desc(),
        c.id,
        **_partial(c.next_retry_at.is_(None)),
    )
    # The sweep of expired leases, and the leases of others in the outlook.
    sa.Index(
        "ix_work_items_lease_expiry",
        c.source_system,
        c.source_name,
        c.status,
        c.lease_expires_at,
        **_partial(c.lease_expires_at.is_not(None)),
    )
    # The sweep of retries that came due, and the next one in the outlook.
    sa.Index(
        "ix_work_items_retry_at",
        c.source_system,
        c.source_name,
        c.status,
        c.next_retry_at,
        **_partial(c.next_retry_at.is_not(None)),
    )
    # An owner's leases: leased_ids, release.
    sa.Index(
        "ix_work_items_lease_owner",
        c.lease_owner,
        c.status,
        c.id,
        **_partial(c.lease_owner.is_not(None)),
    )
    # The recrawl's pages of completed items of a type, by id (keyset).
    sa.Index(
        "ix_work_items_type_id",
        c.source_system,
        c.source_name,
        c.status,
        c.resource_type,
        c.id,
    )


def _ingest_records(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "IngestRecords",
        metadata,
        sa.Column("ingest_id", BIG_ID, sa.Identity()),
        sa.Column("source_system", sa.Unicode(64), nullable=False),
        sa.Column("source_name", sa.Unicode(128), nullable=False),
        sa.Column("resource_type", sa.Unicode(64), nullable=False),
        sa.Column("resource_id", sa.Unicode(RESOURCE_ID_LENGTH), nullable=False),
        sa.Column("request_uri", LONG_TEXT, nullable=False),
        sa.Column("request_method", sa.Unicode(16), nullable=False),
        sa.Column("request_headers", LONG_TEXT, nullable=False),  # JSON text
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_headers", LONG_TEXT, nullable=False),  # JSON text
        sa.Column("payload", LONG_TEXT, nullable=False),  # JSON text of the raw payload
        sa.Column("fetched_at_utc", UTC_DATETIME, nullable=False),
        sa.Column("hash_sha256", HASH_HEX, nullable=False),
        sa.Column("run_id", sa.Unicode(32), nullable=False),
        sa.Column("work_item_id", sa.BigInteger(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("error_message", LONG_TEXT, nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("ingest_id", name="pk_ingest_records"),
        sa.Index("ix_ingest_records_work_item_id", "work_item_id"),
        sa.Index("ix_ingest_records_resource", "source_system", "source_name", "resource_type"),
        # A source's records in id order: the incremental Parquet export (lake_export.py).
        sa.Index("ix_ingest_records_source_ingest", "source_system", "source_name", "ingest_id"),
        # A run's records: its manifest (manifest.py).
        sa.Index("ix_ingest_records_run", "run_id"),
    )


def _runs(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "runs",
        metadata,
        sa.Column("run_id", sa.Unicode(32), primary_key=True),
        sa.Column("source_system", sa.Unicode(64), nullable=False),
        sa.Column("source_name", sa.Unicode(128), nullable=False),
        sa.Column("worker_id", sa.Unicode(200), nullable=False),
        sa.Column("hostname", sa.Unicode(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        # "running", "finished", "cancelled", "failed", ...: free text, no CHECK.
        sa.Column("status", sa.Unicode(16), nullable=False),
        sa.Column("finish_reason", sa.Unicode(200), nullable=True),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        # Written by the run's lease renewal loop: a running run without one for long is dead.
        sa.Column("heartbeat_at", UTC_DATETIME, nullable=True),
        # The kernel boot and pid namespace ``pid`` belongs to ("<boot_id>/pid:[<inode>]"):
        # two containers sharing a host name have different ones.
        sa.Column("pid_namespace", sa.Unicode(PID_NAMESPACE_LENGTH), nullable=True),
        *(
            sa.Column(name, sa.Integer(), nullable=False, server_default=_zero())
            for name in RUN_COUNT_COLUMNS
        ),
    )


def _source_budget(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "source_budget",
        metadata,
        sa.Column("source_system", sa.Unicode(64), nullable=False),
        sa.Column("source_name", sa.Unicode(128), nullable=False),
        # The earliest time the next request to the source may be sent, by any process.
        sa.Column("next_request_at", UTC_DATETIME, nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False, server_default=_zero()),
        sa.PrimaryKeyConstraint("source_system", "source_name", name="pk_source_budget"),
    )


def _source_identities(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "source_identities",
        metadata,
        sa.Column("source_system", sa.Unicode(64), nullable=False),
        sa.Column("source_name", sa.Unicode(128), nullable=False),
        # What the source's name stood for when it was first crawled into this database (its
        # api_url or base_url): a source file of the same name elsewhere is refused.
        sa.Column("source_url", sa.Unicode(2000), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("source_system", "source_name", name="pk_source_identities"),
    )


def _sync_points(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "sync_points",
        metadata,
        sa.Column("source_system", sa.Unicode(64), nullable=False),
        sa.Column("source_name", sa.Unicode(128), nullable=False),
        # The source's change feeds (MediaWiki: recentchanges, logevents) are read from here on
        # (the wiki's clock, UTC), and the largest rcid / logid already applied (NULL: none).
        sa.Column("feed_timestamp", UTC_DATETIME, nullable=False),
        sa.Column("rc_id", sa.BigInteger(), nullable=True),
        sa.Column("log_id", sa.BigInteger(), nullable=True),
        sa.Column("run_id", sa.Unicode(32), nullable=True),  # the run that wrote it
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        # What the archive was expanded with: max_depth and the discovery switches that were on
        # ("links,categories"): a run with more expands what the new settings reach.
        sa.Column("max_depth", sa.Integer(), nullable=True),
        sa.Column("expansions", sa.Unicode(200), nullable=True),
        sa.PrimaryKeyConstraint("source_system", "source_name", name="pk_sync_points"),
    )


def _work_item_counts(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "work_item_counts",
        metadata,
        sa.Column("id", BIG_ID, sa.Identity(), primary_key=True),
        sa.Column("source_system", sa.Unicode(64), nullable=False),
        sa.Column("source_name", sa.Unicode(128), nullable=False),
        sa.Column("resource_type", sa.Unicode(64), nullable=False),
        sa.Column("status", sa.Unicode(16), nullable=False),
        # The count of (source, type, status) is SUM(delta) over its rows.
        sa.Column("delta", sa.BigInteger(), nullable=False),
        sa.Index("ix_work_item_counts_source", "source_system", "source_name"),
    )


def build_tables(schema: str | None) -> Tables:
    """Build the tables in ``schema`` (``None``: the connection's default, e.g. on SQLite)."""
    metadata = sa.MetaData(schema=schema, naming_convention=NAMING_CONVENTION)
    return Tables(
        metadata=metadata,
        work_items=_work_items(metadata),
        ingest_records=_ingest_records(metadata),
        runs=_runs(metadata),
        source_budget=_source_budget(metadata),
        source_identities=_source_identities(metadata),
        sync_points=_sync_points(metadata),
        work_item_counts=_work_item_counts(metadata),
    )
