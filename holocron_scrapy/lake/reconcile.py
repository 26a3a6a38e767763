"""At the start of a run: settle the pending lake files that earlier runs left (README, "Lake
files and rows, exactly once").

A pending file (:func:`holocron_scrapy.lake.pending.pending_path`) names its work item and its
run. For each one left by another run:

* its row committed (an ``IngestRecords`` row of that work item, run and content hash): the
  writer died between the commit and the rename — the file is published;
* else, its work item is still ``in_progress`` under that run's lease: the writer may be alive
  and about to commit (another worker) — the file is left alone, for a later run;
* else its row can never commit (the outcome of a claim that ended is dropped): the file is
  deleted.

Only the ``.pending/`` directories of the source are listed, and the state database is asked
about their work items only (by primary key and the ``work_item_id`` index), in chunks: the
cost is that of the files left, never of the frontier or the lake.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from holocron_scrapy.lake.pending import (
    Pending,
    discard,
    final_path_of,
    parse_pending_name,
    pending_files,
    publish,
)
from holocron_scrapy.model import Status
from holocron_scrapy.store.sql import IN_LIST_CHUNK, chunks

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from holocron_scrapy.lake.pending import PendingName
    from holocron_scrapy.store.state_store import StateStore

logger = logging.getLogger(__name__)


@dataclass
class Reconciled:
    published: int = 0
    deleted: int = 0
    kept: int = 0


def reconcile_pending(
    store: StateStore, root: Path, source_name: str, *, current_run: str, fsync: bool = True
) -> Reconciled:
    """Publish, delete or keep the pending files of ``source_name`` that runs other than
    ``current_run`` left (see the module docstring)."""
    found: list[tuple[Path, PendingName]] = []
    for path in pending_files(root, source_name):
        parsed = parse_pending_name(path.name)
        if parsed is not None and parsed.run_id != current_run:
            found.append((path, parsed))
    return _settle(store, found, fsync=fsync)


def settle_files(store: StateStore, paths: Iterable[Path], *, fsync: bool = True) -> Reconciled:
    """The same decision for these pending files, whatever their run: what the IngestRecords
    pipeline does with the files of items whose outcome was dropped (their claim was lost, or
    a commit retried after a lost answer found them completed already)."""
    found = [(path, parsed) for path in paths if (parsed := parse_pending_name(path.name))]
    return _settle(store, found, fsync=fsync)


def _settle(store: StateStore, found: list[tuple[Path, PendingName]], *, fsync: bool) -> Reconciled:
    done = Reconciled()
    for batch in chunks(found, IN_LIST_CHUNK):
        ids = sorted({parsed.work_item_id for _, parsed in batch})
        committed, leased = _state_of(store, ids)
        to_publish, to_delete = [], []
        for path, parsed in batch:
            key = (parsed.work_item_id, parsed.run_id)
            final = final_path_of(path)
            if final is not None and any(
                h.startswith(parsed.hash_prefix) for h in committed.get(key, ())
            ):
                to_publish.append(Pending(path, final))
            elif leased.get(parsed.work_item_id, "").endswith(f":{parsed.run_id}"):
                done.kept += 1
            else:
                to_delete.append(path)
        publish(to_publish, fsync=fsync)
        discard(to_delete)
        done.published += len(to_publish)
        done.deleted += len(to_delete)
    return done


def _state_of(
    store: StateStore, ids: list[int]
) -> tuple[dict[tuple[int, str], list[str]], dict[int, str]]:
    """For these work items: the content hashes of their rows per (work item, run), and the
    lease owner of those still ``in_progress``."""
    ir = store.tables.ingest_records
    wi = store.tables.work_items
    committed: dict[tuple[int, str], list[str]] = {}
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(ir.c.work_item_id, ir.c.run_id, ir.c.hash_sha256).where(
                ir.c.work_item_id.in_(ids)
            )
        )
        for row in rows:
            committed.setdefault((int(row.work_item_id), row.run_id), []).append(row.hash_sha256)
        leased = {
            int(row.id): str(row.lease_owner)
            for row in conn.execute(
                sa.select(wi.c.id, wi.c.lease_owner).where(
                    wi.c.id.in_(ids), wi.c.status == Status.IN_PROGRESS.value
                )
            )
            if row.lease_owner is not None
        }
    return committed, leased
