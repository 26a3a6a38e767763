"""A small local web site and JSON API for the end-to-end tests of the generic HTTP spider.

:class:`TestSite` is a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (a free port, in a thread)
that counts every request it answers (``hits``: (method, path with query)). It serves:

* ``/robots.txt``: ``Disallow: /site/private/`` for every agent;
* a JSON API like OpenAlex's: ``/api/works?per-page=N&cursor=C`` pages through works W1..W12
  (``meta.next_cursor`` null on the last page; ``listing_delay`` seconds per page), and
  ``/api/works/W<n>`` one work (W1..W14; ``id`` ``https://works.test/W<n>``; their
  ``referenced_works`` in :data:`REFERENCES`); ``/api/works/FLAKY`` answers 500 the first time,
  then the work; ``/api/works/BUSY`` answers 429 with ``Retry-After: 1`` the first time, then
  the work; ``/api/works/BAD`` answers invalid JSON as ``application/json``; a work has
  an ``ETag`` (its ``versions`` entry, which a test can raise) and a matching
  ``If-None-Match`` gets ``304 Not Modified``;
* ``/api/pages?page=N`` (N from 1): pages listing W1..W5 by URL, two a page (``items.url``),
  with a ``Link: <…>; rel="next"`` header up to page 3 and an empty page 4;
* ``POST /api/search`` (JSON body) and ``POST /api/form`` (form body): the body echoed back;
* an HTML site under ``/site/``: pages linking each other (:data:`PAGES`), ``/site/old``
  redirecting (301) to ``/site/new``, ``/site/private/secret`` (forbidden by robots.txt),
  ``/site/logout`` (denied by the source) and a link to another host.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

WORKS_LISTED = 12  # W1..W12 are listed by /api/works
WORK_HOST = "https://works.test"
PAGED_WORKS = 5  # W1..W5 are listed by /api/pages
#: work -> the works it references (W13, W14 are only referenced; W14 only by W13)
REFERENCES: dict[str, list[str]] = {
    "W1": ["W2", "W13"],
    "W2": ["W1", "FLAKY"],
    "W3": ["BAD"],
    "W4": ["BUSY"],
    "W13": ["W14"],
}
#: HTML pages under /site/ -> the hrefs they link to
PAGES: dict[str, list[str]] = {
    "/site/": ["a.html", "b.html", "old", "private/secret", "logout", "http://elsewhere.test/x"],
    "/site/a.html": ["b.html", "c.html#top", "/site/"],
    "/site/b.html": ["a.html"],
    "/site/c.html": ["d.html"],
    "/site/d.html": [],
    "/site/new": ["a.html"],
    "/site/logout": [],
    "/site/private/secret": [],
}
ROBOTS_TXT = b"User-agent: *\nDisallow: /site/private/\n"
#: valid JSON that json.loads -> json.dumps changes: a number beyond a double's precision, one
#: beyond its range, a duplicate key, a lone surrogate, an escape, spacing and key order
RAW_BODY = (
    b'{"id": "https://works.test/RAW", "zeta": 12345678901234567890.12345, "huge": 1e400,\n'
    b' "dup": 1, "dup": 2, "lone": "\\ud800", "escaped": "\\u00e9", "caf\xc3\xa9": [1.0, -0]}\n'
)


def work(name: str, version: int = 1) -> dict[str, Any]:
    refs = REFERENCES.get(name, [])
    return {
        "id": f"{WORK_HOST}/{name}",
        "title": f"Work {name}" + (f" (edition {version})" if version > 1 else ""),
        "referenced_works": [f"{WORK_HOST}/{ref}" for ref in refs],
    }


def html_page(path: str) -> bytes:
    links = "".join(f'<li><a href="{href}">{href}</a></li>' for href in PAGES[path])
    return f"<html><head><title>{path}</title></head><body><ul>{links}</ul></body></html>".encode()


class TestSite:
    """The site on ``url`` (``http://127.0.0.1:PORT``); ``start()``/``stop()``."""

    __test__ = False  # not a test class

    def __init__(self, *, listing_delay: float = 0.0) -> None:
        self.listing_delay = listing_delay
        self.versions: Counter[str] = Counter()  # work -> edition - 1
        self.hits: Counter[tuple[str, str]] = Counter()
        self.times: dict[str, list[float]] = {}  # path -> when it was asked for (monotonic)
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.count("GET", self.path)
                self._answer(*site.get(self.path, self.headers.get("If-None-Match")))

            def do_POST(self) -> None:
                site.count("POST", self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with site.lock:
                    site.bodies.append(body)
                self._answer(*site.post(self.path, body, self.headers.get("Content-Type", "")))

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # BrokenPipeError, ConnectionResetError: the crawl was killed
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> TestSite:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self, method: str, path: str) -> int:
        """Record a hit; how many times this request was seen before."""
        with self.lock:
            self.times.setdefault(path, []).append(time.monotonic())
            seen = self.hits[method, path]
            self.hits[method, path] += 1
            return seen

    def paths_hit(self, prefix: str = "") -> set[str]:
        return {path for (_, path) in self.hits if path.startswith(prefix)}

    def hits_of(self, path_prefix: str) -> int:
        return sum(n for (_, path), n in self.hits.items() if path.startswith(path_prefix))

    # -- answers -------------------------------------------------------------------------------

    def get(self, target: str, if_none_match: str | None) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        if path == "/robots.txt":
            return 200, {"Content-Type": "text/plain"}, ROBOTS_TXT
        if path == "/api/works":
            return self.listing(query)
        if path == "/api/pages":
            return self.numbered_page(int(query.get("page", ["1"])[0]))
        if path.startswith("/api/works/"):
            return self.work(path.removeprefix("/api/works/"), target, if_none_match)
        if path == "/site/old":
            return 301, {"Location": "/site/new", "Content-Type": "text/html"}, b"moved"
        if path in PAGES:
            return 200, {"Content-Type": "text/html; charset=utf-8"}, html_page(path)
        return 404, {"Content-Type": "text/plain"}, b"not found"

    def listing(self, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        time.sleep(self.listing_delay)
        per_page = int(query.get("per-page", ["5"])[0])
        cursor = query.get("cursor", ["*"])[0]
        start = 0 if cursor == "*" else int(cursor.removeprefix("c"))
        end = min(start + per_page, WORKS_LISTED)
        results = [work(f"W{n}") for n in range(start + 1, end + 1)]
        next_cursor = f"c{end}" if end < WORKS_LISTED else None
        data = {"meta": {"count": WORKS_LISTED, "next_cursor": next_cursor}, "results": results}
        return 200, {"Content-Type": "application/json"}, json.dumps(data).encode()

    def numbered_page(self, page: int) -> tuple[int, dict[str, str], bytes]:
        listed = range(2 * page - 1, min(2 * page, PAGED_WORKS) + 1)
        data = {"page": page, "items": [{"url": f"/api/works/W{n}"} for n in listed]}
        headers = {"Content-Type": "application/json"}
        if 2 * page < PAGED_WORKS:
            headers["Link"] = (
                f'</api/pages?page={page + 1}>; rel="next", </api/pages?page=1>; rel="first"'
            )
        return 200, headers, json.dumps(data).encode()

    def work(
        self, name: str, target: str, if_none_match: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        version = self.versions[name] + 1
        etag = f'"{name}-{version}"'
        json_type = {"Content-Type": "application/json; charset=utf-8", "ETag": etag}
        if name == "BAD":
            return 200, json_type, b'{"id": "https://works.test/BAD", "title": '
        if name == "RAW":
            return 200, json_type, RAW_BODY
        if name == "FLAKY" and self.hits["GET", target] == 1:
            return 500, {"Content-Type": "text/plain"}, b"oops"
        if name == "BUSY" and self.hits["GET", target] == 1:
            return 429, {"Content-Type": "text/plain", "Retry-After": "1"}, b"slow down"
        known = name in ("FLAKY", "BUSY") or (
            name[:1] == "W" and name[1:].isdigit() and int(name[1:]) <= 14
        )
        if not known:
            return 404, {"Content-Type": "text/plain"}, b"no such work"
        if if_none_match == etag:
            return 304, {"ETag": etag}, b""
        return 200, json_type, json.dumps(work(name, version)).encode()

    def post(self, path: str, body: bytes, content_type: str) -> tuple[int, dict[str, str], bytes]:
        path = urlsplit(path).path
        if path == "/api/search" and content_type.startswith("application/json"):
            answer = {"id": "search", "query": json.loads(body), "hits": 2}
        elif path == "/api/form":
            answer = {"id": "form", "form": {k: v[0] for k, v in parse_qs(body.decode()).items()}}
        else:
            return 404, {"Content-Type": "text/plain"}, b"no such endpoint"
        return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()
