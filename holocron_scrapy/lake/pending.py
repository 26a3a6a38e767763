"""Pending record files: written before their row commits, published after.

The lake pipeline writes a record under its pending name in ``{resource_type}/.pending/``
(:func:`pending_path`: the final name, the work item and the run) — one small directory per
resource type, whatever the size of the lake; the ``IngestRecords`` pipeline commits the row,
then :func:`publish` links the pending file to its final name in the fan-out
(:mod:`holocron_scrapy.lake.paths`), never replacing a file that is already there (a file is
immutable once a row points to it, in either layout), and fsyncs each directory once per batch.
A crash leaves at most pending files (and temporary files of writes cut short, in the same
``.pending/`` directories), which the next run settles (:mod:`holocron_scrapy.lake.reconcile`)
and sweeps (:func:`remove_stale_temp_files`) without walking the lake.

**Group commit, no rename.** :func:`write_pending` creates the pending file under its own name
(``O_EXCL``), writes it and ``fdatasync``s it — no temporary file, no rename, no directory
fsync: the caller (the lake pipeline) writes a group of files concurrently, then fsyncs each
``.pending/`` directory once for the group (:func:`holocron_scrapy.lake.atomic.fsync_directories`)
before any of their items goes on to the IngestRecords pipeline. Why a partial pending file is
never published: the name is private to one writer (it carries the work item and the run), so
only that writer ever writes it; its row is committed only after the group's write and fsyncs
returned — so a file cut short (by a kill, a full disk, a power cut before its fdatasync) has no
committed row of its run and content hash, and reconcile deletes it (or, while that run's lease
is alive elsewhere, leaves it to that writer, never publishes it). The one case where the name
can already exist is the same item written again by the same run (a batch whose commit failed,
its answer maybe lost, then the item tried again): that file may be the one of a committed row,
so it is never truncated in place: it is replaced atomically (temporary file, fdatasync,
rename; the group's directory fsync makes the rename durable).
"""

from __future__ import annotations

import errno
import os
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from holocron_scrapy.lake.atomic import (
    TEMP_PREFIX,
    fsync_directories,
    sync_data,
    write_json_atomic,
)
from holocron_scrapy.lake.paths import (
    FANOUT_LEVELS,
    SUFFIX,
    LakePathError,
    in_type_dir,
    legacy_record_path,
    safe_component,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

PENDING_DIR = ".pending"

_PENDING_RE = re.compile(
    r"(?P<final>[A-Za-z0-9_-]+~[0-9a-f]+~(?P<hash>[0-9a-f]+))~(?P<wi>[0-9]+)~(?P<run>[0-9a-f]+)\.json"
)


@dataclass(frozen=True, slots=True)
class Pending:
    """A record file written under its pending name, to be published under ``final`` once its
    row has committed."""

    path: Path
    final: Path


@dataclass(frozen=True, slots=True)
class PendingName:
    """What a pending file's name says: its final name, content hash prefix, writer."""

    final_name: str
    hash_prefix: str
    work_item_id: int
    run_id: str


def pending_path(final: Path, work_item_id: int, run_id: str) -> Path:
    """``{resource_type}/.pending/<final stem>~<work_item_id>~<run_id>.json``: one writer's file
    of the record ``final``; ``run_id`` is a hex run id (``runs.run_id``)."""
    if not re.fullmatch(r"[0-9a-f]+", run_id):
        raise LakePathError(f"run_id must be hex digits, got {run_id!r}")
    stem = final.name.removesuffix(SUFFIX)
    return (
        final.parents[FANOUT_LEVELS] / PENDING_DIR / f"{stem}~{int(work_item_id)}~{run_id}{SUFFIX}"
    )


def parse_pending_name(name: str) -> PendingName | None:
    """The parts of a pending file's name, or None for any other name."""
    match = _PENDING_RE.fullmatch(name)
    if match is None:
        return None
    return PendingName(match["final"] + SUFFIX, match["hash"], int(match["wi"]), match["run"])


def final_path_of(pending: Path) -> Path | None:
    """Where a pending file is published, or None when ``pending`` is not one."""
    parsed = parse_pending_name(pending.name)
    if parsed is None or pending.parent.name != PENDING_DIR:
        return None
    try:
        return in_type_dir(pending.parent.parent, parsed.final_name)
    except LakePathError:
        return None


def write_pending(path: Path, data: bytes, *, fsync: bool = True) -> list[Path]:
    """Write a pending file (see the module docstring), its data fsynced unless ``fsync`` is
    off. Returns the directories whose entries changed (``.pending/`` and any directory made for
    it): the caller fsyncs them once for its group, before the file's row may commit. On an error
    the new file is removed and the error re-raised."""
    changed = [*make_dirs(path.parent), path.parent]
    try:
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666
        )
    except FileExistsError:  # written by this run before: replaced atomically, never truncated
        write_json_atomic(path, data, fsync=fsync, sync_directory=False)
        return changed
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                sync_data(fd)
        finally:
            os.close(fd)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return changed


def publish(files: Iterable[Pending], *, fsync: bool = True) -> int:
    """Give each pending file its final name, never replacing an existing file (that one is
    kept: a row already points to it, with the same content; a file of the layout before the
    fan-out counts), then remove the pending name. Each directory is fsynced once, after its
    links (and the directories made for them) and before the pending names go, so a crash
    leaves the record published or still pending, never lost. Returns how many files were
    published (not already there)."""
    published = 0
    linked: list[Pending] = []
    directories: set[Path] = set()
    for pending in files:
        try:
            if legacy_record_path(pending.final).exists():
                raise FileExistsError(errno.EEXIST, "File exists", str(pending.final))
            directories.update(make_dirs(pending.final.parent))
            _link_no_replace(pending.path, pending.final)
        except FileExistsError:
            pass
        except FileNotFoundError:
            if not pending.final.exists():
                raise
            continue  # published meanwhile (by a reconcile of another worker)
        else:
            published += 1
            directories.add(pending.final.parent)
        linked.append(pending)
    if fsync:
        fsync_directories(directories)
    for pending in linked:
        pending.path.unlink(missing_ok=True)
    return published


def make_dirs(directory: Path) -> list[Path]:
    """Make ``directory`` and its missing parents; the directories whose entries changed."""
    if directory.is_dir():
        return []
    changed = make_dirs(directory.parent)
    try:
        directory.mkdir()
    except FileExistsError:
        return changed
    return [*changed, directory.parent]


def discard(paths: Iterable[Path]) -> None:
    """Remove pending files whose rows will never commit."""
    for path in paths:
        path.unlink(missing_ok=True)


def _link_no_replace(source: Path, target: Path) -> None:
    """``target`` becomes a name of ``source``; ``FileExistsError`` when it exists already."""
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}:
            raise
        # No hard links on this file system: a rename where nothing is (a publisher of the same
        # record could race in between; it would write the same content).
        if target.exists():
            raise FileExistsError(errno.EEXIST, "File exists", str(target)) from exc
        os.rename(source, target)


def pending_files(root: Path, source_name: str) -> Iterator[Path]:
    """The pending files of a source: ``root/*/source_name/*/.pending/*.json``."""
    for path in root.glob(f"*/{safe_component(source_name)}/*/{PENDING_DIR}/*{SUFFIX}"):
        if not path.name.startswith(TEMP_PREFIX):
            yield path


def remove_stale_temp_files(root: Path, older_than: float) -> int:
    """Remove the ``.tmp-*`` files older than ``older_than`` seconds in the lake's
    ``.pending/`` directories (where every record is written first): what writers killed
    between the write and the rename left (a live write keeps its temporary file for
    milliseconds). Only those directories are listed, never the lake's records. Returns the
    count."""
    cutoff = time.time() - older_than
    removed = 0
    for path in root.glob(f"*/*/*/{PENDING_DIR}/{TEMP_PREFIX}*"):
        try:
            if path.lstat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # renamed or removed by its writer meanwhile
    return removed
