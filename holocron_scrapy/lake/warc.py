"""Rolling gzip WARC files of a crawl's HTTP exchanges (``warcio``).

Each exchange is a ``response`` record (the status line, headers and body as received:
still compressed when the server sent ``Content-Encoding``) and a ``request`` record linked to
it by ``WARC-Concurrent-To``; warcio adds the block and payload digests. Every file starts with a
``warcinfo`` record. A file is written as ``{prefix}-{time}-{host}-{pid}-{n}.warc.gz.open`` and
renamed to ``.warc.gz`` when it reaches ``max_bytes`` or the crawl stops. The writer holds an
exclusive ``flock`` on its open file, which the kernel drops when the process dies, even by
``kill -9``: the next crawl takes the ``.open`` files whose lock is free, cuts each after its last
complete record and renames it; a live writer's file (on any host sharing the directory, where
the file system supports locks) is never touched. Blocking I/O: callers keep it off the reactor
thread.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import socket
import zlib
from datetime import UTC, datetime
from io import BytesIO
from typing import TYPE_CHECKING, BinaryIO

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

if TYPE_CHECKING:
    from pathlib import Path

logger = logging.getLogger(__name__)

OPEN_SUFFIX = ".open"
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9_.]+")


class WarcFiles:
    def __init__(self, directory: Path, *, prefix: str, max_bytes: int, software: str) -> None:
        self.directory = directory
        self.prefix = _UNSAFE_RE.sub("_", prefix)
        self.max_bytes = max_bytes
        self.software = software
        self.host = _UNSAFE_RE.sub("_", socket.gethostname())
        self.pid = os.getpid()
        self._file: BinaryIO | None = None
        self._writer: WARCWriter | None = None
        self._path: Path | None = None
        self._serial = 0
        self.records = 0
        self.closed_files: list[Path] = []

    def recover(self) -> list[Path]:
        """Close the ``.open`` files that dead writers left (their locks free): cut after the last
        complete record, rename. Returns the files closed."""
        self.directory.mkdir(parents=True, exist_ok=True)
        recovered = []
        for path in sorted(self.directory.glob(f"*.warc.gz{OPEN_SUFFIX}")):
            with path.open("r+b") as f:
                if not _unlocked(f):
                    continue  # its writer is alive (it holds the lock until it closes the file)
                f.truncate(_complete_length(path))
                os.fsync(f.fileno())
                final = path.with_name(path.name.removesuffix(OPEN_SUFFIX))
                os.replace(path, final)
            recovered.append(final)
            logger.info("Closed the WARC file a stopped crawl left open: %(path)s", {"path": final})
        return recovered

    def write_exchange(
        self,
        uri: str,
        *,
        status: str,
        protocol: str,
        response_headers: list[tuple[str, str]],
        body: bytes,
        request_line: str,
        request_headers: list[tuple[str, str]],
        request_body: bytes,
    ) -> None:
        writer = self._current()
        response = writer.create_warc_record(
            uri,
            "response",
            payload=BytesIO(body),
            length=len(body),
            http_headers=StatusAndHeaders(status, response_headers, protocol=protocol),
        )
        request = writer.create_warc_record(
            uri,
            "request",
            payload=BytesIO(request_body),
            length=len(request_body),
            http_headers=StatusAndHeaders(request_line, request_headers, is_http_request=True),
            warc_headers_dict={
                "WARC-Concurrent-To": response.rec_headers.get_header("WARC-Record-ID")
            },
        )
        writer.write_record(response)
        writer.write_record(request)
        self.records += 1
        assert self._file is not None
        if self._file.tell() >= self.max_bytes:
            self.close()

    def close(self) -> None:
        """Close the current file (flushed, fsynced) and rename it to ``.warc.gz``."""
        if self._file is None or self._path is None:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        final = self._path.with_name(self._path.name.removesuffix(OPEN_SUFFIX))
        os.replace(self._path, final)
        self.closed_files.append(final)
        self._file = self._writer = self._path = None

    def _current(self) -> WARCWriter:
        if self._writer is not None:
            return self._writer
        self.directory.mkdir(parents=True, exist_ok=True)
        self._serial += 1
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        name = f"{self.prefix}-{stamp}-{self.host}-{self.pid}-{self._serial:05d}.warc.gz"
        self._path = self.directory / f"{name}{OPEN_SUFFIX}"
        self._file = self._path.open("xb")
        fcntl.flock(self._file, fcntl.LOCK_EX)  # released by the kernel if this process dies
        self._writer = WARCWriter(self._file, gzip=True)
        info = {"software": self.software, "format": "WARC File Format 1.1", "hostname": self.host}
        self._writer.write_record(self._writer.create_warcinfo_record(name, info))
        return self._writer


def _unlocked(f: BinaryIO) -> bool:
    """Whether no process holds ``f``'s lock (its writer is gone); takes the lock if so."""
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _complete_length(path: Path) -> int:
    """The length of ``path``'s leading complete gzip members (warcio writes one record per
    member, so a complete member is a complete record)."""
    end = offset = 0
    member = zlib.decompressobj(wbits=31)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            data = chunk
            while data:
                try:
                    member.decompress(data)
                except zlib.error:
                    return end
                if not member.eof:
                    offset += len(data)
                    break
                offset += len(data) - len(member.unused_data)
                end = offset
                data = member.unused_data
                member = zlib.decompressobj(wbits=31)
    return end
