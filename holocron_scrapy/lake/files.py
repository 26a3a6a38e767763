"""The raw data lake's file layer: where a record's JSON file goes, and how it is written.

One JSON file per record, fanned out below its type by the hash of its id
(:mod:`holocron_scrapy.lake.paths`)::

    LAKE_ROOT/{source_system}/{source_name}/{resource_type}/{h[0:2]}/{h[2:4]}/{slug}~{h}~{content}.json

The three directory components are validated names (:func:`safe_component`). The file name is
built from the resource id, which is untrusted (a wiki title may hold ``/``, ``..``, NUL, emoji or
``CON``): :func:`record_filename` keeps only a readable ASCII slug of it, and makes the name unique
with a hash of the full id ``h``, so two ids never share a file, not even ``Yoda`` and ``yoda`` on
a case-insensitive file system. The content hash in the name means a changed resource gets a new
file and the same content always lands on the same name.

A record file appears only once its ``IngestRecords`` row has committed, and is never rewritten:
written pending, published after the commit (:mod:`holocron_scrapy.lake.pending`); a crash
leaves at most pending files, which the next run reconciles
(:mod:`holocron_scrapy.lake.reconcile`). Files are written atomically
(:mod:`holocron_scrapy.lake.atomic`). Everything here is blocking I/O; callers keep it off the
reactor thread.

This module gathers the names the rest of the package uses.
"""

from __future__ import annotations

from holocron_scrapy.lake.atomic import TEMP_PREFIX, fsync_directory, write_json_atomic
from holocron_scrapy.lake.paths import (
    COMPONENT_PATTERN,
    CONTENT_HASH_CHARS,
    ID_HASH_CHARS,
    MAX_FILENAME_BYTES,
    MAX_SLUG_CHARS,
    SUFFIX,
    LakePathError,
    legacy_record_path,
    locate_record,
    record_filename,
    record_path,
    resource_id_hash,
    safe_component,
    slugify,
)
from holocron_scrapy.lake.pending import (
    PENDING_DIR,
    Pending,
    PendingName,
    discard,
    final_path_of,
    parse_pending_name,
    pending_files,
    pending_path,
    publish,
    remove_stale_temp_files,
)

__all__ = [
    "COMPONENT_PATTERN",
    "CONTENT_HASH_CHARS",
    "ID_HASH_CHARS",
    "MAX_FILENAME_BYTES",
    "MAX_SLUG_CHARS",
    "PENDING_DIR",
    "SUFFIX",
    "TEMP_PREFIX",
    "LakePathError",
    "Pending",
    "PendingName",
    "discard",
    "final_path_of",
    "fsync_directory",
    "legacy_record_path",
    "locate_record",
    "parse_pending_name",
    "pending_files",
    "pending_path",
    "publish",
    "record_filename",
    "record_path",
    "remove_stale_temp_files",
    "resource_id_hash",
    "safe_component",
    "slugify",
    "write_json_atomic",
]
