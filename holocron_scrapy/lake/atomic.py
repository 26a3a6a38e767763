"""Atomic, durable writes of one file (:func:`write_json_atomic`): readers see the old file or
the new one, never half of one. Blocking I/O; callers keep it off the reactor thread."""

from __future__ import annotations

import errno
import functools
import logging
import os
import tempfile
from typing import TYPE_CHECKING

from holocron_scrapy.lake.paths import SUFFIX

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

logger = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"


@functools.cache
def _file_mode() -> int:
    """The mode ``open()`` would give a new file (0o666 minus the umask).

    ``NamedTemporaryFile`` creates files 0o600, which would keep lake files from other readers.
    The umask is read from ``/proc`` where possible, because setting it to read it back is not
    thread-safe; elsewhere 0o644 is assumed.
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o644


def write_json_atomic(
    path: Path, data: bytes, *, fsync: bool = True, sync_directory: bool = True
) -> None:
    """Write ``data`` (already-serialized JSON) to ``path`` atomically and durably.

    Parent directories are created. The bytes go to a ``.tmp-*`` file in the same directory, are
    flushed and fsynced, the temp file is renamed onto ``path`` (replacing any earlier file of the
    same name, which holds the same content) and the directory is fsynced so the rename survives
    a crash of the machine (``fsync=False`` skips both fsyncs: still atomic, and safe against a
    killed process, but not against a power cut; ``sync_directory=False`` leaves the directory's
    fsync to the caller, who does it once for a group of files). On any error the temp file is
    removed and the error re-raised.
    """
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    tmp_name: str | None = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=directory, prefix=TEMP_PREFIX, suffix=SUFFIX, delete=False
        ) as tmp:
            tmp_name = tmp.name
            tmp.write(data)
            tmp.flush()
            if fsync:
                os.fsync(tmp.fileno())
        os.chmod(tmp_name, _file_mode())
        os.replace(tmp_name, path)
        tmp_name = None
        if fsync and sync_directory:
            fsync_directory(directory)
    except BaseException:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                logger.warning(
                    "Could not remove temporary file %(tmp)s", {"tmp": tmp_name}, exc_info=True
                )
        raise


def sync_data(fd: int) -> None:
    """Make a file's data (and the size needed to read it back) durable: ``fdatasync`` where
    there is one (it skips the timestamps' journal write), else ``fsync``."""
    getattr(os, "fdatasync", os.fsync)(fd)


def fsync_directories(directories: Iterable[Path]) -> None:
    """fsync each directory once, the deepest first (a directory made for a file is durable
    before the entry that names it in its parent)."""
    for directory in sorted(set(directories), key=lambda d: len(d.parts), reverse=True):
        fsync_directory(directory)


def fsync_directory(directory: Path) -> None:
    if os.name != "posix":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # some file systems do not support fsync on directories
            raise
    finally:
        os.close(fd)
