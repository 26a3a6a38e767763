"""``ingest_verify`` at scale: rows/s and peak memory at N records next to 100,000, in one run.

    .venv/bin/python benchmarks/verify_scale.py --records 1000000 [--dir /tmp/verify-scale]

For each size (100,000, then N) builds a synthetic source: a fresh SQLite state database with
N ``IngestRecords`` rows and N completed ``work_items``, and a lake of N record files in the
fan-out layout (small payloads; files written without fsync). Then runs the audit
(:func:`holocron_scrapy.audit.verify.verify`) in a child process and prints the records/s, the
child's peak RSS and the number of sorted runs it spilled, and the ratios at N to 100,000 (of
the per-record cost and of the peak RSS). Bounded memory means the RSS ratio stays near 1.
The lake of N = 1,000,000 takes ~4 GB of disk (a block a file) and a few minutes to build.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from holocron_scrapy.lake.paths import record_parts  # noqa: E402
from holocron_scrapy.store.state_store import StateStore  # noqa: E402

SYSTEM, NAME, TYPE, RUN = "mediawiki", "bench", "page", "0" * 32
BATCH = 10_000


def build(directory: Path, count: int) -> str:
    """The state database and lake of ``count`` records under ``directory``; its URL."""
    if directory.exists():
        shutil.rmtree(directory)
    lake = directory / "lake"
    url = f"sqlite:///{directory / 'state.db'}"
    store = StateStore.from_url(url, None)
    store.create_tables()
    when = datetime(2026, 12, 1, 12, 0, 0)
    rows: list[dict[str, object]] = []
    items: list[dict[str, object]] = []
    made: set[str] = set()
    for n in range(1, count + 1):
        resource_id = f"Page {n}"
        payload = json.dumps({"pageid": n, "title": resource_id, "text": "x" * 100})
        digest = hashlib.sha256(payload.encode()).hexdigest()
        meta = {"resource_id": resource_id, "hash_sha256": digest, "work_item_id": n}
        head = json.dumps(meta, indent=1)
        *parents, filename = record_parts(SYSTEM, NAME, TYPE, resource_id, digest)
        parent = os.path.join(lake, *parents)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        with open(os.path.join(parent, filename), "wb") as out:
            out.write((head[:-2] + ',\n "payload": ' + payload + "\n}\n").encode())
        key = f"{SYSTEM}|{NAME}|{TYPE}|{resource_id}"
        items.append(
            {
                "id": n,
                "dedupe_hash": hashlib.sha256(key.encode()).hexdigest(),
                "dedupe_key": key,
                "source_system": SYSTEM,
                "source_name": NAME,
                "resource_type": TYPE,
                "resource_id": resource_id,
                "status": "completed",
                "content_hash": digest,
                "created_at": when,
                "updated_at": when,
            }
        )
        rows.append(
            {
                "source_system": SYSTEM,
                "source_name": NAME,
                "resource_type": TYPE,
                "resource_id": resource_id,
                "request_uri": f"https://example.org/api.php?page={n}",
                "request_method": "GET",
                "request_headers": "{}",
                "status_code": 200,
                "response_headers": "{}",
                "payload": payload,
                "fetched_at_utc": when,
                "hash_sha256": digest,
                "run_id": RUN,
                "work_item_id": n,
                "attempt": 1,
            }
        )
        if len(rows) == BATCH or n == count:
            with store.engine.begin() as conn:
                conn.execute(sa.insert(store.tables.work_items), items)
                conn.execute(sa.insert(store.tables.ingest_records), rows)
            rows, items = [], []
    store.engine.dispose()
    return url


CHILD = """
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from holocron_scrapy.audit import lake_files
from holocron_scrapy.audit.verify import read_only_engine, verify
from holocron_scrapy.store.schema import build_tables
import sqlalchemy as sa
spilled = []
class Counting(lake_files.ExpectedFiles):
    def close(self):
        spilled.append(self.spilled)
        super().close()
import holocron_scrapy.audit.verify as v
v.ExpectedFiles = Counting
engine = read_only_engine(sa.make_url(sys.argv[1]))
t0 = time.perf_counter()
report = verify(engine, build_tables(None), Path(sys.argv[2]), "bench")
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "ok": report.ok, "lines": report.lines()[-1],
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "spilled": spilled[0]}))
"""


def audit(url: str, lake: Path) -> dict[str, object]:
    child = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(lake), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(child.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--base", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/verify-scale"))
    parser.add_argument("--keep", action="store_true", help="keep the lakes and databases")
    args = parser.parse_args()
    results = {}
    for count in (args.base, args.records):
        directory = args.dir / f"n{count}"
        t0 = time.perf_counter()
        url = build(directory, count)
        built = time.perf_counter() - t0
        os.sync()
        result = audit(url, directory / "lake")
        rate = count / float(result["seconds"])  # type: ignore[arg-type]
        results[count] = (rate, float(result["rss_mb"]))  # type: ignore[arg-type]
        print(
            f"{count:>10,} records: built in {built:,.0f} s; verify {result['seconds']:.1f} s, "
            f"{rate:,.0f} records/s, peak RSS {result['rss_mb']:.0f} MB, "
            f"{result['spilled']} sorted runs on disk, ok={result['ok']}",
            flush=True,
        )
        if not args.keep:
            shutil.rmtree(directory)
    (base_rate, base_rss), (rate, rss) = results[args.base], results[args.records]
    print(
        f"ratio {args.records:,} / {args.base:,}: per-record cost {base_rate / rate:.2f}x, "
        f"peak RSS {rss / base_rss:.2f}x"
    )


if __name__ == "__main__":
    main()
