"""Benchmark: do N workers on one PostgreSQL frontier add up? (issue 14)

Usage (not part of the test suite)::

    .venv/bin/python benchmarks/workers_scale.py --pages 3000 --workers 1 2 4 \
        --wiki-dir /tmp/wiki-bench

One generated wiki (the e2e test bed, served by PHP's built-in server with ``--php-workers``
workers), and for each N a fresh PostgreSQL database on the server of ``HOLOCRON_TEST_PG_URL``
(dropped after the run) on which N real ``scrapy crawl mediawiki`` processes start together, as
scrapyd would run them: their own ``HOLOCRON_WORKER_ID``, one shared lake directory, the shared
budget off (``DOWNLOAD_DELAY`` 0), AutoThrottle off. Prints for each N: pages (rows), wall
seconds from the first start to the last exit, pages/s and its ratio to N = 1; the CPU seconds
of the crawlers (``os.times()`` of the children), of PHP (``/proc/<pid>/stat`` of the server's
process group) and of PostgreSQL (the backends of the run's database, sampled), the machine's
busy CPU seconds (``/proc/stat``) against what its cores could give, and pages per CPU second
of the whole system (crawlers + PHP + PostgreSQL): falling with N means contention, flat
means the cores are saturated. During each run ``pg_stat_activity`` of the run's database is
sampled (wait events, lock waits) and afterwards the logs are read for lost transaction
conflicts, empty claims (waits) and early exits; rows per page must be 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crawl_vs_bare import (  # the sibling script, imported from any working directory
    PYTHON,
    REPO,
    SOURCE_NAME,
    BenchmarkError,
    _kill_group,
    _tail,
    choose_seeds,
    parse_stats,
    served_wiki,
    wiki_summary,
    write_source,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

TICK = os.sysconf("SC_CLK_TCK")
SAMPLE_EVERY = 0.1  # s between two samples of pg_stat_activity
CONFLICT_LINE = "lost a transaction conflict"
TOTALS = (
    "downloader/request_count",
    "holocron/frontier/claimed",
    "holocron/frontier/discovered_new",
    "holocron/frontier/discovered_known",
)


def proc_cpu(pid: int) -> float:
    """utime + stime of one process, in seconds (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def group_cpu(pgid: int) -> float:
    """CPU seconds of every live process in the process group ``pgid`` (PHP's server)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid:
                    total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def children_cpu(before: os.times_result, after: os.times_result) -> float:
    """CPU seconds of the children reaped between two ``os.times()``."""
    return (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine since boot (all cores, /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / TICK


@dataclass
class Sampler:
    """Samples the run database's backends: wait events, lock waits, their CPU."""

    admin_url: str
    database: str
    samples: int = 0
    active: Counter[str] = field(default_factory=Counter)
    waits: Counter[str] = field(default_factory=Counter)
    lock_queries: Counter[str] = field(default_factory=Counter)
    backend_cpu: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        engine = sa.create_engine(self.admin_url, poolclass=sa.NullPool)
        query = sa.text(
            "SELECT pid, state, wait_event_type, wait_event, left(query, 60) AS query"
            " FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"
        )
        with engine.connect() as conn:
            while not self._stop.wait(SAMPLE_EVERY):
                rows = conn.execute(query, {"db": self.database}).all()
                conn.rollback()
                self.samples += 1
                for row in rows:
                    self.backend_cpu[row.pid] = proc_cpu(row.pid) or self.backend_cpu.get(
                        row.pid, 0.0
                    )
                    if row.state != "active":
                        continue
                    self.active["active"] += 1
                    self.waits[f"{row.wait_event_type or 'CPU'}:{row.wait_event or '-'}"] += 1
                    if row.wait_event_type == "Lock":
                        self.lock_queries[" ".join(row.query.split())] += 1
        engine.dispose()

    @contextlib.contextmanager
    def sampling(self) -> Iterator[None]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()


@dataclass
class Result:
    workers: int
    pages: int
    duplicates: int
    wall: float
    crawler_cpu: float
    php_cpu: float
    pg_cpu: float
    machine_cpu: float
    per_worker: list[tuple[int, float]]  # (completed items, exit second) per worker
    conflicts: int
    empty_claims: int
    sampler: Sampler
    fixed_cpu: float  # CPU s of one worker that finds the source done: start-up and end
    totals: Counter[str]  # summed stats of the workers

    @property
    def rate(self) -> float:
        return self.pages / self.wall

    @property
    def system_cpu(self) -> float:
        return self.crawler_cpu + self.php_cpu + self.pg_cpu


@contextlib.contextmanager
def fresh_database(base_url: str) -> Iterator[tuple[str, str, str]]:
    """A new database on the server of ``base_url``: (its URL, its name, the admin URL)."""
    url = sa.make_url(base_url)
    name = f"holocron_scale_{uuid.uuid4().hex[:8]}"
    admin = url.set(database="postgres")
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(False), name, admin.render_as_string(False)
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()


def crawl_cmd(source: Path, db_url: str, lake: Path, worker: int, concurrency: int) -> list[str]:
    return [
        PYTHON, "-m", "scrapy", "crawl", "mediawiki", "-a", f"source={source}",
        "-s", f"HOLOCRON_DB_URL={db_url}",
        "-s", f"HOLOCRON_LAKE_DIR={lake}",
        "-s", f"HOLOCRON_WORKER_ID=worker{worker}",
        "-s", "HOLOCRON_BUDGET_DELAY=0",
        "-s", "AUTOTHROTTLE_ENABLED=False",
        "-s", "DOWNLOAD_DELAY=0",
        "-s", f"CONCURRENT_REQUESTS={max(8, concurrency)}",
        "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={concurrency}",
        "-s", "TELNETCONSOLE_ENABLED=False",
        "-s", "LOG_LEVEL=INFO",
    ]  # fmt: skip


def idle_worker_cpu(
    source: Path, db_url: str, lake: Path, run_dir: Path, args: argparse.Namespace
) -> float:
    """CPU seconds of one more worker started on the finished frontier: it claims nothing and
    exits, so this is the fixed cost every worker pays (interpreter, imports, start, end)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOLOCRON_", "SCRAPY_"))}
    log = run_dir / "idle-worker.log"
    before = os.times()
    with log.open("wb") as out:
        rc = subprocess.run(
            crawl_cmd(source, db_url, lake, 0, args.concurrency), cwd=REPO, stdout=out,
            stderr=subprocess.STDOUT, env=env, timeout=args.timeout, check=False,
        ).returncode  # fmt: skip
    after = os.times()
    if rc != 0 or "'holocron/work_items/completed'" in log.read_text(errors="replace"):
        raise BenchmarkError(f"the worker on the finished frontier did work:\n{_tail(log)}")
    return children_cpu(before, after)


def run_workers(
    n: int, source: Path, work: Path, *, base_url: str, php_pid: int, args: argparse.Namespace
) -> Result:
    run_dir = work / f"n{n}"
    run_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOLOCRON_", "SCRAPY_"))}
    with fresh_database(base_url) as (db_url, db_name, admin_url):
        sampler = Sampler(admin_url, db_name)
        logs = [run_dir / f"worker{i}.log" for i in range(1, n + 1)]
        procs: list[subprocess.Popen[bytes]] = []
        exits: dict[int, float] = {}
        children0, php0, busy0 = os.times(), group_cpu(php_pid), machine_busy()
        t0 = time.monotonic()
        with sampler.sampling():
            try:
                for i, log in enumerate(logs, 1):
                    cmd = crawl_cmd(source, db_url, work / "lake", i, args.concurrency)
                    with log.open("wb") as out:
                        procs.append(
                            subprocess.Popen(
                                cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True,
                            )
                        )  # fmt: skip
                while len(exits) < n:
                    for i, proc in enumerate(procs):
                        if i not in exits and proc.poll() is not None:
                            exits[i] = time.monotonic() - t0
                    if time.monotonic() - t0 > args.timeout:
                        raise BenchmarkError(f"N={n}: timed out after {args.timeout:.0f} s")
                    time.sleep(0.05)
            finally:
                for proc in procs:
                    if proc.poll() is None:
                        _kill_group(proc)
        wall = time.monotonic() - t0
        children1, php1, busy1 = os.times(), group_cpu(php_pid), machine_busy()
        fixed = idle_worker_cpu(source, db_url, work / "lake", run_dir, args)
        engine = sa.create_engine(db_url, poolclass=sa.NullPool)
        with engine.connect() as conn:
            pages = conn.execute(sa.text('SELECT COUNT(*) FROM ingest."IngestRecords"')).scalar()
            duplicates = conn.execute(
                sa.text(
                    'SELECT COUNT(*) FROM (SELECT work_item_id FROM ingest."IngestRecords"'
                    " GROUP BY work_item_id HAVING COUNT(*) > 1) AS twice"
                )
            ).scalar()
        engine.dispose()
    per_worker = []
    conflicts = empty = 0
    totals: Counter[str] = Counter()
    for i, (proc, log) in enumerate(zip(procs, logs, strict=True)):
        text = log.read_text(encoding="utf-8", errors="replace")
        if proc.returncode != 0:
            raise BenchmarkError(f"worker {i + 1} exited {proc.returncode}:\n{_tail(log)}")
        stats = parse_stats(text)
        per_worker.append((int(stats.get("holocron/work_items/completed", 0)), exits[i]))
        conflicts += text.count(CONFLICT_LINE)
        empty += int(stats.get("holocron/frontier/waits", 0))
        for key in TOTALS:
            totals[key.rsplit("/", 1)[1]] += int(stats.get(key, 0))
    return Result(
        workers=n,
        pages=int(pages or 0),
        duplicates=int(duplicates or 0),
        wall=wall,
        crawler_cpu=children_cpu(children0, children1),
        php_cpu=php1 - php0,
        pg_cpu=sum(sampler.backend_cpu.values()),
        machine_cpu=busy1 - busy0,
        per_worker=per_worker,
        conflicts=conflicts,
        empty_claims=empty,
        sampler=sampler,
        fixed_cpu=fixed,
        totals=totals,
    )


def net_cpu(r: Result) -> float:
    """The system's CPU seconds less the workers' fixed cost."""
    return r.system_cpu - r.workers * r.fixed_cpu


def describe(r: Result, base: Result, cores: int) -> str:
    s = r.sampler
    active = s.active["active"] / max(s.samples, 1)
    top = ", ".join(f"{k} {v / max(s.samples, 1):.2f}" for k, v in s.waits.most_common(5))
    locks = "; ".join(f"{v}x {q}" for q, v in s.lock_queries.most_common(3)) or "none"
    workers = ", ".join(f"{c} items/exit {t:.1f} s" for c, t in r.per_worker)
    return "\n".join(
        (
            f"N={r.workers}: {r.pages} pages, {r.duplicates} pages with 2+ rows, wall "
            f"{r.wall:.1f} s, {r.rate:.1f} pages/s, x{r.rate / base.rate:.2f} of N=1",
            f"  CPU s: crawlers {r.crawler_cpu:.1f}, PHP {r.php_cpu:.1f}, PostgreSQL "
            f"{r.pg_cpu:.1f} (system {r.system_cpu:.1f}); machine busy {r.machine_cpu:.1f} of "
            f"{cores * r.wall:.1f} ({r.machine_cpu / (cores * r.wall):.0%}), load "
            f"{os.getloadavg()[0]:.1f}",
            f"  pages per system CPU-s {r.pages / r.system_cpu:.1f} "
            f"(x{(r.pages / r.system_cpu) / (base.pages / base.system_cpu):.2f} of N=1)",
            f"  PostgreSQL: {active:.2f} active backends on average; wait events per sample: "
            f"{top or 'none'}; lock waits: {locks}",
            f"  workers: {workers}; lost conflicts {r.conflicts}, empty claims {r.empty_claims}",
            f"  summed stats: {dict(r.totals)}; fixed CPU s per worker (one started on the "
            f"finished frontier) {r.fixed_cpu:.1f}; pages per system CPU-s net of "
            f"{r.workers} x fixed {r.pages / net_cpu(r):.1f} "
            f"(x{(r.pages / net_cpu(r)) / (base.pages / net_cpu(base)):.2f} of N=1)",
        )
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="N workers on one PostgreSQL frontier.")
    parser.add_argument("--pages", type=int, default=3000, help="wiki size (default 3000)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--wiki-dir", type=Path, help="keep/reuse the wiki here (default: temp)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--concurrency", type=int, default=4, help="per worker (default 4)")
    parser.add_argument("--php-workers", type=int, default=16, help="PHP server workers (16)")
    parser.add_argument("--max-depth", type=int, default=3, help="link depth (default 3)")
    parser.add_argument("--seed-count", type=int, default=4, help="seed titles (default 4)")
    parser.add_argument("--timeout", type=float, default=900.0, help="per N, s (900)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    base_url = os.environ.get("HOLOCRON_TEST_PG_URL")
    if not base_url:
        print("error: set HOLOCRON_TEST_PG_URL (a PostgreSQL URL)", file=sys.stderr)
        return 2
    os.environ.setdefault("MW_WORKERS", str(args.php_workers))  # read by start.sh
    cores = len(os.sched_getaffinity(0))
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="holocron-scale-") as tmp:
        work = Path(tmp)
        wiki_root = args.wiki_dir.resolve() if args.wiki_dir else work / "wiki"
        try:
            with served_wiki(wiki_root, args.pages, args.seed) as wiki:
                php_pid = int((wiki.root / "server.pid").read_text())
                seeds = choose_seeds(wiki, args.seed_count)
                source = work / f"{SOURCE_NAME}.yaml"
                write_source(source, wiki.api_url, seeds, args.max_depth)
                print(f"wiki: {wiki_summary(wiki)}; seeds {seeds}, max_depth {args.max_depth}")
                print(
                    f"{cores} cores, load {os.getloadavg()[0]:.1f}; per worker "
                    f"CONCURRENT_REQUESTS_PER_DOMAIN={args.concurrency}; PHP workers "
                    f"{os.environ['MW_WORKERS']} (if the server was started here)",
                    flush=True,
                )
                for n in args.workers:
                    with contextlib.suppress(FileNotFoundError):
                        for path in sorted((work / "lake").rglob("*"), reverse=True):
                            path.rmdir() if path.is_dir() else path.unlink()
                    results.append(
                        run_workers(n, source, work, base_url=base_url, php_pid=php_pid, args=args)
                    )
                    print(describe(results[-1], results[0], cores), flush=True)
        except RuntimeError as exc:  # BenchmarkError, MediaWikiError
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(
        "\n  N  pages  wall s  pages/s  ratio  crawler CPU s  PHP CPU s  PG CPU s  pages/CPU-s"
        "  net of fixed"
    )
    for r in results:
        print(
            f"{r.workers:>3} {r.pages:>6} {r.wall:>7.1f} {r.rate:>8.1f} "
            f"{r.rate / results[0].rate:>6.2f} {r.crawler_cpu:>14.1f} {r.php_cpu:>10.1f} "
            f"{r.pg_cpu:>9.1f} {r.pages / r.system_cpu:>12.1f} {r.pages / net_cpu(r):>13.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
