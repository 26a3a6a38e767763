"""The statements of a run's liveness: its heartbeat, and what tells a live run from a dead one.

Each function runs on a connection whose transaction
:class:`~holocron_scrapy.store.state_store.StateStore`
owns; the frontier decides which runs are dead (``frontier_leases.dead_reason``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from holocron_scrapy.store.sql import IN_LIST_CHUNK, as_datetime, chunks

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.engine import Connection


def heartbeat(conn: Connection, runs: sa.Table, run_id: str, now: datetime) -> None:
    """The run is alive: ``runs.heartbeat_at = now``."""
    conn.execute(sa.update(runs).where(runs.c.run_id == run_id).values(heartbeat_at=now))


@dataclass(frozen=True, slots=True)
class RunState:
    """A ``runs`` row as far as telling a live run from a dead one goes (naive UTC times)."""

    run_id: str
    status: str
    hostname: str
    pid: int
    pid_namespace: str | None
    last_seen: datetime  # its last heartbeat, or its start


def run_states(conn: Connection, runs: sa.Table, run_ids: Sequence[str]) -> list[RunState]:
    """The :class:`RunState` of the known runs among ``run_ids`` (chunked IN lists)."""
    stmt = sa.select(
        runs.c.run_id,
        runs.c.status,
        runs.c.hostname,
        runs.c.pid,
        runs.c.pid_namespace,
        sa.func.coalesce(runs.c.heartbeat_at, runs.c.started_at).label("last_seen"),
    )
    found = []
    for chunk in chunks(list(run_ids), IN_LIST_CHUNK):
        for row in conn.execute(stmt.where(runs.c.run_id.in_(chunk))):
            last_seen = as_datetime(row.last_seen)
            assert last_seen is not None
            found.append(
                RunState(
                    run_id=row.run_id,
                    status=row.status,
                    hostname=row.hostname,
                    pid=int(row.pid),
                    pid_namespace=row.pid_namespace,
                    last_seen=last_seen,
                )
            )
    return sorted(found, key=lambda run: run.run_id)
