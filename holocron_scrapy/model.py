"""Plain values shared by the frontier, the spiders, the state middleware and the pipelines.

Nothing here touches a database or Scrapy: these are the nouns of the crawl.
"""

from __future__ import annotations

import enum
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from holocron_scrapy import defaults, json_bytes

if TYPE_CHECKING:
    from datetime import datetime

#: The one serialization of payloads and headers (:mod:`holocron_scrapy.json_bytes`).
canonical_json = json_bytes.canonical_json


class Status(enum.StrEnum):
    """Status of a work item in the SQL queue."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


def dedupe_key(source_system: str, source_name: str, resource_type: str, resource_id: str) -> str:
    """The identity of a resource in the queue: ``{system}:{name}:{type}:{id}``.

    This is a *resource* identity, not a request fingerprint: two different requests (a batch of
    titles, a continuation) can serve the same resource, and one request can serve many.
    """
    return f"{source_system}:{source_name}:{resource_type}:{resource_id}"


@dataclass(frozen=True, slots=True)
class NewWorkItem:
    """A resource to put into the queue (a seed or a discovered link)."""

    source_system: str
    source_name: str
    resource_type: str
    resource_id: str
    depth: int = 0
    priority: int = 0
    discovered_from: int | None = None  # work_items.id of the item whose response linked here
    run_id: str | None = None
    hops: int = 0  # redirects from the last resource that was no redirect (bounds.Bounds)

    @property
    def dedupe_key(self) -> str:
        return dedupe_key(
            self.source_system, self.source_name, self.resource_type, self.resource_id
        )


@dataclass(frozen=True, slots=True)
class WorkItem:
    """A claimed row of ``work_items``; ``attempt`` names the claim (see :class:`Outcome`)."""

    id: int
    source_system: str
    source_name: str
    resource_type: str
    resource_id: str
    depth: int
    priority: int
    attempt: int
    content_hash: str | None = None  # hash_sha256 of the last record ingested for it
    version: str | None = None  # the resource's version at its last completion (see Outcome)
    cursor: str | None = None  # a listing's saved continuation (JSON), to resume from
    hops: int = 0  # the redirects that led to it (see NewWorkItem.hops)


#: ``work_items.version`` of a resource whose last record says it was deleted at the source.
DELETED_VERSION = "deleted"

#: The resource type of a listing (a MediaWiki listing, a paginated HTTP seed): it pages to its
#: end, queueing what it lists and saving its cursor (``work_items.cursor``) after each page.
RESOURCE_LISTING = "listing"


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a work item ended (``completed``, ``failed`` or ``skipped``)."""

    work_item_id: int
    status: Status
    error_message: str | None = None
    content_hash: str | None = None  # for completed items: the hash of the record they hold
    # The depth the item was processed at: a completed or skipped item whose depth was lowered
    # meanwhile (found by a shorter path while in flight) goes back to pending, to be expanded
    # at the smaller depth.
    depth: int | None = None
    # For completed items: the resource's version at the source (a MediaWiki page's
    # ``lastrevid``, or DELETED_VERSION), which a recrawl compares with the current one.
    version: str | None = None
    # The claim this outcome ends (``WorkItem.attempt``): it applies only while that claim
    # holds, never to a later claim of the same item, even by the same owner. None: any claim
    # of the writer (tools and tests writing outcomes directly).
    attempt: int | None = None
    # A failure another attempt cannot cure (a value the database refuses): not retried.
    final: bool = False

    @classmethod
    def completed(cls, item: WorkItem, content_hash: str, version: str | None = None) -> Outcome:
        return cls(
            item.id,
            Status.COMPLETED,
            content_hash=content_hash,
            depth=item.depth,
            version=version,
            attempt=item.attempt,
        )

    @classmethod
    def skipped(cls, item: WorkItem, reason: str) -> Outcome:
        return cls(item.id, Status.SKIPPED, reason, depth=item.depth, attempt=item.attempt)

    @classmethod
    def failed(cls, item: WorkItem, message: str, *, final: bool = False) -> Outcome:
        return cls(item.id, Status.FAILED, message, attempt=item.attempt, final=final)


@dataclass(slots=True)
class IngestRow:
    """One row of ``IngestRecords``: a fetched resource, as the lake file holds it."""

    source_system: str
    source_name: str
    resource_type: str
    resource_id: str
    request_uri: str
    request_method: str
    request_headers: dict[str, Any]
    status_code: int
    response_headers: dict[str, Any]
    payload: Any
    fetched_at_utc: datetime
    hash_sha256: str
    run_id: str
    work_item_id: int | None
    attempt: int
    duration_ms: int | None = None
    error_message: str | None = None
    payload_json: str | None = None  # canonical_json(payload), when already computed


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a failed work item is tried again, and when (``HOLOCRON_MAX_ATTEMPTS``,
    ``HOLOCRON_RETRY_BACKOFF``, ``HOLOCRON_RETRY_BACKOFF_MAX``).

    A failure of attempt ``n < max_attempts`` puts the item back to ``pending`` with
    ``next_retry_at = now + delay(n)``; the failure of attempt ``max_attempts`` is final.
    The delay is exponential with *equal jitter*: ``d = min(cap, base * 2 ** (n - 1))``, then a
    uniform draw in ``[d / 2, d]``. Half of ``d`` is random, so that workers which failed
    together do not retry together; the other half is fixed, so that the gaps never shrink from
    one attempt to the next (the next attempt's smallest delay is this one's largest).
    """

    max_attempts: int = defaults.MAX_ATTEMPTS
    base_seconds: float = defaults.RETRY_BACKOFF
    cap_seconds: float = defaults.RETRY_BACKOFF_MAX

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if self.base_seconds < 0 or self.cap_seconds < 0:
            raise ValueError("retry back-off seconds must not be negative")

    def retries(self, attempt: int) -> bool:
        """Whether a failure of ``attempt`` (1 for the first try) is tried again."""
        return attempt < self.max_attempts

    def nominal_delay(self, attempt: int) -> float:
        """``min(cap, base * 2 ** (attempt - 1))``: the largest delay after ``attempt``."""
        return min(self.cap_seconds, self.base_seconds * 2.0 ** max(0, attempt - 1))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds before the next try of an item whose ``attempt`` failed, jittered."""
        nominal = self.nominal_delay(attempt)
        return nominal / 2 + (rng or random).random() * nominal / 2


#: No retries: a failed outcome is final (tools and tests that write outcomes directly).
NO_RETRIES = RetryPolicy(max_attempts=1)


@dataclass(slots=True)
class Applied:
    """What writing a batch of outcomes did.

    ``statuses`` counts the outcomes applied by their status (``completed``, ``failed``,
    ``skipped``; also when the item was found closer while in flight and so went back to
    ``pending`` to be expanded again), except the failures counted in ``retried``: the
    failures put back to ``pending`` for a later attempt; ``stale`` lists the work items whose
    outcome was dropped because they were no longer ``in_progress`` under the writer's lease
    (its lease expired and another worker took it, or it was already ended); ``ingest_ids`` the
    ``IngestRecords`` rows inserted (none for a stale item); ``reopened`` how many of the
    applied went back to ``pending`` because they were found closer.
    """

    statuses: Counter[str] = field(default_factory=Counter)
    retried: int = 0
    reopened: int = 0
    stale: list[int] = field(default_factory=list)
    ingest_ids: list[int] = field(default_factory=list)

    @property
    def applied(self) -> int:
        return sum(self.statuses.values()) + self.retried
