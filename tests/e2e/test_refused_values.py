"""End to end on PostgreSQL (and SQLite, which enforces no length but cannot encode a lone
surrogate either): one real ``scrapy crawl http`` meets values its columns cannot hold as they
are (issue 9 finding 2, issue 10 section 2): a discovered URL of 5,000
characters, a resource with a 200-character ``ETag``, one whose ``name`` (its ``resource_id``)
is 2,001 characters, names with a NUL and with a lone surrogate; and good resources between
them. Before ``holocron_scrapy.store.limits`` and the split batches, the first such value failed its
whole write for ever ("Could not write crawl state ... will retry", every second) and the crawl
never ended. Now it ends: the good resources are recorded, the bad values are stored in their
fitted form (or, for the URL that cannot be requested, failed with the reason), and
``scrapy ingest_verify`` finds the lake and the database in order.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.e2e.audit import ingest_verify
from tests.e2e.crawl_helpers import read_lake
from tests.e2e.test_http_crawl import FAST, USER_AGENT, crawl

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.e2e.crawl_helpers import Database

LONG_PATH = "/api/item/long?pad=" + "p" * 4983  # with http://127.0.0.1:PORT: 5,000+ characters
LONG_ETAG = '"' + "e" * 198 + '"'  # 200 characters
LONG_NAME = "N" * 2001
#: path -> (the resource's name, extra response headers); the body is {"name": ...}
RESOURCES: dict[str, tuple[str, dict[str, str]]] = {
    "/api/item/good1": ("Good one", {"ETag": '"g1"'}),
    "/api/item/etag": ("Long ETag", {"ETag": LONG_ETAG}),
    "/api/item/good2": ("Good two", {}),
    "/api/item/longname": (LONG_NAME, {}),
    "/api/item/nul": ("Nul\x00name", {}),
    "/api/item/lone": ("Lone \ud800 surrogate", {}),
    "/api/item/good3": ("Good three", {}),
    LONG_PATH: ("never asked for", {}),
}


class HostileValues:
    """``/api/items`` links to every resource of :data:`RESOURCES` (the long URL among them)."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.hits.append(self.path)
                path = self.path.split("&mailto=")[0].split("?mailto=")[0]
                headers: dict[str, str] = {}
                if path == "/api/items":
                    data: Any = {"name": "index", "links": list(RESOURCES)}
                elif path in RESOURCES:
                    name, headers = RESOURCES[path]
                    data = {"name": name}
                else:
                    self.send_error(404)
                    return
                # ensure_ascii: the lone surrogate goes out as the JSON escape "\ud800".
                body = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site() -> Iterator[HostileValues]:
    server = HostileValues()
    yield server
    server.stop()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(
    "crawl_db",
    [pytest.param("postgresql", marks=pytest.mark.postgres), "sqlite"],
    indirect=True,
)
def test_values_too_long_or_unencodable_end_in_one_crawl(
    site: HostileValues, tmp_path: Path, crawl_db: Database
) -> None:
    source = tmp_path / "hostile.yaml"
    document = {
        "name": "hostile",
        "type": "http",
        "base_url": f"{site.url}/api/",
        "user_agent": USER_AGENT,
        "params": {"mailto": "tests@holocron.invalid"},
        "seeds": ["items"],
        "resource_type": "item",
        "resource_id": "name",
        "discovery": {"json_fields": [{"field": "links"}], "max_depth": 1},
        # The long URL is no request Scrapy would send anyway (URLLENGTH_LIMIT 2083).
        "settings": FAST,
    }
    source.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")

    result = crawl(source, tmp_path, crawl_db, "crawl.log").check()

    assert "Could not write crawl state" not in result.log
    assert result.stat("holocron/ingest/errors") == 0
    items = {row["resource_id"]: row for row in crawl_db.work_items()}
    long_url = f"{site.url}{LONG_PATH}"
    shortened = long_url[:1928] + "…sha256:" + sha256(long_url)
    assert len(long_url) > 5000
    refused = items.pop(shortened)
    assert refused["status"] == "failed"
    assert refused["error_message"] == (
        "URL longer than 2000 characters (work_items.resource_id): kept as a prefix and its "
        "sha256, it cannot be requested"
    )
    assert refused["attempt"] == 1
    assert not [hit for hit in site.hits if hit.startswith("/api/item/long?")]
    assert {row["status"] for row in items.values()} == {"completed"}
    assert set(items) == {f"{site.url}/api/items"} | {
        f"{site.url}{path}" for path in RESOURCES if path != LONG_PATH
    }
    version = items[f"{site.url}/api/item/etag"]["version"]
    assert version == f"sha256:{sha256('etag:' + LONG_ETAG)}"[:64]
    assert items[f"{site.url}/api/item/good1"]["version"] == 'etag:"g1"'

    rows = {row["resource_id"]: row for row in crawl_db.records()}
    fitted_name = LONG_NAME[:1928] + "…sha256:" + sha256(LONG_NAME)
    names = {
        "index",
        "Good one",
        "Long ETag",
        "Good two",
        fitted_name,
        "Nul\\x00name",
        "Lone \\ud800 surrogate",
        "Good three",
    }
    assert set(rows) == names
    assert json.loads(rows[fitted_name]["payload"]) == {"name": LONG_NAME}  # all of it
    assert json.loads(rows["Nul\\x00name"]["payload"]) == {"name": "Nul\x00name"}
    lone = rows["Lone \\ud800 surrogate"]["payload"]
    assert lone == '{"name": "Lone \\ud800 surrogate"}'  # the body as sent: the JSON escape
    lake = read_lake(tmp_path / "lake")
    assert {f.document["resource_id"] for f in lake} == names

    lake_dir = f"HOLOCRON_LAKE_DIR={tmp_path / 'lake'}"
    audit = ingest_verify(*crawl_db.settings_args(), "-s", lake_dir, "--source", "hostile")
    summary = audit.stdout.splitlines()[-1]
    assert "(records=8, work_items=9, pending=0, in_progress=0, completed=8, failed=1" in summary
    findings = dict(line.split(": ", 1) for line in audit.stdout.splitlines()[:-1])
    # Every row has its lake file and hash, every file its row, nothing is stuck. (Not
    # completed_without_record: on this branch ingest_verify joins work items to rows by
    # resource_id, which a source naming its records by a payload field cannot match; joined
    # by work_item_id, as the lake-rename branch h11a does, it is clean too.)
    for check in (
        "row_without_file",
        "file_hash_mismatch",
        "row_hash_mismatch",
        "file_without_row",
        "duplicate_rows",
        "stuck_in_progress",
    ):
        assert findings[check].startswith("OK "), audit.stdout
