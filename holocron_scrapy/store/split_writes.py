"""Batched writes that one bad row cannot take down: a batch the database refuses for its data is
split in halves until the rows it refuses stand alone; those are handed back with the reason,
the rest is written.

A *data* error is one the same rows would meet again however long one waited: a value too long
for its column (``DataError``), a constraint (``IntegrityError``), or a value the driver cannot
encode (a NUL on PostgreSQL, a lone surrogate anywhere: ``UnicodeError``, which drivers raise
unwrapped). Any other error (the database unreachable, a mistake in the SQL) is raised as it
is, for the caller's outage handling. A batch of ``n`` rows with one bad row costs about
``2 log2 n`` more statements, once.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, TypeVar

import sqlalchemy as sa
from scrapy.utils.asyncio import run_in_thread

from holocron_scrapy.outage import short_error

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")
R = TypeVar("R")

#: The longest database message stored with the item a database refused.
REASON_MAX_CHARS = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def refused_by_database(exc: BaseException) -> bool:
    """Whether ``exc`` says the database (or its driver) refuses the data, not the connection."""
    return isinstance(exc, sa.exc.DataError | sa.exc.IntegrityError | UnicodeError)


def refusal_reason(exc: BaseException) -> str:
    """The database's message for a refused row, fit to store and log: its first line only (no
    SQL, no parameters, so no secret of a URL), control characters escaped, truncated."""
    text = _CONTROL.sub(lambda m: repr(m.group())[1:-1], short_error(exc))
    if len(text) > REASON_MAX_CHARS:
        text = text[: REASON_MAX_CHARS - 1] + "…"
    return text


async def write_split(
    write: Callable[[list[T]], R],
    pending: list[T],
    refuse: Callable[[T, BaseException], None],
) -> list[R]:
    """Write ``pending`` with ``write`` (called in a thread, one transaction per call) and return
    what each successful call returned, in order.

    When the database refuses a batch's data, the batch is split in halves, each written on its
    own; an entry refused alone goes to ``refuse`` with the error. Any other error is raised, and
    ``pending`` then holds what is not written yet (the entries written or refused are gone).
    """
    results: list[R] = []
    todo = [list(pending)]  # a stack: the first half is written first
    try:
        while todo:
            chunk = todo.pop()
            try:
                results.append(await run_in_thread(write, chunk))
            except Exception as exc:
                if not refused_by_database(exc):
                    todo.append(chunk)
                    raise
                if len(chunk) == 1:
                    refuse(chunk[0], exc)
                else:
                    middle = len(chunk) // 2
                    todo += [chunk[middle:], chunk[:middle]]
    finally:
        pending[:] = [entry for chunk in reversed(todo) for entry in chunk]
    return results
