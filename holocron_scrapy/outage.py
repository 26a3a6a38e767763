"""Dependencies of the crawl out of reach for a while: which errors are passing outages (the
state database down or locked, the lake unwritable), which are lost transaction conflicts
(deadlocks, serialization failures: run the transaction again, they are no outage), and
:class:`Outage`, the back-off and the log lines (one when it starts, one when it ends) for
each."""

from __future__ import annotations

import errno
import logging
import re
import time
from typing import TYPE_CHECKING

import sqlalchemy as sa

from holocron_scrapy import defaults

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


#: SQLSTATEs of a transaction that lost to a concurrent one: serialization failure (40001, also
#: SQL Server's deadlock victim through ODBC) and PostgreSQL's deadlock_detected (40P01).
CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})
#: SQL Server's native errors of the same kind, "(1205)" / "(1222)" in an ODBC message: chosen
#: as the deadlock victim; lock request time out period exceeded (under SET LOCK_TIMEOUT).
_MSSQL_CONFLICT = re.compile(r"\((?:1205|1222)\)")


def transaction_conflict(exc: BaseException) -> bool:
    """A database error that says the transaction lost a conflict with another one (a deadlock
    victim, a serialization failure, a lock wait timed out) and was rolled back: running it
    again is the cure. Not an outage, not a mistake.

    PostgreSQL (psycopg) gives the SQLSTATE as ``sqlstate`` (``pgcode`` in psycopg2); pyodbc as
    its first argument, with SQL Server's native error number in the message."""
    if not isinstance(exc, sa.exc.DBAPIError) or exc.connection_invalidated:
        return False
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state in CONFLICT_SQLSTATES:
        return True
    if not type(orig).__module__.startswith(("pyodbc", "pymssql")):
        return False
    args = getattr(orig, "args", ())
    if args and args[0] in CONFLICT_SQLSTATES:
        return True
    return bool(_MSSQL_CONFLICT.search(str(orig)))


def database_unreachable(exc: BaseException) -> bool:
    """A database error that waiting may cure: the server is down or restarting, the connection
    died, the pool timed out (PostgreSQL's and SQL Server's drivers raise ``OperationalError``
    for these, ``ProgrammingError`` for mistakes); SQLite locked, read-only or out of disk.

    A lost transaction conflict (:func:`transaction_conflict`: psycopg raises deadlocks as
    ``OperationalError`` too) is not: the store runs its transaction again."""
    if transaction_conflict(exc):
        return False
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
        max_seconds: float = defaults.OUTAGE_MAX,
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
