"""Reading for the audit in bounded memory: keyset pages of a table, and a progress meter."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import sqlalchemy as sa

PAGE_ROWS = 2000
PROGRESS_SECONDS = 10.0


class Progress:
    """Counts rows, work items and files, and says so every ``seconds``."""

    def __init__(self, source: str, say: Callable[[str], None] | None, seconds: float) -> None:
        self.source, self.say, self.seconds = source, say, seconds
        self.rows = self.items = self.files = 0
        self.started = self.last = time.monotonic()

    def row(self) -> None:
        self.rows += 1
        self._maybe_say()

    def item(self) -> None:
        self.items += 1
        self._maybe_say()

    def file(self) -> None:
        self.files += 1
        self._maybe_say()

    def _maybe_say(self) -> None:
        if self.say is None:
            return
        clock = time.monotonic()
        if clock - self.last < self.seconds:
            return
        self.last = clock
        rate = (self.rows + self.items + self.files) / max(clock - self.started, 1e-9)
        self.say(
            f"ingest_verify {self.source}: {self.rows:,} rows, {self.items:,} work items, "
            f"{self.files:,} lake files checked ({rate:,.0f}/s)"
        )


def pages(conn: sa.Connection, stmt: sa.Select[Any], key: sa.ColumnElement[Any]) -> Iterator[Any]:
    """The rows of ``stmt`` in ``key`` order, a page at a time (keyset: ``key > last``), each
    page its own short transaction."""
    last = None
    while True:
        page = stmt if last is None else stmt.where(key > last)
        rows = conn.execute(page.order_by(key).limit(PAGE_ROWS)).all()
        conn.rollback()
        yield from rows
        if len(rows) < PAGE_ROWS:
            return
        last = rows[-1][0]
