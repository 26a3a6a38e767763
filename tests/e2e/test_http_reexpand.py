"""End to end: an HTTP resource found again by a shorter path is expanded from its stored
record, not fetched again (an OpenAlex-like API: a work first reached as a reference, then
listed as a seed).

Run 1 seeds ``works/W1`` (``max_depth`` 1): W1 at depth 0, its references W2 and W13 at depth
1, where their own references are not followed. Run 2 adds the seed ``works/W2``: W2 is now at
depth 0, so its references (W1, FLAKY) must be reached at depth 1 — read from W2's record, with
no second request for W2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.e2e.http_servers import TestSite
from tests.e2e.test_http_crawl import FAST, USER_AGENT, crawl, items

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.e2e.crawl_helpers import Database

W2 = "/api/works/W2?mailto=tests%40holocron.invalid"


@pytest.fixture
def api() -> Iterator[TestSite]:
    server = TestSite().start()
    yield server
    server.stop()


def works_source(path: Path, site: TestSite, seeds: list[str]) -> Path:
    document: dict[str, Any] = {
        "name": "refs",
        "type": "http",
        "base_url": f"{site.url}/api/",
        "user_agent": USER_AGENT,
        "params": {"mailto": "tests@holocron.invalid"},
        "seeds": seeds,
        "resource_type": "work",
        "resource_id": "id",
        "discovery": {
            "json_fields": [{"field": "referenced_works", "url": "works/{last_segment}"}],
            "max_depth": 1,
        },
        "settings": FAST,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    return path


def test_a_work_found_closer_is_expanded_from_its_record(
    api: TestSite, tmp_path: Path, crawl_db: Database
) -> None:
    first = works_source(tmp_path / "refs.yaml", api, ["works/W1"])
    crawl(first, tmp_path, crawl_db, "first.log").check()
    depths = {key.rsplit("/", 1)[1]: row["depth"] for key, row in items(crawl_db).items()}
    assert depths == {"W1": 0, "W2": 1, "W13": 1}
    assert api.hits["GET", W2] == 1

    second = works_source(tmp_path / "refs.yaml", api, ["works/W1", "works/W2"])
    result = crawl(second, tmp_path, crawl_db, "second.log").check()
    state = {key.rsplit("/", 1)[1]: row for key, row in items(crawl_db).items()}
    assert {key: row["depth"] for key, row in state.items()} == {
        "W1": 0,
        "W2": 0,
        "W13": 1,
        "FLAKY": 1,  # W2's reference, now within max_depth
    }
    assert {row["status"] for row in state.values()} == {"completed"}
    assert api.hits["GET", W2] == 1  # not fetched again
    assert result.stat("holocron/frontier/reexpanded") == 1
    assert result.stat("holocron/records/written") == 1  # FLAKY
    assert len(crawl_db.records()) == 4
