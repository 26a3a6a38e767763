"""``lake_export`` at scale: rows/s and peak memory at N rows next to 100,000, in one run.

    .venv/bin/python benchmarks/lake_export_scale.py --rows 1000000 [--pg-url URL]

Seeds a fresh SQLite state database (or a schema on --pg-url) with N ``IngestRecords`` rows of
one source (payloads of ~2 KB, three resource types, seven fetch dates), then runs the export in
a child process per size and prints rows/s, Parquet bytes, part files and the child's peak RSS,
and the ratio of the per-row cost at N to that at 100,000. Then an incremental export after
1,000 more rows.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from holocron_scrapy.model import IngestRow  # noqa: E402
from holocron_scrapy.store.records import ingest_params  # noqa: E402
from holocron_scrapy.store.state_store import StateStore  # noqa: E402

NAME = "bench"
TYPES = ("page", "html", "revisions")


def seed(store: StateStore, start: int, count: int, run_id: str) -> None:
    text = "x" * 2000
    batch = []
    with store.engine.begin() as conn:
        for n in range(start, start + count):
            payload = json.dumps({"pageid": n, "title": f"Page {n}", "text": text})
            batch.append(
                ingest_params(
                    IngestRow(
                        "mediawiki",
                        NAME,
                        TYPES[n % 3],
                        f"Page {n}",
                        f"https://example.org/api.php?page={n}",
                        "GET",
                        {},
                        200,
                        {},
                        None,
                        datetime(2026, 12, 1 + n % 7, 12, 0, 0),
                        f"{n:064x}",
                        run_id,
                        n,
                        1,
                        payload_json=payload,
                    )
                )
            )
            if len(batch) == 10_000:
                conn.execute(sa.insert(store.tables.ingest_records), batch)
                batch = []
        if batch:
            conn.execute(sa.insert(store.tables.ingest_records), batch)


CHILD = """
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from holocron_scrapy.lake.export import ParquetExport
from holocron_scrapy.store.state_store import StateStore
store = StateStore.from_url(sys.argv[1], None if sys.argv[2] == '-' else sys.argv[2])
t0 = time.perf_counter()
result = ParquetExport(store.engine, store.tables, Path(sys.argv[3]), 'bench').run()
seconds = time.perf_counter() - t0
print(json.dumps({'rows': result.rows, 'files': len(result.files), 'seconds': seconds,
                  'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def export(url: str, schema: str | None, out: Path) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, url, schema or "-", str(out), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["parquet_mb"] = sum(p.stat().st_size for p in out.rglob("*.parquet")) / 2**20
    return figures


def measure(url: str, schema: str | None, rows: int, tmp: Path) -> dict[str, float]:
    store = StateStore.from_url(url, schema)
    store.create_tables()
    run_id = store.start_run(
        source_system="mediawiki", source_name=NAME, worker_id="b", hostname="b", pid=1
    )
    t0 = time.perf_counter()
    seed(store, 1, rows, run_id)
    seeded = time.perf_counter() - t0
    out = tmp / f"parquet-{rows}"
    figures = export(url, schema, out)
    seed(store, rows + 1, 1000, run_id)
    figures["incremental_rows"] = export(url, schema, out)["rows"]
    figures["seed_rows_per_s"] = rows / seeded
    store.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pg-url", help="PostgreSQL URL (a random schema is used and dropped)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        results = {}
        for rows in (100_000, args.rows):
            if args.pg_url:
                url, schema = args.pg_url, f"bench_{uuid.uuid4().hex[:8]}"
            else:
                url, schema = f"sqlite:///{tmp / f'state-{rows}.db'}", None
            try:
                results[rows] = measure(url, schema, rows, tmp)
            finally:
                if schema:
                    engine = sa.create_engine(url)
                    with engine.begin() as conn:
                        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                    engine.dispose()
        print(
            f"{'rows':>10} {'rows/s':>9} {'seconds':>8} {'files':>6} {'parquet MB':>10} "
            f"{'peak RSS MB':>11} {'incremental':>11}"
        )
        for rows, f in results.items():
            print(
                f"{rows:>10,} {f['rows'] / f['seconds']:>9,.0f} {f['seconds']:>8.1f} "
                f"{f['files']:>6.0f} {f['parquet_mb']:>10.1f} {f['rss_mb']:>11.0f} "
                f"{f['incremental_rows']:>11,.0f}"
            )
        small, big = results[100_000], results[args.rows]
        ratio = (big["seconds"] / big["rows"]) / (small["seconds"] / small["rows"])
        print(f"per-row cost at {args.rows:,} / at 100,000: {ratio:.2f}")
        print(
            f"(this process's peak RSS, seeding included: "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)"
        )


if __name__ == "__main__":
    main()
