"""Listings against the real MediaWiki: allpages, a category tree, a search, and a listing
killed in the middle that resumes from its saved cursor. Ground truth: the wiki's own tables
and API."""

from __future__ import annotations

import json
import subprocess
import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import yaml

from tests.e2e.crawl_helpers import (
    FAST_SETTINGS,
    REPO_ROOT,
    SOURCE_NAME,
    USER_AGENT,
    Database,
    assert_same_set,
    crawl_command,
    log_stat,
    read_lake,
    run_crawl,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.wiki import MediaWiki


def write_listing_source(
    path: Path,
    api_url: str,
    seeds: dict[str, Any],
    *,
    category_depth: int = 0,
    settings: dict[str, Any] | None = None,
) -> Path:
    document = {
        "name": SOURCE_NAME,
        "type": "mediawiki",
        "api_url": api_url,
        "user_agent": USER_AGENT,
        "seeds": seeds,
        "discovery": {"links": False, "category_depth": category_depth},
        "settings": {**FAST_SETTINGS, **(settings or {})},
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    return path


def recorded_titles(db: Database, lake: Path) -> set[str]:
    """The titles of the records; each page has exactly one row and one lake file."""
    rows = [json.loads(row["payload"])["title"] for row in db.records()]
    assert len(rows) == len(set(rows)), "pages recorded twice"
    files = [f.payload["title"] for f in read_lake(lake)]
    assert sorted(files) == sorted(rows)
    return set(rows)


def ns0_pages(mediawiki: MediaWiki) -> set[str]:
    return {
        mediawiki.title(0, key)
        for (key,) in mediawiki.sql(
            "SELECT page_title FROM page WHERE page_namespace = 0 AND page_is_redirect = 0"
        )
    }


def test_allpages_records_every_page_of_the_namespace(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    source = write_listing_source(tmp_path / "s.yaml", mediawiki.api_url, {"allpages": [0]})
    lake = tmp_path / "lake"
    run_crawl(source, lake, crawl_db, tmp_path / "crawl.log").check()
    assert_same_set(recorded_titles(crawl_db, lake), ns0_pages(mediawiki), "allpages records")
    listing = [row for row in crawl_db.work_items() if row["resource_type"] == "listing"]
    assert [(r["resource_id"], r["status"], r["cursor"]) for r in listing] == [
        ("allpages?apnamespace=0", "completed", None)
    ]


def category_tree(mediawiki: MediaWiki, root: str, depth: int) -> set[str]:
    """Titles of the members of ``root`` and of its subcategories down to ``depth`` levels."""
    pages = {
        pid: (ns, key, redirect)
        for pid, ns, key, redirect in mediawiki.sql(
            "SELECT page_id, page_namespace, page_title, page_is_redirect FROM page"
        )
    }
    titles: set[str] = set()
    level, seen = {root}, {root}
    for d in range(depth + 1):
        below: set[str] = set()
        for category in level:
            for pid, kind in mediawiki.sql(
                "SELECT cl_from, cl_type FROM categorylinks WHERE cl_to = ?", category
            ):
                ns, key, redirect = pages[pid]
                assert not redirect, "the model does not handle redirects in categories"
                titles.add(mediawiki.title(ns, key))
                if kind == "subcat" and d < depth and key not in seen:
                    seen.add(key)
                    below.add(key)
        level = below
    return titles


def test_a_category_tree_to_category_depth(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    source = write_listing_source(
        tmp_path / "s.yaml",
        mediawiki.api_url,
        {"categories": ["Category:Content"]},
        category_depth=2,
    )
    lake = tmp_path / "lake"
    run_crawl(source, lake, crawl_db, tmp_path / "crawl.log").check()
    expected = category_tree(mediawiki, "Content", 2)
    assert len(expected) > 20
    assert_same_set(recorded_titles(crawl_db, lake), expected, "category tree records")


def test_search_records_the_search_results(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    # The test bed builds the full-text index at import (rebuildtextindex.php). Hits are
    # resolved like any title: a redirect hit is recorded as its target page.
    word = "lightsaber"
    responses = mediawiki.query_all(list="search", srsearch=word, srlimit="max", srwhat="text")
    hits = [hit["title"] for data in responses for hit in data["query"]["search"]]
    assert len(hits) > 20, f"too few search results for {word!r}: {hits}"
    expected: set[str] = set()
    for i in range(0, len(hits), 50):
        data = mediawiki.api(titles=hits[i : i + 50], redirects=True)
        expected |= {p["title"] for p in data["query"]["pages"] if "missing" not in p}
    source = write_listing_source(tmp_path / "s.yaml", mediawiki.api_url, {"search": [word]})
    lake = tmp_path / "lake"
    # 20 hits per batch: the listing follows `continue` through several batches.
    result = run_crawl(
        source, lake, crawl_db, tmp_path / "crawl.log", args=["-s", "MEDIAWIKI_LIST_LIMIT=20"]
    ).check()
    assert_same_set(recorded_titles(crawl_db, lake), expected, "search records")
    search_batches = -(-len(hits) // 20)
    assert log_stat(result.log, "downloader/request_count") >= search_batches


def test_a_killed_listing_resumes_from_its_cursor(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    source = write_listing_source(
        tmp_path / "s.yaml",
        mediawiki.api_url,
        {"allpages": [0]},
        settings={"DOWNLOAD_DELAY": 0.2, "CONCURRENT_REQUESTS_PER_DOMAIN": 1},
    )
    lake = tmp_path / "lake"
    args = ["-s", "MEDIAWIKI_LIST_LIMIT=10"]
    cmd = crawl_command(source, lake, crawl_db, args=args)
    wi = crawl_db.tables.work_items
    cursor_saved = sa.select(wi.c.cursor).where(
        wi.c.resource_type == "listing", wi.c.cursor.is_not(None)
    )
    with (tmp_path / "killed.log").open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    if crawl_db.select(cursor_saved):
                        break
                except sa.exc.OperationalError:
                    pass  # the database is not created yet
                time.sleep(0.1)
            assert proc.poll() is None, "the crawl ended before its listing saved a cursor"
        finally:
            proc.kill()
            proc.wait(30)
    before = recorded_titles(crawl_db, lake)
    expected = ns0_pages(mediawiki)
    assert before < expected

    result = run_crawl(source, lake, crawl_db, tmp_path / "crawl.log", args=args).check()
    assert result.stat("holocron/listings/resumed") == 1
    assert "resumes from its cursor" in result.log
    assert_same_set(recorded_titles(crawl_db, lake), expected, "records after the resume")
    # Pages recorded before the kill were not fetched again.
    assert result.stat("holocron/records/written") == len(expected) - len(before)
