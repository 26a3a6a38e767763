"""End to end: a JSON body is stored as the server sent it, byte for byte, and ``scrapy
ingest_verify`` audits a source whose records are named by a JSON field (``resource_id: id``).

The real ``scrapy crawl http`` against the local API of tests/e2e/http_servers.py, which answers
``/api/works/RAW`` with :data:`~tests.e2e.http_servers.RAW_BODY`: a number beyond a double's
precision and one beyond its range (``1e400``, which ``json.dumps`` writes as ``Infinity``, not
JSON), a duplicate key, a lone surrogate, an escape.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.e2e.audit import ingest_verify
from tests.e2e.crawl_helpers import read_lake
from tests.e2e.http_servers import RAW_BODY, WORK_HOST, TestSite
from tests.e2e.test_http_crawl import FAST, USER_AGENT, crawl

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.e2e.crawl_helpers import Database


@pytest.fixture
def api() -> Iterator[TestSite]:
    server = TestSite().start()
    yield server
    server.stop()


def raw_source(path: Path, site: TestSite) -> Path:
    document: dict[str, Any] = {
        "name": "raw",
        "type": "http",
        "base_url": f"{site.url}/api/",
        "user_agent": USER_AGENT,
        "seeds": ["works/RAW", "works/W5"],
        "resource_type": "work",
        "resource_id": "id",
        "discovery": {"max_depth": 0},
        "settings": FAST,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    return path


@pytest.mark.parametrize("crawl_db", ["sqlite", "postgresql"], indirect=True)
def test_a_json_body_is_stored_byte_for_byte_and_verifies(
    api: TestSite, tmp_path: Path, crawl_db: Database
) -> None:
    source = raw_source(tmp_path / "raw.yaml", api)
    crawl(source, tmp_path, crawl_db, "first.log").check()

    text = RAW_BODY.decode("utf-8")
    rows = {row["resource_id"]: row for row in crawl_db.records()}
    assert set(rows) == {f"{WORK_HOST}/RAW", f"{WORK_HOST}/W5"}
    row = rows[f"{WORK_HOST}/RAW"]
    assert row["payload"] == text
    assert row["hash_sha256"] == hashlib.sha256(RAW_BODY).hexdigest()
    [lake_file] = [f for f in read_lake(tmp_path / "lake") if "RAW" in f.path.name]
    assert lake_file.path.read_bytes().endswith(b'\n "payload": ' + RAW_BODY + b"\n}\n")
    assert lake_file.document["payload"]["dup"] == 2  # the file is JSON; a parser picks one

    # The records are named by their id field, the work items by their URL: joined by
    # work_item_id, every completed item has its record.
    audit = ingest_verify(
        *crawl_db.settings_args(),
        *("-s", f"HOLOCRON_LAKE_DIR={tmp_path / 'lake'}", "--source", "raw"),
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "records=2, " in audit.stdout.splitlines()[-1]
