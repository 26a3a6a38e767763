"""The incremental export's state file and its recovery (:mod:`holocron_scrapy.lake.export`).

``OUTPUT/source_name={name}/_export_state.json`` holds the watermark, the gaps, the last export
and the renames of its parts still to do; it is written atomically and fsynced before they are
done, so an export that dies between the two is completed by the next one (:func:`recover`).
"""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Any

from holocron_scrapy.lake.atomic import fsync_directory

if TYPE_CHECKING:
    from pathlib import Path

logger = logging.getLogger(__name__)

STATE_FILE = "_export_state.json"
TEMP_PREFIX = ".part-"

__all__ = ["STATE_FILE", "TEMP_PREFIX", "finish_renames", "recover", "write_state"]


def recover(root: Path) -> dict[str, Any]:
    """Finish the renames of an export that died after its state, remove orphan parts; the
    state."""
    path = root / STATE_FILE
    state: dict[str, Any] = json.loads(path.read_text("utf-8")) if path.exists() else {}
    if state.get("pending_renames"):
        logger.info("Completing the interrupted export %(id)s", {"id": _last_id(state)})
        finish_renames(root, state)
    for temp in root.rglob(f"{TEMP_PREFIX}*.tmp"):
        temp.unlink()
    return state


def finish_renames(root: Path, state: dict[str, Any]) -> None:
    """Give the parts the state lists their final names, then record that none is left."""
    directories = set()
    for temp, final in state["pending_renames"]:
        if (root / temp).exists():
            os.replace(root / temp, root / final)
            directories.add((root / final).parent)
    for directory in directories:
        fsync_directory(directory)
    write_state(root, {**state, "pending_renames": []})


def write_state(root: Path, state: dict[str, Any]) -> None:
    temp = root / f".{STATE_FILE}.tmp"
    with temp.open("w", encoding="utf-8") as f:
        json.dump(state, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, root / STATE_FILE)
    fsync_directory(root)


def _last_id(state: dict[str, Any]) -> str:
    return str(state.get("last_export", {}).get("id", "?"))
