"""WARC capture: the middleware records each exchange as received (still Content-Encoded), the
files pass ``warcio check``, and a killed writer's open file is cut after its last complete
record and closed by the next crawl on the host (never a live writer's)."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
from typing import TYPE_CHECKING

from scrapy import Request
from scrapy.http import Response
from scrapy.utils.test import get_crawler
from warcio.archiveiterator import ArchiveIterator

from holocron_scrapy.lake.warc import OPEN_SUFFIX, WarcFiles
from holocron_scrapy.middlewares.warc import WarcMiddleware

if TYPE_CHECKING:
    from pathlib import Path


def _check(*paths: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "warcio.cli", "check", "-v", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _records(path: Path) -> list[tuple[str, bytes, dict[str, str]]]:
    out = []
    with path.open("rb") as f:
        for record in ArchiveIterator(f, no_record_parse=False):
            headers = dict(record.http_headers.headers) if record.http_headers else {}
            out.append((record.rec_type, record.raw_stream.read(), headers))
    return out


def _exchange(files: WarcFiles, n: int) -> None:
    files.write_exchange(
        f"http://127.0.0.1/api.php?n={n}",
        status="200 OK",
        protocol="HTTP/1.1",
        response_headers=[("Content-Type", "application/json")],
        body=b'{"n": %d}' % n,
        request_line=f"GET /api.php?n={n} HTTP/1.1",
        request_headers=[("Host", "127.0.0.1")],
        request_body=b"",
    )


def test_middleware_records_the_body_as_received_with_its_request(tmp_path: Path) -> None:
    crawler = get_crawler(settings_dict={"HOLOCRON_WARC_DIR": str(tmp_path / "warc")})
    middleware = WarcMiddleware.from_crawler(crawler)
    body = gzip.compress(b'{"query": {"pages": []}}')
    request = Request("http://127.0.0.1:8080/api.php?action=query", headers={"X-A": "1"})
    response = Response(
        request.url,
        status=200,
        headers={"Content-Encoding": "gzip", "Transfer-Encoding": "chunked"},
        body=body,
        request=request,
    )

    async def crawl() -> None:
        await middleware.spider_opened()
        assert await middleware.process_response(request, response) is response
        await middleware.spider_closed()

    asyncio.run(crawl())
    [path] = list((tmp_path / "warc").iterdir())
    assert path.name.endswith(".warc.gz")
    _check(path)
    kinds = [(kind, content, headers) for kind, content, headers in _records(path)]
    assert [k for k, _, _ in kinds] == ["warcinfo", "response", "request"]
    _, recorded, headers = kinds[1]
    assert recorded == body  # still gzip, as the server sent it
    assert headers["Content-Encoding"] == "gzip"
    assert "Transfer-Encoding" not in headers  # the body is recorded de-chunked
    assert kinds[2][2]["Host"] == "127.0.0.1:8080"
    assert kinds[2][2]["X-A"] == "1"
    assert crawler.stats.get_value("holocron/warc/records") == 1


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout)


def test_a_killed_writers_open_file_is_cut_and_closed(tmp_path: Path) -> None:
    directory = tmp_path / "warc"
    files = WarcFiles(directory, prefix="t", max_bytes=10**9, software="test")
    for n in range(3):
        _exchange(files, n)
    assert files._file is not None
    files._file.flush()
    [live] = list(directory.iterdir())
    # What a kill at a random moment leaves: the file of a dead process (no one holds its
    # lock), its last record cut.
    dead = live.name.replace(f"-{os.getpid()}-", f"-{_dead_pid()}-")
    data = live.read_bytes()
    (directory / dead).write_bytes(data[:-25])

    recovered = WarcFiles(directory, prefix="t", max_bytes=10**9, software="test").recover()
    assert [p.name for p in recovered] == [dead.removesuffix(OPEN_SUFFIX)]
    _check(*recovered)
    gzip.decompress(recovered[0].read_bytes())  # every member whole: no truncated tail kept
    kinds = [kind for kind, _, _ in _records(recovered[0])]
    assert kinds == ["warcinfo", "response", "request", "response", "request", "response"]
    assert live.exists(), "a live writer's open file (its lock held) is not touched"
    files.close()
    _check(*(p for p in directory.iterdir()))


def test_files_roll_at_max_bytes(tmp_path: Path) -> None:
    files = WarcFiles(tmp_path, prefix="t", max_bytes=1, software="test")
    for n in range(3):
        _exchange(files, n)
    files.close()
    paths = sorted(tmp_path.iterdir())
    assert len(paths) == 3
    assert all(p.name.endswith(".warc.gz") for p in paths)
    _check(*paths)
