"""Loopback servers that behave as hostile sources do (issue 10), for tests/e2e/test_hostile.py.

:class:`HostileWiki` is a MediaWiki Action API (``action=query``, ``formatversion=2``) whose
answer depends on the title asked for (one title per request):

* ``Good N``: a complete page;
* ``Same continue``: its links go on for ever with the same ``plcontinue``;
* ``New continue``: its links go on for ever with ever-new ``plcontinue`` tokens;
* ``Redirect N``: a redirect to ``Redirect N+1`` (ever-new titles);
* ``Forged log``, ``Warned 1``: an error and a warning whose text holds a log line and ANSI
  escapes; ``Wrong shape``, ``Wrong continue``: answers of the wrong shape;

and its ``list=allpages`` answers the same ``apcontinue`` for ever. Every request is counted.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: What a hostile server would have the crawl's log say.
FORGED_LINE = "2026-01-01 00:00:00 [scrapy.core.engine] INFO: Spider closed (finished)"


def _page(title: str, pageid: int, **extra: Any) -> dict[str, Any]:
    return {
        "pageid": pageid,
        "ns": 0,
        "title": title,
        "lastrevid": pageid,
        "revisions": [{"revid": pageid, "slots": {"main": {"content": f"text of {title}"}}}],
        **extra,
    }


class HostileWiki:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()  # title (or listing module) -> requests
        self._lock = threading.Lock()
        wiki = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                body = json.dumps(wiki.answer(query)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.api_url = f"http://127.0.0.1:{self._server.server_address[1]}/w/api.php"

    def start(self) -> HostileWiki:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, query: dict[str, str]) -> dict[str, Any]:
        if query.get("list") == "allpages":
            self._count("allpages")
            members = [{"ns": 0, "title": "Good 1"}]
            cont = {"apcontinue": "Same", "continue": "-||"}
            return {"continue": cont, "query": {"allpages": members}}
        title = query.get("titles", "")
        self._count(title)
        if title == "Same continue":
            links = [{"ns": 0, "title": "Good 2"}]
            cont = {"plcontinue": "7|0|Same", "continue": "||"}
            return {"continue": cont, "query": {"pages": [_page(title, 7, links=links)]}}
        if title == "New continue":
            n = int(query.get("plcontinue", "8|0|0").rsplit("|", 1)[1]) + 1
            links = [{"ns": 0, "title": f"Link {n}-{i}"} for i in range(200)]
            cont = {"plcontinue": f"8|0|{n}", "continue": "||"}
            return {"continue": cont, "query": {"pages": [_page(title, 8, links=links)]}}
        if title.startswith("Redirect "):
            target = f"Redirect {int(title.split()[1]) + 1}"
            redirects = [{"from": title, "to": target}]
            page = _page(target, 100 + int(target.split()[1]))
            return {"batchcomplete": True, "query": {"redirects": redirects, "pages": [page]}}
        if title == "Forged log":  # an error whose text would forge log lines
            info = f"boom\n{FORGED_LINE}\x1b[2J\u202e"
            return {"error": {"code": "evil\nerror", "info": info}}
        if title == "Wrong shape":
            return {"batchcomplete": True, "query": {"pages": "oops"}}
        if title == "Wrong continue":
            return {"continue": "more", "query": {"pages": [_page(title, 9)]}}
        if title == "Warned 1":
            warnings = {"main": {"warnings": f"careful\n{FORGED_LINE}\x1b[31m"}}
            page = _page(title, 10_001)
            return {"batchcomplete": True, "warnings": warnings, "query": {"pages": [page]}}
        number = int(title.split()[-1]) if title.split()[-1].isdigit() else 0
        return {"batchcomplete": True, "query": {"pages": [_page(title, 10_000 + number)]}}

    def _count(self, key: str) -> None:
        with self._lock:
            self.requests[key] += 1


BIG_BODY = 2_000_000  # bytes of a /big/N answer


class HostileSite:
    """An HTTP JSON API whose listings never end and whose resources redirect for ever:

    * ``/cycle/works?cursor=C``: ``json_next`` cursors ``*`` -> ``A`` -> ``B`` -> ``A`` …;
    * ``/self/works``: a ``Link: rel=next`` pointing at itself;
    * ``/ignore/works?page=N``: ``page_number`` ignored, the same page every time;
    * ``/r/N``: a 302 to ``/r/N+1``; ``/ok``: a JSON resource; ``/big/N``: a JSON resource of
      :data:`BIG_BODY` bytes;
    * ``/sec/…``: a listing that 302s to another host (``localhost``: this server under another
      name), whose ``next`` link comes back, and records that echo the URL they were asked with
      (a source's ``api_key`` with it) in their ids, links and text.

    Every request is kept (method, path with query, headers).
    """

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with site._lock:
                    site.seen.append(("GET", self.path, dict(self.headers.items())))
                host = self.headers.get("Host", "")
                status, headers, body = site.answer(self.path, host)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> HostileSite:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def hits(self, prefix: str) -> int:
        with self._lock:
            return sum(1 for _, path, _ in self.seen if path.startswith(prefix))

    @property
    def other_url(self) -> str:
        """This server under another host name."""
        return self.url.replace("127.0.0.1", "localhost")

    def answer(self, target: str, host: str = "") -> tuple[int, dict[str, str], bytes]:
        parts = urllib.parse.urlsplit(target)
        if parts.path.startswith("/sec/"):
            return self.secret_answer(parts, f"http://{host}")
        query = dict(urllib.parse.parse_qsl(parts.query))
        json_type = {"Content-Type": "application/json"}
        if parts.path == "/robots.txt":
            return 404, {}, b""
        if parts.path == "/cycle/works":
            cursor = query.get("cursor", "*")
            following = {"*": "A", "A": "B", "B": "A"}.get(cursor, "A")
            data = {"results": [{"id": f"c{cursor}"}], "meta": {"next": following}}
            return 200, json_type, json.dumps(data).encode()
        if parts.path == "/self/works":
            headers = {**json_type, "Link": '</self/works>; rel="next"'}
            return 200, headers, json.dumps({"results": [{"id": "s"}]}).encode()
        if parts.path == "/ignore/works":
            return 200, json_type, json.dumps({"results": [{"id": "i"}]}).encode()
        if parts.path.startswith("/r/"):
            n = int(parts.path.rsplit("/", 1)[1])
            return 302, {"Location": f"/r/{n + 1}"}, b""
        if parts.path == "/ok":
            return 200, json_type, json.dumps({"id": "ok"}).encode()
        if parts.path.startswith("/big/"):
            n = parts.path.rsplit("/", 1)[1]
            filler = "x" * (BIG_BODY - 40)
            return 200, json_type, json.dumps({"id": f"big{n}", "text": filler}).encode()
        return 404, {}, b""

    def secret_answer(
        self, parts: urllib.parse.SplitResult, here: str
    ) -> tuple[int, dict[str, str], bytes]:
        """The ``/sec/`` endpoints; every URL they name echoes the query they were asked with."""
        echo = f"?{parts.query}" if parts.query else ""
        json_type = {"Content-Type": "application/json"}
        if parts.path == "/sec/a":  # moved to another host
            return 302, {"Location": f"{self.other_url}/sec/b{echo}"}, b""
        if parts.path == "/sec/b":  # the next page is back home, with the query echoed
            data = {
                "results": [{"id": f"{self.other_url}/sec/item/2{echo}"}],
                "next": f"{self.url}/sec/c{echo}",
            }
            return 200, json_type, json.dumps(data).encode()
        if parts.path == "/sec/c":
            data = {
                "results": [{"id": f"{self.url}/sec/item/1{echo}"}],
                "next": f"{self.other_url}/sec/d{echo}",
            }
            return 200, json_type, json.dumps(data).encode()
        if parts.path == "/sec/d":
            return 200, json_type, json.dumps({"results": [], "next": None}).encode()
        if parts.path.startswith("/sec/item/"):
            data = {"self": f"{here}{parts.path}{echo}", "note": f"you asked for {echo}"}
            return 200, json_type, json.dumps(data).encode()
        return 404, {}, b""
