"""The lake side of ``ingest_verify``, in bounded memory: the files the rows account for, sorted
(in memory up to a chunk, beyond it in sorted runs on disk, merged), against the files of the
lake walked in the same order, one directory at a time.

A path's sort key is its parts below the lake root joined by NUL (which no name holds): the
order of a walk that lists each directory sorted by name and descends into a directory where
its name falls. Memory is one chunk of rows plus the largest directory (a lake written before
the fan-out holds a whole resource type in one directory; the fan-out keeps them small).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from holocron_scrapy.lake.files import PENDING_DIR, TEMP_PREFIX

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from holocron_scrapy.audit.report import Finding

    Add = Callable[[str, str], None]  # report one problem: (class, example)

CHUNK_ROWS = 50_000
# The lake file ends with the payload exactly as hashed (items.ResourceRecord.lake_document).
_PAYLOAD_MARK = b',\n "payload": '
_DOCUMENT_END = b"\n}\n"


class Expected(NamedTuple):
    """A file a row accounts for: its sort key, and what its row says it holds."""

    key: str
    label: str
    resource_id: str
    hash_sha256: str


def path_key(parts: tuple[str, ...]) -> str:
    return "\0".join(parts)


class ExpectedFiles:
    """The rows' files, added in any order, given back sorted by key (with duplicates)."""

    def __init__(self, chunk_rows: int | None = None) -> None:
        self.chunk_rows = chunk_rows or CHUNK_ROWS
        self._chunk: list[Expected] = []
        self._runs: list[Path] = []
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def add(self, entry: Expected) -> None:
        self._chunk.append(entry)
        if len(self._chunk) >= self.chunk_rows:
            self._spill()

    def _spill(self) -> None:
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="ingest-verify-")
        run = Path(self._dir.name) / f"run-{len(self._runs):05d}.jsonl"
        with run.open("w", encoding="ascii") as out:
            for entry in sorted(self._chunk):
                out.write(json.dumps(entry) + "\n")
        self._runs.append(run)
        self._chunk = []

    @property
    def spilled(self) -> int:
        """How many sorted runs went to disk."""
        return len(self._runs)

    def sorted(self) -> Iterator[Expected]:
        if not self._runs:
            yield from sorted(self._chunk)
            return
        self._spill()
        yield from heapq.merge(*(_read_run(run) for run in self._runs))

    def close(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def _read_run(run: Path) -> Iterator[Expected]:
    with run.open(encoding="ascii") as lines:
        for line in lines:
            yield Expected(*json.loads(line))


def walk_sorted(directory: str, parts: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    """(parts, path) of every file below ``directory`` (whose parts are ``parts``), in key
    order."""
    try:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from walk_sorted(entry.path, (*parts, entry.name))
        elif entry.is_file():
            yield (*parts, entry.name), entry.path


def merge_files(
    lake_root: Path,
    source_name: str,
    expected: Iterator[Expected],
    *,
    add: Add,
    temp_files: Finding,
    pending_files: Finding,
    examples: int,
    tick: Callable[[], None],
) -> int:
    """Check each expected file once (its row's hash), report the files no row accounts for
    and the expected ones that vanished since the rows were read; returns the record files."""
    count = 0
    nxt: Expected | None = next(expected, None)
    for system in sorted(os.listdir(lake_root)) if lake_root.is_dir() else []:
        top = os.path.join(lake_root, system, source_name)
        for parts, path in walk_sorted(top, (system, source_name)):
            relative = "/".join(parts)
            if parts[-1].startswith(TEMP_PREFIX):
                temp_files.add(relative, examples)
                continue
            if parts[-2] == PENDING_DIR:
                pending_files.add(relative, examples)
                continue
            count += 1
            tick()
            key = path_key(parts)
            matched = False
            while nxt is not None and nxt.key <= key:
                if nxt.key < key:
                    add("row_without_file", f"{nxt.label}: {nxt.key.replace(chr(0), '/')}")
                elif not matched:
                    if problem := file_problem(path, nxt.resource_id, nxt.hash_sha256):
                        add("file_hash_mismatch", f"{relative}: {problem}")
                    matched = True
                nxt = next(expected, None)
            if not matched:
                add("file_without_row", relative)
    while nxt is not None:
        add("row_without_file", f"{nxt.label}: {nxt.key.replace(chr(0), '/')}")
        nxt = next(expected, None)
    return count


def file_problem(path: str | Path, resource_id: str, hash_sha256: str) -> str | None:
    """What is wrong with a record's lake file (``"missing"``), or None."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    mark = data.find(_PAYLOAD_MARK)
    if mark < 0 or not data.endswith(_DOCUMENT_END):
        return "not a lake document (no payload at its end)"
    payload = data[mark + len(_PAYLOAD_MARK) : -len(_DOCUMENT_END)]
    digest = sha256(payload)
    if digest != hash_sha256:
        return f"payload hashes to {digest[:16]}, row says {hash_sha256[:16]}"
    try:
        meta: Any = json.loads(data[:mark] + b"\n}")
    except ValueError:
        return "metadata is not JSON"
    if meta.get("hash_sha256") != hash_sha256 or meta.get("resource_id") != resource_id:
        return "metadata names another resource or hash"
    return None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
