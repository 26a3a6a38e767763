"""End to end: ``scrapy crawl mediawiki`` against the real MediaWiki test bed.

Each test writes its own source file, runs the crawl in a subprocess and compares the lake files,
``IngestRecords``, ``work_items`` and ``runs`` with what the wiki's own tables say
(:func:`tests.e2e.crawl_helpers.expect_crawl`, checked against ``MediaWiki.reachable``).
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from holocron_scrapy.items import canonical_json
from holocron_scrapy.lake.files import record_filename
from holocron_scrapy.mediawiki import api as mwapi
from tests.e2e.crawl_helpers import (
    CRAWL_TIMEOUT,
    REPO_ROOT,
    RESOURCE_TYPE,
    SOURCE_NAME,
    SOURCE_SYSTEM,
    Database,
    Expectation,
    assert_records_match,
    assert_same_set,
    assert_work_items_match,
    crawl_command,
    expect_crawl,
    lake_snapshot,
    read_lake,
    run_crawl,
    write_source,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.crawl_helpers import CrawlResult
    from tests.e2e.wiki import MediaWiki

# A page, a double redirect (Old name of Anakin -> Anakin -> Anakin Skywalker), a title that only
# normalization makes canonical, and a redirect to a page that does not exist.
SEEDS = ("Darth Vader", "Old name of Anakin", "darth_Vader", "Lost Raarsa")
SIGINT_EXIT_TIMEOUT = 60.0


def check_seed_kinds(wiki: MediaWiki) -> None:
    """The seeds are what SEEDS says (the generated wiki is deterministic; fail loudly if not)."""
    redirect = {
        title: (ns, target)
        for title, ns, target in wiki.sql(
            "SELECT p.page_title, r.rd_namespace, r.rd_title FROM redirect r"
            " JOIN page p ON p.page_id = r.rd_from WHERE p.page_namespace = 0"
        )
    }
    assert redirect.get("Old_name_of_Anakin") == (0, "Anakin")
    assert redirect.get("Anakin") == (0, "Anakin_Skywalker")
    assert "Lost_Raarsa" in redirect
    assert not wiki.sql(
        "SELECT 1 FROM page WHERE page_namespace = 0 AND page_title = ?", redirect["Lost_Raarsa"][1]
    )


def source_file(
    tmp_path: Path, wiki: MediaWiki, seeds: tuple[str, ...] | list[str], **kwargs: Any
) -> Path:
    return write_source(tmp_path / f"{SOURCE_NAME}.yaml", wiki.api_url, seeds, **kwargs)


def assert_crawl_matches(
    expected: Expectation, db: Database, lake: Path
) -> dict[str, dict[str, Any]]:
    """Records, lake files and work items are exactly those of the model (and ground truth)."""
    by_title = assert_work_items_match(expected, db)
    assert_records_match(expected, db, lake)
    return by_title


def assert_run_counts(
    run: dict[str, Any], result: CrawlResult, db: Database, *, new_seeds: int
) -> None:
    """The ``runs`` row's counts agree with the crawl's stats and with the tables."""
    items = db.work_items()
    records = [r for r in db.records() if r["run_id"] == run["run_id"]]
    completed = [i for i in items if i["status"] == "completed"]
    skipped = [i for i in items if i["status"] == "skipped"]
    # Completed again: refetched with the same content, or found closer and expanded again from
    # its record.
    refetched = (result.stat("holocron/records/unchanged") or 0) + (
        result.stat("holocron/frontier/reexpanded") or 0
    )
    assert run["records_written"] == len(records) == result.stat("holocron/records/written")
    assert run["items_discovered"] == len(items) - new_seeds
    assert run["items_failed"] == 0
    assert run["items_completed"] == result.stat("holocron/work_items/completed")
    assert run["items_completed"] == len(completed) + refetched
    assert run["items_skipped"] == result.stat("holocron/work_items/skipped") >= len(skipped)
    assert run["requests_made"] == result.stat("downloader/request_count") > 0


# ------------------------------------------------------------------------------------ 1 and 7


@pytest.mark.parametrize(
    ("strategy", "crawl_db"),
    [
        pytest.param("breadth", "sqlite", id="breadth-sqlite"),
        pytest.param("breadth", "postgresql", id="breadth-postgresql", marks=pytest.mark.postgres),
        pytest.param("depth", "sqlite", id="depth-sqlite"),
    ],
    indirect=["crawl_db"],
)
def test_crawl_equals_ground_truth(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database, strategy: str
) -> None:
    check_seed_kinds(mediawiki)
    expected = expect_crawl(mediawiki, SEEDS, max_depth=2)
    source = source_file(tmp_path, mediawiki, SEEDS, max_depth=2, strategy=strategy)
    lake = tmp_path / "lake"
    result = run_crawl(source, lake, crawl_db, tmp_path / "crawl.log").check()

    by_title = assert_crawl_matches(expected, crawl_db, lake)
    assert by_title["Old name of Anakin"]["error_message"] == "redirect to 'Anakin Skywalker'"
    assert by_title["darth_Vader"]["error_message"] == "normalized to 'Darth Vader'"
    assert by_title["Lost Raarsa"]["error_message"].startswith("missing")
    assert by_title["Anakin Skywalker"]["depth"] == 0  # a redirect hop adds no depth

    runs = crawl_db.runs()
    assert len(runs) == 1
    run = runs[0]
    assert (run["status"], run["finish_reason"]) == ("finished", "finished")
    assert run["finished_at"] is not None
    assert run["records_written"] == len(expected.truth.pages)
    assert_run_counts(run, result, crawl_db, new_seeds=len(SEEDS))
    assert {r["run_id"] for r in crawl_db.records()} == {run["run_id"]}


# 23 redirects as seeds beside "Darth Vader" (max_depth 1): their targets are also linked from
# the seed pages, so a target is often claimed at depth 1 while the redirect that puts it at
# depth 0 is still in flight. Small batches, quick flushes of discoveries and slower completions
# (records are committed in batches up to 1 s late) make that overlap near certain.
IN_FLIGHT_ARGS = (
    *("-s", "MEDIAWIKI_TITLES_PER_REQUEST=5", "-s", "HOLOCRON_FLUSH_INTERVAL=0.1"),
    *("-s", "HOLOCRON_INGEST_MAX_DELAY=1.0"),
)
DFS_ARGS = ("-s", "HOLOCRON_CLAIM_SIZE=10", "-s", "MEDIAWIKI_TITLES_PER_REQUEST=10")


def redirect_seeds(wiki: MediaWiki) -> list[str]:
    ids = {pid for (pid,) in wiki.sql("SELECT rd_from FROM redirect")}
    titles = sorted(wiki.page_titles(ids).values())
    unbroken = [t for t in titles if wiki.reachable([t], 0, [0]).pages]
    assert len(unbroken) >= 20, titles
    return [*unbroken, "Darth Vader"]  # the seed page last: its request is fetched first


@pytest.mark.parametrize(
    "scenario",
    [
        pytest.param(("dfs", "depth", 1), id="dfs-depth1"),
        pytest.param(("dfs", "depth", 2), id="dfs-depth2"),
        pytest.param(("in-flight", "breadth", 1), id="shorter-path-found-while-in-flight"),
    ],
)
def test_depth_semantics(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database, scenario: tuple[str, str, int]
) -> None:
    """Every page is recorded, and expanded, at its minimal depth whatever the visit order.

    DFS with small claims (10 items) visits deep pages before shallow ones. The in-flight case
    reaches pages by a shorter path (through a redirect) while their own request is under way:
    they must end at the smaller depth and be expanded there.
    """
    case, strategy, max_depth = scenario
    seeds = ["Darth Vader"] if case == "dfs" else redirect_seeds(mediawiki)
    args = DFS_ARGS if case == "dfs" else IN_FLIGHT_ARGS
    expected = expect_crawl(mediawiki, seeds, max_depth=max_depth)
    source = source_file(tmp_path, mediawiki, seeds, max_depth=max_depth, strategy=strategy)
    lake = tmp_path / "lake"
    run_crawl(source, lake, crawl_db, tmp_path / "crawl.log", args=args).check()
    assert_crawl_matches(expected, crawl_db, lake)


def test_item_reopened_at_the_end_of_the_crawl_is_crawled(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    """A page whose depth is lowered while it is in flight, when nothing else is left to claim,
    is still fetched again and expanded before the crawl finishes.

    Seeds: "Talk:Battle of Driya" (S, links "Tatooine") and "Tatooine (alias)" (R, a redirect to
    it), max_depth 1. One title per request, one request at a time 0.5 s apart (time enough for the
    claim of "Tatooine" to commit before R is answered, even on a loaded machine), FIFO scheduling:
    S is fetched first and "Tatooine" is claimed at depth 1 from its links; R comes next and puts
    "Tatooine" at depth 0 while its request waits; the next claim finds nothing left. When
    "Tatooine" ends (at depth 1) it goes back to pending for depth 0: the crawl must claim it
    again and follow its links rather than finish with it pending.
    """
    seeds = ["Talk:Battle of Driya", "Tatooine (alias)"]
    expected = expect_crawl(mediawiki, seeds, max_depth=1)
    assert expected.items["Tatooine"].depth == 0
    assert "Tatooine" in expected.linked_from
    settings = {
        "AUTOTHROTTLE_ENABLED": False,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 1,
        "DOWNLOAD_DELAY": 0.5,
        "RANDOMIZE_DOWNLOAD_DELAY": False,
        "SCHEDULER_MEMORY_QUEUE": "scrapy.squeues.FifoMemoryQueue",
    }
    source = source_file(tmp_path, mediawiki, seeds, max_depth=1, settings=settings)
    lake = tmp_path / "lake"
    # The shared politeness budget (on by default when DOWNLOAD_DELAY is set) would hold every
    # request in a downloader middleware for its slot: claims and responses would no longer come
    # in the order this scenario needs. One process: DOWNLOAD_DELAY alone spaces the requests.
    args = (
        *("-s", "MEDIAWIKI_TITLES_PER_REQUEST=1", "-s", "HOLOCRON_FLUSH_INTERVAL=0.1"),
        *("-s", "HOLOCRON_BUDGET_DELAY=0"),
    )
    result = run_crawl(source, lake, crawl_db, tmp_path / "crawl.log", args=args).check()
    assert_crawl_matches(expected, crawl_db, lake)
    assert result.stat("holocron/budget/reserved") == 0
    # "Tatooine" is fetched once: its second claim expands it from its record.
    assert result.stat("holocron/frontier/reexpanded") == 1
    assert not result.stat("holocron/records/unchanged")


def test_completed_item_reached_by_a_shorter_path_is_reopened(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    """A page completed at max_depth (links not followed) and later reached at a smaller depth
    goes back to the queue and is expanded from its record, not fetched again: no request, no
    row, no file.

    Run 1 records "Anakin Skywalker" at depth 1 (linked from the seed, max_depth 1); run 2 adds
    the seed "Old name of Anakin", a double redirect to it: the page is now at depth 0.
    """
    target = "Anakin Skywalker"
    first = expect_crawl(mediawiki, ["Darth Vader"], max_depth=1)
    assert first.items[target].depth == 1
    seeds = ["Darth Vader", "Old name of Anakin"]
    expected = expect_crawl(mediawiki, seeds, max_depth=1)
    assert expected.items[target].depth == 0
    assert len(expected.truth.pages) > len(first.truth.pages)

    lake = tmp_path / "lake"
    source = source_file(tmp_path, mediawiki, ["Darth Vader"], max_depth=1, strategy="depth")
    run_crawl(source, lake, crawl_db, tmp_path / "crawl1.log").check()
    assert_crawl_matches(first, crawl_db, lake)
    [target_row] = [r for r in crawl_db.records() if r["resource_id"] == target]

    source = source_file(tmp_path, mediawiki, seeds, max_depth=1, strategy="depth")
    second = run_crawl(source, lake, crawl_db, tmp_path / "crawl2.log").check()
    by_title = assert_crawl_matches(expected, crawl_db, lake)
    assert by_title[target]["depth"] == 0
    assert by_title[target]["attempt"] == 1  # re-opened with a fresh attempt count
    assert second.stat("holocron/frontier/reexpanded") == 1  # the target, not fetched again
    assert not second.stat("holocron/records/unchanged")
    assert second.stat("holocron/records/written") == len(expected.truth.pages) - len(
        first.truth.pages
    )
    assert [r for r in crawl_db.records() if r["resource_id"] == target] == [target_row]


# ------------------------------------------------------------------------------------------ 2


def own_merge(responses: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Pages by id across continuation responses: lists concatenated, other keys kept first."""
    pages: dict[int, dict[str, Any]] = {}
    for data in responses:
        for page in data["query"]["pages"]:
            merged = pages.setdefault(page["pageid"], {})
            for key, value in page.items():
                if key not in merged:
                    merged[key] = value
                elif isinstance(value, list):
                    merged[key] = [*merged[key], *value]
    return pages


def test_payloads_equal_what_the_api_serves(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    lake = tmp_path / "lake"
    source = source_file(tmp_path, mediawiki, SEEDS, max_depth=2)
    run_crawl(source, lake, crawl_db, tmp_path / "crawl.log").check()

    statuses = {i["resource_id"]: i["status"] for i in crawl_db.work_items()}
    unfinished = {t: s for t, s in statuses.items() if s not in ("completed", "skipped")}
    assert not unfinished, f"work items left unfinished by a finished crawl: {unfinished}"
    files = {f.document["resource_id"]: f for f in read_lake(lake)}
    rows = {r["resource_id"]: r for r in crawl_db.records()}
    assert len(files) == len(read_lake(lake))
    assert len(rows) == len(crawl_db.records())
    assert_same_set(files, rows, "titles of the lake files and of the IngestRecords rows")
    expected = expect_crawl(mediawiki, SEEDS, max_depth=2)
    assert set(rows) <= set(expected.titles.values())
    assert len(rows) > len(expected.truth.pages) * 0.9, "too few pages recorded to be a test"

    def served(title: str) -> dict[str, Any]:
        responses = mediawiki.query_all(**mwapi.PAGE_QUERY, titles=title)
        pages = own_merge(responses)
        assert len(pages) == 1, (title, list(pages))
        return next(iter(pages.values()))

    with ThreadPoolExecutor(max_workers=4) as pool:
        api_pages = dict(zip(rows, pool.map(served, rows), strict=True))

    lake_root = lake.resolve()
    for title, row in rows.items():
        lake_file = files[title]
        api_page = api_pages[title]
        assert lake_file.payload == api_page, f"lake payload of {title!r} differs from the API"
        assert json.loads(row["payload"]) == api_page, f"row payload of {title!r} differs"
        text = canonical_json(api_page)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        assert row["payload"] == text
        assert row["hash_sha256"] == digest == lake_file.document["hash_sha256"]
        assert lake_file.raw.endswith(f'"payload": {text}\n}}\n')
        for key in ("resource_id", "run_id", "work_item_id", "request_uri", "status_code"):
            assert lake_file.document[key] == row[key], (title, key)
        assert lake_file.path.resolve().is_relative_to(lake_root)
        name = record_filename(title, digest)
        id_hash = name.split("~")[1]  # fanned out by it: two hex levels below the type
        assert lake_file.path == (
            lake / SOURCE_SYSTEM / SOURCE_NAME / RESOURCE_TYPE / id_hash[:2] / id_hash[2:4] / name
        )
        assert row["status_code"] == 200
        assert row["request_uri"].startswith(mediawiki.api_url + "?")
    assert not list(lake.rglob(".tmp-*")), "temporary files left in the lake"


# ------------------------------------------------------------------------------------------ 3


def test_page_with_more_links_than_one_response(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    title, n_links = mediawiki.largest_page()
    responses = mediawiki.query_all(**mwapi.PAGE_QUERY, titles=title)
    assert len(responses) >= 2, "the largest page must need plcontinue"
    lake = tmp_path / "lake"
    source = source_file(tmp_path, mediawiki, [title], max_depth=0)
    result = run_crawl(source, lake, crawl_db, tmp_path / "crawl.log").check()

    rows = crawl_db.records()
    files = read_lake(lake)
    assert len(rows) == len(files) == 1
    assert [r["resource_id"] for r in rows] == [title]
    assert json.loads(rows[0]["payload"]) == files[0].payload
    links = [(link["ns"], link["title"]) for link in files[0].payload["links"]]
    assert len(links) == len(set(links)), "duplicate links"
    page_id = files[0].payload["pageid"]
    in_sql = {
        (ns, mediawiki.title(ns, key))
        for ns, key in mediawiki.sql(
            "SELECT pl_namespace, pl_title FROM pagelinks WHERE pl_from = ?", page_id
        )
    }
    assert_same_set(links, in_sql, f"links of {title!r}")
    assert len(links) == n_links
    assert result.stat("downloader/request_count") == len(responses)
    assert result.stat("holocron/mediawiki/continuations") == len(responses) - 1
    items = crawl_db.work_items()
    assert [(i["resource_id"], i["status"]) for i in items] == [(title, "completed")]


# ------------------------------------------------------------------------------------------ 4


def test_second_run_adds_nothing(mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database) -> None:
    seeds = ("Darth Vader",)
    expected = expect_crawl(mediawiki, seeds, max_depth=1)
    lake = tmp_path / "lake"
    source = source_file(tmp_path, mediawiki, seeds, max_depth=1)
    run_crawl(source, lake, crawl_db, tmp_path / "crawl1.log").check()
    assert_crawl_matches(expected, crawl_db, lake)
    rows = crawl_db.records()
    files = lake_snapshot(lake)
    items = crawl_db.work_items()

    again = run_crawl(source, lake, crawl_db, tmp_path / "crawl2.log").check()
    assert crawl_db.records() == rows
    assert lake_snapshot(lake) == files
    assert again.progress_pages() == 0
    assert again.stat("downloader/request_count") == 0
    assert crawl_db.work_items() == items

    recrawl = run_crawl(
        source, lake, crawl_db, tmp_path / "crawl3.log", args=["-a", "recrawl=all"]
    ).check()
    assert recrawl.stat("downloader/request_count") > 0
    assert recrawl.stat("holocron/records/unchanged") == len(expected.truth.pages)
    assert recrawl.stat("holocron/records/written") == 0
    assert recrawl.progress_pages() == len(expected.truth.pages)
    assert crawl_db.records() == rows
    assert lake_snapshot(lake) == files
    assert_crawl_matches(expected, crawl_db, lake)

    runs = crawl_db.runs()
    assert [(r["status"], r["records_written"]) for r in runs] == [
        ("finished", len(rows)),
        ("finished", 0),
        ("finished", 0),
    ]


# ------------------------------------------------------------------------------------------ 5


def _count_or_zero(db: Database, table: sa.Table) -> int:
    try:
        return db.count(table)
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):  # no database or tables yet
        return 0


def test_jobdir_resume_after_sigint(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    seeds = ("Darth Vader",)
    expected = expect_crawl(mediawiki, seeds, max_depth=2)
    lake = tmp_path / "lake"
    job = tmp_path / "job"
    source = source_file(tmp_path, mediawiki, seeds, max_depth=2)
    job_args = ["-s", f"JOBDIR={job}"]
    slow = [
        *job_args,
        *("-s", "DOWNLOAD_DELAY=0.5", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=1"),
        *("-s", "MEDIAWIKI_TITLES_PER_REQUEST=5"),
    ]
    log_path = tmp_path / "interrupted.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            crawl_command(source, lake, crawl_db, args=slow),
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + CRAWL_TIMEOUT
            while _count_or_zero(crawl_db, crawl_db.tables.ingest_records) == 0:
                assert proc.poll() is None, "the crawl ended before it was interrupted"
                assert time.monotonic() < deadline, "no record within the timeout"
                time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            try:
                returncode = proc.wait(timeout=SIGINT_EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the crawl did not stop within {SIGINT_EXIT_TIMEOUT} s of SIGINT")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    log = log_path.read_text("utf-8", errors="replace")
    assert returncode == 0, log[-6000:]
    assert "Received SIGINT" in log

    items = crawl_db.work_items()
    statuses = [i["status"] for i in items]
    assert "pending" in statuses, "the crawl finished before the interruption"
    assert "in_progress" not in statuses, [
        i["resource_id"] for i in items if i["status"] == "in_progress"
    ]
    assert "failed" not in statuses
    [run] = crawl_db.runs()
    assert (run["status"], run["finish_reason"]) == ("cancelled", "shutdown")
    rows = crawl_db.records()
    assert len(rows) < len(expected.truth.pages)
    assert_same_set(
        (f.payload["pageid"] for f in read_lake(lake)),
        (json.loads(r["payload"])["pageid"] for r in rows),
        "pages in the lake and in IngestRecords after the interruption",
    )
    assert len(read_lake(lake)) == len(rows)

    resumed = run_crawl(source, lake, crawl_db, tmp_path / "resumed.log", args=job_args).check()
    if "Resuming crawl" in resumed.log:
        # Scrapy restored requests queued at the SIGINT; their claims had been released, so the
        # claim check dropped them (the SQL queue handed that work out again).
        assert "'holocron/frontier/stale_requests'" in resumed.log
    assert_crawl_matches(expected, crawl_db, lake)
    assert [r["status"] for r in crawl_db.runs()] == ["cancelled", "finished"]


# ------------------------------------------------------------------------------------------ 6


def _assert_refused(tmp_path: Path, result: CrawlResult, *expected_text: str) -> None:
    result.check(2)
    for text in expected_text:
        assert text in result.log, f"{text!r} not in the output:\n{result.tail()}"
    assert "Traceback" not in result.log, result.tail()
    assert not (tmp_path / "state.db").exists(), "the state database was created"
    assert not (tmp_path / "lake").exists(), "the lake directory was created"


def test_unknown_key_is_refused(mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database) -> None:
    source = source_file(tmp_path, mediawiki, ["Darth Vader"], discovery_extra={"max_dept": 2})
    result = run_crawl(source, tmp_path / "lake", crawl_db, tmp_path / "crawl.log")
    _assert_refused(tmp_path, result, f"{source}: discovery.max_dept:", "did you mean")


def test_missing_api_url_is_refused(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    source = source_file(tmp_path, mediawiki, ["Darth Vader"], drop=["api_url"])
    result = run_crawl(source, tmp_path / "lake", crawl_db, tmp_path / "crawl.log")
    _assert_refused(tmp_path, result, f"{source}: api_url:")


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        # 200 with an XML body: the crawl must say it is not JSON.
        pytest.param("opensearch_desc.php", "not JSON", id="xml-200"),
        # index.php answers an unknown action=query with an HTML 404 page.
        pytest.param("index.php", "HTTP 404", id="html-404"),
    ],
)
def test_url_that_is_not_the_api_fails_the_seeds(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database, endpoint: str, message: str
) -> None:
    seeds = ["Darth Vader", "Yoda"]
    source = write_source(
        tmp_path / f"{SOURCE_NAME}.yaml",
        mediawiki.api_url.removesuffix("api.php") + endpoint,
        seeds,
    )
    lake = tmp_path / "lake"
    result = run_crawl(source, lake, crawl_db, tmp_path / "crawl.log").check()
    items = crawl_db.work_items()
    assert sorted(i["resource_id"] for i in items) == sorted(seeds)
    for item in items:
        assert item["status"] == "failed", item
        assert message in (item["error_message"] or ""), item["error_message"]
    assert crawl_db.records() == []
    assert read_lake(lake) == []
    [run] = crawl_db.runs()
    assert (run["status"], run["items_failed"], run["records_written"]) == ("finished", 2, 0)
    assert result.stat("downloader/request_count") == 1
