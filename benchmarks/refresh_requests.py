"""Requests of ``-a recrawl=changed`` refreshes with K edited pages, on a running test bed wiki.

Usage (not part of the test suite; the wiki is edited, so use a copy of its own)::

    python benchmarks/refresh_requests.py --api http://127.0.0.1:PORT/api.php --wiki-dir DIR \\
        [--ks 0,1,5,25] [--code REPO_DIR]

It crawls the wiki's namespace 0 (``allpages``, ``max_depth: 1``) into a fresh SQLite state
database, then for each K edits K archived pages with ``maintenance/edit.php`` and runs one
refresh, printing its ``downloader/request_count`` and records written. ``--code`` runs the
crawls with another checkout of this repository (e.g. a ``git archive`` of an older commit),
with the same interpreter.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--api", required=True)
    parser.add_argument("--wiki-dir", required=True, type=Path)
    parser.add_argument("--ks", default="0,1,5,25")
    parser.add_argument("--code", type=Path, default=REPO)
    args = parser.parse_args()
    sys.path.insert(0, str(args.code))
    from tests.e2e.crawl_helpers import Database, run_crawl, write_source

    work = Path(tempfile.mkdtemp(prefix="refresh-requests-"))
    db = Database("sqlite", f"sqlite:///{work / 'state.db'}", None)
    source = write_source(work / "e2ewiki.yaml", args.api, [], max_depth=1)
    document = yaml.safe_load(source.read_text("utf-8"))
    document["seeds"] = {"allpages": [0]}
    source.write_text(yaml.safe_dump(document), "utf-8")
    crawl = run_crawl(source, work / "lake", db, work / "crawl.log").check()
    pages = sorted(
        row["resource_id"]
        for row in db.work_items()
        if row["status"] == "completed" and row["resource_type"] == "page"
    )
    print(f"{len(pages)} pages archived in {crawl.stat('downloader/request_count')} requests")
    env = {
        **os.environ,
        "MW_CONFIG_FILE": str(args.wiki_dir / "LocalSettings.php"),
        "MW_INSTALL_PATH": "/usr/share/mediawiki",
    }
    used = 0
    for k in (int(value) for value in args.ks.split(",")):
        for title in pages[used : used + k]:
            subprocess.run(
                ["php", "/usr/share/mediawiki/maintenance/edit.php", "--user", "Admin", title],
                input=f"Edited by the refresh benchmark ({work.name}, K={k}).\n",
                text=True,
                env=env,
                check=True,
                capture_output=True,
            )
        used += k
        log = work / f"refresh-{k}.log"
        refresh = run_crawl(source, work / "lake", db, log, args=["-a", "recrawl=changed"])
        refresh.check()
        print(
            f"K={k}: {refresh.stat('downloader/request_count')} requests, "
            f"{refresh.stat('holocron/records/written')} records"
        )


if __name__ == "__main__":
    main()
