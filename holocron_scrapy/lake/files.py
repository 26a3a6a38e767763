"""The raw data lake's file layer: where a record's JSON file goes, and how it is written.

One JSON file per record::

    LAKE_ROOT/{source_system}/{source_name}/{resource_type}/{slug}~{id_hash}~{content_hash}.json

The three directory components are validated names (:func:`safe_component`). The file name is
built from the resource id, which is untrusted (a wiki title may hold ``/``, ``..``, NUL, emoji or
``CON``): :func:`record_filename` keeps only a readable ASCII slug of it, and makes the name unique
with a hash of the full id, so two ids never share a file, not even ``Yoda`` and ``yoda`` on a
case-insensitive file system. The content hash in the name means a changed resource gets a new
file and the same content always lands on the same name.

A record file appears only once its ``IngestRecords`` row has committed, and is never rewritten:
the lake pipeline writes it under a *pending* name in the directory's ``.pending/``
(:func:`pending_path`: the final name, the work item and the run), the ``IngestRecords`` pipeline
commits the row, then :func:`publish` links the pending file to its final name (never replacing
a file that is already there: a file is immutable once a row points to it) and fsyncs the
directory once per batch. A crash leaves at most pending files, which the next run reconciles
(:mod:`holocron_scrapy.lake.reconcile`).

Files are written atomically (:func:`write_json_atomic`): readers see the old file or the new one,
never half of one. Everything here is blocking I/O; callers keep it off the reactor thread.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import logging
import os
import re
import tempfile
import time
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

logger = logging.getLogger(__name__)

COMPONENT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
MAX_SLUG_CHARS = 60
ID_HASH_CHARS = 20  # 80 bits of sha256(resource_id)
CONTENT_HASH_CHARS = 16
MAX_FILENAME_BYTES = 120
TEMP_PREFIX = ".tmp-"
SUFFIX = ".json"
PENDING_DIR = ".pending"

_COMPONENT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_CONTENT_HASH_RE = re.compile(r"[0-9a-f]{64}")
_PENDING_RE = re.compile(
    r"(?P<final>[A-Za-z0-9_-]+~[0-9a-f]+~(?P<hash>[0-9a-f]+))~(?P<wi>[0-9]+)~(?P<run>[0-9a-f]+)\.json"
)
_NOT_SLUG_RE = re.compile(r"[^A-Za-z0-9_-]+")
_UNDERSCORES_RE = re.compile(r"_{2,}")


class LakePathError(ValueError):
    """A lake path component or record name that is not safe to use."""


def safe_component(value: str) -> str:
    """Return ``value`` if it is a safe directory name (``^[a-z0-9][a-z0-9_-]{0,63}$``)."""
    if not isinstance(value, str) or not _COMPONENT_RE.fullmatch(value):
        raise LakePathError(f"unsafe lake path component {value!r}: must match {COMPONENT_PATTERN}")
    return value


def slugify(resource_id: str) -> str:
    """A readable ASCII stand-in for ``resource_id``: letters, digits, ``-`` and ``_`` only.

    Accents are folded (NFKD, combining marks dropped), every other run of characters becomes one
    ``_``, leading and trailing ``_``/``-`` are stripped (a leading ``-`` reads as an option to
    command-line tools), at most 60 characters; ``_`` when nothing is left. Not unique on its own.
    """
    decomposed = unicodedata.normalize("NFKD", resource_id)
    folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    slug = _UNDERSCORES_RE.sub("_", _NOT_SLUG_RE.sub("_", folded)).strip("_-")
    slug = slug[:MAX_SLUG_CHARS].strip("_-")
    return slug or "_"


def resource_id_hash(resource_id: str) -> str:
    """The first 20 hex digits of sha256 of the id's UTF-8 bytes.

    Lone surrogates (possible in ids decoded from JSON) are kept with ``surrogatepass`` so that
    every ``str`` hashes, and distinct strings hash distinctly.
    """
    data = resource_id.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:ID_HASH_CHARS]


def record_filename(resource_id: str, content_hash: str) -> str:
    """``{slug}~{sha256(resource_id)[:20]}~{content_hash[:16]}.json``, at most 120 bytes.

    Safe for any ``resource_id``; ``content_hash`` must be 64 lower-case hex digits (a sha256).
    """
    if not isinstance(resource_id, str):
        raise LakePathError(f"resource_id must be a str, got {type(resource_id).__name__}")
    if not isinstance(content_hash, str) or not _CONTENT_HASH_RE.fullmatch(content_hash):
        raise LakePathError(
            f"content_hash must be 64 lower-case hex digits (sha256), got {content_hash!r}"
        )
    name = (
        f"{slugify(resource_id)}~{resource_id_hash(resource_id)}"
        f"~{content_hash[:CONTENT_HASH_CHARS]}{SUFFIX}"
    )
    assert len(name.encode("ascii")) <= MAX_FILENAME_BYTES  # by construction: ASCII, <= 103
    return name


def record_path(  # noqa: PLR0917 - the identity's parts, in path order
    root: Path,
    source_system: str,
    source_name: str,
    resource_type: str,
    resource_id: str,
    content_hash: str,
) -> Path:
    """The file of one record: ``root/system/name/type/<record_filename>``, checked to be inside
    ``root`` after resolving symlinks."""
    path = (
        root
        / safe_component(source_system)
        / safe_component(source_name)
        / safe_component(resource_type)
        / record_filename(resource_id, content_hash)
    )
    # Cannot fail with the checks above; kept so that a future change to them cannot escape root.
    resolved_root = root.resolve()
    if not path.resolve().is_relative_to(resolved_root):
        raise LakePathError(f"record path {path} escapes the lake root {resolved_root}")
    return path


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


def write_json_atomic(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` (already-serialized JSON) to ``path`` atomically and durably.

    Parent directories are created. The bytes go to a ``.tmp-*`` file in the same directory, are
    flushed and fsynced, the temp file is renamed onto ``path`` (replacing any earlier file of the
    same name, which holds the same content) and the directory is fsynced so the rename survives
    a crash of the machine (``fsync=False`` skips both fsyncs: still atomic, and safe against a
    killed process, but not against a power cut). On any error the temp file is removed and the
    error re-raised.
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
        if fsync:
            _fsync_directory(directory)
    except BaseException:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                logger.warning(
                    "Could not remove temporary file %(tmp)s", {"tmp": tmp_name}, exc_info=True
                )
        raise


def _fsync_directory(directory: Path) -> None:
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


def remove_stale_temp_files(root: Path, older_than: float) -> int:
    """Remove the ``.tmp-*`` files under ``root`` older than ``older_than`` seconds: what
    writers killed between the write and the rename left (a live write keeps its temporary
    file for milliseconds). The records themselves are never touched. Returns the count."""
    cutoff = time.time() - older_than
    removed = 0
    for directory, _subdirectories, names in os.walk(root):
        for name in names:
            if not name.startswith(TEMP_PREFIX):
                continue
            path = os.path.join(directory, name)
            try:
                if os.lstat(path).st_mtime < cutoff:
                    os.unlink(path)
                    removed += 1
            except FileNotFoundError:
                continue  # renamed or removed by its writer meanwhile
    return removed


# -- pending files: written before their row commits, published after ------------------------


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
    """``<dir>/.pending/<final stem>~<work_item_id>~<run_id>.json``: one writer's file of one
    record; ``run_id`` is a hex run id (``runs.run_id``)."""
    if not re.fullmatch(r"[0-9a-f]+", run_id):
        raise LakePathError(f"run_id must be hex digits, got {run_id!r}")
    stem = final.name.removesuffix(SUFFIX)
    return final.parent / PENDING_DIR / f"{stem}~{int(work_item_id)}~{run_id}{SUFFIX}"


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
    return pending.parent.parent / parsed.final_name


def publish(files: Iterable[Pending], *, fsync: bool = True) -> int:
    """Give each pending file its final name, never replacing an existing file (that one is
    kept: a row already points to it, with the same content), then remove the pending name.
    Each directory is fsynced once, after its links and before the pending names go, so a
    crash leaves the record published or still pending, never lost. Returns how many files
    were published (not already there)."""
    published = 0
    linked: list[Pending] = []
    directories: set[Path] = set()
    for pending in files:
        try:
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
        for directory in sorted(directories):
            _fsync_directory(directory)
    for pending in linked:
        pending.path.unlink(missing_ok=True)
    return published


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
