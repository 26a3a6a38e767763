"""Transactions that lost a conflict run again: a deadlock victim or a serialization failure
(see :func:`~holocron_scrapy.outage.transaction_conflict`) is rolled back by the database, so
the store's method that ran it, one transaction per call, is simply called again: a bounded
number of times, after a short jittered back-off so that the two losers do not meet again.

The store is called in threads (never on the reactor), so the back-off sleeps its thread.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from holocron_scrapy.outage import short_error, transaction_conflict

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: Tries of a transaction that keeps losing conflicts (the last error is then raised).
CONFLICT_TRIES = 5
#: Back-off before try n + 1: a uniform draw in [d / 2, d], d = min(CAP, BASE * 2 ** (n - 1)).
CONFLICT_BACKOFF_BASE = 0.05
CONFLICT_BACKOFF_CAP = 1.0


def conflict_delay(tries: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``tries``-th lost conflict (equal jitter)."""
    nominal = min(CONFLICT_BACKOFF_CAP, CONFLICT_BACKOFF_BASE * 2.0 ** max(0, tries - 1))
    return nominal / 2 + (rng or random).random() * nominal / 2


def _name(method: Callable[..., Any], args: tuple[Any, ...]) -> str:
    """``StateStore.claim``: the class of the object called (not the mixin defining it)."""
    if args and "." in method.__qualname__:
        return f"{type(args[0]).__name__}.{method.__name__}"
    return method.__qualname__


def retry_conflicts(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Call ``method`` (one transaction) again when its transaction lost a conflict, up to
    :data:`CONFLICT_TRIES` times in all."""

    @functools.wraps(method)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        tries = 0
        while True:
            try:
                return method(*args, **kwargs)
            except Exception as exc:
                tries += 1
                if not transaction_conflict(exc) or tries >= CONFLICT_TRIES:
                    raise
                delay = conflict_delay(tries)
                logger.info(
                    "%(what)s lost a transaction conflict (%(error)s); running it again in "
                    "%(delay).2f s (try %(next)d of %(tries)d)",
                    {
                        "what": _name(method, args),
                        "error": short_error(exc),
                        "delay": delay,
                        "next": tries + 1,
                        "tries": CONFLICT_TRIES,
                    },
                )
                time.sleep(delay)

    return call
