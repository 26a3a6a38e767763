"""This run's claims: its lease owner and the work items it holds in flight, each under one
claim (attempt).

The frontier's parts share this one object instead of their owner: the claim loop adds what it
claims, outcomes and commits end claims, the leases drop the claims another worker took.
Outcomes and renewals are fenced by the attempt, so nothing of an earlier claim of an item
applies to a later one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from holocron_scrapy.model import Outcome, WorkItem


class Claims:
    """The run (``run_id``, lease ``owner``) and its claims in flight."""

    def __init__(self) -> None:
        self.run_id = ""
        self.owner = ""  # worker_id:pid:run_id, set when the run starts
        self.in_flight: set[int] = set()  # changed in place only: others hold this very set
        self.attempts: dict[int, int] = {}  # work item -> the attempt this run holds
        self.committing: set[int] = set()  # work items whose records are being committed

    def hold(self, items: Sequence[WorkItem]) -> None:
        """The claimed ``items`` are in flight, under their claims (their attempts)."""
        for stale in [i for i in self.attempts if i not in self.in_flight]:
            del self.attempts[stale]
        self.in_flight.update(item.id for item in items)
        self.attempts.update((item.id, item.attempt) for item in items)

    def held(self, work_item_id: int) -> int | None:
        """The attempt this run holds on the item (None: no claim of it is known)."""
        return self.attempts.get(work_item_id)

    def is_claimed(self, item: WorkItem) -> bool:
        """``item`` is in flight under this very claim (not an earlier claim of the item)."""
        held = self.attempts.get(item.id, item.attempt)
        return item.id in self.in_flight and held == item.attempt

    def ended(self, outcome: Outcome) -> None:
        """The claim the outcome ends is no longer in flight (a later claim of the item is)."""
        held = self.attempts.get(outcome.work_item_id)
        if outcome.attempt is None or held is None or held == outcome.attempt:
            self.in_flight.discard(outcome.work_item_id)

    def drop(self, work_item_ids: Iterable[int]) -> None:
        """These claims are no longer this run's (lost to another worker, or released)."""
        self.in_flight.difference_update(work_item_ids)
