"""End to end: the real ``scrapy crawl mediawiki`` against a scripted API server that says
"slow down" (maxlag, 429, 503, ratelimited) or answers garbage, then the real wiki's answer.

The server (stdlib ``ThreadingHTTPServer`` on 127.0.0.1, a free port, in a thread) answers each
title's requests from a script, one step per request; an ``ok`` step proxies the request to the
MediaWiki test bed. One title per request (``MEDIAWIKI_TITLES_PER_REQUEST: 1``), no discovery.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.crawl_helpers import run_crawl, write_source

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.e2e.crawl_helpers import CrawlResult, Database
    from tests.e2e.wiki import MediaWiki

SETTINGS: dict[str, Any] = {
    "AUTOTHROTTLE_ENABLED": False,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 4,
    "DOWNLOAD_DELAY": 0,
    "MEDIAWIKI_TITLES_PER_REQUEST": 1,
}
ARGS = ["-s", "HOLOCRON_RETRY_AFTER_DEFAULT=0.2"]
JSON = "application/json; charset=utf-8"

# A step: (status, headers, body); body None = proxy the request to the real wiki. JUNK and
# JUNK_UNSIZED: JUNK_SIZE bytes of non-JSON, with and without Content-Length.
JUNK = "junk"
JUNK_UNSIZED = "junk-unsized"
JUNK_SIZE = 50 * 2**20
Step = tuple[int, dict[str, str], bytes | None]
OK: Step = (200, {}, None)


def maxlag(retry_after: str = "1") -> Step:
    body = b'{"error":{"code":"maxlag","info":"Waiting for a database server: 7 seconds lagged."}}'
    headers = {"MediaWiki-API-Error": "maxlag", "Retry-After": retry_after, "Content-Type": JSON}
    return (200, headers, body)


def ratelimited() -> Step:
    body = b'{"error":{"code":"ratelimited","info":"You\'ve exceeded your rate limit."}}'
    return (200, {"MediaWiki-API-Error": "ratelimited", "Content-Type": JSON}, body)


def status(code: int, retry_after: str | None = None) -> Step:
    headers = {"Content-Type": "text/html"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return (code, headers, b"<html>busy</html>")


class ScriptedApi:
    """title -> steps; the last step repeats. ``seen`` is (monotonic time, title, query)."""

    def __init__(self, wiki: MediaWiki, script: dict[str, list[Step | str]]) -> None:
        self.wiki = wiki
        self.script = script
        self.seen: list[tuple[float, str, dict[str, list[str]]]] = []
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urlsplit(self.path).query
                params = parse_qs(query)
                title = params.get("titles", [""])[0]
                with api.lock:
                    n = sum(1 for _, t, _ in api.seen if t == title)
                    api.seen.append((time.monotonic(), title, params))
                steps = api.script[title]
                step = steps[min(n, len(steps) - 1)]
                if step == "date-503":  # an HTTP-date 2 s ahead: at least 1 s from now
                    when = datetime.now(UTC) + timedelta(seconds=2)
                    step = status(503, format_datetime(when, usegmt=True))
                if step in (JUNK, JUNK_UNSIZED):
                    self._send_junk(sized=step == JUNK)
                    return
                assert not isinstance(step, str)
                code, headers, body = step
                if body is None:
                    with urllib.request.urlopen(f"{api.wiki.api_url}?{query}", timeout=30) as r:
                        body = r.read()
                    headers = {"Content-Type": r.headers["Content-Type"]}
                self.send_response(code)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _send_junk(self, *, sized: bool) -> None:
                """JUNK_SIZE bytes of non-JSON, streamed in 1 MiB chunks (with Content-Length or
                until the connection closes); the client may hang up part way."""
                chunk = b"x" * 2**20
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    if sized:
                        self.send_header("Content-Length", str(JUNK_SIZE))
                    else:
                        self.close_connection = True
                    self.end_headers()
                    for _ in range(JUNK_SIZE // len(chunk)):
                        self.wfile.write(chunk)
                except OSError:  # BrokenPipeError, ConnectionResetError: the client hung up
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api.php"

    def times(self, title: str) -> list[float]:
        return [t for t, seen_title, _ in self.seen if seen_title == title]


@pytest.fixture
def scripted(mediawiki: MediaWiki) -> Iterator[Any]:
    servers: list[ScriptedApi] = []

    def start(script: dict[str, list[Step | str]]) -> ScriptedApi:
        api = ScriptedApi(mediawiki, script)
        threading.Thread(target=api.server.serve_forever, daemon=True).start()
        servers.append(api)
        return api

    yield start
    for api in servers:
        api.server.shutdown()
        api.server.server_close()


def crawl(
    tmp_path: Path,
    api: ScriptedApi,
    db: Database,
    titles: list[str],
    *args: str,
    settings: dict[str, Any] | None = None,
) -> tuple[dict[str, dict[str, Any]], CrawlResult]:
    """Crawl ``titles`` from the scripted server (the source file's ``settings:`` are SETTINGS
    and ``settings``); its work items by title, and the result."""
    source = write_source(
        tmp_path / "politeness.yaml",
        api.url,
        titles,
        max_depth=0,
        settings={**SETTINGS, **(settings or {})},
    )
    result = run_crawl(
        source, tmp_path / "lake", db, tmp_path / "crawl.log", args=[*ARGS, *args], timeout=60
    )
    result.check(0)
    return {row["resource_id"]: row for row in db.work_items()}, result


def test_waits_as_asked_then_archives_the_page(
    tmp_path: Path, scripted: Any, crawl_db: Database
) -> None:
    api = scripted({"Darth Vader": [maxlag("1"), status(429, "1"), "date-503", OK]})
    items, result = crawl(tmp_path, api, crawl_db, ["Darth Vader"])
    assert items["Darth Vader"]["status"] == "completed"
    [record] = crawl_db.records()
    assert record["resource_id"] == "Darth Vader"
    times = api.times("Darth Vader")
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.95 for gap in gaps), gaps  # Retry-After: 1, 1, and a date ≥ 1 s ahead
    assert all(params["maxlag"] == ["5"] for _, _, params in api.seen)
    assert result.stat("retry_after/maxlag") == 1
    assert result.stat("retry_after/http_429") == 1
    assert result.stat("retry_after/http_503") == 1
    assert result.stat("retry/count") == 0  # RetryMiddleware never retried on its own
    assert "Waiting 1.0 s before retrying" in result.log


def test_failures_end_their_items_and_the_crawl_goes_on(
    tmp_path: Path, scripted: Any, crawl_db: Database
) -> None:
    api = scripted(
        {
            "Always busy": [status(429, "1")],
            "Anakin Skywalker": [ratelimited(), OK],
            "Truncated": [(200, {"Content-Type": JSON}, b'{"batchcomplete": true, "query": {"pa')],
            "Html page": [(200, {"Content-Type": "text/html"}, b"<html><body>Oops</body></html>")],
            "Empty body": [(200, {"Content-Type": JSON}, b"")],
            "Darth Vader": [OK],
        }
    )
    titles = list(api.script)
    items, result = crawl(tmp_path, api, crawl_db, titles, "-s", "HOLOCRON_RETRY_AFTER_TIMES=2")
    assert {t: row["status"] for t, row in items.items()} == {
        "Always busy": "failed",
        "Anakin Skywalker": "completed",
        "Truncated": "failed",
        "Html page": "failed",
        "Empty body": "failed",
        "Darth Vader": "completed",
    }
    assert items["Always busy"]["error_message"].startswith("HTTP 429 from ")
    assert len(api.times("Always busy")) == 3  # the first try and 2 waits; no extra retry
    assert len(api.times("Anakin Skywalker")) == 2
    assert "not JSON" in items["Truncated"]["error_message"]
    assert "body starts '<html>" in items["Html page"]["error_message"]
    assert "not JSON" in items["Empty body"]["error_message"]
    assert {row["resource_id"] for row in crawl_db.records()} == {"Anakin Skywalker", "Darth Vader"}
    assert result.stat("retry_after/http_429") == 2
    assert result.stat("retry_after/gave_up/http_429") == 1
    assert result.stat("retry_after/ratelimited") == 1


def test_a_50_mb_body_fails_its_item_and_the_crawl_goes_on(
    tmp_path: Path, scripted: Any, crawl_db: Database
) -> None:
    """Within the project's DOWNLOAD_MAXSIZE (64 MiB) the body is read and is not JSON."""
    api = scripted({"Big": [JUNK], "Big unsized": [JUNK_UNSIZED], "Darth Vader": [OK]})
    items, _ = crawl(tmp_path, api, crawl_db, list(api.script))
    assert {t: row["status"] for t, row in items.items()} == {
        "Big": "failed",
        "Big unsized": "failed",
        "Darth Vader": "completed",
    }
    for title in ("Big", "Big unsized"):
        message = items[title]["error_message"]
        assert "not JSON (" in message, message
        assert "body starts 'xxxx" in message
        assert len(message) < 1000
    assert [r["resource_id"] for r in crawl_db.records()] == ["Darth Vader"]


def test_a_body_over_the_sources_download_maxsize_fails_its_item_naming_the_limit(
    tmp_path: Path, scripted: Any, crawl_db: Database
) -> None:
    api = scripted({"Big": [JUNK], "Big unsized": [JUNK_UNSIZED], "Darth Vader": [OK]})
    items, _ = crawl(
        tmp_path, api, crawl_db, list(api.script), settings={"DOWNLOAD_MAXSIZE": 10485760}
    )
    assert {t: row["status"] for t, row in items.items()} == {
        "Big": "failed",
        "Big unsized": "failed",
        "Darth Vader": "completed",
    }
    for title in ("Big", "Big unsized"):
        message = items[title]["error_message"]
        assert message.startswith("DownloadCancelledError: "), message
        assert "larger than download max size (10485760" in message
    assert [r["resource_id"] for r in crawl_db.records()] == ["Darth Vader"]


LAG = 2.0  # s: the Retry-After of the one maxlag answer
PACED = 0.05  # s: the source's DOWNLOAD_DELAY, AutoThrottle off


def test_a_lag_episode_with_autothrottle_off_costs_only_the_lag(
    tmp_path: Path, scripted: Any, mediawiki: MediaWiki, crawl_db: Database
) -> None:
    """The crawl's first request ("Darth Vader", the one seed) is told to wait 2 s (maxlag);
    the pages it links to (max_depth 1) then go at the configured DOWNLOAD_DELAY again, not one
    per 2 s for the rest of the crawl."""
    expected = mediawiki.reachable(["Darth Vader"], 1, [0])
    script: dict[str, list[Step | str]] = collections.defaultdict(lambda: [OK])
    script["Darth Vader"] = [maxlag(str(int(LAG))), OK]
    api = scripted(script)
    settings = {**SETTINGS, "CONCURRENT_REQUESTS_PER_DOMAIN": 1, "DOWNLOAD_DELAY": PACED}
    source = write_source(
        tmp_path / "lag.yaml", api.url, ["Darth Vader"], max_depth=1, settings=settings
    )
    result = run_crawl(
        source, tmp_path / "lake", crawl_db, tmp_path / "crawl.log", args=ARGS, timeout=60
    )
    result.check(0)
    assert len(crawl_db.records()) == len(expected.pages) > 20
    assert result.stat("retry_after/maxlag") == 1
    assert result.stat("retry_after/delay_restored") == 1
    times = sorted(t for t, _, _ in api.seen)
    assert api.times("Darth Vader")[0] == times[0]
    # Paused for the lag, then one request per DOWNLOAD_DELAY (±50 %, plus the responses); a
    # raised delay that stayed would take 2 s a request.
    limit = LAG + len(times) * (PACED * 1.5 + 0.05) + 2.0
    print(f"lag episode: {len(times)} requests in {times[-1] - times[0]:.2f} s (limit {limit:.1f})")
    assert LAG <= times[-1] - times[0] < limit, (times[-1] - times[0], len(times))
