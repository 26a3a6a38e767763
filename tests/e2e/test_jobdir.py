"""Guarantee 5: ``scrapy crawl … -s JOBDIR=…`` Ctrl-C'd once and resumed gives the same result
as an uninterrupted run.

Two crawls of the same source on the real MediaWiki, each with its own database and lake: one
runs to its end; the other gets one SIGINT (Scrapy's Ctrl-C: a graceful stop that saves the
scheduler's requests in JOBDIR) once it has written records and still has work pending, then the
same command resumes it. Both must end with the same records (resource, content hash), the same
lake file names, the same work items (status, depth, message), and pass ``ingest_verify``.
"""

from __future__ import annotations

import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from holocron_scrapy.audit.verify import verify
from tests.e2e.crawl_helpers import (
    CRAWL_TIMEOUT,
    REPO_ROOT,
    SOURCE_NAME,
    Database,
    crawl_command,
    expect_crawl,
    record_files,
    run_crawl,
    write_source,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.wiki import MediaWiki

SEEDS = ("Darth Vader", "Old name of Anakin")
MAX_DEPTH = 2
# Small requests one at a time, so that the SIGINT finds most of the crawl still to do, and
# few taken into the downloader: the others wait in the scheduler, whose queue JOBDIR keeps.
STEADY = (
    *("-s", "MEDIAWIKI_TITLES_PER_REQUEST=5", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=1"),
    *("-s", "CONCURRENT_REQUESTS=2"),
)
# SIGINT once records exist and this many items are claimed (>= 4 requests: 2 can be in the
# downloader, the rest are in the scheduler).
CLAIMED_AT_SIGINT = 20
SIGINT_EXIT_TIMEOUT = 60.0


def outcome(db: Database, lake: Path) -> dict[str, Any]:
    """What a crawl leaves, without what differs between any two runs (ids, times, run ids)."""
    records = sorted((r["resource_type"], r["resource_id"], r["hash_sha256"]) for r in db.records())
    items = sorted(
        (i["resource_type"], i["resource_id"], i["status"], i["depth"], i["error_message"])
        for i in db.work_items()
    )
    files = [str(p.relative_to(lake)) for p in record_files(lake)]
    return {"records": records, "work_items": items, "lake_files": files}


def ready_for_sigint(db: Database) -> bool:
    """Records written, and requests waiting in the scheduler (claimed items not yet done)."""
    wi = db.tables.work_items
    try:
        records = db.count(db.tables.ingest_records)
        [row] = db.select(sa.select(sa.func.count().label("n")).where(wi.c.status == "in_progress"))
    except sa.exc.SQLAlchemyError:  # no database or tables yet
        return False
    return records > 0 and row["n"] >= CLAIMED_AT_SIGINT


def audit(db: Database, lake: Path) -> list[str]:
    engine = sa.create_engine(db.read_only_url, poolclass=sa.NullPool)
    try:
        report = verify(engine, db.tables, lake, SOURCE_NAME)
    finally:
        engine.dispose()
    assert report.ok, report.lines()
    return report.lines()


@pytest.mark.parametrize(
    "crawl_db",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
    indirect=True,
)
def test_jobdir_ctrl_c_once_then_resume_equals_an_uninterrupted_run(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    expected = expect_crawl(mediawiki, SEEDS, max_depth=MAX_DEPTH)
    source = write_source(
        tmp_path / f"{SOURCE_NAME}.yaml", mediawiki.api_url, SEEDS, max_depth=MAX_DEPTH
    )

    whole_db = Database("sqlite", f"sqlite:///{tmp_path / 'whole.db'}", None)
    whole_lake = tmp_path / "whole-lake"
    run_crawl(source, whole_lake, whole_db, tmp_path / "whole.log", args=STEADY).check()
    uninterrupted = outcome(whole_db, whole_lake)
    assert len(uninterrupted["records"]) == len(expected.truth.pages)

    lake = tmp_path / "lake"
    job_args = ["-s", f"JOBDIR={tmp_path / 'job'}", *STEADY]
    log_path = tmp_path / "interrupted.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            crawl_command(source, lake, crawl_db, args=job_args),
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + CRAWL_TIMEOUT
            while not ready_for_sigint(crawl_db):
                assert proc.poll() is None, "the crawl ended before it was interrupted"
                assert time.monotonic() < deadline, "no records and claims within the timeout"
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            returncode = proc.wait(timeout=SIGINT_EXIT_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    log = log_path.read_text("utf-8", errors="replace")
    assert returncode == 0, log[-6000:]
    assert "Received SIGINT" in log
    interrupted = outcome(crawl_db, lake)
    assert len(interrupted["records"]) < len(uninterrupted["records"]), "not interrupted"
    assert [r["status"] for r in crawl_db.runs()] == ["cancelled"]
    audit(crawl_db, lake)  # consistent at the stop already

    resumed = run_crawl(source, lake, crawl_db, tmp_path / "resumed.log", args=job_args).check()
    assert "Resuming crawl" in resumed.log, "JOBDIR was not used"
    assert outcome(crawl_db, lake) == uninterrupted
    assert [r["status"] for r in crawl_db.runs()] == ["cancelled", "finished"]
    audit(crawl_db, lake)
