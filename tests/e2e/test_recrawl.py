"""``-a recrawl=changed`` against a real MediaWiki whose pages are edited and deleted, when the
wiki's recent changes do not reach back to the source's sync point: the full ``prop=info`` pass
(tests/e2e/test_recrawl_feeds.py: the refresh by change feeds).

The test edits and deletes pages, so it runs on a wiki of its own (not the session's).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb
import pytest
import sqlalchemy as sa
import yaml
from warcio.archiveiterator import ArchiveIterator

from tests.e2e.crawl_helpers import (
    REPO_ROOT,
    SOURCE_NAME,
    Database,
    read_lake,
    run_crawl,
    write_source,
)
from tests.e2e.test_discovery import Wiki
from tests.e2e.wiki import MEDIAWIKI_DIR, MediaWiki, missing_requirements

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SEED = "Darth Vader"
PROBE = 1  # the request asking whether recent changes reach back to the sync point
FEED_REQUESTS = 2  # the probe and one page of the change feeds
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
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MW_QUIET", "0")  # every request in server.log (the WARC test counts)
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


def _outdate_sync_point(db: Database) -> None:
    """Move the source's sync point to before the wiki's oldest recent change (2008): the
    feeds no longer reach back to it, as after a long pause on a wiki keeping 90 days."""
    engine = sa.create_engine(db.url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            points = db.tables.sync_points
            outdated = sa.update(points).values(feed_timestamp=datetime(2000, 1, 1))
            assert conn.execute(outdated).rowcount
    finally:
        engine.dispose()


def _edit(wiki: MediaWiki, title: str, summary: str, text: str) -> None:
    """A new revision of ``title`` by Admin (``edit.php``)."""
    _maintenance(wiki, "edit.php", "--user", "Admin", "--summary", summary, title, stdin=text)


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
        _edit(own_wiki, title, "recrawl test", f"Edited by the recrawl test ({n}).\n")
    listfile = tmp_path / "delete.txt"
    listfile.write_text(f"{deleted}\n", encoding="utf-8")
    _maintenance(own_wiki, "deleteBatch.php", "--u", "Admin", "--r", "recrawl test", str(listfile))
    _outdate_sync_point(db)

    result = run_crawl(source, lake, db, tmp_path / "recrawl.log", args=RECRAWL_ARGS).check()
    info_requests = math.ceil(len(completed) / TITLES_PER_INFO_REQUEST)
    assert result.stat("holocron/recrawl/fallback") == 1
    # The probe, the checks and one refetch query.
    assert result.stat("downloader/request_count") == PROBE + info_requests + 1
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

    # Right after, nothing changed: the pass moved the sync point, the feeds reach back to it
    # (its edits and deletion are not applied again), no record, no file.
    again = run_crawl(source, lake, db, tmp_path / "recrawl2.log", args=RECRAWL_ARGS).check()
    assert again.stat("holocron/recrawl/fallback") == 0
    assert again.stat("downloader/request_count") == FEED_REQUESTS
    assert again.stat("holocron/recrawl/changed") == 0
    assert again.stat("holocron/recrawl/deleted") == 0
    run3 = db.runs()[-1]["run_id"]
    assert [r for r in db.records() if r["run_id"] == run3] == []
    assert len(read_lake(lake)) == len(files_before) + 4


ALL_RESOURCES = ["page", "html", "revisions", "info"]


def test_recrawl_changed_refreshes_every_resource_of_the_edited_pages(
    own_wiki: MediaWiki, tmp_path: Path
) -> None:
    db = Database("sqlite", f"sqlite:///{tmp_path / 'state.db'}", None)
    lake = tmp_path / "lake"
    source = write_source(tmp_path / "e2ewiki.yaml", own_wiki.api_url, [SEED], max_depth=1)
    document = yaml.safe_load(source.read_text("utf-8"))
    document["resources"] = ALL_RESOURCES
    source.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), "utf-8")
    run_crawl(source, lake, db, tmp_path / "crawl.log").check()
    items_before = {row["id"]: row for row in db.work_items()}
    assert {row["status"] for row in items_before.values()} <= {"completed", "skipped"}
    pages = sorted(
        (
            row
            for row in items_before.values()
            if row["resource_type"] == "page" and row["status"] == "completed"
        ),
        key=lambda row: row["id"],
    )
    by_type = Counter(r["resource_type"] for r in db.records())
    assert by_type == {kind: len(pages) for kind in ALL_RESOURCES}
    files_before = {f.path for f in read_lake(lake)}

    # 3 pages at max_depth, all checked by the first info request (one claim takes them all).
    edited = [row["resource_id"] for row in pages[:TITLES_PER_INFO_REQUEST] if row["depth"] == 1]
    edited = edited[-3:]  # not the first test's (that one's edits are on this wiki too)
    for n, title in enumerate(edited):
        _edit(
            own_wiki,
            title,
            "recrawl resources test",
            f"Edited by the resources recrawl test ({n}).\n",
        )
    _outdate_sync_point(db)

    result = run_crawl(source, lake, db, tmp_path / "recrawl.log", args=RECRAWL_ARGS).check()
    assert result.stat("holocron/recrawl/checked") == len(pages)
    assert result.stat("holocron/recrawl/changed") == 3
    assert result.stat("holocron/recrawl/deleted") == 0
    assert result.stat("holocron/frontier/requeued") == 3 * len(ALL_RESOURCES)
    info_requests = math.ceil(len(pages) / TITLES_PER_INFO_REQUEST)
    # The probe, the checks, then one page query, 3 parses, 3 histories and one info query (two
    # if the frontier claims the requeued items in two batches).
    assert result.stat("downloader/request_count") - PROBE - info_requests in (8, 9)
    run2 = db.runs()[-1]["run_id"]
    new_records = [r for r in db.records() if r["run_id"] == run2]
    assert sorted((r["resource_type"], r["resource_id"]) for r in new_records) == sorted(
        (kind, title) for kind in ALL_RESOURCES for title in edited
    )
    items_after = {row["id"]: row for row in db.work_items()}
    versions = {
        row["resource_id"]: int(row["version"])
        for row in items_after.values()
        if row["resource_type"] == "page" and row["resource_id"] in edited
    }
    for record in new_records:
        payload = json.loads(record["payload"])
        title, kind = record["resource_id"], record["resource_type"]
        if kind in ("page", "html"):
            assert "Edited by the resources recrawl test" in record["payload"], kind
        if kind == "html":
            assert payload["revid"] == versions[title]
        elif kind == "revisions":
            assert payload["revisions"][-1]["revid"] == versions[title]
            assert payload["revisions"][-1]["comment"] == "recrawl resources test"
        else:
            assert payload["lastrevid"] == versions[title], kind
    assert set(items_after) == set(items_before)  # nothing seeded, nothing discovered
    changed = {i for i, row in items_after.items() if row["resource_id"] in edited}
    assert {items_after[i]["status"] for i in changed} == {"completed"}
    assert all(items_after[i]["content_hash"] != items_before[i]["content_hash"] for i in changed)
    untouched = {
        i: (row["status"], row["version"], row["content_hash"])
        for i, row in items_after.items()
        if i not in changed
    }
    assert untouched == {
        i: (row["status"], row["version"], row["content_hash"])
        for i, row in items_before.items()
        if i in untouched
    }
    new_files = [f for f in read_lake(lake) if f.path not in files_before]
    assert len(new_files) == 3 * len(ALL_RESOURCES)


def test_recrawl_changed_refreshes_edited_categories_templates_and_files(
    own_wiki: MediaWiki, tmp_path: Path
) -> None:
    """Category, template and file pages are recorded under their own types; their versions
    are checked like a page's, and only the edited ones are fetched again."""
    db = Database("sqlite", f"sqlite:///{tmp_path / 'state.db'}", None)
    lake = tmp_path / "lake"
    wiki = Wiki(own_wiki)
    _, seed_key = wiki.seed()
    source = write_source(
        tmp_path / "e2ewiki.yaml",
        own_wiki.api_url,
        [own_wiki.title(0, seed_key), "File:Holocron.png"],
        max_depth=1,
        namespaces=[0, 6, 10, 14],
        discovery_extra={"links": False, "categories": True, "templates": True},
    )
    run_crawl(source, lake, db, tmp_path / "crawl.log").check()
    completed = [
        row
        for row in db.work_items()
        if row["status"] == "completed" and row["resource_type"] != "listing"
    ]
    by_type = Counter(row["resource_type"] for row in completed)
    assert by_type["category"] >= 2
    assert by_type["template"] >= 2
    assert by_type["file"] == 1
    assert all(row["version"] and row["version"].isdigit() for row in completed)
    edited = {
        kind: next(row["resource_id"] for row in completed if row["resource_type"] == kind)
        for kind in ("category", "template", "file")
    }
    for kind, title in edited.items():
        _edit(
            own_wiki, title, "recrawl types test", f"Edited by the recrawl types test ({kind}).\n"
        )
    _outdate_sync_point(db)

    result = run_crawl(source, lake, db, tmp_path / "recrawl.log", args=RECRAWL_ARGS).check()
    assert result.stat("holocron/recrawl/checked") == len(completed)
    assert result.stat("holocron/recrawl/changed") == 3
    info_requests = math.ceil(len(completed) / TITLES_PER_INFO_REQUEST)
    # One page query per resource type (the claim groups its items by type).
    assert result.stat("downloader/request_count") == PROBE + info_requests + 3
    run2 = db.runs()[-1]["run_id"]
    new_records = [r for r in db.records() if r["run_id"] == run2]
    assert sorted((r["resource_type"], r["resource_id"]) for r in new_records) == sorted(
        edited.items()
    )
    for record in new_records:
        assert "Edited by the recrawl types test" in record["payload"]
    [file_record] = [r for r in new_records if r["resource_type"] == "file"]
    assert json.loads(file_record["payload"])["imageinfo"][0]["mime"] == "image/png"


# ----------------------------------------------------------- WARC, run manifest, Parquet export

SERVED_RE = re.compile(r"\[\d{3}\]: (GET|POST) /")


def _served(wiki: MediaWiki) -> int:
    """The requests the wiki's server has answered so far (its log, MW_QUIET=0)."""
    return len(SERVED_RE.findall((wiki.root / "server.log").read_text("utf-8", "replace")))


def _export(db: Database, lake: Path, out: Path, log: Path) -> str:
    cmd = [
        sys.executable,
        "-m",
        "scrapy",
        "lake_export",
        "-a",
        f"source={SOURCE_NAME}",
        "--output",
        str(out),
        "-s",
        f"HOLOCRON_LAKE_DIR={lake}",
        *db.settings_args(),
    ]
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    log.write_text(proc.stdout + proc.stderr, "utf-8")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _parquet_rows(out: Path) -> list[dict[str, Any]]:
    con = duckdb.connect()
    try:
        cursor = con.execute(
            "SELECT * FROM read_parquet(?, hive_partitioning = true) ORDER BY ingest_id",
            [str(out / "**" / "*.parquet")],
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    finally:
        con.close()


def test_warc_manifest_and_incremental_parquet_export_of_an_edited_wiki(
    own_wiki: MediaWiki, tmp_path: Path
) -> None:
    db = Database("sqlite", f"sqlite:///{tmp_path / 'state.db'}", None)
    lake, warcs, out = tmp_path / "lake", tmp_path / "warc", tmp_path / "parquet"
    source = write_source(tmp_path / "e2ewiki.yaml", own_wiki.api_url, [SEED], max_depth=1)
    served_before = _served(own_wiki)
    warc_args = ["-s", f"HOLOCRON_WARC_DIR={warcs}", "-s", "HOLOCRON_WARC_MAX_BYTES=50000"]
    result = run_crawl(source, lake, db, tmp_path / "crawl.log", args=warc_args).check()

    # WARC: every exchange, valid files (warcio check), rolled, none left open.
    served = _served(own_wiki) - served_before
    files = sorted(warcs.iterdir())
    assert files, "no WARC file written"
    assert all(f.name.endswith(".warc.gz") for f in files), [f.name for f in files]
    assert len(files) > 1  # rolled at HOLOCRON_WARC_MAX_BYTES
    check = subprocess.run(
        [sys.executable, "-m", "warcio.cli", "check", "-v", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    kinds: Counter[str] = Counter()
    concurrent: set[str] = set()
    response_ids: set[str] = set()
    for path in files:
        with path.open("rb") as f:
            for record in ArchiveIterator(f):
                kinds[record.rec_type] += 1
                if record.rec_type == "response":
                    response_ids.add(record.rec_headers.get_header("WARC-Record-ID"))
                    assert record.http_headers.get_statuscode() == "200"
                    assert record.content_stream().read()
                elif record.rec_type == "request":
                    concurrent.add(record.rec_headers.get_header("WARC-Concurrent-To"))
    assert kinds["warcinfo"] == len(files)
    assert kinds["response"] == served == result.stat("downloader/response_count")
    assert concurrent == response_ids  # every response has its request, linked

    # The run's manifest: every record of the run, with its file and hash.
    [run] = db.runs()
    manifest = json.loads((lake / "_runs" / f"{run['run_id']}.json").read_text("utf-8"))
    assert manifest["run"]["status"] == "finished"
    records = db.records()
    assert manifest["records"]["count"] == len(records)
    assert manifest["records"]["by_resource_type"] == dict(
        Counter(r["resource_type"] for r in records)
    )
    listed = (lake / manifest["records"]["file"]).read_bytes()
    assert hashlib.sha256(listed).hexdigest() == manifest["records"]["sha256"]
    entries = [json.loads(line) for line in listed.splitlines()]
    assert sorted(e["ingest_id"] for e in entries) == sorted(r["ingest_id"] for r in records)
    for entry in entries:
        document = json.loads((lake / entry["file"]).read_text("utf-8"))
        assert document["hash_sha256"] == entry["hash_sha256"]

    # The export: one row per record, each payload the lake file's.
    first = _export(db, lake, out, tmp_path / "export.log")
    assert f"exported {len(records)} records" in first
    rows = _parquet_rows(out)
    assert [r["ingest_id"] for r in rows] == sorted(r["ingest_id"] for r in records)
    lake_payloads = {f.document["hash_sha256"]: f.payload for f in read_lake(lake)}
    for row in rows:
        assert json.loads(row["payload"]) == lake_payloads[row["hash_sha256"]]
        assert row["source_name"] == SOURCE_NAME
    assert len(list(out.rglob("*.parquet"))) < len(rows)  # not one file per record

    # Three edits, a refresh, a second export: exactly the three new records.
    completed = sorted(
        (w for w in db.work_items() if w["status"] == "completed" and w["depth"] == 1),
        key=lambda w: w["id"],
    )
    edited = [w["resource_id"] for w in completed[-3:]]
    for n, title in enumerate(edited):
        _edit(own_wiki, title, "export test", f"Edited by the export test ({n}).\n")
    run_crawl(source, lake, db, tmp_path / "recrawl.log", args=RECRAWL_ARGS).check()
    second = _export(db, lake, out, tmp_path / "export2.log")
    assert "exported 3 records" in second
    rows = _parquet_rows(out)
    assert len(rows) == len(records) + 3
    assert sorted(r["resource_id"] for r in rows[-3:]) == sorted(edited)
    assert all("Edited by the export test" in r["payload"] for r in rows[-3:])
