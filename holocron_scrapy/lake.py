"""The raw data lake's file layer: where a record's JSON file goes, and how it is written.

One JSON file per record::

    LAKE_ROOT/{source_system}/{source_name}/{resource_type}/{slug}~{id_hash}~{content_hash}.json

The three directory components are validated names (:func:`safe_component`). The file name is
built from the resource id, which is untrusted (a wiki title may hold ``/``, ``..``, NUL, emoji or
``CON``): :func:`record_filename` keeps only a readable ASCII slug of it, and makes the name unique
with a hash of the full id, so two ids never share a file, not even ``Yoda`` and ``yoda`` on a
case-insensitive file system. The content hash in the name means a changed resource gets a new
file and the same content always lands on the same name, so rewriting a file is idempotent.

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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

logger = logging.getLogger(__name__)

COMPONENT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
MAX_SLUG_CHARS = 60
ID_HASH_CHARS = 20  # 80 bits of sha256(resource_id)
CONTENT_HASH_CHARS = 16
MAX_FILENAME_BYTES = 120
TEMP_PREFIX = ".tmp-"
SUFFIX = ".json"

_COMPONENT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_CONTENT_HASH_RE = re.compile(r"[0-9a-f]{64}")
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
