"""``-a recrawl=changed`` against a real MediaWiki whose pages are edited and deleted.

The test edits and deletes pages, so it runs on a wiki of its own (not the session's).
"""

from __future__ import annotations

import math
import os
import subprocess
from typing import TYPE_CHECKING

import pytest

from tests.e2e.crawl_helpers import (
    Database,
    read_lake,
    run_crawl,
    write_source,
)
from tests.e2e.wiki import MEDIAWIKI_DIR, MediaWiki, missing_requirements

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SEED = "Darth Vader"
# Fewer titles per request than the API's 50, so that the ~40 pages take several info requests.
TITLES_PER_INFO_REQUEST = 20
RECRAWL_ARGS = [
    "-a",
    "recrawl=changed",
    "-s",
    f"MEDIAWIKI_TITLES_PER_REQUEST={TITLES_PER_INFO_REQUEST}",
]


@pytest.fixture(scope="module")
def own_wiki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaWiki]:
    problems = missing_requirements()
    if problems:
        pytest.skip(f"MediaWiki test bed not available ({'; '.join(problems)})")
    wiki = MediaWiki.create(tmp_path_factory.mktemp("wiki"), 300)
    try:
        wiki.start()
        yield wiki
    finally:
        wiki.stop()


def _maintenance(wiki: MediaWiki, script: str, *args: str, stdin: str = "") -> None:
    env = {
        **os.environ,
        "MW_CONFIG_FILE": str(wiki.root / "LocalSettings.php"),
        "MW_INSTALL_PATH": str(MEDIAWIKI_DIR),
    }
    subprocess.run(
        ["php", str(MEDIAWIKI_DIR / "maintenance" / script), *args],
        input=stdin,
        text=True,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_recrawl_changed_fetches_only_edited_and_deleted_pages(
    own_wiki: MediaWiki, tmp_path: Path
) -> None:
    db = Database("sqlite", f"sqlite:///{tmp_path / 'state.db'}", None)
    lake = tmp_path / "lake"
    source = write_source(tmp_path / "e2ewiki.yaml", own_wiki.api_url, [SEED], max_depth=1)
    run_crawl(source, lake, db, tmp_path / "crawl.log").check()
    items_before = {row["id"]: row for row in db.work_items()}
    completed = sorted(
        (row for row in items_before.values() if row["status"] == "completed"),
        key=lambda row: row["id"],
    )
    assert len(completed) > TITLES_PER_INFO_REQUEST  # several info requests
    assert all(row["version"] and row["version"].isdigit() for row in completed)
    files_before = {f.path for f in read_lake(lake)}

    # Edit 3 pages at max_depth (their links are not followed) and delete one, all checked by
    # the first info request, so that one claim takes them all.
    first_batch = [row for row in completed[:TITLES_PER_INFO_REQUEST] if row["depth"] == 1]
    edited = [row["resource_id"] for row in first_batch[:3]]
    deleted = first_batch[3]["resource_id"]
    for n, title in enumerate(edited):
        _maintenance(
            own_wiki,
            "edit.php",
            "--user",
            "Admin",
            "--summary",
            "recrawl test",
            title,
            stdin=f"Edited by the recrawl test ({n}).\n",
        )
    listfile = tmp_path / "delete.txt"
    listfile.write_text(f"{deleted}\n", encoding="utf-8")
    _maintenance(own_wiki, "deleteBatch.php", "--u", "Admin", "--r", "recrawl test", str(listfile))

    result = run_crawl(source, lake, db, tmp_path / "recrawl.log", args=RECRAWL_ARGS).check()
    info_requests = math.ceil(len(completed) / TITLES_PER_INFO_REQUEST)
    assert result.stat("downloader/request_count") == info_requests + 1  # one refetch query
    assert result.stat("holocron/recrawl/checked") == len(completed)
    assert result.stat("holocron/recrawl/changed") == 3
    assert result.stat("holocron/recrawl/deleted") == 1
    assert result.stat("holocron/frontier/seeded") == 0
    run2 = db.runs()[-1]["run_id"]
    new_records = {r["resource_id"]: r for r in db.records() if r["run_id"] == run2}
    assert set(new_records) == {*edited, deleted}
    items_after = {row["id"]: row for row in db.work_items()}
    assert set(items_after) == set(items_before)  # nothing seeded, nothing discovered
    by_title = {row["resource_id"]: row for row in items_after.values()}
    for title in edited:
        assert by_title[title]["status"] == "completed"
        assert int(by_title[title]["version"]) > int(items_before[by_title[title]["id"]]["version"])
        assert "Edited by the recrawl test" in new_records[title]["payload"]
    assert (by_title[deleted]["status"], by_title[deleted]["version"]) == ("completed", "deleted")
    new_files = [f for f in read_lake(lake) if f.path not in files_before]
    assert sorted(f.document["resource_id"] for f in new_files) == sorted([*edited, deleted])
    [gone] = [f for f in new_files if f.document["resource_id"] == deleted]
    assert gone.payload["deleted"] is True
    assert gone.payload["missing"] is True
    assert gone.payload["lastrevid_before"] == int(items_before[by_title[deleted]["id"]]["version"])
    unchanged = {
        row["id"]: (row["status"], row["version"], row["content_hash"])
        for row in items_after.values()
        if row["resource_id"] not in {*edited, deleted}
    }
    assert unchanged == {
        i: (row["status"], row["version"], row["content_hash"])
        for i, row in items_before.items()
        if i in unchanged
    }

    # Right after, nothing changed: only the info requests, no record, no file.
    again = run_crawl(source, lake, db, tmp_path / "recrawl2.log", args=RECRAWL_ARGS).check()
    assert again.stat("downloader/request_count") == info_requests
    assert again.stat("holocron/recrawl/changed") == 0
    assert again.stat("holocron/recrawl/deleted") == 0
    run3 = db.runs()[-1]["run_id"]
    assert [r for r in db.records() if r["run_id"] == run3] == []
    assert len(read_lake(lake)) == len(files_before) + 4
