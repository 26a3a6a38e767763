"""The statement of a source's identity: what its name stands for in this database.

The first crawl of a source records its URL (``source_identities``); a later crawl of a source
file with the same name and another URL is refused, so that two wikis never merge into one
queue (issue 10).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from holocron_scrapy.store.sql import utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def source_url(
    engine: Engine, table: sa.Table, *, source_system: str, source_name: str, url: str
) -> str:
    """The URL recorded for the source (``url``, recorded now, if it had none)."""
    key = sa.and_(table.c.source_system == source_system, table.c.source_name == source_name)
    select = sa.select(table.c.source_url).where(key)
    for _ in range(2):  # the second time after losing a race to record it
        with engine.begin() as conn:
            known = conn.execute(select).scalar_one_or_none()
            if known is not None:
                return str(known)
            try:
                conn.execute(
                    sa.insert(table).values(
                        source_system=source_system,
                        source_name=source_name,
                        source_url=url,
                        created_at=utcnow(),
                    )
                )
            except sa.exc.IntegrityError:
                continue
            return url
    with engine.connect() as conn:
        return str(conn.execute(select).scalar_one())
