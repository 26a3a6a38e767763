"""What every part of :class:`~holocron_scrapy.store.state_store.StateStore` stands on: its
engine, its tables and its insert style (the parts are mixins of one object, by concern)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from holocron_scrapy.store.resume import ResumePoints
    from holocron_scrapy.store.schema import Tables
    from holocron_scrapy.store.sql import InsertStyle


class StoreBase:
    """The engine, tables and insert style the store's methods use, and where claims resume
    (set by ``StateStore``)."""

    engine: Engine
    tables: Tables
    insert_style: InsertStyle
    resume: ResumePoints

    def reopened(self, items: int) -> int:
        """``items`` old items may be ready again (requeued, released, improved): every next
        claim starts from the head of its range. Returns ``items``."""
        if items:
            self.resume.forget()
        return items
