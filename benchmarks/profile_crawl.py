"""Profile one full crawl of ``crawl_vs_bare.py`` (same wiki, seeds and settings).

Usage (not part of the test suite)::

    .venv/bin/python benchmarks/profile_crawl.py --pages 1500 --seed-count 3 --concurrency 8 \
        --wiki-dir /tmp/wiki-bench [--cprofile]

With py-spy on the PATH or in the venv (``pip install py-spy``): ``py-spy record`` of the crawl
process, every thread (the reactor, the SQL pool, the lake threads), sampled 200 times a second;
prints the functions with the largest share of the samples, inclusive (a function counted once
per sample it is on the stack of) and exclusive (on top). ``--cprofile``: ``python -m cProfile``
instead, which sees the reactor thread only; prints its top cumulative entries.
"""

from __future__ import annotations

import argparse
import collections
import pstats
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crawl_vs_bare as bench


def summarize_py_spy(raw: Path, top: int) -> str:
    """Inclusive and exclusive sample shares by function from py-spy's collapsed stacks."""
    inclusive: collections.Counter[str] = collections.Counter()
    exclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text("utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " (" + f.rpartition("/")[2] for f in stack.split(";")[1:]]
        frames = [f.split(":")[0] + ")" if ":" in f else f for f in frames]
        for frame in set(frames):
            inclusive[frame] += n
        if frames:
            exclusive[frames[-1]] += n
    lines = [f"{total} samples (all threads); inclusive %:"]
    lines += [f"  {100 * n / total:5.1f}  {f}" for f, n in inclusive.most_common(top)]
    lines.append("exclusive % (on top of the stack):")
    lines += [f"  {100 * n / total:5.1f}  {f}" for f, n in exclusive.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--wiki-dir", type=Path)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-depth", type=int, default=2)
    parser.add_argument("--seed-count", type=int, default=4)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--cprofile", action="store_true", help="cProfile, reactor thread only")
    parser.add_argument("--out", type=Path, help="keep the profile here")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if not args.cprofile and py_spy is None:
        parser.error("py-spy not found (pip install py-spy), or use --cprofile")
    work = Path(tempfile.mkdtemp(prefix="holocron-profile-"))
    out = args.out or work / ("crawl.prof" if args.cprofile else "crawl.txt")
    if args.cprofile:
        prefix = [bench.PYTHON, "-m", "cProfile", "-o", str(out)]
    else:
        prefix = [str(py_spy), "record", "--format", "raw", "--rate", "200", "--subprocesses"]
        prefix += ["--nonblocking", "--output", str(out), "--", bench.PYTHON]
    wiki_root = args.wiki_dir.resolve() if args.wiki_dir else work / "wiki"
    try:
        with bench.served_wiki(wiki_root, args.pages, args.seed) as wiki:
            seeds = bench.choose_seeds(wiki, args.seed_count)
            source = work / "source.yaml"
            bench.write_source(source, wiki.api_url, seeds, args.max_depth)
            run, _ = bench.full_crawl(work / "full", source, args.concurrency, 900.0, prefix=prefix)
            print(bench.describe(1, run))
    finally:
        if args.out is None:
            print(f"kept: {work}")
    if args.cprofile:
        pstats.Stats(str(out)).sort_stats("cumulative").print_stats(args.top)
    else:
        print(summarize_py_spy(out, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
