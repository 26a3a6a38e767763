"""The statement of the shared politeness budget: one request slot per interval per source.

Every process crawling a source reserves its next request slot in the source's
``source_budget`` row, under a row lock, so that together they keep one request rate.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from holocron_scrapy.store.sql import as_datetime, utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def reserve_request(
    engine: Engine,
    budget: sa.Table,
    *,
    source_system: str,
    source_name: str,
    interval_seconds: float,
) -> float:
    """See :meth:`StateStore.reserve_request` (one transaction of its own per try)."""
    key = sa.and_(budget.c.source_system == source_system, budget.c.source_name == source_name)
    locked = (
        sa.select(budget.c.next_request_at)
        .where(key)
        .with_for_update()
        .with_hint(budget, "WITH (UPDLOCK, ROWLOCK)", dialect_name="mssql")
    )
    for _ in range(2):  # the second time after losing a race to create the row
        try:
            with engine.begin() as conn:
                now = utcnow()
                row = conn.execute(locked).first()
                slot = now if row is None else max(as_datetime(row[0]) or now, now)
                values = {
                    "next_request_at": slot + timedelta(seconds=interval_seconds),
                }
                if row is None:
                    conn.execute(
                        sa.insert(budget).values(
                            source_system=source_system,
                            source_name=source_name,
                            requests=1,
                            **values,
                        )
                    )
                else:
                    conn.execute(
                        sa.update(budget)
                        .where(key)
                        .values(requests=budget.c.requests + 1, **values)
                    )
                return max(0.0, (slot - now).total_seconds())
        except sa.exc.IntegrityError:
            continue
    raise RuntimeError("could not create the source_budget row")  # pragma: no cover
