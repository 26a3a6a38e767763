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


def resolved_titles(mediawiki: MediaWiki, titles: list[str]) -> set[str]:
    """The pages that these titles' page items record (redirects followed, missing left out),
    from the wiki's tables (:meth:`MediaWiki.reachable` at depth 0)."""
    truth = mediawiki.reachable(titles, 0, [0])
    return set(mediawiki.page_titles(truth.pages).values())


def test_opensearch_records_the_titles_with_the_prefix(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    """``action=opensearch`` (limit=max): every title of ns 0 starting with the prefix, from
    the page table (redirects too: their targets are recorded); with a smaller limit, the first
    ones in title order. One answer: no continuation."""
    prefix = "S"
    titles = [
        mediawiki.title(0, key)
        for (key,) in mediawiki.sql(
            "SELECT page_title FROM page WHERE page_namespace = 0"
            " AND substr(page_title, 1, ?) = ? ORDER BY page_title",
            len(prefix),
            prefix,
        )
    ]
    assert 10 < len(titles) < 500, titles
    source = write_listing_source(
        tmp_path / "s.yaml", mediawiki.api_url, {"opensearch": [prefix.lower()]}
    )
    lake = tmp_path / "lake"
    result = run_crawl(source, lake, crawl_db, tmp_path / "crawl.log").check()
    assert_same_set(
        recorded_titles(crawl_db, lake), resolved_titles(mediawiki, titles), "opensearch records"
    )
    assert result.stat("holocron/listings/batches") == 1
    assert result.stat("holocron/listings/members") == len(titles)

    limited = Database("sqlite", f"sqlite:///{tmp_path / 'limited.db'}", None)
    lake = tmp_path / "lake-limited"
    args = ["-s", "MEDIAWIKI_LIST_LIMIT=5"]
    run_crawl(source, lake, limited, tmp_path / "limited.log", args=args).check()
    assert_same_set(
        recorded_titles(limited, lake), resolved_titles(mediawiki, titles[:5]), "first 5"
    )


def test_recentchanges_records_the_pages_changed_since(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    """``recentchanges: {since: T}``: the pages edited or created at T or later, from the
    wiki's ``recentchanges`` table; 7 per batch, so the listing continues."""
    stamps = sorted(
        stamp
        for (stamp,) in mediawiki.sql("SELECT rc_timestamp FROM recentchanges WHERE rc_type < 2")
    )
    since = stamps[len(stamps) * 4 // 5]  # about the last fifth of the changes
    iso = f"{since[:4]}-{since[4:6]}-{since[6:8]}T{since[8:10]}:{since[10:12]}:{since[12:14]}Z"
    titles = sorted(
        {
            mediawiki.title(ns, key)
            for ns, key in mediawiki.sql(
                "SELECT rc_namespace, rc_title FROM recentchanges"
                " WHERE rc_type < 2 AND rc_timestamp >= ?",
                since,
            )
        }
    )
    assert len(titles) > 20
    source = write_listing_source(
        tmp_path / "s.yaml", mediawiki.api_url, {"recentchanges": {"since": iso}}
    )
    lake = tmp_path / "lake"
    args = ["-s", "MEDIAWIKI_LIST_LIMIT=7"]
    result = run_crawl(source, lake, crawl_db, tmp_path / "crawl.log", args=args).check()
    assert_same_set(
        recorded_titles(crawl_db, lake), resolved_titles(mediawiki, titles), "recentchanges"
    )
    assert result.stat("holocron/listings/batches") >= 3
    [listing] = [r for r in crawl_db.work_items() if r["resource_type"] == "listing"]
    assert (listing["resource_id"], listing["status"]) == (
        f"recentchanges?rcstart={iso}",
        "completed",
    )


def test_pageids_records_the_pages_of_those_ids(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    """``pageids``: existing pages recorded (a redirect as its target, a file page in ns 6 as a
    page), unknown ids left out; 60 ids make two listings of 50 and 10."""
    rows = mediawiki.sql("SELECT page_id, page_is_redirect, page_namespace FROM page")
    articles = [pid for pid, redirect, ns in rows if ns == 0 and not redirect][:55]
    redirect = next(pid for pid, is_redirect, _ in rows if is_redirect)
    file_page = next(pid for pid, _, ns in rows if ns == 6)
    unknown = max(pid for pid, _, _ in rows) + 1000
    ids = [*articles, redirect, file_page, unknown, unknown + 1, unknown + 2]
    assert len(ids) == 60
    titles = list(mediawiki.page_titles(set(ids)).values())
    source = write_listing_source(tmp_path / "s.yaml", mediawiki.api_url, {"pageids": ids})
    lake = tmp_path / "lake"
    run_crawl(source, lake, crawl_db, tmp_path / "crawl.log").check()
    expected = resolved_titles(mediawiki, titles)
    assert mediawiki.page_titles({file_page})[file_page] in expected
    assert_same_set(recorded_titles(crawl_db, lake), expected, "pageids records")
    listings_done = sorted(
        (r["resource_id"].count("|") + 1, r["status"])
        for r in crawl_db.work_items()
        if r["resource_type"] == "listing"
    )
    assert listings_done == [(10, "completed"), (50, "completed")]
