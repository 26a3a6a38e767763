"""The frontier at scale: claim + complete items/s at N items next to 100,000, in one run.

    .venv/bin/python benchmarks/frontier_scale.py --items 1000000 --db both [--pg-url URL]

For each database (a fresh SQLite file in a temp dir; a fresh schema on --pg-url, default
$HOLOCRON_TEST_PG_URL, dropped afterwards) and each size (100,000, then N): seeds the items of
one source through ``StateStore.add_work_items`` (batches of --seed-batch, three priorities, as
the depths of a crawl give), then drains them the way a crawl does: ``claim`` --claim items,
``finish_items`` them completed, until nothing is claimable. Prints the seeding rate, the
drain's items/s over its first, middle and last twentieth, on average, and the ratio of the
per-item cost at N to that at 100,000 (> 1: dearer at N), the time of ``StateStore.counts()``
(the progress line's read) once seeded, plus the process's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from holocron_scrapy.model import NewWorkItem, Outcome  # noqa: E402
from holocron_scrapy.store.state_store import StateStore  # noqa: E402

SYSTEM, NAME = "mediawiki", "bench"
BASELINE = 100_000
COUNTS_READS = 5


@dataclass
class Drain:
    items: int
    seed_rate: float
    start: float
    middle: float
    end: float
    average: float
    cpu_start: float  # this process's CPU µs per item (SQLite: all of the work; load-proof)
    cpu_end: float
    cpu_average: float
    counts_ms: float  # StateStore.counts() after seeding, median of COUNTS_READS reads


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed(store: StateStore, n: int, batch: int) -> float:
    """Insert ``n`` items; return items/s."""
    began = time.perf_counter()
    for start in range(0, n, batch):
        items = [
            NewWorkItem(SYSTEM, NAME, "page", f"Page {i}", depth=i % 3, priority=-(i % 3))
            for i in range(start, min(n, start + batch))
        ]
        store.add_work_items(items)
    return n / (time.perf_counter() - began)


Mark = tuple[int, float, float]  # items drained, wall clock, this process's CPU time


def counts_ms(store: StateStore) -> float:
    """The median wall time of ``StateStore.counts()`` (the progress line's read), in ms."""
    times = []
    for _ in range(COUNTS_READS):
        began = time.perf_counter()
        store.counts(source_system=SYSTEM, source_name=NAME)
        times.append(time.perf_counter() - began)
    return 1000 * sorted(times)[len(times) // 2]


def _window(marks: list[Mark], low: int, high: int) -> tuple[Mark, Mark]:
    first = next(m for m in marks if m[0] >= low)
    last = next(m for m in marks if m[0] >= high)
    return first, last


def rate(marks: list[Mark], low: int, high: int) -> float:
    """items/s between the first mark past ``low`` items drained and the first past ``high``."""
    first, last = _window(marks, low, high)
    return (last[0] - first[0]) / max(1e-9, last[1] - first[1])


def cpu_per_item(marks: list[Mark], low: int, high: int) -> float:
    """This process's CPU µs per item in the window (on a busy machine, wall rates vary with
    the load; the CPU an item costs does not)."""
    first, last = _window(marks, low, high)
    return 1e6 * (last[2] - first[2]) / max(1, last[0] - first[0])


def drain(store: StateStore, n: int, claim_size: int, *, items: int | None = None) -> list[Mark]:
    """Claim and complete until nothing is left (or ``items`` are done); the :data:`Mark` after
    each batch, counted from ``n`` minus the items left (so windows line up with a full drain)."""
    run_id = uuid.uuid4().hex
    left = pending_count(store)
    done, marks = n - left, [(n - left, time.perf_counter(), time.process_time())]
    goal = n if items is None else min(n, done + items)
    while done < goal:
        claimed = store.claim(
            source_system=SYSTEM,
            source_name=NAME,
            owner="bench:1:" + run_id,
            run_id=run_id,
            limit=min(claim_size, goal - done),
            lease_seconds=600,
        )
        if not claimed:
            break
        store.finish_items(
            [Outcome.completed(item, "0" * 64) for item in claimed], owner="bench:1:" + run_id
        )
        done += len(claimed)
        marks.append((done, time.perf_counter(), time.process_time()))
    if done != goal or (items is None and pending_count(store)):
        raise SystemExit(f"drained {done} of {goal} items")
    return marks


def pending_count(store: StateStore) -> int:
    wi = store.tables.work_items
    stmt = sa.select(sa.func.count()).where(wi.c.status == "pending")
    with store.engine.begin() as conn:
        return int(conn.execute(stmt).scalar_one())


def fast_forward(store: StateStore, to: int, n: int) -> None:
    """Complete, in the claim's order, the items a drain would take until ``to`` of the ``n``
    are done, with bulk statements (100,000 rows each) instead of claims: the table and its
    indexes end as a drain leaves them (the same rows completed, in the same order), in a
    fraction of the time. Only for ``--sample``: the windows around it are real drains."""
    wi = store.tables.work_items
    left = pending_count(store) - (n - to)
    while left > 0:
        step = min(100_000, left)
        head = (
            sa.select(wi.c.id)
            .where(wi.c.status == "pending", wi.c.next_retry_at.is_(None))
            .order_by(wi.c.priority.desc(), wi.c.id)
            .limit(step)
            .scalar_subquery()
        )
        stmt = (
            sa.update(wi)
            .where(wi.c.id.in_(head))
            .values(
                status="completed",
                attempt=wi.c.attempt + 1,
                content_hash="0" * 64,
                updated_at=sa.func.current_timestamp(),
            )
        )
        with store.engine.begin() as conn:
            conn.execute(stmt)
        left -= step


def measure(store: StateStore, n: int, args: argparse.Namespace) -> Drain:
    store.create_tables()
    seed_rate = seed(store, n, args.seed_batch)
    counts = counts_ms(store)
    twentieth = max(args.claim, n // 20)
    if args.sample and n > BASELINE:
        window = min(args.sample, twentieth)
        marks = drain(store, n, args.claim, items=window)
        fast_forward(store, n // 2 - window // 2, n)
        middle_marks = drain(store, n, args.claim, items=window)
        fast_forward(store, n - window, n)
        end_marks = drain(store, n, args.claim)
        windows = [marks, middle_marks, end_marks]
        rates = [rate(m, m[0][0], m[-1][0]) for m in windows]
        cpus = [cpu_per_item(m, m[0][0], m[-1][0]) for m in windows]
        return Drain(
            items=n,
            seed_rate=seed_rate,
            start=rates[0],
            middle=rates[1],
            end=rates[2],
            average=3 / sum(1 / r for r in rates),
            cpu_start=cpus[0],
            cpu_end=cpus[2],
            cpu_average=sum(cpus) / 3,
            counts_ms=counts,
        )
    marks = drain(store, n, args.claim)
    return Drain(
        items=n,
        seed_rate=seed_rate,
        start=rate(marks, 0, twentieth),
        middle=rate(marks, n // 2 - twentieth // 2, n // 2 + twentieth // 2),
        end=rate(marks, n - twentieth, n),
        average=n / (marks[-1][1] - marks[0][1]),
        cpu_start=cpu_per_item(marks, 0, twentieth),
        cpu_end=cpu_per_item(marks, n - twentieth, n),
        cpu_average=cpu_per_item(marks, 0, n),
        counts_ms=counts,
    )


def on_sqlite(n: int, args: argparse.Namespace, directory: Path) -> Drain:
    path = directory / f"state-{n}.db"
    store = StateStore.from_url(f"sqlite:///{path}")
    try:
        return measure(store, n, args)
    finally:
        store.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def on_postgresql(n: int, args: argparse.Namespace) -> Drain:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    store = StateStore.from_url(args.pg_url, schema)
    try:
        return measure(store, n, args)
    finally:
        store.dispose()
        engine = sa.create_engine(args.pg_url, poolclass=sa.NullPool)
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()


def report(db: str, runs: list[Drain]) -> None:
    print(f"\n{db}")
    print(
        "| items | seed items/s | drain items/s: start | middle | end | average "
        "| client CPU µs/item: start | end | average | counts() ms | peak RSS MB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for d in runs:
        print(
            f"| {d.items:,} | {d.seed_rate:,.0f} | {d.start:,.0f} | {d.middle:,.0f} "
            f"| {d.end:,.0f} | {d.average:,.0f} | {d.cpu_start:,.0f} | {d.cpu_end:,.0f} "
            f"| {d.cpu_average:,.0f} | {d.counts_ms:,.1f} | {peak_rss_mb():.0f} |"
        )
    base, big = runs[0], runs[-1]
    print(
        f"per-item cost at {big.items:,} / at {base.items:,}: {base.average / big.average:.2f} "
        f"(wall, average), {base.average / min(big.start, big.middle, big.end):.2f} "
        f"(wall, slowest twentieth), {big.cpu_average / base.cpu_average:.2f} (client CPU)"
    )
    print(f"load average: {os.getloadavg()[0]:.1f}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--pg-url", default=os.environ.get("HOLOCRON_TEST_PG_URL"))
    parser.add_argument("--claim", type=int, default=500, help="items per claim (500)")
    parser.add_argument("--seed-batch", type=int, default=5000, help="items per add (5,000)")
    parser.add_argument("--dir", type=Path, default=None, help="where the SQLite files go")
    parser.add_argument(
        "--sample",
        type=int,
        default=0,
        help="drain only windows of this many items at the start, middle and end of N (the "
        "items between them completed in bulk, in the claim's order): a 10 M run in minutes",
    )
    args = parser.parse_args()
    sizes = sorted({min(BASELINE, args.items), args.items})
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(dir=args.dir) as directory:
            report("SQLite", [on_sqlite(n, args, Path(directory)) for n in sizes])
    if args.db in ("postgresql", "both"):
        if not args.pg_url:
            raise SystemExit("--pg-url (or HOLOCRON_TEST_PG_URL) is needed for PostgreSQL")
        report("PostgreSQL", [on_postgresql(n, args) for n in sizes])
    print(f"\npeak RSS of the process: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
