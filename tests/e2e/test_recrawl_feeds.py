"""``-a recrawl=changed`` by the wiki's change feeds, against a real MediaWiki edited, moved,
deleted and added to between runs by its maintenance scripts: a refresh costs requests in
proportion to the changes, not to the wiki, and records exactly them.

The test edits the wiki, so it runs on a wiki of its own (not the session's). Each test's first
refresh also reads the feeds' last minutes before its crawl (the overlap that covers clocks and
late entries), where the earlier tests' changes are: edits, deletions and moves of titles its
archive does not hold cost nothing; a template edit costs its ``embeddedin`` request, so the
template test comes last.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
import yaml

from tests.e2e.crawl_helpers import Database, read_lake, run_crawl, write_source
from tests.e2e.wiki import MEDIAWIKI_DIR, MediaWiki, missing_requirements

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

REFRESH = ["-a", "recrawl=changed"]
FEED_REQUESTS = 2  # the probe, and one page of both feeds


@pytest.fixture(scope="module")
def own_wiki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaWiki]:
    problems = missing_requirements()
    if problems:
        pytest.skip(f"MediaWiki test bed not available ({'; '.join(problems)})")
    wiki = MediaWiki.create(tmp_path_factory.mktemp("wiki"), 300)
    try:
        wiki.start()
        yield wiki
    finally:
        wiki.stop()


def maintenance(wiki: MediaWiki, script: str, *args: str, stdin: str = "") -> None:
    env = {
        **os.environ,
        "MW_CONFIG_FILE": str(wiki.root / "LocalSettings.php"),
        "MW_INSTALL_PATH": str(MEDIAWIKI_DIR),
    }
    subprocess.run(
        ["php", str(MEDIAWIKI_DIR / "maintenance" / script), *args],
        input=stdin,
        text=True,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )


def edit(wiki: MediaWiki, title: str, text: str) -> None:
    maintenance(wiki, "edit.php", "--user", "Admin", "--summary", "feeds test", title, stdin=text)


def batch(wiki: MediaWiki, tmp_path: Path, script: str, lines: list[str]) -> None:
    listfile = tmp_path / f"{script}.txt"
    listfile.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    maintenance(wiki, script, "--u", "Admin", "--r", "feeds test", str(listfile))


def source_file(path: Path, wiki: MediaWiki, seeds: dict[str, Any], **kwargs: Any) -> Path:
    extra = kwargs.pop("extra", {})
    source = write_source(path, wiki.api_url, [], **kwargs)
    document = yaml.safe_load(source.read_text("utf-8"))
    document["seeds"] = seeds
    document.update(extra)
    source.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), "utf-8")
    return source


def sync_point(db: Database) -> dict[str, Any]:
    [row] = db.select(sa.select(db.tables.sync_points))
    return row


def new_records(db: Database) -> dict[tuple[str, str], dict[str, Any]]:
    run = db.runs()[-1]["run_id"]
    return {(r["resource_type"], r["resource_id"]): r for r in db.records() if r["run_id"] == run}


def test_refresh_by_feeds_costs_the_changes_not_the_wiki(
    own_wiki: MediaWiki, tmp_path: Path
) -> None:
    db = Database("sqlite", f"sqlite:///{tmp_path / 'state.db'}", None)
    lake = tmp_path / "lake"
    source = source_file(tmp_path / "e2ewiki.yaml", own_wiki, {"allpages": [0]}, max_depth=1)
    run_crawl(source, lake, db, tmp_path / "crawl.log").check()
    first = sync_point(db)
    assert first["feed_timestamp"] is not None
    items = {row["resource_id"]: row for row in db.work_items()}
    pages = sorted(
        t
        for t, row in items.items()
        if row["status"] == "completed" and row["resource_type"] == "page"
    )
    red_links = sorted(
        t
        for t, row in items.items()
        if row["status"] == "skipped" and row["error_message"].startswith("missing")
    )
    assert len(pages) > 200
    assert red_links
    info_pass = math.ceil(len(pages) / 50)  # what the prop=info pass costs before a refetch

    # Nothing changed: the probe and one feed request, no record.
    quiet = run_crawl(source, lake, db, tmp_path / "quiet.log", args=REFRESH).check()
    assert quiet.stat("downloader/request_count") == FEED_REQUESTS
    assert quiet.stat("holocron/recrawl/fallback") == 0
    assert new_records(db) == {}

    # K = 1: one edit, one refetch.
    edit(own_wiki, pages[0], "Edited by the feeds test (1).\n")
    one = run_crawl(source, lake, db, tmp_path / "one.log", args=REFRESH).check()
    assert set(new_records(db)) == {("page", pages[0])}
    assert one.stat("downloader/request_count") == FEED_REQUESTS + 1
    assert one.stat("holocron/recrawl/changed") == 1

    # K = 5: an edit, a deletion, a move, a new page, a red link turned blue.
    edited, deleted, moved = pages[1], pages[2], pages[3]
    moved_to = f"{moved} (moved by the feeds test)"
    created = "Created by the feeds test"
    blue = red_links[0]
    edit(own_wiki, edited, "Edited by the feeds test (5).\n")
    batch(own_wiki, tmp_path, "deleteBatch.php", [deleted])
    batch(own_wiki, tmp_path, "moveBatch.php", [f"{moved}|{moved_to}"])
    edit(own_wiki, created, "A page nothing links to.\n")
    edit(own_wiki, blue, "This red link is blue now.\n")
    five = run_crawl(source, lake, db, tmp_path / "five.log", args=REFRESH).check()
    records = new_records(db)
    # The move: the new title's record, and one saying the old title redirects to it.
    titles = (edited, deleted, moved, moved_to, created, blue)
    assert set(records) == {("page", t) for t in titles}
    assert json.loads(records[("page", moved)]["payload"]) == {
        "title": moved,
        "redirect": True,
        "redirect_to": moved_to,
    }
    assert json.loads(records[("page", deleted)]["payload"])["deleted"] is True
    assert "This red link is blue now." in records[("page", blue)]["payload"]
    after = {row["resource_id"]: row for row in db.work_items()}
    assert (after[moved]["status"], after[moved]["version"]) == ("completed", "redirect")
    assert after[moved_to]["depth"] == after[moved]["depth"]
    assert after[created]["depth"] == 0
    assert (after[blue]["status"], after[blue]["depth"]) == ("completed", items[blue]["depth"])
    # The feeds, then one page query for all of them (the old title resolves to the new one).
    assert five.stat("downloader/request_count") == FEED_REQUESTS + 1
    assert five.stat("downloader/request_count") < info_pass + 1
    assert five.stat("holocron/frontier/seeded") == 0

    # Right after, nothing: every change was applied once.
    again = run_crawl(source, lake, db, tmp_path / "again.log", args=REFRESH).check()
    assert again.stat("downloader/request_count") == FEED_REQUESTS
    assert new_records(db) == {}
    assert sync_point(db)["feed_timestamp"] > first["feed_timestamp"]
    assert len(read_lake(lake)) == len(pages) + 1 + 6


def test_a_page_added_to_a_seeded_category_joins(own_wiki: MediaWiki, tmp_path: Path) -> None:
    """With ``$wgRCWatchCategoryMembership`` (Wikimedia's setting; MediaWiki's default is off),
    recent changes say when a category's members change: its listing runs again."""
    settings = own_wiki.root / "LocalSettings.php"
    if "RCWatchCategoryMembership" not in settings.read_text("utf-8"):
        with settings.open("a", encoding="utf-8") as out:
            out.write("\n$wgRCWatchCategoryMembership = true;\n")
    sizes = own_wiki.api(list="allcategories", acprop="size", aclimit="max")
    category = next(
        f"Category:{c['category']}"
        for c in sizes["query"]["allcategories"]
        if 2 <= c["pages"] <= 10
    )
    db = Database("sqlite", f"sqlite:///{tmp_path / 'state.db'}", None)
    lake = tmp_path / "lake"
    seeds = {"categories": [category]}
    source = source_file(tmp_path / "e2ewiki.yaml", own_wiki, seeds, max_depth=0)
    run_crawl(source, lake, db, tmp_path / "crawl.log").check()
    members = {r["resource_id"] for r in db.records()}
    assert members
    joined = "Joined a category in the feeds test"
    edit(own_wiki, joined, f"A new member.\n[[{category}]]\n")
    maintenance(own_wiki, "runJobs.php")  # the job that enters the membership change

    result = run_crawl(source, lake, db, tmp_path / "refresh.log", args=REFRESH).check()
    assert set(new_records(db)) == {("page", joined)}
    assert result.stat("holocron/recrawl/listings") == 1
    # The feeds, the category's members again, the new member's page query.
    assert result.stat("downloader/request_count") == FEED_REQUESTS + 1 + 1
    again = run_crawl(source, lake, db, tmp_path / "again.log", args=REFRESH).check()
    assert again.stat("downloader/request_count") == FEED_REQUESTS


TEMPLATE = "Template:Starship infobox"


def test_a_template_edit_refreshes_the_pages_using_it(own_wiki: MediaWiki, tmp_path: Path) -> None:
    """Their lastrevid stays; the feed's template edit leads to them (list=embeddedin)."""
    users = sorted(
        page["title"]
        for data in own_wiki.query_all(list="embeddedin", eititle=TEMPLATE, eilimit="max")
        for page in data["query"]["embeddedin"]
    )
    listed = own_wiki.api(list="allpages", apfilterredir="nonredirects", aplimit=50)
    others = sorted(page["title"] for page in listed["query"]["allpages"])
    others = [t for t in others if t not in users][:2]
    seeds = [*users[:3], *others]
    db = Database("sqlite", f"sqlite:///{tmp_path / 'state.db'}", None)
    lake = tmp_path / "lake"
    source = source_file(
        tmp_path / "e2ewiki.yaml",
        own_wiki,
        {"titles": seeds},
        max_depth=0,
        extra={"resources": ["page", "html"]},
    )
    run_crawl(source, lake, db, tmp_path / "crawl.log").check()
    assert len(db.records()) == 2 * len(seeds)
    edit(own_wiki, TEMPLATE, "'''Infobox edited by the feeds test.'''\n")
    maintenance(own_wiki, "runJobs.php")  # the wiki's job queue re-renders the users
    # The server caches the template's page row in its own APCu, which the command line cannot
    # purge (a wiki with a shared object cache, as every real one, needs no restart).
    port = own_wiki.port
    own_wiki.stop()
    own_wiki.start(port)

    result = run_crawl(source, lake, db, tmp_path / "refresh.log", args=REFRESH).check()
    records = new_records(db)
    assert set(records) == {(kind, t) for kind in ("page", "html") for t in users[:3]}
    for title in users[:3]:
        assert "Infobox edited by the feeds test." in records[("html", title)]["payload"]
    assert result.stat("holocron/recrawl/transcluding") == 3
    # The feeds, the template's users, one page query and three parses.
    assert result.stat("downloader/request_count") == FEED_REQUESTS + 1 + 1 + 3

    again = run_crawl(source, lake, db, tmp_path / "again.log", args=REFRESH).check()
    assert again.stat("downloader/request_count") == FEED_REQUESTS
    assert new_records(db) == {}
