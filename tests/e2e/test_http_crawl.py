"""End to end: the real ``scrapy crawl http`` against the local site and JSON API of
tests/e2e/http_servers.py (127.0.0.1 only).

* a JSON API with cursor pagination and references between records: exactly W1..W13, FLAKY
  and BUSY recorded (W14 is beyond max_depth), FLAKY after a 500, BUSY after a 429 and the
  second its Retry-After asked for, BAD (invalid JSON) failed; nothing
  fetched or written on a second run; ``recrawl=all`` fetches all again and writes nothing;
* an HTML site with links, a redirect, a path robots.txt forbids, a denied link, another host,
  and two POST seeds (JSON and form);
* a listing killed (SIGKILL) in the middle resumes from its saved cursor: page 1 is never asked
  for again;
* a source of another type is refused with one ``error:`` line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
import yaml

from tests.e2e.crawl_helpers import (
    CRAWL_TIMEOUT,
    REPO_ROOT,
    CrawlResult,
    assert_same_set,
    read_lake,
)
from tests.e2e.http_servers import WORK_HOST, TestSite, html_page, work

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.e2e.crawl_helpers import Database

USER_AGENT = "HolocronScrapy/0.1 (e2e tests; tests@holocron.invalid)"
FAST: dict[str, Any] = {
    # AutoThrottle brings the delay back down after a Retry-After wait raised it (on loopback
    # within a few responses); DOWNLOAD_DELAY 0 is its floor.
    "AUTOTHROTTLE_ENABLED": True,
    "AUTOTHROTTLE_START_DELAY": 0,
    "AUTOTHROTTLE_TARGET_CONCURRENCY": 4.0,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 4,
    "DOWNLOAD_DELAY": 0,
}
#: a failed work item stays failed in this run (no item-level retry after a back-off)
ARGS = ["-s", "HOLOCRON_MAX_ATTEMPTS=1"]
#: W1..W12 listed, W13 referenced by W1, FLAKY by W2, BUSY by W4; W14 (referenced by W13) is
#: at depth 2
API_RECORDS = {f"{WORK_HOST}/W{n}" for n in range(1, 14)} | {
    f"{WORK_HOST}/FLAKY",
    f"{WORK_HOST}/BUSY",
}


@pytest.fixture
def site() -> Iterator[TestSite]:
    server = TestSite().start()
    yield server
    server.stop()


def api_source(path: Path, site: TestSite, *, per_page: int = 5) -> Path:
    document = {
        "name": "api",
        "type": "http",
        "base_url": f"{site.url}/api/",
        "user_agent": USER_AGENT,
        "params": {"mailto": "tests@holocron.invalid"},
        "seeds": [f"works?per-page={per_page}"],
        "resource_type": "work",
        "resource_id": "id",
        "pagination": {"json_next": "meta.next_cursor", "param": "cursor", "start": "*"},
        "discovery": {
            "json_fields": [
                {"field": "results.id", "url": "works/{last_segment}"},
                {"field": "referenced_works", "url": "works/{last_segment}"},
            ],
            "max_depth": 1,
        },
        "settings": FAST,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    return path


def site_source(path: Path, site: TestSite) -> Path:
    document = {
        "name": "site",
        "type": "http",
        "base_url": f"{site.url}/site/",
        "user_agent": USER_AGENT,
        "seeds": [
            "/site/",
            {"url": "/api/search", "method": "POST", "json": {"q": "lightsaber", "page": 1}},
            {"url": "/api/form", "method": "POST", "form": {"q": "jedi"}},
        ],
        "resource_type": "page",
        "discovery": {"html_links": {"allow": ["/site/"], "deny": ["/logout"]}, "max_depth": 2},
        "settings": FAST,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    return path


def http_command(source: Path, tmp_path: Path, db: Database, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "scrapy",
        "crawl",
        "http",
        "-a",
        f"source={source}",
        "-s",
        f"HOLOCRON_LAKE_DIR={tmp_path / 'lake'}",
        *db.settings_args(),
        "-s",
        "TELNETCONSOLE_ENABLED=False",
        *ARGS,
        *args,
    ]


def crawl(source: Path, tmp_path: Path, db: Database, log: str, *args: str) -> CrawlResult:
    log_path = tmp_path / log
    with log_path.open("wb") as out:
        proc = subprocess.run(
            http_command(source, tmp_path, db, *args),
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=CRAWL_TIMEOUT,
            check=False,
        )
    return CrawlResult(proc.returncode, log_path)


def records(db: Database, tmp_path: Path) -> dict[str, Any]:
    """resource_id -> payload, the same in the lake and in IngestRecords, each exactly once."""
    files = read_lake(tmp_path / "lake")
    rows = db.records()
    lake = {f.document["resource_id"]: f.payload for f in files}
    table = {row["resource_id"]: json.loads(row["payload"]) for row in rows}
    assert len(lake) == len(files), "a resource with several lake files"
    assert len(table) == len(rows), "a resource with several IngestRecords rows"
    assert lake == table
    return lake


def items(db: Database) -> dict[str, dict[str, Any]]:
    return {row["resource_id"]: row for row in db.work_items()}


@pytest.mark.parametrize("crawl_db", ["sqlite", "postgresql"], indirect=True)
def test_json_api_with_cursor_pagination_and_references(
    site: TestSite, tmp_path: Path, crawl_db: Database
) -> None:
    source = api_source(tmp_path / "api.yaml", site)
    first = crawl(source, tmp_path, crawl_db, "first.log").check()

    recorded = records(crawl_db, tmp_path)
    assert_same_set(recorded, API_RECORDS, "records")
    for resource_id, payload in recorded.items():
        assert payload == work(resource_id.rsplit("/", 1)[1])
    state = items(crawl_db)
    listing = f"{site.url}/api/works?per-page=5"
    assert state[listing]["status"] == "completed"
    assert state[listing]["resource_type"] == "listing"
    bad = state[f"{site.url}/api/works/BAD"]
    assert bad["status"] == "failed"
    assert bad["error_message"].startswith("not JSON (")
    assert "'application/json; charset=utf-8'" in bad["error_message"]
    assert f"{site.url}/api/works/W14" not in state  # depth 2
    assert {
        row["status"] for key, row in state.items() if key not in (listing, bad["resource_id"])
    } == {"completed"}
    # Every listing page once; FLAKY answered 500, then 200 (Scrapy's retry); BUSY 429 with
    # Retry-After: 1, then 200 a second later (RetryAfterMiddleware).
    assert site.hits_of("/api/works?") == 3
    assert site.hits[("GET", "/api/works/FLAKY?mailto=tests%40holocron.invalid")] == 2
    busy = site.times["/api/works/BUSY?mailto=tests%40holocron.invalid"]
    assert len(busy) == 2
    assert busy[1] - busy[0] >= 0.95
    assert first.stat("retry_after/http_429") == 1
    assert first.stat("retry/count") == 1  # the 500 only
    assert all("mailto=tests%40holocron.invalid" in path for path in site.paths_hit("/api/"))
    rows = crawl_db.records()
    assert {row["request_uri"].split("?")[0] for row in rows} == {
        f"{site.url}/api/works/{key.rsplit('/', 1)[1]}" for key in API_RECORDS
    }

    # A second run: nothing to fetch, nothing written.
    hits = sum(site.hits.values())
    second = crawl(source, tmp_path, crawl_db, "second.log").check()
    assert second.stat("holocron/records/written") == 0
    assert site.hits_of("/api/") == hits - site.hits_of("/robots.txt")
    assert records(crawl_db, tmp_path) == recorded

    # recrawl=all: everything fetched again, nothing changed, nothing written.
    before = site.hits_of("/api/works/W")
    third = crawl(source, tmp_path, crawl_db, "recrawl.log", "-a", "recrawl=all").check()
    assert site.hits_of("/api/works/W") == 2 * before
    assert third.stat("holocron/records/unchanged") == len(API_RECORDS)
    assert records(crawl_db, tmp_path) == recorded
    assert len(crawl_db.records()) == len(API_RECORDS)


@pytest.mark.parametrize(
    ("pagination", "pages"),
    [
        ({"page_number": "page", "until_empty": "items"}, 4),  # the 4th page is empty
        ({"link_header": True}, 3),  # the 3rd page has no rel="next"
    ],
)
def test_page_numbers_and_link_headers_page_to_the_end(
    site: TestSite, tmp_path: Path, crawl_db: Database, pagination: dict[str, Any], pages: int
) -> None:
    source = tmp_path / "pages.yaml"
    document = yaml.safe_load(api_source(source, site).read_text("utf-8"))
    document["seeds"] = ["pages"]
    document["pagination"] = pagination
    document["discovery"] = {"json_fields": ["items.url"], "max_depth": 0}
    source.write_text(yaml.safe_dump(document), "utf-8")
    crawl(source, tmp_path, crawl_db, "crawl.log").check()
    assert_same_set(
        records(crawl_db, tmp_path), {f"{WORK_HOST}/W{n}" for n in range(1, 6)}, "records"
    )
    assert site.hits_of("/api/pages?") == pages
    assert site.hits_of("/api/pages?page=1&") + site.hits_of("/api/pages?mailto") == 1
    assert {row["status"] for row in crawl_db.work_items()} == {"completed"}


def test_html_site_links_redirects_robots_and_post_seeds(
    site: TestSite, tmp_path: Path, crawl_db: Database
) -> None:
    source = site_source(tmp_path / "site.yaml", site)
    result = crawl(source, tmp_path, crawl_db, "crawl.log").check()

    recorded = records(crawl_db, tmp_path)
    base = site.url
    search = f'POST {base}/api/search {{"page":1,"q":"lightsaber"}}'
    form = f"POST {base}/api/form q=jedi"
    pages = ["/site/", "/site/a.html", "/site/b.html", "/site/c.html", "/site/new"]
    assert_same_set(recorded, {*(base + p for p in pages), search, form}, "records")
    for page in pages:
        assert recorded[base + page] == {
            "content_type": "text/html; charset=utf-8",
            "encoding": "utf-8",
            "text": html_page(page).decode(),
        }
    assert recorded[search] == {"id": "search", "query": {"q": "lightsaber", "page": 1}, "hits": 2}
    assert recorded[form] == {"id": "form", "form": {"q": "jedi"}}
    # Each lake record says how its payload holds the body.
    formats = {
        f.document["resource_id"]: f.document["payload_format"]
        for f in read_lake(tmp_path / "lake")
    }
    assert formats == {**{base + p: "text" for p in pages}, search: "json", form: "json"}

    state = items(crawl_db)
    ended = {key: (row["status"], row["depth"], row["error_message"]) for key, row in state.items()}
    assert ended[f"{base}/site/old"] == ("skipped", 1, f"redirect to '{base}/site/new'")
    assert ended[f"{base}/site/new"] == ("completed", 1, None)  # queued at the redirect's depth
    assert ended[f"{base}/site/private/secret"] == (
        "skipped",
        1,
        f"Forbidden by robots.txt: {base}/site/private/secret",
    )
    assert ended[f"{base}/site/c.html"] == ("completed", 2, None)
    assert len(state) == len(recorded) + 2  # d.html (depth 3), logout, elsewhere: never queued
    assert site.paths_hit("/site/") == {*pages, "/site/old"}  # never private/, logout, d.html
    assert site.hits[("GET", "/robots.txt")] == 1
    assert result.stat("robotstxt/forbidden") == 1
    assert result.stat("holocron/http/payload/text") == len(pages)

    hits = sum(site.hits.values())
    crawl(source, tmp_path, crawl_db, "second.log").check()
    assert sum(site.hits.values()) == hits
    assert records(crawl_db, tmp_path) == recorded


def test_a_killed_listing_resumes_from_its_cursor(tmp_path: Path, crawl_db: Database) -> None:
    site = TestSite(listing_delay=0.5).start()
    try:
        source = api_source(tmp_path / "api.yaml", site, per_page=2)  # 6 listing pages
        wi = crawl_db.tables.work_items
        cursor_saved = sa.select(wi.c.cursor).where(wi.c.cursor.is_not(None))
        cmd = http_command(source, tmp_path, crawl_db)
        with (tmp_path / "killed.log").open("wb") as out:
            proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and proc.poll() is None:
                    try:
                        if crawl_db.select(cursor_saved) and site.hits_of("/api/works?") >= 2:
                            break
                    except sa.exc.OperationalError:
                        pass  # the database is not created yet
                    time.sleep(0.05)
                assert proc.poll() is None, "the crawl ended before its listing saved a cursor"
            finally:
                proc.kill()
                proc.wait(30)
        first_page = ("GET", "/api/works?per-page=2&cursor=%2A&mailto=tests%40holocron.invalid")
        pages_before = site.hits_of("/api/works?")
        assert site.hits[first_page] == 1
        assert pages_before < 6

        result = crawl(source, tmp_path, crawl_db, "resumed.log").check()
        assert result.stat("holocron/http/listings_resumed") == 1
        assert "resumes from its cursor" in result.log
        assert site.hits[first_page] == 1  # not asked for again
        pages_after = site.hits_of("/api/works?")
        # 6 pages; at most the one in flight at the kill is asked for twice
        assert 6 <= pages_after <= 7
        assert_same_set(records(crawl_db, tmp_path), API_RECORDS, "records after the resume")
        print(f"listing pages: {pages_before} before the kill, {pages_after} in all")
    finally:
        site.stop()


def test_a_source_of_another_type_is_refused(tmp_path: Path, crawl_db: Database) -> None:
    mediawiki_source = REPO_ROOT / "sources" / "wookieepedia.yaml"
    result = crawl(mediawiki_source, tmp_path, crawl_db, "refused.log")
    assert result.returncode == 2
    errors = [line for line in result.log.splitlines() if "error:" in line]
    assert len(errors) == 1, result.log
    assert errors[0].endswith(
        f"error: {mediawiki_source}: type: a 'mediawiki' source: run it with "
        "`scrapy crawl mediawiki`, not `scrapy crawl http`"
    )
    assert "Traceback" not in result.log
    assert not (tmp_path / "lake").exists()
    assert not (tmp_path / "state.db").exists()


def test_recrawl_changed_refetches_only_what_changed(
    site: TestSite, tmp_path: Path, crawl_db: Database
) -> None:
    source = api_source(tmp_path / "api.yaml", site)
    crawl(source, tmp_path, crawl_db, "first.log").check()
    recorded = records(crawl_db, tmp_path)
    listing_pages = site.hits_of("/api/works?")
    site.versions["W5"] += 1  # a new edition, with a new ETag

    result = crawl(source, tmp_path, crawl_db, "changed.log", "-a", "recrawl=changed").check()
    assert result.stat("holocron/http/recrawl_requeued") == len(API_RECORDS)
    assert result.stat("holocron/http/not_modified") == len(API_RECORDS) - 1
    assert result.stat("holocron/records/written") == 1
    assert site.hits_of("/api/works?") == listing_pages  # listings are not run again
    rows = crawl_db.records()
    assert len(rows) == len(API_RECORDS) + 1
    w5 = f"{WORK_HOST}/W5"
    assert json.loads(rows[-1]["payload"]) == work("W5", 2)
    assert rows[-1]["resource_id"] == w5
    assert len([f for f in read_lake(tmp_path / "lake") if f.document["resource_id"] == w5]) == 2
    versions = {row["resource_id"]: row["version"] for row in crawl_db.work_items()}
    assert versions[f"{site.url}/api/works/W5"] == 'etag:"W5-2"'
    assert versions[f"{site.url}/api/works/W6"] == 'etag:"W6-1"'
    assert {r["resource_id"] for r in rows[: len(API_RECORDS)]} == set(recorded)
