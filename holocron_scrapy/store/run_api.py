"""The :class:`~holocron_scrapy.store.state_store.StateStore` methods of runs and sources: a
run's row and heartbeat-checked state, a source's identity and its shared request budget."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from holocron_scrapy.store import budget as store_budget
from holocron_scrapy.store import runs as store_runs
from holocron_scrapy.store import sources as store_sources
from holocron_scrapy.store.base import StoreBase
from holocron_scrapy.store.retry import retry_conflicts
from holocron_scrapy.store.schema import RUN_COUNT_COLUMNS
from holocron_scrapy.store.sql import utcnow

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from holocron_scrapy.store.runs import RunState


_RUNNING = "running"

logger = logging.getLogger(__name__)


class RunMethods(StoreBase):
    """Runs (``runs``), source identities and the politeness budget."""

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

    @retry_conflicts
    def run_states(self, run_ids: Sequence[str]) -> list[RunState]:
        """What tells whether these runs are alive: status, process, last heartbeat."""
        ids = sorted(set(run_ids))
        if not ids:
            return []
        with self.engine.connect() as conn:
            return store_runs.run_states(conn, self.tables.runs, ids)

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
