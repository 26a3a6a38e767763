"""Where each source's next claim resumes in the claim's index range.

A claim reads the first rows of ``ix_work_items_ready``'s range (a source's ready items, by
priority then id). On PostgreSQL the head of that range fills with the index entries of the
items already claimed: an update that changes ``status`` is never HOT, and the entries of the
rows' old versions stay until a VACUUM removes them. A claim that started at the head would walk
them all, so its cost would grow with the items claimed since the last vacuum (at 10 M items,
millions of entries a claim). So a claim starts where the source's last claim ended (the
``(priority, id)`` of the last item it took) and reads only the entries it takes.

Everything before that point was taken or not ready when the point was recorded. What can
become ready before it since, and how the claim still finds it:

* an item added here with a higher priority than the point's (depth-first discovery): the
  next claim starts from the head (:meth:`ResumePoints.added`); new items of equal or lower
  priority have larger ids, so they lie after the point;
* an old item made ready again here (requeued, released, a known item whose depth a discovery
  improved, an outcome found closer): the next claim starts from the head
  (:meth:`ResumePoints.forget`, through ``StoreBase.reopened``);
* an expired lease or a retry that came due: every claim runs the sweep
  (:mod:`holocron_scrapy.store.sweep`) first, and one that brought any back reads from the head
  (a stalled worker's items are taken over at once);
* an item whose insert committed after a claim had taken a larger id, and the changes above
  done by another worker: a claim reads from the head at least every :data:`RESTART_SECONDS`
  for each source, and whenever a resumed claim comes up short (so a claim returns fewer than
  asked only after a read of the whole range, as before).

So priority order holds for this worker's own changes and within :data:`RESTART_SECONDS` for
other workers', and nothing ready is ever left unclaimed. (A period in time, not in claims: a
read of the head costs what the entries there cost, not what the claims since did.) The points
are hints kept in memory, one per source: losing them (a restart) costs one read of the head,
never an item.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from time import monotonic
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from holocron_scrapy.model import NewWorkItem

# A claim from the head of the range (with the sweep) at least this often, in seconds.
RESTART_SECONDS = 30.0

Source = tuple[str, str]
Point = tuple[int, int]  # (priority, id) of the last item a claim took


@dataclass(frozen=True)
class Resume:
    """Where a claim starts (``after``: ``None`` for the head of the range), and the version of
    the points it was read from (a claim's new point is kept only if no change came between)."""

    after: Point | None
    version: int


class ResumePoints:
    """The sources' resume points, shared by the threads of one store."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._points: dict[Source, tuple[Point, float]] = {}  # point, last read of the head
        self._version = 0

    def start(self, source: Source) -> Resume:
        """Where the source's next claim starts."""
        with self._lock:
            point, head_at = self._points.get(source, (None, -RESTART_SECONDS))
            fresh = monotonic() - head_at < RESTART_SECONDS
            return Resume(point if fresh else None, self._version)

    def claimed(self, source: Source, resume: Resume, point: Point | None, *, head: bool) -> None:
        """Record where a committed claim ended (``head``: it read from the head of the range);
        unless the points changed since the claim's :meth:`start`."""
        with self._lock:
            if resume.version != self._version:
                return
            if point is None:
                self._points.pop(source, None)
                return
            head_at = monotonic() if head else self._points.get(source, (point, 0.0))[1]
            self._points[source] = (point, head_at)

    def added(self, items: Iterable[NewWorkItem]) -> None:
        """New items were added here: a source's next claim starts from the head if one of them
        has a higher priority than its point."""
        highest: dict[Source, int] = {}
        for item in items:
            source = (item.source_system, item.source_name)
            highest[source] = max(highest.get(source, item.priority), item.priority)
        with self._lock:
            stale = [
                source
                for source, (point, _claims) in self._points.items()
                if source in highest and highest[source] > point[0]
            ]
            for source in stale:
                del self._points[source]
            if stale:
                self._version += 1

    def forget(self) -> None:
        """Items may have become ready anywhere: every next claim starts from the head."""
        with self._lock:
            self._points.clear()
            self._version += 1
