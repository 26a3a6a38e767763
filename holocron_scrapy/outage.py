"""Dependencies of the crawl out of reach for a while: which errors are passing outages (the
state database down or locked, the lake unwritable) and :class:`Outage`, the back-off and the
log lines (one when it starts, one when it ends) for each."""

from __future__ import annotations

import errno
import logging
import time
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from scrapy.statscollectors import StatsCollector

logger = logging.getLogger(__name__)


def short_error(exc: BaseException) -> str:
    """The first line of a database error, without SQLAlchemy's background link."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}"


#: SQLite's OperationalErrors that can pass (its others, "no such table", are mistakes).
_SQLITE_TRANSIENT = ("locked", "busy", "readonly", "disk i/o", "unable to open", "disk is full")


def database_unreachable(exc: BaseException) -> bool:
    """A database error that waiting may cure: the server is down or restarting, the connection
    died, the pool timed out (PostgreSQL's and SQL Server's drivers raise ``OperationalError``
    for these, ``ProgrammingError`` for mistakes); SQLite locked, read-only or out of disk."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa.exc.InterfaceError | sa.exc.TimeoutError):
        return True
    if not isinstance(exc, sa.exc.OperationalError):
        return False
    if type(exc.orig).__module__.startswith("sqlite3"):
        return any(phrase in str(exc.orig).lower() for phrase in _SQLITE_TRANSIENT)
    return True


#: OS errors of a lake that may come back: permissions, a read-only or full file system, I/O.
LAKE_TRANSIENT_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EIO}
)


def lake_unwritable(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in LAKE_TRANSIENT_ERRNOS


class Outage:
    """One dependency of the crawl (the state database, the lake) out of reach for a while.

    The first failure logs one WARNING ("… unreachable (error); retrying"), the first success
    after it one INFO ("… reachable again after N s"); in between the callers wait
    :meth:`delay` (0.5 s doubled per failure, at most ``max_delay``) before trying again, and
    nothing else is logged. Stats: ``holocron/outage/<key>/count`` and ``…/seconds``.
    After ``max_seconds`` :meth:`exceeded` is true and callers give up as they would on a
    permanent error.
    """

    def __init__(
        self,
        key: str,
        what: str,
        stats: StatsCollector,
        *,
        max_delay: float = 5.0,
        max_seconds: float = 3600.0,
    ) -> None:
        self.key = key
        self.what = what
        self.stats = stats
        self.max_delay = max_delay
        self.max_seconds = max_seconds
        self.since: float | None = None
        self.failures = 0
        self.next_try = 0.0

    @property
    def active(self) -> bool:
        return self.since is not None

    def exceeded(self) -> bool:
        return self.since is not None and time.monotonic() - self.since > self.max_seconds

    def delay(self) -> float:
        return min(self.max_delay, 0.5 * 2.0 ** max(0, self.failures - 1))

    def failed(self, exc: BaseException) -> float:
        """Record a failure; return the seconds to wait before the next try."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
            self.stats.inc_value(f"holocron/outage/{self.key}/count")
            logger.warning(
                "%(what)s unreachable (%(error)s); retrying, with back-off up to %(max).0f s, "
                "for up to %(limit).0f s",
                {
                    "what": self.what,
                    "error": short_error(exc),
                    "max": self.max_delay,
                    "limit": self.max_seconds,
                },
            )
            logger.debug("%s error", self.what, exc_info=exc)
        self.failures += 1
        delay = self.delay()
        self.next_try = now + delay
        return delay

    def waiting(self) -> bool:
        """Whether the back-off since the last failure is still running."""
        return self.since is not None and time.monotonic() < self.next_try

    def recovered(self) -> None:
        if self.since is None:
            return
        seconds = time.monotonic() - self.since
        self.stats.inc_value(f"holocron/outage/{self.key}/seconds", round(seconds))
        logger.info(
            "%(what)s reachable again after %(s).1f s (%(n)d tries)",
            {"what": self.what, "s": seconds, "n": self.failures},
        )
        self.since = None
        self.failures = 0
        self.next_try = 0.0
