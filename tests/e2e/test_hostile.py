"""Hostile sources (issue 10), end to end: the real ``scrapy crawl`` against loopback servers
that never end a continuation, cycle their cursors and redirect for ever. Every crawl must end
(exit 0, within the test's timeout), each hostile work item failed with the reason, after a
bounded number of requests, and the good items recorded (``ingest_verify``'s checks clean).

One crawl per spider covers all its hostile endpoints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
import yaml

from holocron_scrapy.audit.verify import verify
from tests.e2e.conftest import E2E_PG_URL_ENV, _in_ci
from tests.e2e.crawl_helpers import (
    FAST_SETTINGS,
    REPO_ROOT,
    CrawlResult,
    Database,
    run_crawl,
    write_source,
)
from tests.e2e.hostile_servers import BIG_BODY, FORGED_LINE, HostileSite, HostileWiki

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.e2e.wiki import MediaWiki

USER_AGENT = "HolocronScrapy/0.1 (e2e tests; tests@holocron.invalid)"
CHAIN_MAX_PAGES = 20
MAX_REDIRECTS = 3


@dataclass
class Crawl:
    result: CrawlResult
    db: Database
    lake: Path
    items: dict[str, dict[str, Any]]

    def verify_clean(self, source_name: str) -> None:
        engine = sa.create_engine(self.db.read_only_url, poolclass=sa.NullPool)
        try:
            report = verify(engine, self.db.tables, self.lake, source_name)
        finally:
            engine.dispose()
        assert report.ok, report.lines()


@pytest.fixture(scope="module")
def wiki() -> Iterator[HostileWiki]:
    server = HostileWiki().start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def wiki_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """The hostile wiki's crawl state on SQLite, and on PostgreSQL (``work_items.hops``)."""
    if request.param == "sqlite":
        yield Database("sqlite", f"sqlite:///{tmp_path_factory.mktemp('db') / 's.db'}", None)
        return
    url = os.environ.get(E2E_PG_URL_ENV, "").strip()
    if not url:
        if _in_ci():
            pytest.fail(f"{E2E_PG_URL_ENV} is not set: PostgreSQL tests must run in CI")
        pytest.skip(f"{E2E_PG_URL_ENV} is not set")
    schema = f"e2e_{uuid.uuid4().hex[:12]}"
    yield Database("postgresql", url, schema)
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def wiki_crawl(
    wiki: HostileWiki, wiki_db: Database, tmp_path_factory: pytest.TempPathFactory
) -> Crawl:
    wiki.requests.clear()
    tmp_path = tmp_path_factory.mktemp("hostile-wiki")
    document = {
        "name": "hostile",
        "type": "mediawiki",
        "api_url": wiki.api_url,
        "user_agent": USER_AGENT,
        "seeds": {
            "titles": [
                "Good 1",
                "Same continue",
                "New continue",
                "Redirect 0",
                "Forged log",
                "Wrong shape",
                "Wrong continue",
                "Warned 1",
            ],
            "allpages": [0],
        },
        "discovery": {"max_depth": 0, "namespaces": [0]},
        "settings": {
            **FAST_SETTINGS,
            "MEDIAWIKI_TITLES_PER_REQUEST": 1,
            "MEDIAWIKI_MAXLAG": 0,
            "HOLOCRON_CHAIN_MAX_PAGES": CHAIN_MAX_PAGES,
            "HOLOCRON_MAX_REDIRECTS": MAX_REDIRECTS,
        },
    }
    source = tmp_path / "hostile.yaml"
    source.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    db = wiki_db
    lake = tmp_path / "lake"
    result = run_crawl(source, lake, db, tmp_path / "crawl.log", timeout=90)
    items = {item["resource_id"]: item for item in db.work_items()}
    return Crawl(result, db, lake, items)


WIKI_ITEMS = [
    # (resource id, status, a fragment of its message, the requests it may cost)
    ("Good 1", "completed", None, None),
    ("Same continue", "failed", "came a second time", 2),
    ("New continue", "failed", f"more than {CHAIN_MAX_PAGES} pages", CHAIN_MAX_PAGES),
    ("allpages?apnamespace=0", "failed", "came a second time", 2),
    ("Redirect 0", "skipped", "redirect to 'Redirect 1'", 1),
    ("Redirect 2", "skipped", "redirect to 'Redirect 3'", 1),
    ("Redirect 3", "failed", f"more than {MAX_REDIRECTS} (HOLOCRON_MAX_REDIRECTS)", 1),
    ("Forged log", "failed", "MediaWiki API error evil\\nerror: boom\\n2026-01-01", 1),
    ("Wrong shape", "failed", "the answer's query.pages is str, expected a list of objects", 1),
    ("Wrong continue", "failed", "the answer's continue is str, expected an object", 1),
    ("Warned 1", "completed", None, 1),
]


@pytest.mark.parametrize("row", WIKI_ITEMS, ids=[row[0] for row in WIKI_ITEMS])
def test_hostile_wiki_items_end(
    wiki_crawl: Crawl, wiki: HostileWiki, row: tuple[str, str, str | None, int | None]
) -> None:
    resource_id, status, fragment, requests = row
    item = wiki_crawl.items[resource_id]
    assert (item["status"], fragment in (item["error_message"] or "") if fragment else True) == (
        status,
        True,
    ), f"{resource_id}: {item['status']} {item['error_message']!r}"
    if requests is not None:
        key = "allpages" if resource_id.startswith("allpages") else resource_id
        assert wiki.requests[key] == requests


def test_hostile_wiki_crawl_ends(wiki_crawl: Crawl) -> None:
    wiki_crawl.result.check()
    assert "Redirect 4" not in wiki_crawl.items  # the hop limit ends the chain
    hops = {n: wiki_crawl.items[f"Redirect {n}"]["hops"] for n in range(4)}
    assert hops == {0: None, 1: 1, 2: 2, 3: 3}  # carried with each item (NULL: none)
    recorded = {r["resource_id"] for r in wiki_crawl.db.records()}
    assert recorded == {"Good 1", "Warned 1"}
    # What the server said is in the log, escaped: no forged line, no terminal escape.
    log = wiki_crawl.result.log
    assert "\\x1b[2J\\u202e" in log
    assert "careful\\n2026-01-01" in log  # the warning
    assert not [line for line in log.splitlines() if line.startswith(FORGED_LINE[:19])]
    assert not [c for c in log if c in "\x1b\u202e"]
    assert wiki_crawl.result.stat("holocron/bounds/chain_stopped") == 2
    assert wiki_crawl.result.stat("holocron/bounds/listing_stopped") == 1
    assert wiki_crawl.result.stat("holocron/bounds/redirects_refused") == 1
    wiki_crawl.verify_clean("hostile")
    assert "Traceback" not in wiki_crawl.result.log


# -- the HTTP spider -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site() -> Iterator[HostileSite]:
    server = HostileSite().start()
    yield server
    server.stop()


def http_crawl(
    site: HostileSite, tmp_path: Path, name: str, document: dict[str, Any], *args: str
) -> tuple[Crawl, str]:
    """A ``scrapy crawl http`` of the source ``document`` (``name``, on ``site``)."""
    document = {
        "name": name,
        "type": "http",
        "base_url": f"{site.url}/",
        "user_agent": USER_AGENT,
        "resource_type": "thing",
        "resource_id": "url",
        "settings": {**FAST_SETTINGS, "HOLOCRON_MAX_REDIRECTS": MAX_REDIRECTS},
        **document,
    }
    source = tmp_path / f"{name}.yaml"
    source.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    db = Database("sqlite", f"sqlite:///{tmp_path / 'state.db'}", None)
    lake = tmp_path / "lake"
    cmd = [
        sys.executable, "-m", "scrapy", "crawl", "http", "-a", f"source={source}",
        "-s", f"HOLOCRON_LAKE_DIR={lake}", *db.settings_args(),
        "-s", "TELNETCONSOLE_ENABLED=False", "-s", "HOLOCRON_MAX_ATTEMPTS=1", *args,
    ]  # fmt: skip
    log_path = tmp_path / "crawl.log"
    with log_path.open("wb") as out:
        proc = subprocess.run(
            cmd, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=90, check=False
        )
    crawl = Crawl(CrawlResult(proc.returncode, log_path), db, lake, {})
    crawl.items = {item["resource_id"]: item for item in db.work_items()}
    return crawl, name


LISTINGS = [
    # (seed, pagination, requests it may cost, a fragment of the listing's message)
    ("cycle/works", {"json_next": "meta.next", "param": "cursor", "start": "*"}, 3, "second time"),
    ("self/works", {"link_header": True}, 2, "came a second time"),
    (
        "ignore/works",
        {"page_number": "page", "until_empty": "results"},
        2,
        "page 2 has the body of an earlier page",
    ),
]


@pytest.mark.parametrize("row", LISTINGS, ids=[row[0].split("/")[0] for row in LISTINGS])
def test_a_cycling_http_listing_fails_and_the_crawl_ends(
    site: HostileSite, tmp_path: Path, row: tuple[str, dict[str, Any], int, str]
) -> None:
    seed, pagination, requests, fragment = row
    prefix = f"/{seed}"
    before = site.hits(prefix)
    crawl, name = http_crawl(site, tmp_path, "loops", {"seeds": [seed], "pagination": pagination})
    crawl.result.check()
    listings = [i for i in crawl.items.values() if i["resource_type"] == "listing"]
    assert [(i["status"], fragment in i["error_message"]) for i in listings] == [("failed", True)]
    assert site.hits(prefix) - before == requests
    assert crawl.result.stat("holocron/bounds/listing_stopped") == 1
    crawl.verify_clean(name)


def test_an_http_redirect_chain_ends_at_the_hop_limit(site: HostileSite, tmp_path: Path) -> None:
    before = site.hits("/r/")
    crawl, name = http_crawl(site, tmp_path, "redirects", {"seeds": ["r/0", "ok"]})
    crawl.result.check()
    hops = {k.removeprefix(site.url): v for k, v in crawl.items.items() if "/r/" in k}
    assert {k: v["status"] for k, v in hops.items()} == {
        "/r/0": "skipped",
        "/r/1": "skipped",
        "/r/2": "skipped",
        "/r/3": "failed",
    }
    assert "too many redirects: more than 3" in hops["/r/3"]["error_message"]
    assert site.hits("/r/") - before == MAX_REDIRECTS + 1
    assert crawl.items[f"{site.url}/ok"]["status"] == "completed"
    crawl.verify_clean(name)


# -- batches the server would not accept (the real MediaWiki) -----------------------------------

#: Titles that make a 50-title query ~20,000 characters long (each Cyrillic letter is six).
CYRILLIC = [f"Несуществующая страница номер {n:02d}" for n in range(49)]


def test_a_batch_of_non_latin_titles_is_crawled_whatever_its_url_length(
    mediawiki: MediaWiki, tmp_path: Path
) -> None:
    """49 Cyrillic titles and the page with the most links (its links continue, repeating the
    titles in every continuation): one query of 50 titles, far over ``URLLENGTH_LIMIT``. It is
    POSTed; nothing is dropped; each title ends as the wiki says."""
    title, n_links = mediawiki.largest_page()
    source = write_source(
        tmp_path / "cyrillic.yaml", mediawiki.api_url, [title, *CYRILLIC], max_depth=0
    )
    db = Database("sqlite", f"sqlite:///{tmp_path / 'state.db'}", None)
    lake = tmp_path / "lake"
    result = run_crawl(source, lake, db, tmp_path / "crawl.log").check()
    items = {i["resource_id"]: i for i in db.work_items()}
    assert {t: items[t]["status"] for t in CYRILLIC} == dict.fromkeys(CYRILLIC, "skipped")
    assert {items[t]["error_message"] for t in CYRILLIC} == {"missing: the page does not exist"}
    assert items[title]["status"] == "completed"
    [record] = db.records()
    assert len(json.loads(record["payload"])["links"]) == n_links
    # The record names the query it answers, with its titles, as a URL.
    assert urllib.parse.quote(CYRILLIC[0]) in record["request_uri"]
    assert result.stat("holocron/mediawiki/continuations") >= 1
    assert "dropped in flight" not in result.log
    assert result.stat("urllength/request_ignored_count") == 0


# -- secrets ------------------------------------------------------------------------------------

API_KEY = "sk-live-3141592653"
TOKEN = "tok-2718281828"
X_API_KEY = "xak-1618033988"
SECRETS = (API_KEY, TOKEN, X_API_KEY)


def test_secrets_stay_home_and_are_stored_nowhere(
    site: HostileSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing that 302s to another host, next links to and from it, records that echo the
    URL they were asked with: the source's params and secret headers reach its own host only,
    and no secret is in any log line, row, column, lake file or lake file name."""
    monkeypatch.setenv("HOLOCRON_TEST_API_KEY", API_KEY)
    monkeypatch.setenv("HOLOCRON_TEST_TOKEN", TOKEN)
    start = len(site.seen)
    document = {
        "seeds": ["sec/a"],
        "params": {"api_key": "${HOLOCRON_TEST_API_KEY}"},
        "headers": {"X-Token": "${HOLOCRON_TEST_TOKEN}", "X-Api-Key": X_API_KEY},
        "pagination": {"json_next": "next"},
        "discovery": {
            "json_fields": [{"field": "results.id"}],
            "allowed_domains": ["127.0.0.1", "localhost"],
        },
    }
    crawl, name = http_crawl(site, tmp_path, "secrets", document, "-s", "LOG_LEVEL=DEBUG")
    crawl.result.check()
    seen = site.seen[start:]
    home = [(path, headers) for _, path, headers in seen if "127.0.0.1" in headers["Host"]]
    away = [(path, headers) for _, path, headers in seen if "localhost" in headers["Host"]]
    assert sorted(p.split("?")[0] for p, _ in away if p.startswith("/sec/")) == [
        "/sec/b",
        "/sec/d",
        "/sec/item/2",
    ]
    for path, headers in away:
        sent = f"{path} {headers}"
        assert not [s for s in SECRETS if s in sent], f"a secret went to another host: {sent}"
    for path, headers in home:  # the source's own host gets them all
        if path.startswith("/sec/"):
            assert f"api_key={API_KEY}" in path
            assert (headers.get("X-Token"), headers.get("X-Api-Key")) == (TOKEN, X_API_KEY)
    statuses = {k.removeprefix(site.url).removeprefix(site.other_url): v["status"]
                for k, v in crawl.items.items()}  # fmt: skip
    assert statuses == {
        "/sec/a": "completed",
        "/sec/item/1": "completed",
        "/sec/item/2": "completed",
    }
    crawl.verify_clean(name)
    stored = [crawl.result.log, repr(crawl.db.work_items()), repr(crawl.db.records())]
    stored += [str(p) for p in crawl.lake.rglob("*")]
    stored += [p.read_text("utf-8") for p in crawl.lake.rglob("*") if p.is_file()]
    leaks = [(s, text[max(0, text.find(s) - 200) :][:400]) for text in stored for s in SECRETS
             if s in text]  # fmt: skip
    assert not leaks, leaks
    assert "***" in repr(crawl.db.records())  # the echoes are there, masked


def test_large_bodies_stay_within_the_body_budget(site: HostileSite, tmp_path: Path) -> None:
    """Six 2 MB answers, two downloads at a time, a 3 MB budget: the crawl records all six and
    never holds more than the budget plus the downloads already under way."""
    budget, concurrent = 3_000_000, 2
    crawl, name = http_crawl(
        site,
        tmp_path,
        "big",
        {"seeds": [f"big/{n}" for n in range(6)]},
        "-s", f"HOLOCRON_BODY_BUDGET={budget}", "-s", f"CONCURRENT_REQUESTS={concurrent}",
    )  # fmt: skip
    crawl.result.check()
    assert {item["status"] for item in crawl.items.values()} == {"completed"}
    assert len(crawl.items) == 6
    peak = crawl.result.stat("holocron/body_budget/peak_bytes")
    assert BIG_BODY <= peak <= budget + concurrent * BIG_BODY
    assert crawl.result.stat("holocron/body_budget/timeouts") == 0
    crawl.verify_clean(name)
