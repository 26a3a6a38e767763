"""Benchmark: the full holocron crawl against a bare Scrapy crawl of the same pages.

Usage (from anywhere; not part of the test suite)::

    /work/venv/bin/python benchmarks/crawl_vs_bare.py --pages 1000 --repeat 3

1. Builds (or reuses, ``--wiki-dir``) a generated MediaWiki with the e2e test bed
   (``tests/e2e/wiki.py``) and serves it on 127.0.0.1; the server is stopped at the end.
2. Seeds: the ``--seed-count`` article pages with the most links, ``--max-depth`` 2, namespace
   0: the crawl covers most of the wiki (the ground truth is printed).
3. Full crawl: ``python -m scrapy crawl mediawiki -a source=<generated yaml>`` (cwd = repo
   root), a fresh SQLite state DB and lake per run, AutoThrottle off, no delay,
   ``CONCURRENT_REQUESTS_PER_DOMAIN = --concurrency``.
4. Bare crawl: a plain Scrapy spider (below, run in a subprocess through ``CrawlerProcess``, no
   add-on, no pipelines, robots.txt ignored, same concurrency) that requests every title the
   full crawl's ``work_items`` holds, 50 per request with ``mwapi.query_url``, follows
   ``continue`` with ``mwapi.next_continue``, merges with ``mwapi.PageSet`` and yields plain
   dicts that are thrown away.
5. Prints pages, requests, seconds and pages/s of both (median and min-max over ``--repeat``
   runs, alternating full/bare), and the full/bare ratio.

Times are Scrapy's own ``elapsed_time_seconds`` (spider opened to spider closed, parsed from
the stats dump in the log); the process wall time (interpreter start-up, imports) is shown too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence

    from scrapy.http import Response

    from tests.e2e.wiki import MediaWiki

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SOURCE_NAME = "bench"
USER_AGENT = "HolocronBenchmark/0.1 (crawl_vs_bare; benchmark@localhost)"
ASYNCIO_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
BARE_WORKER_FLAG = "--bare-worker"
STATS_START = "Dumping Scrapy stats:"
_STAT_LINE = re.compile(r"^\s*'(?P<key>[^']+)':\s*(?P<value>'[^']*'|-?[0-9][0-9.eE+-]*)")


class BenchmarkError(RuntimeError):
    """A step of the benchmark failed; the message says which and why."""


def _repo_on_path() -> None:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


# ---------------------------------------------------------------------------------- bare crawl


def _bare_spider_class() -> type[Any]:
    """The bare spider (built lazily so the parent process never imports Scrapy's reactor)."""
    import scrapy

    _repo_on_path()
    from holocron_scrapy.mediawiki import api as mwapi

    class BareMediaWikiSpider(scrapy.Spider):
        """Same requests as the mediawiki spider, no state, no storage."""

        name = "bare_mediawiki"

        def __init__(self, api_url: str, titles_file: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.api_url = api_url
            self.titles: list[str] = json.loads(Path(titles_file).read_text(encoding="utf-8"))

        async def start(self) -> AsyncIterator[Any]:
            n = mwapi.MAX_TITLES_PER_REQUEST
            for i in range(0, len(self.titles), n):
                yield self._request(self.titles[i : i + n], mwapi.PageSet(), None)

        def _request(
            self, titles: list[str], pages: mwapi.PageSet, cont: dict[str, str] | None
        ) -> scrapy.Request:
            return scrapy.Request(
                mwapi.query_url(self.api_url, titles, cont),
                callback=self.parse_query,
                dont_filter=True,
                cb_kwargs={"titles": titles, "pages": pages},
            )

        def parse_query(
            self, response: Response, titles: list[str], pages: mwapi.PageSet
        ) -> Iterator[Any]:
            data = mwapi.check_envelope(json.loads(response.body))
            pages.add(data)
            cont = mwapi.next_continue(data)
            if cont is not None:
                yield self._request(titles, pages, cont)
                return
            for title in titles:  # what the real spider's _finish does, minus the state
                target = pages.resolve(title)
                page = pages.page(target)
                if target != title or page is None or page.get("missing") or page.get("invalid"):
                    continue
                yield {"title": title, "page": page}

    return BareMediaWikiSpider


def bare_worker(spec_file: str) -> int:
    """Entry point of the bare crawl subprocess: one crawl, stats dumped to the log."""
    from scrapy.crawler import CrawlerProcess

    spec: dict[str, Any] = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    concurrency = int(spec["concurrency"])
    settings: dict[str, Any] = {
        "ADDONS": {},
        "ITEM_PIPELINES": {},
        "ROBOTSTXT_OBEY": False,
        "AUTOTHROTTLE_ENABLED": False,
        "CONCURRENT_REQUESTS": max(8, concurrency),
        "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
        "DOWNLOAD_DELAY": 0,
        "DOWNLOAD_TIMEOUT": 60,
        "RETRY_TIMES": 3,
        "USER_AGENT": USER_AGENT,
        "TWISTED_REACTOR": ASYNCIO_REACTOR,
        "LOG_LEVEL": "INFO",
    }
    process = CrawlerProcess(settings, install_root_handler=True)
    process.crawl(_bare_spider_class(), api_url=spec["api_url"], titles_file=spec["titles_file"])
    process.start()
    return 0


# ------------------------------------------------------------------------------------ one run


@dataclass
class Run:
    kind: str  # "full" or "bare"
    pages: int
    requests: int
    elapsed: float  # Scrapy's elapsed_time_seconds
    wall: float  # the whole process
    cpu: float  # user + system CPU seconds of the process (start-up included)
    finish_reason: str
    errors: int

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.elapsed if self.elapsed > 0 else 0.0


def parse_stats(log: str) -> dict[str, Any]:
    """The numbers and strings of the last Scrapy stats dump in a log."""
    start = log.rfind(STATS_START)
    if start < 0:
        raise BenchmarkError("no Scrapy stats dump in the log (did the crawl start?)")
    stats: dict[str, Any] = {}
    for line in log[start:].splitlines()[1:]:
        match = _STAT_LINE.match(line)
        if match:
            key, raw = match["key"], match["value"]
            if raw.startswith("'"):
                stats[key] = raw.strip("'")
            else:
                stats[key] = float(raw) if any(c in raw for c in ".eE") else int(raw)
        if line.rstrip().endswith("}"):
            break
    if "elapsed_time_seconds" not in stats:
        raise BenchmarkError("the Scrapy stats dump has no elapsed_time_seconds")
    return stats


def run_process(
    cmd: list[str], cwd: Path, log_path: Path, timeout: float
) -> tuple[int, float, float]:
    """Run ``cmd`` in its own process group, output to ``log_path``.

    Returns (exit status, wall seconds, CPU seconds of the process and its children).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOLOCRON_", "SCRAPY_"))}
    env.pop("DB_BACKEND", None)
    t0 = time.monotonic()
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise BenchmarkError(
                f"timed out after {timeout:.0f} s: {' '.join(cmd)}\n{_tail(log_path)}"
            ) from None
        finally:
            if proc.poll() is None:  # KeyboardInterrupt or another error: leave nothing behind
                _kill_group(proc)
    wall = time.monotonic() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage.ru_utime - usage0.ru_utime) + (usage.ru_stime - usage0.ru_stime)
    return rc, wall, cpu


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _check(kind: str, rc: int, log_path: Path) -> dict[str, Any]:
    if rc != 0:
        raise BenchmarkError(f"the {kind} crawl exited with status {rc}:\n{_tail(log_path)}")
    stats = parse_stats(log_path.read_text(encoding="utf-8", errors="replace"))
    if stats.get("finish_reason") != "finished":
        raise BenchmarkError(
            f"the {kind} crawl ended with {stats.get('finish_reason')!r}:\n{_tail(log_path)}"
        )
    return stats


def write_source(path: Path, api_url: str, seeds: Sequence[str], max_depth: int) -> None:
    source = {
        "name": SOURCE_NAME,
        "type": "mediawiki",
        "api_url": api_url,
        "user_agent": USER_AGENT,
        "seeds": {"titles": list(seeds)},
        "discovery": {
            "links": True,
            "max_depth": max_depth,
            "strategy": "breadth",
            "namespaces": [0],
        },
    }
    # JSON is YAML: no need for a YAML writer.
    path.write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")


def full_crawl(
    run_dir: Path,
    source: Path,
    concurrency: int,
    timeout: float,
    prefix: Sequence[str] = (PYTHON,),
) -> tuple[Run, list[str]]:
    """One `scrapy crawl mediawiki` with a fresh DB and lake; the run and the queue's titles.
    ``prefix``: the interpreter, or a profiler's command ending with it (profile_crawl.py)."""
    run_dir.mkdir(parents=True)
    db = run_dir / "state.db"
    log_path = run_dir / "crawl.log"
    cmd = [
        *prefix, "-m", "scrapy", "crawl", "mediawiki",
        "-a", f"source={source}",
        "-s", f"HOLOCRON_DB_URL=sqlite:///{db}",
        "-s", f"HOLOCRON_LAKE_DIR={run_dir / 'lake'}",
        "-s", "AUTOTHROTTLE_ENABLED=False",
        "-s", f"CONCURRENT_REQUESTS={max(8, concurrency)}",
        "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={concurrency}",
        "-s", "DOWNLOAD_DELAY=0",
        "-s", "LOG_LEVEL=INFO",
    ]  # fmt: skip
    rc, wall, cpu = run_process(cmd, REPO, log_path, timeout)
    stats = _check("full", rc, log_path)
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        records = conn.execute("SELECT COUNT(*) FROM IngestRecords").fetchone()[0]
        titles = [
            row[0]
            for row in conn.execute(
                "SELECT resource_id FROM work_items WHERE source_name = ? ORDER BY id",
                (SOURCE_NAME,),
            )
        ]
        statuses = dict(
            conn.execute("SELECT status, COUNT(*) FROM work_items GROUP BY status").fetchall()
        )
    unfinished = {s: n for s, n in statuses.items() if s not in ("completed", "skipped")}
    if unfinished:
        print(f"  warning: full crawl left work items {unfinished} (log: {log_path})")
    run = Run(
        kind="full",
        pages=int(records),
        requests=int(stats.get("downloader/request_count", 0)),
        elapsed=float(stats["elapsed_time_seconds"]),
        wall=wall,
        cpu=cpu,
        finish_reason=str(stats["finish_reason"]),
        errors=int(stats.get("log_count/ERROR", 0)),
    )
    return run, titles


def bare_crawl(
    run_dir: Path, api_url: str, titles_file: Path, concurrency: int, timeout: float
) -> Run:
    run_dir.mkdir(parents=True)
    spec = run_dir / "spec.json"
    spec.write_text(
        json.dumps(
            {"api_url": api_url, "titles_file": str(titles_file), "concurrency": concurrency}
        ),
        encoding="utf-8",
    )
    log_path = run_dir / "crawl.log"
    cmd = [PYTHON, str(Path(__file__).resolve()), BARE_WORKER_FLAG, str(spec)]
    rc, wall, cpu = run_process(cmd, run_dir, log_path, timeout)
    stats = _check("bare", rc, log_path)
    return Run(
        kind="bare",
        pages=int(stats.get("item_scraped_count", 0)),
        requests=int(stats.get("downloader/request_count", 0)),
        elapsed=float(stats["elapsed_time_seconds"]),
        wall=wall,
        cpu=cpu,
        finish_reason=str(stats["finish_reason"]),
        errors=int(stats.get("log_count/ERROR", 0)),
    )


# ------------------------------------------------------------------------------------ the wiki


def choose_seeds(wiki: MediaWiki, count: int) -> list[str]:
    """The ``count`` articles (ns 0, not redirects) with the most links."""
    rows = wiki.sql(
        "SELECT p.page_namespace, p.page_title, COUNT(*) AS n FROM pagelinks pl"
        " JOIN page p ON p.page_id = pl.pl_from"
        " WHERE p.page_namespace = 0 AND p.page_is_redirect = 0"
        " GROUP BY pl.pl_from ORDER BY n DESC, pl.pl_from LIMIT ?",
        count,
    )
    if not rows:
        raise BenchmarkError("the wiki has no linked articles to seed from")
    return [wiki.title(ns, key) for ns, key, _n in rows]


def wiki_summary(wiki: MediaWiki) -> str:
    rows = wiki.sql("SELECT page_namespace, page_is_redirect, COUNT(*) FROM page GROUP BY 1, 2")
    total = sum(n for _ns, _r, n in rows)
    articles = sum(n for ns, r, n in rows if ns == 0 and not r)
    redirects = sum(n for _ns, r, n in rows if r)
    links = wiki.sql("SELECT COUNT(*) FROM pagelinks")[0][0]
    return (
        f"{total:,} pages in its DB ({articles:,} articles, {redirects:,} redirects, "
        f"{total - articles - redirects:,} other), {links:,} links"
    )


@contextlib.contextmanager
def served_wiki(root: Path, pages: int, seed: int) -> Iterator[MediaWiki]:
    _repo_on_path()
    from tests.e2e.wiki import MediaWiki, missing_requirements

    problems = missing_requirements()
    if problems:
        raise BenchmarkError(
            f"MediaWiki test bed not available: {'; '.join(problems)} "
            "(run tests/e2e/install-mediawiki.sh as root)"
        )
    print(f"Building/importing a {pages:,}-page wiki (seed {seed}) in {root} ...", flush=True)
    wiki = MediaWiki.create(root, pages=pages, seed=seed)
    was_running = wiki.is_running()
    wiki.start()
    print(
        f"  ready: create {wiki.timings.get('create', 0):.1f} s, start "
        f"{wiki.timings.get('start', 0):.1f} s, {wiki.api_url}"
        + (" (already running: left running)" if was_running else ""),
        flush=True,
    )
    try:
        yield wiki
    finally:
        if not was_running:
            wiki.stop()


# -------------------------------------------------------------------------------------- report


def _spread(values: Sequence[float], fmt: str) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return format(med, fmt)
    return f"{format(med, fmt)} [{format(min(values), fmt)}-{format(max(values), fmt)}]"


def report(full: list[Run], bare: list[Run]) -> str:
    """The table: medians [min-max] over the repeats, and the full/bare ratios."""
    cols = ("pages", "requests", "req/page", "crawl s", "pages/s", "CPU s", "process s")
    widths = (7, 10, 10, 22, 22, 22, 22)
    head = f"{'':<12}" + "".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True))
    lines = [head, "-" * len(head)]
    for name, runs in (("full crawl", full), ("bare Scrapy", bare)):
        pages = statistics.median(r.pages for r in runs)
        requests = statistics.median(r.requests for r in runs)
        cells = (
            f"{pages:.0f}",
            f"{requests:.0f}",
            f"{requests / max(pages, 1):.3f}",
            _spread([r.elapsed for r in runs], ".2f"),
            _spread([r.pages_per_s for r in runs], ".1f"),
            _spread([r.cpu for r in runs], ".2f"),
            _spread([r.wall for r in runs], ".2f"),
        )
        lines.append(
            f"{name:<12}" + "".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True))
        )
    full_rate = statistics.median(r.pages_per_s for r in full)
    bare_rate = statistics.median(r.pages_per_s for r in bare)
    ratio = full_rate / bare_rate if bare_rate else float("nan")
    pairwise = [f.pages_per_s / b.pages_per_s for f, b in zip(full, bare, strict=True)]
    cpu_ratio = statistics.median(r.cpu for r in full) / max(
        statistics.median(r.cpu for r in bare), 1e-9
    )
    ratio_cells = ("", "", "", "", f"{ratio:.2f} ({1 / ratio:.2f}x time)", f"{cpu_ratio:.2f}x", "")
    ratio_line = f"{'full/bare':<12}" + "".join(
        f"{c:>{w}}" for c, w in zip(ratio_cells, widths, strict=True)
    )
    lines.append(ratio_line.rstrip())
    lines.append("")
    lines.append(
        f"full/bare pages/s: {ratio:.2f} (ratio of the medians); per repeat pair: "
        + ", ".join(f"{x:.2f}" for x in pairwise)
    )
    return "\n".join(lines)


def describe(i: int, run: Run) -> str:
    load = os.getloadavg()[0]
    return (
        f"  run {i} {run.kind}: {run.pages} pages, {run.requests} requests, crawl "
        f"{run.elapsed:.2f} s, CPU {run.cpu:.2f} s, process {run.wall:.2f} s, load {load:.2f}"
        + (f", {run.errors} ERROR log lines" if run.errors else "")
    )


# ---------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Full holocron crawl vs a bare Scrapy crawl of the same pages (one run).",
    )
    parser.add_argument("--pages", type=int, default=1000, help="wiki size (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--wiki-dir", type=Path, help="keep/reuse the wiki here (default: temp)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each crawl (default 3)")
    parser.add_argument("--concurrency", type=int, default=4, help="per domain (default 4)")
    parser.add_argument("--max-depth", type=int, default=2, help="link depth (default 2)")
    parser.add_argument("--seed-count", type=int, default=4, help="seed titles (default 4)")
    parser.add_argument("--timeout", type=float, default=900.0, help="per crawl, s (900)")
    parser.add_argument("--keep", action="store_true", help="keep the runs' DBs, lakes, logs")
    args = parser.parse_args(argv)
    if args.pages < 64:
        parser.error("--pages must be at least 64 (the generator's minimum)")
    for name in ("repeat", "concurrency", "seed_count"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_depth < 0:
        parser.error("--max-depth must be >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import scrapy

    work = Path(tempfile.mkdtemp(prefix="holocron-bench-"))
    wiki_root = args.wiki_dir.resolve() if args.wiki_dir else work / "wiki"
    try:
        with served_wiki(wiki_root, args.pages, args.seed) as wiki:
            seeds = choose_seeds(wiki, args.seed_count)
            truth = wiki.reachable(seeds, args.max_depth, [0])
            source = work / "source.yaml"
            write_source(source, wiki.api_url, seeds, args.max_depth)
            load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
            nproc = len(os.sched_getaffinity(0))
            print(
                f"machine: nproc {nproc} ({platform.machine()}), load average {load}; "
                f"Python {platform.python_version()}, Scrapy {scrapy.__version__}"
            )
            print(f"wiki: {args.pages:,} generated pages (seed {args.seed}): {wiki_summary(wiki)}")
            print(f"crawl: seeds {seeds}, max_depth {args.max_depth}, namespaces [0]")
            print(
                f"ground truth: {len(truth.pages):,} pages to record "
                f"({len(truth.redirects):,} redirects, {len(truth.missing):,} red links met)"
            )
            print(
                f"settings: CONCURRENT_REQUESTS_PER_DOMAIN={args.concurrency}, AutoThrottle "
                f"off, DOWNLOAD_DELAY=0; {args.repeat} repeat(s), alternating full/bare",
                flush=True,
            )
            full: list[Run] = []
            bare: list[Run] = []
            titles_file = work / "titles.json"
            for i in range(1, args.repeat + 1):
                run, titles = full_crawl(work / f"full-{i}", source, args.concurrency, args.timeout)
                full.append(run)
                if i == 1:
                    titles_file.write_text(json.dumps(titles), encoding="utf-8")
                    print(
                        f"  full crawl queued {len(titles):,} titles; the bare crawl "
                        "requests them all, 50 per request"
                    )
                    if run.pages != len(truth.pages):
                        print(
                            f"  warning: the full crawl wrote {run.pages} records, "
                            f"the ground truth has {len(truth.pages)} pages"
                        )
                print(describe(i, run), flush=True)
                brun = bare_crawl(
                    work / f"bare-{i}", wiki.api_url, titles_file, args.concurrency, args.timeout
                )
                bare.append(brun)
                print(describe(i, brun), flush=True)
            print()
            print(report(full, bare))
    except RuntimeError as exc:  # BenchmarkError, MediaWikiError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == BARE_WORKER_FLAG:
        sys.exit(bare_worker(sys.argv[2]))
    sys.exit(main())
