"""End to end: the state database and the lake go away mid-crawl, and come back (guarantee 2).

A real ``scrapy crawl mediawiki`` of the MediaWiki test bed keeps its state in a PostgreSQL
cluster of this test's own (:mod:`tests.e2e.private_pg`; never the shared server). Mid-crawl:

1. the cluster is stopped (``pg_ctl stop -m fast``: every connection is cut) for
   ``HOLOCRON_E2E_OUTAGE_SECONDS`` (default 10 s; the guarantee's 30 s with the variable set to
   30), then started again;
2. later, the lake is remounted read-only for a few seconds (the lake is a tmpfs mounted for the
   test; ``mount -o remount,ro``, as a disk that went read-only, gives EROFS to every write,
   even root's — chmod would not stop root). Skipped without the right to mount.

The crawl must wait, say so once per outage, carry on by itself and end as an uninterrupted crawl
would: the database equal to the wiki's ground truth, one IngestRecords row and one lake file
per page, no item left in progress.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from tests.e2e.crawl_helpers import (
    FAST_SETTINGS,
    REPO_ROOT,
    SOURCE_NAME,
    CrawlResult,
    Database,
    assert_records_match,
    assert_work_items_match,
    crawl_command,
    expect_crawl,
    write_source,
)
from tests.e2e.private_pg import PrivatePostgres, missing_requirements

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.e2e.wiki import MediaWiki

pytestmark = pytest.mark.slow

SEED = "Darth Vader"
MAX_DEPTH = 2
OUTAGE_SECONDS = float(os.environ.get("HOLOCRON_E2E_OUTAGE_SECONDS", "10"))
LAKE_OUTAGE_SECONDS = 5.0
CRAWL_TIMEOUT = 300.0 + 2 * OUTAGE_SECONDS
# Slow enough that the crawl is still running when the outages begin and end.
SETTINGS = {
    **FAST_SETTINGS,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 2,
    "DOWNLOAD_DELAY": 0.1,
    "MEDIAWIKI_TITLES_PER_REQUEST": 3,
}
ARGS = ["-s", "HOLOCRON_CLAIM_SIZE=20", "-s", "HOLOCRON_FLUSH_INTERVAL=0.5"]
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) ", re.MULTILINE)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    problems = missing_requirements()
    if problems:
        pytest.skip("; ".join(problems))
    cluster = PrivatePostgres.create()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def tmpfs_lake() -> Iterator[Path]:
    """A lake on a tmpfs of its own, which the test can remount read-only."""
    lake = Path(tempfile.mkdtemp(prefix="holocron-lake-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(lake)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        lake.rmdir()
        pytest.skip(f"cannot mount a tmpfs for the lake: {mounted.stderr.strip()}")
    try:
        yield lake
    finally:
        subprocess.run(["umount", str(lake)], check=False)
        lake.rmdir()


def _remount(lake: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(lake)], check=True)


def _count_rows(db: Database) -> int:
    try:
        return db.count(db.tables.ingest_records)
    except sa.exc.ProgrammingError:  # the crawl has not created its tables yet
        return 0


def _wait_until(condition: Callable[[], bool], proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + CRAWL_TIMEOUT
    while not condition():
        assert proc.poll() is None, f"the crawl ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _logged_at(log: str, text: str) -> float:
    """The epoch second of the first log line containing ``text``."""
    for match in LOG_TIME.finditer(log):
        end = log.find("\n", match.end())
        if text in log[match.start() : end]:
            return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
    raise AssertionError(f"{text!r} not in the log")


def test_the_crawl_waits_out_a_database_and_a_lake_outage_and_loses_nothing(
    mediawiki: MediaWiki, private_pg: PrivatePostgres, tmpfs_lake: Path, tmp_path: Path
) -> None:
    db = Database("postgresql", private_pg.url, "ingest")
    lake = tmpfs_lake
    source = write_source(
        tmp_path / f"{SOURCE_NAME}.yaml",
        mediawiki.api_url,
        [SEED],
        max_depth=MAX_DEPTH,
        settings=SETTINGS,
    )
    expected = expect_crawl(mediawiki, [SEED], MAX_DEPTH)
    pages = len(expected.truth.pages)
    log_path = tmp_path / "crawl.log"
    cmd = crawl_command(source, lake, db, args=ARGS)
    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            # 1. The database goes away once some pages are in, for OUTAGE_SECONDS.
            _wait_until(lambda: _count_rows(db) >= 20, proc, "20 records")
            stopped_at = time.time()
            private_pg.stop()
            time.sleep(OUTAGE_SECONDS)
            assert proc.poll() is None, "the crawl ended during the database outage"
            private_pg.start()
            started_at = time.time()
            rows_after_outage = _count_rows(db)
            assert rows_after_outage < pages, "the outage came too late: nothing left to crawl"

            # 2. The lake turns read-only for a while, once the crawl is writing again.
            _wait_until(lambda: _count_rows(db) >= rows_after_outage + 20, proc, "20 more records")
            _remount(lake, "ro")
            time.sleep(LAKE_OUTAGE_SECONDS)
            _remount(lake, "rw")
            lake_back_at = time.time()
            assert _count_rows(db) < pages, "the lake outage came too late"
            proc.wait(timeout=CRAWL_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    result = CrawlResult(proc.returncode, log_path).check(0)
    log = result.log

    # Said once per outage, when it began and when it ended.
    assert log.count("State database unreachable (") == 1, result.tail()
    assert log.count("State database reachable again after ") == 1, result.tail()
    assert log.count(f"Lake {lake} unreachable (OSError: [Errno 30] Read-only") == 1, result.tail()
    assert log.count(f"Lake {lake} reachable again after ") == 1, result.tail()
    assert result.stat("holocron/outage/database/count") == 1
    assert result.stat("holocron/outage/lake/count") == 1
    assert "Traceback" not in log.split("State database reachable again")[1], result.tail()
    resumed = _logged_at(log, "State database reachable again after ") - started_at
    lake_resumed = _logged_at(log, f"Lake {lake} reachable again after ") - lake_back_at
    print(
        f"database down {started_at - stopped_at:.1f} s, crawl writing again "
        f"{resumed:+.0f} s after the restart (1 s log resolution); lake read-only "
        f"{LAKE_OUTAGE_SECONDS:.0f} s, writing again {lake_resumed:+.0f} s after; "
        f"stats outage seconds: database {result.stat('holocron/outage/database/seconds')}, "
        f"lake {result.stat('holocron/outage/lake/seconds')}"
    )
    assert resumed <= 8, "more than the 5 s back-off cap (+1 s of log resolution, +2 s)"

    # Nothing lost, nothing twice: exactly the ground truth, no item in progress.
    assert_work_items_match(expected, db)
    assert_records_match(expected, db, lake)
    assert not [i for i in db.work_items() if i["status"] == "in_progress"]
    assert result.stat("holocron/work_items/failed") == 0
    [run] = db.runs()
    assert run["status"] == "finished"
    assert run["records_written"] == pages
