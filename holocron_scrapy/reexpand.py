"""A completed item found again by a shorter path is expanded again from its stored record, not
fetched again.

When a known item is reached at a smaller depth, the queue gives it the new depth and, if it was
completed, puts it back to ``pending`` (``store_queue.improve_depth``), so that what it leads to
is queued at the smaller depth too. Its content does not depend on the depth: its last record
(the ``IngestRecords`` row of its work item whose hash is the item's ``content_hash``) already
holds everything it links to. So a claimed item that has a record, in a run that is not a
recrawl, is handed to the spider's ``expand_stored(item, stored)``, which returns what the item
leads to at its (new) depth, or None to fetch it after all (a record that cannot be expanded, a
deleted page). The discoveries are buffered, then the item is completed with its record as it
was: no request, no new file, no new row. The rows are read in a thread by the ``work_item_id``
index, 100 items a query; only the claimed items are asked for.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa
from scrapy.utils.asyncio import run_in_thread

from holocron_scrapy.mediawiki.listings import RESOURCE_LISTING
from holocron_scrapy.model import NewWorkItem, Outcome, WorkItem
from holocron_scrapy.store.sql import chunks

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from scrapy.statscollectors import StatsCollector

    from holocron_scrapy.store.state_store import StateStore

logger = logging.getLogger(__name__)

CHUNK = 100


@dataclass(frozen=True, slots=True)
class Stored:
    """An item's last record as ``IngestRecords`` holds it."""

    payload: str  # the payload column: the JSON text of the record's payload
    response_headers: dict[str, Any] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        for name, value in self.response_headers.items():
            if name.lower() == "content-type":
                return str(value)
        return ""


class Expander(Protocol):
    def expand_stored(self, item: WorkItem, stored: Stored) -> list[NewWorkItem] | None: ...


async def expand_from_stored(
    store: StateStore,
    stats: StatsCollector,
    spider: object,
    items: Sequence[WorkItem],
    *,
    discover: Callable[[NewWorkItem], None],
    finish: Callable[[Outcome], None],
) -> list[WorkItem]:
    """Complete the claimed ``items`` that can be expanded from their stored record in
    ``store`` (their discoveries given to ``discover`` first, then their outcomes to
    ``finish``); return the others, to be fetched."""
    if getattr(spider, "recrawl", None) or not hasattr(spider, "expand_stored"):
        return list(items)
    candidates = [
        item
        for item in items
        if item.content_hash and item.resource_type != RESOURCE_LISTING and item.cursor is None
    ]
    if not candidates:
        return list(items)
    try:
        expanded: dict[int, list[NewWorkItem]] = await run_in_thread(
            _expand, store, spider, candidates
        )
    except Exception:  # the records could not be read: fetch the items, as before
        logger.warning("Could not read the records of %(n)d items", {"n": len(candidates)})
        logger.debug("Reading records to expand", exc_info=True)
        return list(items)
    for item in candidates:
        found = expanded.get(item.id)
        if found is None:
            continue
        for new in found:
            discover(new)
        assert item.content_hash is not None
        finish(Outcome.completed(item, item.content_hash, item.version))
    if expanded:
        stats.inc_value("holocron/frontier/reexpanded", len(expanded))
        logger.debug("Expanded %(n)d items again from their records", {"n": len(expanded)})
    return [item for item in items if item.id not in expanded]


def _expand(
    store: StateStore, spider: Expander, items: Sequence[WorkItem]
) -> dict[int, list[NewWorkItem]]:
    """In a thread: what each item with a stored record leads to (the others left out)."""
    stored = stored_records(store, items)
    out: dict[int, list[NewWorkItem]] = {}
    for item in items:
        record = stored.get(item.id)
        if record is None:
            continue
        try:
            found = spider.expand_stored(item, record)
        except (ValueError, TypeError, KeyError, AttributeError):
            logger.warning(
                "Could not expand %(id)r from its record: fetching it again",
                {"id": item.resource_id},
                exc_info=True,
            )
            continue
        if found is not None:
            out[item.id] = found
    return out


def stored_records(store: StateStore, items: Sequence[WorkItem]) -> dict[int, Stored]:
    """work_item_id -> its row whose hash is the item's ``content_hash`` (its last record)."""
    ir = store.tables.ingest_records
    wanted = {item.id: item.content_hash for item in items if item.content_hash}
    out: dict[int, Stored] = {}
    with store.engine.connect() as conn:
        for chunk in chunks(sorted(wanted), CHUNK):
            stmt = sa.select(
                ir.c.work_item_id, ir.c.hash_sha256, ir.c.payload, ir.c.response_headers
            )
            stmt = stmt.where(
                ir.c.work_item_id.in_(chunk),
                ir.c.hash_sha256.in_(sorted({str(wanted[i]) for i in chunk})),
            )
            for row in conn.execute(stmt):
                work_item_id = int(row.work_item_id)
                if wanted.get(work_item_id) == row.hash_sha256 and work_item_id not in out:
                    headers = json.loads(row.response_headers or "{}")
                    out[work_item_id] = Stored(
                        row.payload, headers if isinstance(headers, dict) else {}
                    )
    return out
