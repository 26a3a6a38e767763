"""Where a record's lake file goes: validated directory names, a safe file name for any id, and
the fan-out of a resource type's directory by the id hash.

::

    LAKE_ROOT/{source_system}/{source_name}/{resource_type}/{h[0:2]}/{h[2:4]}/{slug}~{h}~{content}.json

``h`` is :func:`resource_id_hash` (20 hex digits of the id's sha256): the two fan-out levels
(256 x 256 directories, as git fans out its objects) keep every directory small — at 10 M files
of one type, ~150 files a leaf and 256 entries above. Lakes written before the fan-out hold
their files directly in ``{resource_type}/`` (:func:`legacy_record_path`); those stay where they
are and are still found (:func:`locate_record`), verified and never duplicated.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

COMPONENT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
MAX_SLUG_CHARS = 60
ID_HASH_CHARS = 20  # 80 bits of sha256(resource_id)
CONTENT_HASH_CHARS = 16
MAX_FILENAME_BYTES = 120
FANOUT_LEVELS = 2  # directories of 2 hex digits each below {resource_type}/
SUFFIX = ".json"

_COMPONENT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_CONTENT_HASH_RE = re.compile(r"[0-9a-f]{64}")
_RECORD_NAME_RE = re.compile(r"[A-Za-z0-9_-]+~(?P<id>[0-9a-f]{20})~[0-9a-f]{16}\.json")
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


def fanout(id_hash: str) -> tuple[str, ...]:
    """The fan-out directories of an id hash: ``("ab", "cd")`` for ``abcd…``."""
    return tuple(id_hash[2 * level : 2 * level + 2] for level in range(FANOUT_LEVELS))


def in_type_dir(type_dir: Path, filename: str) -> Path:
    """Where the record file ``filename`` (a :func:`record_filename`) goes in ``type_dir``."""
    match = _RECORD_NAME_RE.fullmatch(filename)
    if match is None:
        raise LakePathError(f"not a record file name: {filename!r}")
    return type_dir.joinpath(*fanout(match["id"]), filename)


def record_parts(
    source_system: str, source_name: str, resource_type: str, resource_id: str, content_hash: str
) -> tuple[str, ...]:
    """The parts of a record file's path below the lake root:
    ``(system, name, type, "ab", "cd", <record_filename>)``."""
    filename = record_filename(resource_id, content_hash)
    return (
        safe_component(source_system),
        safe_component(source_name),
        safe_component(resource_type),
        *fanout(filename.rsplit("~", 2)[1]),
        filename,
    )


def record_path(  # noqa: PLR0917 - the identity's parts, in path order
    root: Path,
    source_system: str,
    source_name: str,
    resource_type: str,
    resource_id: str,
    content_hash: str,
) -> Path:
    """The file of one record: ``root/system/name/type/ab/cd/<record_filename>``, checked to be
    inside ``root`` after resolving symlinks."""
    path = root.joinpath(
        *record_parts(source_system, source_name, resource_type, resource_id, content_hash)
    )
    # Cannot fail with the checks above; kept so that a future change to them cannot escape root.
    resolved_root = root.resolve()
    if not path.resolve().is_relative_to(resolved_root):
        raise LakePathError(f"record path {path} escapes the lake root {resolved_root}")
    return path


def legacy_parts(parts: tuple[str, ...]) -> tuple[str, ...]:
    """:func:`record_parts` of the layout before the fan-out: ``(system, name, type, file)``."""
    return (*parts[:3], parts[-1])


def legacy_record_path(path: Path) -> Path:
    """Where the record file ``path`` (of :func:`record_path`) was before the fan-out: directly
    in its ``{resource_type}/`` directory."""
    return path.parents[FANOUT_LEVELS] / path.name


def locate_record(path: Path) -> Path | None:
    """The record file ``path`` (of :func:`record_path`) where it is: at ``path``, else where a
    lake of the layout before the fan-out has it; None when neither exists."""
    for candidate in (path, legacy_record_path(path)):
        if candidate.is_file():
            return candidate
    return None
