"""The lake's write path, old vs new, in one run: N pending files written by 4 threads either
one at a time the old way (temporary file, fsync, rename, fsync of the directory) or as group
commits (each file created and fdatasynced, concurrently, then .pending/ fsynced once per group
of 64). Prints files/s, fsyncs per file and the ratio.

    .venv/bin/python benchmarks/lake_group.py --files 2000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from holocron_scrapy.lake.atomic import fsync_directories, write_json_atomic
from holocron_scrapy.lake.pending import write_pending

if TYPE_CHECKING:
    from collections.abc import Callable

DOC = b'{"payload": "' + b"x" * 4000 + b'"}'
SYNCS = [0]  # fsync and fdatasync calls
_fsync, _fdatasync = os.fsync, os.fdatasync


def _count(real: Callable[[int], None]) -> Callable[[int], None]:
    def counted(fd: int) -> None:
        SYNCS[0] += 1
        real(fd)

    return counted


def old(directory: Path, n: int, pool: ThreadPoolExecutor) -> None:
    list(pool.map(lambda i: write_json_atomic(directory / f"f~{i}~ab.json", DOC), range(n)))


def new(directory: Path, n: int, pool: ThreadPoolExecutor, group: int = 64) -> None:
    for start in range(0, n, group):
        names = [directory / f"f~{i}~ab.json" for i in range(start, min(n, start + group))]
        changed = list(pool.map(lambda p: write_pending(p, DOC), names))
        fsync_directories({d for c in changed for d in c})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.fsync, os.fdatasync = _count(_fsync), _count(_fdatasync)
    with ThreadPoolExecutor(4) as pool, tempfile.TemporaryDirectory(dir=".") as tmp:
        for r in range(args.repeat):
            rates = {}
            for name, fn in (("old", old), ("new", new)):
                directory = Path(tmp) / f"{name}{r}" / ".pending"
                directory.mkdir(parents=True)
                SYNCS[0] = 0
                t0 = time.perf_counter()
                fn(directory, args.files, pool)
                rates[name] = args.files / (time.perf_counter() - t0)
                per_file = SYNCS[0] / args.files
                print(f"{name}: {rates[name]:8.0f} files/s, {per_file:.2f} fsyncs/file")
            print(f"pair {r + 1}: new/old {rates['new'] / rates['old']:.2f}")


if __name__ == "__main__":
    main()
