"""A source whose settings reach further than its archive (a larger ``max_depth``), run again:
the crawl expands what the new settings reach, and fetches again only the pages that were
leaves of the old depth (their new records: none, their content did not change)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from tests.e2e.crawl_helpers import (
    Database,
    assert_records_match,
    assert_work_items_match,
    expect_crawl,
    run_crawl,
    write_source,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.wiki import MediaWiki

SEED = "Darth Vader"


def test_raising_max_depth_expands_the_archive(mediawiki: MediaWiki, tmp_path: Path) -> None:
    db = Database("sqlite", f"sqlite:///{tmp_path / 'state.db'}", None)
    lake = tmp_path / "lake"
    source = write_source(tmp_path / "e2ewiki.yaml", mediawiki.api_url, [SEED], max_depth=1)
    run_crawl(source, lake, db, tmp_path / "depth1.log").check()
    leaves = [
        row
        for row in db.work_items()
        if row["status"] == "completed" and row["depth"] == 1 and row["resource_type"] == "page"
    ]
    assert leaves

    write_source(tmp_path / "e2ewiki.yaml", mediawiki.api_url, [SEED], max_depth=2)
    result = run_crawl(source, lake, db, tmp_path / "depth2.log").check()
    assert result.stat("holocron/recrawl/widened") == len(leaves)
    expected = expect_crawl(mediawiki, [SEED], 2)
    assert_work_items_match(expected, db)
    assert_records_match(expected, db, lake)  # the leaves' records were not written again
    # The leaves again, then what they lead to; nothing above them.
    assert result.stat("downloader/request_count") >= math.ceil(len(leaves) / 50)

    again = run_crawl(source, lake, db, tmp_path / "again.log").check()
    assert again.stat("holocron/recrawl/widened") == 0
    assert again.stat("downloader/request_count") == 0
