"""What the crawl's components ask of the frontier: report discoveries and outcomes, commit
records, save cursors, requeue; and what the tests drive (flush, claim, done).

:class:`FrontierApi` is the half of :class:`~holocron_scrapy.frontier.extension.Frontier` that
the spiders, middlewares and pipelines call; the other half wires the parts into Scrapy
(settings, signals, the run's start and end). Both only delegate to the parts.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from scrapy.utils.asyncio import run_in_thread

from holocron_scrapy.model import Outcome
from holocron_scrapy.store import limits

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from scrapy.statscollectors import StatsCollector

    from holocron_scrapy.frontier.claiming import ClaimLoop
    from holocron_scrapy.frontier.claims import Claims
    from holocron_scrapy.frontier.leases import Leases
    from holocron_scrapy.frontier.writes import WriteBuffer
    from holocron_scrapy.model import Applied, IngestRow, NewWorkItem, WorkItem
    from holocron_scrapy.store.state_store import StateStore

logger = logging.getLogger(__name__)


class FrontierApi:
    """The frontier's parts, as the crawl's components use them."""

    _store: StateStore
    stats: StatsCollector
    claims: Claims
    writes: WriteBuffer
    leases: Leases
    loop: ClaimLoop

    @property
    def store(self) -> StateStore:
        """The state store (the parts share it: setting it sets theirs)."""
        return self._store

    @store.setter
    def store(self, store: StateStore) -> None:
        self._store = self.writes.store = self.leases.store = self.loop.store = store
        self.loop.waits.store = store

    # -- the run and its claims --------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.claims.run_id

    @property
    def owner(self) -> str:
        """This run's lease owner, ``worker_id:pid:run_id``."""
        return self.claims.owner

    @property
    def in_flight(self) -> set[int]:
        """The work items this run holds in flight."""
        return self.claims.in_flight

    @property
    def claim_attempts(self) -> dict[int, int]:
        """The claim (attempt) of each work item in flight."""
        return self.claims.attempts

    @property
    def closing(self) -> bool:
        return self.loop.closing

    def is_claimed(self, item: WorkItem) -> bool:
        """``item`` is in flight under this very claim (not an earlier claim of the item)."""
        return self.claims.is_claimed(item)

    # -- what the crawl reports -------------------------------------------------------------

    def discover(self, item: NewWorkItem) -> None:
        """Buffer a discovered resource; it is inserted if new at the next flush (see
        :meth:`WriteBuffer.discover`)."""
        fitted = limits.fit_work_item(item)
        if fitted is not item:
            self.stats.inc_value("holocron/limits/work_item_fitted")
        self.writes.discover(fitted)

    def finish(self, outcome: Outcome) -> None:
        """Buffer the end of a work item (skipped or failed; completion comes with its record).

        An outcome that names no claim ends the claim this run holds on the item."""
        held = self.claims.held(outcome.work_item_id)
        if outcome.attempt is None and held is not None:
            outcome = dataclasses.replace(outcome, attempt=held)
        elif outcome.attempt is not None and held is not None and outcome.attempt < held:
            # An earlier claim's (the store would refuse it): it must not take the place of
            # the held claim's outcome in the buffer.
            self.stats.inc_value("holocron/outcomes/stale_lease")
            logger.debug(
                "Dropped the outcome of attempt %(old)d of work item %(id)d (attempt %(new)d "
                "holds it)",
                {"old": outcome.attempt, "id": outcome.work_item_id, "new": held},
            )
            return
        self.claims.ended(outcome)
        self.writes.finish(self._fit(outcome))

    def _fit(self, outcome: Outcome) -> Outcome:
        """``outcome`` with values its columns can store (see
        :mod:`holocron_scrapy.store.limits`)."""
        fitted = limits.fit_outcome(outcome)
        if fitted is not outcome:
            self.stats.inc_value("holocron/limits/outcome_fitted")
        return fitted

    def fail(self, items: Iterable[WorkItem], message: str, *, final: bool = False) -> None:
        """Fail ``items`` with ``message``; ``final``: not retried, whatever the retry policy."""
        for item in items:
            self.finish(Outcome.failed(item, message, final=final))

    def queue_changed(self) -> None:
        """Items were put back in the queue outside the buffers: claim again soon."""
        self.loop.written()
        self.loop.maybe_claim()

    async def requeue(self, work_item_ids: Sequence[int], dedupe_keys: Sequence[str] = ()) -> int:
        """Put completed items back into the queue (in a thread) and claim them soon: the
        ``work_item_ids``, and the completed or skipped items with these ``dedupe_keys`` (a
        changed page's other resources)."""
        if not work_item_ids and not dedupe_keys:
            return 0
        n: int = await run_in_thread(self.store.requeue_ids, work_item_ids)
        if dedupe_keys:
            related: int = await run_in_thread(self.store.requeue_keys, dedupe_keys)
            self.stats.inc_value("holocron/frontier/requeued_related", related)
            n += related
        self.stats.inc_value("holocron/frontier/requeued", n)
        self.queue_changed()
        return n

    async def save_cursor(self, item: WorkItem, cont: Mapping[str, str] | None) -> bool:
        """Save where a listing stands (its next ``continue``) and renew its lease, in a thread
        (see :meth:`Leases.save_cursor`). False when the claim was lost."""
        return await self.leases.save_cursor(item, cont)

    async def commit_records(
        self, rows: Sequence[IngestRow], outcomes: Sequence[Outcome]
    ) -> Applied:
        """Write records and complete their work items in one transaction (in a thread).

        Buffered discoveries are written first: a page is never completed before its links are
        in the queue. While the database is unreachable this waits (the items wait with it) and
        tries again; a retry after a commit whose answer was lost finds the items completed and
        inserts nothing twice. Only the items still leased to this run are completed and get
        their rows (see :meth:`StateStore.commit_records`).
        """
        fitted = [self._fit(outcome) for outcome in outcomes]
        applied: Applied = await self.writes.commit(rows, fitted)
        self.stats.inc_value("holocron/records/written", len(applied.ingest_ids))
        return applied

    # -- writes and claims, for the components and the tests ------------------------------

    async def flush(self) -> bool:
        """Write buffered discoveries and outcomes; False when a write failed (what could not be
        written stays buffered for the next try)."""
        return await self.writes.flush()

    async def renew_leases(self) -> int:
        """Extend the leases of this run's claims in flight (see :meth:`Leases.renew`)."""
        return await self.leases.renew()

    def maybe_claim(self) -> None:
        """Claim a batch unless one is under way or the queue is known to hold nothing new."""
        self.loop.maybe_claim()

    async def claim_batch(self) -> list[WorkItem]:
        """Flush what is buffered, then claim up to ``claim_size`` items (see
        :meth:`ClaimLoop.claim_batch`)."""
        return await self.loop.claim_batch()

    def done(self) -> bool:
        """The crawl is done (see :meth:`ClaimLoop.done`)."""
        return self.loop.done()
