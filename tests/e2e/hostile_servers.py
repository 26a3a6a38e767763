"""Loopback servers that behave as hostile sources do (issue 10), for tests/e2e/test_hostile.py.

:class:`HostileWiki` is a MediaWiki Action API (``action=query``, ``formatversion=2``) whose
answer depends on the title asked for (one title per request):

* ``Good N``: a complete page;
* ``Same continue``: its links go on for ever with the same ``plcontinue``;
* ``New continue``: its links go on for ever with ever-new ``plcontinue`` tokens;
* ``Redirect N``: a redirect to ``Redirect N+1`` (ever-new titles);

and its ``list=allpages`` answers the same ``apcontinue`` for ever. Every request is counted.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
        number = int(title.split()[-1]) if title.split()[-1].isdigit() else 0
        return {"batchcomplete": True, "query": {"pages": [_page(title, 10_000 + number)]}}

    def _count(self, key: str) -> None:
        with self._lock:
            self.requests[key] += 1
