"""``scrapy ingest_verify`` after a real crawl of the real MediaWiki: clean, then damaged."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.audit import ingest_verify
from tests.e2e.crawl_helpers import (
    SOURCE_NAME,
    Database,
    expect_crawl,
    read_lake,
    run_crawl,
    write_source,
)

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

    from tests.e2e.wiki import MediaWiki

SEEDS = ("Darth Vader",)


def audit(db: Database, lake: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``scrapy ingest_verify`` with the crawl's database and lake settings."""
    return ingest_verify(*db.settings_args(), "-s", f"HOLOCRON_LAKE_DIR={lake}", *args)


@pytest.mark.parametrize(
    "crawl_db",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
    indirect=True,
)
def test_ingest_verify_after_a_real_crawl(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    expected = expect_crawl(mediawiki, SEEDS, max_depth=1)
    source = write_source(tmp_path / f"{SOURCE_NAME}.yaml", mediawiki.api_url, SEEDS, max_depth=1)
    lake = tmp_path / "lake"
    run_crawl(source, lake, crawl_db, tmp_path / "crawl.log").check()
    truth = tmp_path / "truth.txt"
    truth.write_text("\n".join(sorted(expected.titles.values())) + "\n", "utf-8")

    clean = audit(crawl_db, lake, "-a", f"source={source}", "--ground-truth", str(truth))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    summary = clean.stdout.splitlines()[-1]
    pages = len(expected.truth.pages)
    assert summary.startswith(f"ingest_verify {SOURCE_NAME}: OK (records={pages}, "), summary
    assert f"lake_files={pages}" in summary

    victim = read_lake(lake)[0]
    victim.path.write_bytes(victim.raw.replace('"pageid":', '"pageid": ').encode("utf-8"))
    damaged = audit(crawl_db, lake, "--source", SOURCE_NAME, "--ground-truth", str(truth))
    assert damaged.returncode == 1, damaged.stdout + damaged.stderr
    assert "file_hash_mismatch: 1 PROBLEMS" in damaged.stdout
    assert victim.path.name in damaged.stdout
