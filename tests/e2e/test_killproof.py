"""Guarantee 1: ``kill -9`` at any moment, then the same command again.

The real ``scrapy crawl mediawiki`` archives the large test bed (:mod:`tests.e2e.bigwiki`, more
than 2,000 pages, seeded with ``allpages`` over every namespace) and is killed with SIGKILL at
:data:`KILLS` random moments, resumed each time with the same command, killed once more as it
ends (all records written, the run closing), then run to its end.
The moments come from ``random.Random(seed)``: a few during start-up (before or while the
queue is seeded and the listings page), the others when the run has added a random number of
records (each in its share of the first 85 % of the crawl, so that they spread over it) plus up
to 0.15 s, so that they fall inside batches, lake writes and commits. The seed is printed (run
pytest with ``-s`` to see it) and in every failure message; ``HOLOCRON_KILL_SEED=<seed>`` replays
the plan (the moments are the same, the interleaving of a real crawl may differ).

After every kill, what is stored must already be consistent (every row has its file, or its
pending file when the kill fell between the commit and the rename; the hashes agree; no
duplicate; no published file without its row; every completed item has its record) and the
leases held must be those of the killed run only (the dead runs before it were reclaimed at its
start). The wiki is live: after each kill, the pages whose lake files have no committed row
(at most :data:`EDITS_PER_KILL` of them) are edited, so that their refetch has another content:
a file left by the kill can never be healed by a rewrite of the same name. At the end
``scrapy ingest_verify --ground-truth`` must pass and the direct checks agree: the completed
pages are the wiki's pages, one row and one lake file each, nothing left in progress, and every
restart fetched its first page within :data:`FIRST_FETCH_LIMIT` seconds of being started —
the leases last an hour, so only the immediate release of a dead process's claims lets it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url

from holocron_scrapy.audit.verify import read_only_engine, verify
from holocron_scrapy.lake.files import PENDING_DIR, TEMP_PREFIX, parse_pending_name, record_filename
from tests.e2e.audit import ingest_verify
from tests.e2e.bigwiki import MIN_RECORDED_PAGES, all_pages
from tests.e2e.crawl_helpers import (
    FAST_SETTINGS,
    REPO_ROOT,
    SOURCE_NAME,
    USER_AGENT,
    Database,
    LakeFile,
    assert_same_set,
    crawl_command,
    record_files,
)
from tests.e2e.test_recrawl import _edit as edit_page

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.engine import Engine

    from tests.e2e.wiki import MediaWiki

KILLS = 12
EDITS_PER_KILL = 1  # edit.php takes ~1 s a page on a busy 2-core machine
EARLY_KILLS = 3  # at a random moment of the first 2.5 s of a run (start-up, seeding, listings)
EARLY_WINDOW = (0.05, 1.5)  # s: from the interpreter's start to the first responses
LATE_JITTER = 0.15  # s after the record count is reached (a batch of 50 pages takes ~0.1 s)
KILL_SPAN = 0.85  # the late kills fall within this part of the crawl
FIRST_FETCH_LIMIT = 30.0  # s from a restart to its first response: far below the 1 h lease
LEASE_SECONDS = 3600
RUN_TIMEOUT = 120.0
POLL = 0.03
SEED_ENV = "HOLOCRON_KILL_SEED"
WORKER_ID = "killproof-worker"
ARGS = ("-s", f"HOLOCRON_LEASE_SECONDS={LEASE_SECONDS}", "-s", f"HOLOCRON_WORKER_ID={WORKER_ID}")


@dataclass
class KillPoint:
    """When to kill a run: ``early`` seconds after its start, or else once it has added
    ``records`` records (set just before the run) and then ``jitter`` seconds more."""

    early: float | None
    fraction: float = 0.0  # where in its share of the crawl a late kill falls
    jitter: float = 0.0
    records: int = 0

    def __str__(self) -> str:
        if self.early is not None:
            return f"{self.early:.2f}s"
        if self.records and not self.fraction:
            return f"{self.records}rec"
        return f"{self.fraction:.2f}+{self.jitter:.2f}s"


def kill_plan(rng: random.Random) -> list[KillPoint]:
    """KILLS points, EARLY_KILLS of them early, in random places."""
    early_at = set(rng.sample(range(KILLS), EARLY_KILLS))
    return [
        KillPoint(rng.uniform(*EARLY_WINDOW))
        if index in early_at
        else KillPoint(None, rng.random(), rng.uniform(0, LATE_JITTER))
        for index in range(KILLS)
    ]


def place(point: KillPoint, plan_left: list[KillPoint], done: int, total: int) -> None:
    """Set a late kill's record count: at ``fraction`` of an equal share of what is left of the
    first KILL_SPAN of the crawl (so the kills spread over it, whatever earlier kills reached),
    and at least one record more than now."""
    late_left = sum(1 for p in plan_left if p.early is None)
    share = max(0, int(KILL_SPAN * total) - done) // max(1, late_left)
    point.records = done + 1 + int(point.fraction * share)


@dataclass
class Harness:
    db: Database
    lake: Path
    source: Path
    tmp_path: Path
    spawned: dict[int, datetime] = field(default_factory=dict)  # pid -> start (naive UTC)
    kills: list[str] = field(default_factory=list)
    wiki: MediaWiki | None = None
    edited: list[str] = field(default_factory=list)
    _engine: Engine | None = None

    def edit(self, titles: list[str], kill: int) -> None:
        """New revisions of these pages (the live wiki changed while the crawl was down)."""
        assert self.wiki is not None
        for title in titles:
            edit_page(self.wiki, title, f"kill {kill}", f"Edited after kill {kill} of the harness.")
            self.edited.append(title)

    def engine(self) -> Engine | None:
        """Reads of the harness: SQLite read-only, once the crawl has created the file."""
        if self._engine is None:
            if self.db.backend != "sqlite":
                self._engine = sa.create_engine(self.db.url, poolclass=sa.NullPool)
            elif (self.tmp_path / "state.db").exists():
                self._engine = read_only_engine(make_url(self.db.url))
        return self._engine

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def rows(self, stmt: sa.Select[Any]) -> list[Any]:
        engine = self.engine()
        assert engine is not None
        with engine.connect() as conn:
            return list(conn.execute(stmt))

    def records(self) -> int:
        ir = self.db.tables.ingest_records
        try:
            return int(self.rows(sa.select(sa.func.count().label("n")).select_from(ir))[0].n)
        except (AssertionError, sa.exc.SQLAlchemyError):  # no database or tables yet
            return 0

    def run(self, name: str, point: KillPoint | None, context: str) -> int | None:
        """Start the crawl; SIGKILL it at ``point`` (None: let it end). Its exit status, or
        None when it was killed."""
        log_path = self.tmp_path / f"{name}.log"
        with log_path.open("wb") as out:
            spawned_at = datetime.now(UTC).replace(tzinfo=None)
            proc = subprocess.Popen(
                crawl_command(self.source, self.lake, self.db, args=ARGS),
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            self.spawned[proc.pid] = spawned_at
            started = time.monotonic()
            try:
                if point is None:
                    return proc.wait(timeout=RUN_TIMEOUT)
                if point.early is not None:
                    while time.monotonic() < started + point.early and proc.poll() is None:
                        time.sleep(0.01)
                else:
                    while self.records() < point.records and proc.poll() is None:
                        assert time.monotonic() - started < RUN_TIMEOUT, (
                            f"{context}: {point} not reached in {RUN_TIMEOUT} s; log {log_path}"
                        )
                        time.sleep(POLL)
                    time.sleep(point.jitter)
                if proc.poll() is not None:
                    return proc.returncode
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=30)
        self.kills.append(f"{point}@{time.monotonic() - started:.2f}s:{self.records()}rec")
        return None


def assert_consistent_after_kill(h: Harness, context: str) -> list[str]:
    """What must hold at every moment: the crawl state and the lake agree. Returns the
    resource ids of the lake files that no committed row accounts for (pending files)."""
    engine = h.engine()
    if engine is None:
        return []  # killed before the database was created
    try:
        report = verify(engine, h.db.tables, h.lake, SOURCE_NAME)
        ir = h.db.tables.ingest_records
        rows = h.rows(sa.select(ir.c.resource_id, ir.c.hash_sha256))
    except sa.exc.SQLAlchemyError:
        return []  # killed before the tables existed
    expected = {record_filename(r.resource_id, r.hash_sha256) for r in rows}
    published = {p.name for p in lake_record_paths(h.lake)}
    pending: dict[str, list[Path]] = {}
    for path in h.lake.rglob(f"{PENDING_DIR}/*.json"):
        if (parsed := parse_pending_name(path.name)) is not None:
            pending.setdefault(parsed.final_name, []).append(path)
    # The only gap a kill may leave: a committed row whose file is still pending (killed between
    # the commit and the rename), which the next run's start publishes.
    unpublished = expected - published
    assert unpublished <= set(pending), f"{context}: rows without any file: {unpublished}"
    bad = {
        name: finding.count
        for name, finding in report.findings.items()
        if finding.count and name != "row_without_file"
    }
    assert not bad, f"{context}: inconsistent after a kill: {report.lines()}"
    assert report.findings["row_without_file"].count == len(unpublished), report.lines()
    orphans = [p for name, paths in pending.items() if name not in expected for p in paths]
    # An orphan may be cut short (its writer was killed mid-write: pending files are written in
    # place, and only a complete, fsynced one can have a committed row): its work item is named.
    wi = h.db.tables.work_items
    ids = sorted({parsed.work_item_id for p in orphans if (parsed := parse_pending_name(p.name))})
    return sorted(
        {r.resource_id for r in h.rows(sa.select(wi.c.resource_id).where(wi.c.id.in_(ids)))}
    )


def assert_only_this_run_holds_leases(h: Harness, pid: int, context: str) -> None:
    """The killed run fetched something, so its start-up is behind it: the claims of the runs
    killed before it were released then, and every lease left is its own."""
    runs = h.db.tables.runs
    wi = h.db.tables.work_items
    [run_id] = [r.run_id for r in h.rows(sa.select(runs.c.run_id).where(runs.c.pid == pid))]
    holders = Counter(
        r.run_id for r in h.rows(sa.select(wi.c.run_id).where(wi.c.status == "in_progress"))
    )
    assert set(holders) <= {run_id}, f"{context}: leases of dead runs left: {holders}"


def write_allpages_source(path: Path, api_url: str, namespaces: list[int]) -> Path:
    document = {
        "name": SOURCE_NAME,
        "type": "mediawiki",
        "api_url": api_url,
        "user_agent": USER_AGENT,
        "seeds": {"allpages": namespaces},
        "discovery": {"links": False},
        "settings": dict(FAST_SETTINGS),
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    "crawl_db",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
    indirect=True,
)
def test_kill9_at_random_moments_then_resume(
    big_mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    t0 = time.monotonic()
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(1 << 32))
    namespaces, truth = all_pages(big_mediawiki)
    assert len(truth) >= MIN_RECORDED_PAGES
    plan = kill_plan(random.Random(seed))
    replay = f"{SEED_ENV}={seed} ({crawl_db.backend}; plan {[str(p) for p in plan]})"
    print(f"kill -9 harness: {replay}")

    source = write_allpages_source(tmp_path / "big.yaml", big_mediawiki.api_url, namespaces)
    lake = tmp_path / "lake"
    h = Harness(crawl_db, lake, source, tmp_path, wiki=big_mediawiki)
    try:
        for index, point in enumerate(plan):
            context = f"kill {index + 1} at {point} [{replay}]"
            before = h.records()
            if point.early is None:
                place(point, plan[index:], before, len(truth))
            status = h.run(f"run{index + 1:02d}", point, context)
            assert status is None, f"{context}: the crawl ended ({status}) before its kill point"
            orphans = assert_consistent_after_kill(h, context)
            h.edit(orphans[:EDITS_PER_KILL], index)
            if h.records() > before:
                assert_only_this_run_holds_leases(h, max(h.spawned), context)
        killed_at = h.records()
        # One more, as the crawl ends: once every record is written, while the run closes
        # (buffers flushed, the run recorded). Not counted in KILLS: the run may be gone first.
        end = KillPoint(None, records=len(truth))
        ended = h.run("run-end", end, f"kill at the end [{replay}]")
        assert ended in (None, 0), f"[{replay}] the run before the last exited {ended}"
        if ended is None:
            orphans = assert_consistent_after_kill(h, f"kill at the end [{replay}]")
            h.edit(orphans[:EDITS_PER_KILL], KILLS)
        status = h.run("final", None, f"final run [{replay}]")
        assert status == 0, f"[{replay}] the final run exited {status}; log {tmp_path}/final.log"
        assert_final_state(h, truth, replay)
        first_fetch = restart_first_fetch(h)
    finally:
        h.dispose()

    audit = ingest_verify(
        *crawl_db.settings_args(),
        *("-s", f"HOLOCRON_LAKE_DIR={lake}", "--source", SOURCE_NAME),
        *("--ground-truth", str(write_truth(tmp_path, truth)), "--resource-type", "page"),
    )
    assert audit.returncode == 0, f"[{replay}]\n{audit.stdout}{audit.stderr}"
    assert f"records={len(truth)}, " in audit.stdout.splitlines()[-1]

    assert len(h.kills) >= KILLS >= 10
    assert h.edited, f"[{replay}] no kill left a file without its row: nothing was edited"
    slow = {pid: sec for pid, sec in first_fetch.items() if sec > FIRST_FETCH_LIMIT}
    assert not slow, f"[{replay}] restarts slower than {FIRST_FETCH_LIMIT} s to fetch: {slow}"
    print(
        f"kill -9 harness ({crawl_db.backend}): {len(truth)} pages, {KILLS} kills {h.kills}, "
        f"{killed_at} records after the planned kills, {len(h.edited)} pages edited between "
        f"kills, {temp_files(lake)} leftover temporary files, restart-to-first-fetch max "
        f"{max(first_fetch.values()):.2f} s over {len(first_fetch)} restarts, "
        f"wall {time.monotonic() - t0:.1f} s"
    )


def write_truth(tmp_path: Path, truth: set[str]) -> Path:
    path = tmp_path / "truth.txt"
    path.write_text("\n".join(sorted(truth)) + "\n", "utf-8")
    return path


def assert_final_state(h: Harness, truth: set[str], replay: str) -> None:
    items = h.db.work_items()
    statuses = Counter(i["status"] for i in items)
    assert set(statuses) == {"completed"}, f"[{replay}] work items not all completed: {statuses}"
    pages = [i["resource_id"] for i in items if i["resource_type"] == "page"]
    assert len(pages) == len(set(pages))
    assert_same_set(pages, truth, f"completed pages [{replay}]")
    rows = h.db.records()
    per_page = Counter(r["resource_id"] for r in rows)
    assert set(per_page.values()) == {1}, (
        f"[{replay}] pages with several records: {[t for t, n in per_page.items() if n > 1][:10]}"
    )
    assert_same_set(per_page, truth, f"IngestRecords [{replay}]")
    files = lake_records(h.lake)
    assert len(files) == len(truth), f"[{replay}] {len(files)} lake files for {len(truth)} pages"
    assert_same_set((f.document["resource_id"] for f in files), truth, f"lake [{replay}]")
    by_id = {r["resource_id"]: r for r in rows}
    for f in files:
        row = by_id[f.document["resource_id"]]
        assert f.document["hash_sha256"] == row["hash_sha256"]
        assert f.raw.endswith(f'"payload": {row["payload"]}\n}}\n')


def lake_record_paths(lake: Path) -> list[Path]:
    """The lake's record files: not the temporary files of writes cut short by a kill, nor the
    pending files whose rows have not committed."""
    return [
        p
        for p in record_files(lake)
        if p.suffix == ".json"
        and not p.name.startswith(TEMP_PREFIX)
        and p.parent.name != PENDING_DIR
    ]


def lake_records(lake: Path) -> list[LakeFile]:
    paths = lake_record_paths(lake)
    return [LakeFile(p, json.loads(raw), raw) for p in paths if (raw := p.read_text("utf-8"))]


def temp_files(lake: Path) -> int:
    return sum(1 for _ in lake.rglob(f"{TEMP_PREFIX}*"))


def restart_first_fetch(h: Harness) -> dict[int, float]:
    """pid -> seconds from the start of each run after the first to its first response."""
    runs = h.db.runs()
    ir = h.db.tables.ingest_records
    first = {
        r.run_id: r.first
        for r in h.rows(
            sa.select(ir.c.run_id, sa.func.min(ir.c.fetched_at_utc).label("first")).group_by(
                ir.c.run_id
            )
        )
    }
    first_pid = min(h.spawned, key=h.spawned.__getitem__)
    out = {}
    for run in runs:
        pid = run["pid"]
        if pid == first_pid or run["run_id"] not in first or pid not in h.spawned:
            continue
        out[pid] = (first[run["run_id"]] - h.spawned[pid]).total_seconds()
    return out
