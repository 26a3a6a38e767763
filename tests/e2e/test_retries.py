"""End to end: failures are bounded (HOLOCRON_MAX_ATTEMPTS, HOLOCRON_RETRY_BACKOFF).

The real ``scrapy crawl mediawiki`` crawls the MediaWiki test bed through a small local proxy
(stdlib ``ThreadingHTTPServer`` on 127.0.0.1) that forwards every request to the real wiki,
except those for one title, which it answers with HTTP 404 (a resource that fails for good; the
wiki itself cannot be made to fail for one title). One title per request, so the failing title
has requests of its own, and the proxy records when each was made.
"""

from __future__ import annotations

import itertools
import threading
import time
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.crawl_helpers import (
    FAST_SETTINGS,
    SOURCE_NAME,
    assert_records_match,
    expect_crawl,
    run_crawl,
    write_source,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.e2e.crawl_helpers import Database
    from tests.e2e.wiki import MediaWiki

BROKEN = "Always broken"
SEED = "Darth Vader"
BACKOFF = 2.0  # s: attempt 1 waits 1-2 s, attempt 2 waits 2-4 s (equal jitter)


class FailingProxy:
    """Forwards to the wiki; answers 404 to every request for ``broken`` (if any). ``seen``
    holds (monotonic time, titles) of every request (tests/e2e/test_workers.py uses it too)."""

    def __init__(self, wiki: MediaWiki, broken: str | None) -> None:
        self.seen: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urlsplit(self.path).query
                titles = parse_qs(query).get("titles", [""])[0]
                with proxy.lock:
                    proxy.seen.append((time.monotonic(), titles))
                if titles == broken:
                    body, status, ctype = b"<html>Not Found</html>", 404, "text/html"
                else:
                    with urllib.request.urlopen(f"{wiki.api_url}?{query}", timeout=30) as r:
                        body, status, ctype = r.read(), r.status, r.headers["Content-Type"]
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api.php"

    def times(self, title: str) -> list[float]:
        return [t for t, titles in self.seen if titles == title]

    @contextmanager
    def serving(self) -> Iterator[FailingProxy]:
        """Serve in a thread until the block ends."""
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def proxy(mediawiki: MediaWiki) -> Iterator[FailingProxy]:
    with FailingProxy(mediawiki, BROKEN).serving() as server:
        yield server


def _source(tmp_path: Path, proxy: FailingProxy) -> Path:
    return write_source(
        tmp_path / f"{SOURCE_NAME}.yaml",
        proxy.url,
        [BROKEN, SEED],
        max_depth=1,
        settings={**FAST_SETTINGS, "MEDIAWIKI_TITLES_PER_REQUEST": 1},
    )


@pytest.mark.parametrize("crawl_db", ["sqlite", "postgresql"], indirect=True)
def test_a_permanent_failure_is_tried_max_attempts_times_with_growing_gaps_then_failed(
    mediawiki: MediaWiki, proxy: FailingProxy, tmp_path: Path, crawl_db: Database
) -> None:
    lake = tmp_path / "lake"
    args = ["-s", "HOLOCRON_MAX_ATTEMPTS=3", "-s", f"HOLOCRON_RETRY_BACKOFF={BACKOFF}"]
    result = run_crawl(_source(tmp_path, proxy), lake, crawl_db, tmp_path / "crawl.log", args=args)
    result.check(0)

    # Exactly max_attempts fetches, each gap at least half its nominal delay (2 s, then 4 s).
    times = proxy.times(BROKEN)
    assert len(times) == 3, result.tail()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    print(f"gaps between the attempts of {BROKEN!r}: {[round(g, 2) for g in gaps]} s")
    assert gaps[0] >= BACKOFF / 2, gaps
    assert gaps[1] >= BACKOFF, gaps
    assert all(gap < 4 * BACKOFF + 10 for gap in gaps), gaps  # not left to a later run

    items = {row["resource_id"]: row for row in crawl_db.work_items()}
    broken = items.pop(BROKEN)
    assert (broken["status"], broken["attempt"], broken["next_retry_at"]) == ("failed", 3, None)
    assert broken["error_message"].startswith(f"HTTP 404 from {proxy.url}")

    # The rest of the crawl is unaffected: every page within max_depth archived once.
    expected = expect_crawl(mediawiki, [SEED], 1)
    assert {t: r["status"] for t, r in items.items()} == {
        t: e.status for t, e in expected.items.items()
    }
    assert_records_match(expected, crawl_db, lake)
    others = [titles for _, titles in proxy.seen if titles != BROKEN]
    assert len(others) == len(set(others)), "a page was fetched twice"
    assert result.stat("holocron/work_items/retry_scheduled") == 2
    assert result.stat("holocron/work_items/failed") == 1
    [run] = crawl_db.runs()
    assert (run["status"], run["items_failed"]) == ("finished", 1)
    assert "scheduled retries" in result.log


def test_retries_beyond_the_wait_limit_end_the_crawl_with_a_line_saying_when(
    mediawiki: MediaWiki, proxy: FailingProxy, tmp_path: Path, crawl_db: Database
) -> None:
    args = [
        "-s",
        "HOLOCRON_MAX_ATTEMPTS=3",
        "-s",
        "HOLOCRON_RETRY_BACKOFF=600",
        "-s",
        "HOLOCRON_RETRY_WAIT_MAX=5",
    ]
    source = _source(tmp_path, proxy)
    result = run_crawl(source, tmp_path / "lake", crawl_db, tmp_path / "crawl.log", args=args)
    result.check(0)
    assert len(proxy.times(BROKEN)) == 1
    broken = next(r for r in crawl_db.work_items() if r["resource_id"] == BROKEN)
    assert (broken["status"], broken["attempt"]) == ("pending", 1)
    assert broken["next_retry_at"] is not None
    assert broken["error_message"].startswith("HTTP 404 from ")
    assert "1 failed work items are scheduled for another attempt, the first at " in result.log, (
        result.tail()
    )
    assert "run the crawl again after that time to try them" in result.log
    assert result.stat("holocron/frontier/retries_left_scheduled") == 1
    [run] = crawl_db.runs()
    assert (run["status"], run["items_failed"]) == ("finished", 0)
