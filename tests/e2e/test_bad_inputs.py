"""The bad-input table (issue 5), responses: one real crawl where some titles get bad answers.

A small proxy of the test's own stands between the crawl and the real MediaWiki: a request for
one of the table's titles gets the table's bad response (what MediaWiki cannot be made to send:
a truncated body, an HTML error page, a gzip bomb, 50 MB, a dropped connection...); every other
request goes to the real wiki and its answer comes back unchanged. One title per request, so
each bad answer concerns exactly one work item; one attempt per item (``HOLOCRON_MAX_ATTEMPTS=1``),
so a failure is final in this run.

Each row is a test of its own on the same crawl: its work item ends as the row says, with the
row's message, and writes no record. And the crawl goes on: the good titles, asked before,
between and after the bad ones, are recorded from the real wiki, the crawl exits 0, finished.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from holocron_scrapy.audit.verify import verify
from tests.e2e.crawl_helpers import (
    FAST_SETTINGS,
    SOURCE_NAME,
    CrawlResult,
    Database,
    run_crawl,
    write_source,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.e2e.wiki import MediaWiki

MB = 1024 * 1024
MAXSIZE = 8 * MB  # the source's DOWNLOAD_MAXSIZE
WARNSIZE = 1 * MB
GOOD_TITLES = ("Darth Vader", "Yoda", "Luke Skywalker")


@dataclass(frozen=True)
class Answer:
    status: int = 200
    content_type: str = "application/json; charset=utf-8"
    body: bytes | Callable[[], bytes] = b""
    headers: tuple[tuple[str, str], ...] = ()
    stream: int = 0  # bytes to stream without a Content-Length (then close)
    declared_length: int | None = None  # a Content-Length that is a lie (connection dropped)
    forward: bool = False  # the real wiki's body, with this answer's status and headers


def _gzip_bomb() -> bytes:
    return gzip.compress(b"0" * (5 * MAXSIZE), compresslevel=9)


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


# (title, the answer to its request, how its work item must end, a fragment of its message)
BAD_RESPONSES: list[tuple[str, Answer, str, str]] = [
    (
        "Bad truncated JSON",
        Answer(body=b'{"batchcomplete":true,"query":{"pages":[{"pageid":1,"ti'),
        "failed",
        "not JSON",
    ),
    (
        "Bad HTML error page",
        Answer(content_type="text/html", body=b"<html><body>Database error</body></html>"),
        "failed",
        "Content-Type 'text/html'",
    ),
    ("Bad empty body", Answer(body=b""), "failed", "not JSON"),
    ("Bad invalid UTF-8", Answer(body=b'{"query": "caf\xe9"}'), "failed", "not JSON"),
    ("Bad JSON array", Answer(body=b"[]"), "failed", "expected a JSON object"),
    (
        "Bad error envelope",
        Answer(body=_json({"error": {"code": "badvalue", "info": "Unrecognized value"}})),
        "failed",
        "MediaWiki API error badvalue: Unrecognized value",
    ),
    (
        "Bad missingtitle envelope",
        Answer(body=_json({"error": {"code": "missingtitle", "info": "The page does not exist"}})),
        "skipped",
        "missingtitle",
    ),
    (
        "Bad gzip bomb",
        Answer(body=_gzip_bomb, headers=(("Content-Encoding", "gzip"),)),
        "failed",
        "exceeded DOWNLOAD_MAXSIZE (8388608 B) during decompression",
    ),
    (
        "Bad 50 MB body",
        Answer(body=lambda: b" " * (50 * MB)),
        "failed",
        "52428800 bytes which is larger than download max size (8388608)",
    ),
    ("Bad 50 MB stream", Answer(stream=50 * MB), "failed", "DOWNLOAD_MAXSIZE"),
    (
        "Bad dropped connection",
        Answer(body=b'{"query":', declared_length=1000),
        "failed",
        "ResponseDataLossError",
    ),
    # The real page, served as text/plain: the type is wrong, the body is right: recorded.
    ("Han Solo", Answer(content_type="text/plain", forward=True), "completed", ""),
    ("Bad HTTP 500", Answer(status=500, body=b"oops"), "failed", "HTTP 500 from"),
    (
        "Bad HTTP 404",
        Answer(status=404, content_type="text/html", body=b"no"),
        "failed",
        "HTTP 404",
    ),
]


class Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, answers: dict[str, Answer]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.answers = answers
        self.asked: list[str] = []

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api.php"


class _Handler(BaseHTTPRequestHandler):
    server: Proxy

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        query = urllib.parse.urlsplit(self.path).query
        titles = urllib.parse.parse_qs(query).get("titles", [""])[0]
        self.server.asked.append(titles)
        answer = self.server.answers.get(titles)
        if answer is None or answer.forward:
            self._forward(query, answer)
        else:
            self._answer(answer)

    def _forward(self, query: str, answer: Answer | None) -> None:
        request = urllib.request.Request(
            f"{self.server.upstream}?{query}", headers={"User-Agent": self.headers["User-Agent"]}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as upstream:
                status, headers, body = upstream.status, upstream.headers, upstream.read()
        except urllib.error.HTTPError as exc:
            status, headers, body = exc.code, exc.headers, exc.read()
        if answer is not None:
            status, headers = answer.status, {"Content-Type": answer.content_type}
        self.send_response(status)
        self.send_header("Content-Type", headers.get("Content-Type", ""))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer(self, answer: Answer) -> None:
        body = answer.body() if callable(answer.body) else answer.body
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        for name, value in answer.headers:
            self.send_header(name, value)
        if answer.stream:
            self.send_header("Connection", "close")
            self.end_headers()
            chunk = b" " * MB
            try:
                for _ in range(answer.stream // MB):
                    self.wfile.write(chunk)
            except OSError:
                pass  # the crawler gave up reading: what it should do
            self.close_connection = True
            return
        length = answer.declared_length if answer.declared_length is not None else len(body)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        with contextlib.suppress(OSError):  # the crawler may close first
            self.wfile.write(body)
        if answer.declared_length is not None:
            self.close_connection = True


@dataclass
class BadCrawl:
    result: CrawlResult
    db: Database
    lake: Path
    proxy: Proxy
    items: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def bad_crawl(mediawiki: MediaWiki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BadCrawl]:
    """One crawl of the good titles and every bad one, through the proxy (SQLite)."""
    tmp_path = tmp_path_factory.mktemp("bad-inputs")
    answers = {title: answer for title, answer, _, _ in BAD_RESPONSES}
    proxy = Proxy(mediawiki.api_url, answers)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        bad = [title for title, _, _, _ in BAD_RESPONSES]  # (and one good page, mistyped)
        seeds = [GOOD_TITLES[0], *bad[: len(bad) // 2], GOOD_TITLES[1], *bad[len(bad) // 2 :]]
        seeds.append(GOOD_TITLES[2])
        settings = {
            **FAST_SETTINGS,
            "DOWNLOAD_MAXSIZE": MAXSIZE,
            "DOWNLOAD_WARNSIZE": WARNSIZE,
            "RETRY_TIMES": 1,
            "DOWNLOAD_TIMEOUT": 20,
        }
        source = write_source(
            tmp_path / f"{SOURCE_NAME}.yaml", proxy.api_url, seeds, max_depth=0, settings=settings
        )
        db = Database("sqlite", f"sqlite:///{tmp_path / 'state.db'}", None)
        lake = tmp_path / "lake"
        result = run_crawl(
            source,
            lake,
            db,
            tmp_path / "crawl.log",
            args=["-s", "MEDIAWIKI_TITLES_PER_REQUEST=1", "-s", "HOLOCRON_MAX_ATTEMPTS=1"],
        )
        items = {item["resource_id"]: item for item in db.work_items()}
        yield BadCrawl(result, db, lake, proxy, items)
    finally:
        proxy.shutdown()
        proxy.server_close()


@pytest.mark.parametrize(
    ("title", "status", "fragment"),
    [pytest.param(t, s, f, id=t.removeprefix("Bad ")) for t, _, s, f in BAD_RESPONSES],
)
def test_bad_response_ends_its_work_item(
    bad_crawl: BadCrawl, title: str, status: str, fragment: str
) -> None:
    assert title in bad_crawl.proxy.asked, f"{title!r} was never asked for"
    item = bad_crawl.items[title]
    message = item["error_message"] or ""
    assert (item["status"], fragment in message) == (status, True), (
        f"{title!r}: {item['status']} {message!r}; log {bad_crawl.result.log_path}"
    )
    records = [r for r in bad_crawl.db.records() if r["resource_id"] == title]
    assert len(records) == (status == "completed")


def test_a_dropped_connection_says_which_request(bad_crawl: BadCrawl) -> None:
    message = bad_crawl.items["Bad dropped connection"]["error_message"] or ""
    assert "titles=Bad%20dropped%20connection" in message, message
    assert "the connection closed before the whole body arrived" in message, message


def test_the_crawl_goes_on(bad_crawl: BadCrawl) -> None:
    bad_crawl.result.check()
    good = {t: bad_crawl.items[t]["status"] for t in GOOD_TITLES}
    assert good == dict.fromkeys(GOOD_TITLES, "completed")
    recorded = [t for t, _, s, _ in BAD_RESPONSES if s == "completed"]
    assert sorted(r["resource_id"] for r in bad_crawl.db.records()) == sorted(
        [*GOOD_TITLES, *recorded]
    )
    [run] = bad_crawl.db.runs()
    assert (run["status"], run["records_written"]) == ("finished", len(GOOD_TITLES) + len(recorded))
    assert run["items_failed"] == sum(1 for _, _, s, _ in BAD_RESPONSES if s == "failed")
    engine = sa.create_engine(bad_crawl.db.read_only_url, poolclass=sa.NullPool)
    try:
        report = verify(engine, bad_crawl.db.tables, bad_crawl.lake, SOURCE_NAME)
    finally:
        engine.dispose()
    assert report.ok, report.lines()
    assert "Traceback" not in bad_crawl.result.log
