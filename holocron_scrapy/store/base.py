"""What every part of :class:`~holocron_scrapy.store.state_store.StateStore` stands on: its
engine, its tables and its insert style (the parts are mixins of one object, by concern)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from holocron_scrapy.store.schema import Tables
    from holocron_scrapy.store.sql import InsertStyle


class StoreBase:
    """The engine, tables and insert style the store's methods use (set by ``StateStore``)."""

    engine: Engine
    tables: Tables
    insert_style: InsertStyle
