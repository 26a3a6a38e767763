"""End to end: three ``scrapy crawl`` processes share one PostgreSQL frontier (guarantee 3).

Three real crawls of the MediaWiki test bed start at once, with their own worker ids, on the
same source and the same state database (a random schema of the PostgreSQL server of the tests).
Each claims small batches (``HOLOCRON_CLAIM_SIZE=10``), so the work spreads; a worker with
nothing to claim while the others have items in flight waits for them (they may discover more).

Every request each process made is read from its own DEBUG log (Scrapy's "Crawled (200) <GET
…>" lines), so fetches are counted per process and per title: the union of the titles fetched
must be exactly the work items of the ground truth, none fetched twice, every process must have
fetched some, all must exit 0, and none may exit while another still had work in flight.
"""

from __future__ import annotations

import bisect
import signal
import subprocess
import time
from collections import Counter
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from tests.e2e.crawl_helpers import (
    FAST_SETTINGS,
    REPO_ROOT,
    SOURCE_NAME,
    CrawlResult,
    assert_records_match,
    assert_work_items_match,
    crawl_command,
    expect_crawl,
    write_source,
)
from tests.e2e.test_retries import FailingProxy

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.e2e.crawl_helpers import Database
    from tests.e2e.wiki import MediaWiki

pytestmark = pytest.mark.slow

WORKERS = 3
SEED = "Darth Vader"
MAX_DEPTH = 2
TIMEOUT = 300.0
SETTINGS = {**FAST_SETTINGS, "MEDIAWIKI_TITLES_PER_REQUEST": 5, "DOWNLOAD_DELAY": 0.1}
ARGS = ["-s", "HOLOCRON_CLAIM_SIZE=10", "-s", "HOLOCRON_IDLE_POLL=0.5"]
CRAWLED = "] DEBUG: Crawled ("


def fetched_titles(log: str) -> list[str]:
    """The titles of every page query (``prop=revisions``) a crawl's DEBUG log says it made."""
    titles = []
    for line in log.splitlines():
        if CRAWLED not in line:
            continue
        url = line.split("<GET ", 1)[1].split(">", 1)[0]
        query = parse_qs(urlsplit(url).query)
        if query.get("prop", [""])[0].startswith("revisions"):
            titles.extend(query["titles"][0].split("|"))
    return titles


@pytest.mark.parametrize("crawl_db", ["postgresql"], indirect=True)
def test_three_workers_share_one_frontier_and_fetch_nothing_twice(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    source = write_source(
        tmp_path / f"{SOURCE_NAME}.yaml",
        mediawiki.api_url,
        [SEED],
        max_depth=MAX_DEPTH,
        settings=SETTINGS,
    )
    lake = tmp_path / "lake"
    expected = expect_crawl(mediawiki, [SEED], MAX_DEPTH)
    logs = [tmp_path / f"worker{n}.log" for n in range(1, WORKERS + 1)]
    started = time.monotonic()
    results = run_workers(source, lake, crawl_db, logs, ARGS)
    elapsed = time.monotonic() - started

    per_worker = [fetched_titles(r.log) for r in results]
    counts = Counter(title for titles in per_worker for title in titles)
    twice = {title: n for title, n in counts.items() if n > 1}
    print(
        f"{WORKERS} workers in {elapsed:.1f} s: titles fetched per worker "
        f"{[len(t) for t in per_worker]}, page requests "
        f"{[r.stat('downloader/request_count') for r in results]}, completed "
        f"{[r.stat('holocron/work_items/completed') for r in results]}, waits "
        f"{[r.stat('holocron/frontier/waits') for r in results]}"
    )
    assert not twice, f"titles fetched more than once: {twice}"
    assert set(counts) == set(expected.items), "the union of the fetches is not the ground truth"
    assert all(per_worker), "a worker fetched nothing: the work was not shared"

    # The union equals the ground truth: one row and one lake file per page, nothing left.
    assert_work_items_match(expected, crawl_db)
    assert_records_match(expected, crawl_db, lake)
    assert sum(r.stat("holocron/work_items/completed") for r in results) == len(
        expected.truth.pages
    )
    assert sum(r.stat("holocron/outcomes/stale_lease") for r in results) == 0
    runs = crawl_db.runs()
    assert sorted(run["worker_id"] for run in runs) == [f"worker{n}" for n in range(1, 4)]
    assert {run["status"] for run in runs} == {"finished"}
    # No worker left while another still had work in flight (it might have found more).
    last_item = max(i["finished_at"] for i in crawl_db.work_items())
    assert all(run["finished_at"] >= last_item for run in runs), (last_item, runs)


# -- one politeness budget for all the workers -----------------------------------------------

BUDGET_DELAY = 0.2  # s between two requests to the source, whichever worker sends them
WINDOW = 2.0  # s


@pytest.fixture
def recording_proxy(mediawiki: MediaWiki) -> Iterator[FailingProxy]:
    with FailingProxy(mediawiki, None).serving() as proxy:
        yield proxy


def run_workers(
    source: Path, lake: Path, db: Database, logs: list[Path], args: list[str]
) -> list[CrawlResult]:
    """Start one crawl per log file at once, each its own worker; wait for them all."""
    procs = []
    try:
        for n, log_path in enumerate(logs, 1):
            cmd = crawl_command(
                source,
                lake,
                db,
                args=[*args, "-s", f"HOLOCRON_WORKER_ID=worker{n}"],
                log_level="DEBUG",
            )
            with log_path.open("wb") as out:
                procs.append(
                    subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
                )
        for proc in procs:
            proc.wait(timeout=TIMEOUT)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [CrawlResult(p.returncode, log).check(0) for p, log in zip(procs, logs, strict=True)]


@pytest.mark.parametrize("crawl_db", ["postgresql"], indirect=True)
def test_three_workers_keep_one_request_rate_between_them(
    mediawiki: MediaWiki, recording_proxy: FailingProxy, tmp_path: Path, crawl_db: Database
) -> None:
    source = write_source(
        tmp_path / f"{SOURCE_NAME}.yaml",
        recording_proxy.url,
        [SEED],
        max_depth=MAX_DEPTH,
        settings={**FAST_SETTINGS, "MEDIAWIKI_TITLES_PER_REQUEST": 10},
    )
    lake = tmp_path / "lake"
    logs = [tmp_path / f"worker{n}.log" for n in range(1, WORKERS + 1)]
    results = run_workers(
        source, lake, crawl_db, logs, [*ARGS, "-s", f"HOLOCRON_BUDGET_DELAY={BUDGET_DELAY}"]
    )
    times = sorted(t for t, _ in recording_proxy.seen)
    n = len(times)
    span = times[-1] - times[0]
    busiest = max(bisect.bisect_left(times, t + WINDOW) - i for i, t in enumerate(times))
    per_worker = [r.stat("holocron/budget/reserved") for r in results]
    print(
        f"{n} requests from {WORKERS} workers {per_worker} in {span:.1f} s "
        f"({n / span:.2f}/s; budget {1 / BUDGET_DELAY:.0f}/s); busiest {WINDOW:.0f} s: {busiest}"
    )
    assert all(per_worker), "a worker sent nothing: the work was not shared"
    assert sum(per_worker) == n  # every request took a slot of the one budget
    assert span >= (n - 1) * BUDGET_DELAY - 1.0, (n, span)
    assert busiest <= WINDOW / BUDGET_DELAY + 3, busiest
    expected = expect_crawl(mediawiki, [SEED], MAX_DEPTH)
    assert_work_items_match(expected, crawl_db)
    assert_records_match(expected, crawl_db, lake)


# -- a worker stalled past its leases ----------------------------------------------------------


def _rows(db: Database) -> int:
    try:
        return db.count(db.tables.ingest_records)
    except sa.exc.ProgrammingError:  # no tables yet
        return 0


def _wait_for_rows(db: Database, n: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while _rows(db) < n:
        assert proc.poll() is None, f"the crawl ended before {n} records"
        assert time.monotonic() < deadline, f"timed out waiting for {n} records"
        time.sleep(0.1)


@pytest.mark.parametrize("crawl_db", ["postgresql"], indirect=True)
def test_a_stalled_worker_loses_its_expired_claims_and_writes_nothing_for_them(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    """Worker 1 is frozen (SIGSTOP) past its 3 s leases; worker 2 takes its items over; worker 1,
    thawed, gives up the claims it lost (and drops the outcomes of what it had fetched): the
    result is still exactly the ground truth, each page once."""
    source = write_source(
        tmp_path / f"{SOURCE_NAME}.yaml",
        mediawiki.api_url,
        [SEED],
        max_depth=MAX_DEPTH,
        settings={**FAST_SETTINGS, "MEDIAWIKI_TITLES_PER_REQUEST": 3, "DOWNLOAD_DELAY": 0.1},
    )
    lake = tmp_path / "lake"
    args = [*ARGS, "-s", "HOLOCRON_LEASE_SECONDS=3"]
    logs = [tmp_path / "worker1.log", tmp_path / "worker2.log"]

    def start(n: int) -> subprocess.Popen[bytes]:
        cmd = crawl_command(
            source, lake, crawl_db, args=[*args, "-s", f"HOLOCRON_WORKER_ID=worker{n}"]
        )
        with logs[n - 1].open("wb") as out:
            return subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)

    first = start(1)
    procs = [first]
    try:
        _wait_for_rows(crawl_db, 10, first)
        first.send_signal(signal.SIGSTOP)
        stopped_rows = _rows(crawl_db)
        second = start(2)
        procs.append(second)
        time.sleep(5)  # the frozen worker's 3 s leases expire
        _wait_for_rows(crawl_db, stopped_rows + 10, second)
        first.send_signal(signal.SIGCONT)
        for proc in procs:
            proc.wait(timeout=TIMEOUT)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()
    results = [CrawlResult(p.returncode, log).check(0) for p, log in zip(procs, logs, strict=True)]
    frozen = results[0]
    given_up = frozen.stat("holocron/frontier/claims_lost") + frozen.stat(
        "holocron/outcomes/stale_lease"
    )
    print(
        f"frozen worker: claims lost {frozen.stat('holocron/frontier/claims_lost')}, stale "
        f"outcomes {frozen.stat('holocron/outcomes/stale_lease')}, stale requests "
        f"{frozen.stat('holocron/frontier/stale_requests')}, records not written "
        f"{frozen.stat('holocron/lake/claim_lost')}; completed "
        f"{[r.stat('holocron/work_items/completed') for r in results]}"
    )
    assert given_up > 0, "the frozen worker held no claim: the test proved nothing"
    expected = expect_crawl(mediawiki, [SEED], MAX_DEPTH)
    assert_work_items_match(expected, crawl_db)
    assert_records_match(expected, crawl_db, lake)
