"""End to end: ``resources:`` — html, revisions and info records beside the pages.

Each resource of each page reached is its own work item and its own record, equal to what the
wiki's API serves and to the wiki's own tables; adding a resource to the file later fetches only
that resource.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import yaml

from holocron_scrapy.mediawiki import resources
from tests.e2e.crawl_helpers import (
    SOURCE_NAME,
    SOURCE_SYSTEM,
    assert_same_set,
    expect_crawl,
    read_lake,
    run_crawl,
    write_source,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from tests.e2e.crawl_helpers import CrawlResult, Database
    from tests.e2e.wiki import MediaWiki

SEEDS = ["Darth Vader"]
ALL = ["page", "html", "revisions", "info"]


def resources_source(tmp_path: Path, wiki: MediaWiki, kinds: Sequence[str]) -> Path:
    path = write_source(tmp_path / f"{SOURCE_NAME}.yaml", wiki.api_url, SEEDS, max_depth=1)
    document = yaml.safe_load(path.read_text("utf-8"))
    document["resources"] = list(kinds)
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), "utf-8")
    return path


def records_by_type(db: Database) -> dict[str, list[dict[str, Any]]]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for row in db.records():
        by_type.setdefault(row["resource_type"], []).append(row)
    return by_type


def assert_one_per_page(rows: list[dict[str, Any]], titles: set[str], what: str) -> None:
    ids = Counter(row["resource_id"] for row in rows)
    assert_same_set(ids, titles, what)
    assert all(n == 1 for n in ids.values()), f"{what}: several records {ids.most_common(3)}"


def parse_as_served(wiki: MediaWiki, title: str) -> dict[str, Any]:
    prop = resources.PARSE_QUERY["prop"].split("|")
    parsed: dict[str, Any] = wiki.api(
        action="parse", page=title, prop=prop, disablelimitreport=True
    )["parse"]
    return parsed


def requests_made(result: CrawlResult) -> int:
    return result.stat("downloader/request_count")


def test_every_resource_of_every_page(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    expected = expect_crawl(mediawiki, SEEDS, max_depth=1)
    titles = {expected.titles[pid] for pid in expected.truth.pages}
    source = resources_source(tmp_path, mediawiki, ALL)
    lake = tmp_path / "lake"
    first = run_crawl(source, lake, crawl_db, tmp_path / "crawl-1.log").check()

    by_type = records_by_type(crawl_db)
    assert set(by_type) == set(ALL)
    for kind in ALL:
        assert_one_per_page(by_type[kind], titles, f"{kind} records")
    # One work item per resource of each page, all completed.
    items = [i for i in crawl_db.work_items() if i["resource_type"] != "page"]
    assert Counter(i["resource_type"] for i in items) == {k: len(titles) for k in ALL[1:]}
    assert {i["status"] for i in items} == {"completed"}
    # The lake holds the same records, under their types.
    lake_types = Counter(f.type_dir.name for f in read_lake(lake))
    assert lake_types == {kind: len(titles) for kind in ALL}
    assert {f.type_dir.parent.name for f in read_lake(lake)} == {SOURCE_NAME}
    assert {f.type_dir.parent.parent.name for f in read_lake(lake)} == {SOURCE_SYSTEM}

    ids_by_title = {title: pid for pid, title in expected.titles.items()}
    for row in by_type["html"]:
        assert json.loads(row["payload"]) == parse_as_served(mediawiki, row["resource_id"])
    for row in by_type["revisions"]:
        pid = ids_by_title[row["resource_id"]]
        revids = [
            r
            for (r,) in mediawiki.sql(
                "SELECT rev_id FROM revision WHERE rev_page = ? ORDER BY rev_timestamp, rev_id",
                pid,
            )
        ]
        payload = json.loads(row["payload"])
        assert payload["pageid"] == pid
        assert [r["revid"] for r in payload["revisions"]] == revids
    for row in by_type["info"]:
        pid = ids_by_title[row["resource_id"]]
        payload = json.loads(row["payload"])
        [(latest,)] = mediawiki.sql("SELECT page_latest FROM page WHERE page_id = ?", pid)
        assert (payload["pageid"], payload["lastrevid"]) == (pid, latest)
        assert "fullurl" in payload

    # Per page: 1 parse, 1 history (few revisions each), and 1 info request per 50 pages.
    print(  # request counts, shown with -s
        f"{len(titles)} pages, {len(by_type['page'])} page records: "
        f"{requests_made(first)} requests for {ALL}"
    )
    assert requests_made(first) >= 2 * len(titles)

    # A second run fetches nothing and adds nothing.
    second = run_crawl(source, lake, crawl_db, tmp_path / "crawl-2.log").check()
    assert requests_made(second) == 0
    assert len(crawl_db.records()) == 4 * len(titles)


def test_html_added_later_fetches_only_html(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    expected = expect_crawl(mediawiki, SEEDS, max_depth=1)
    titles = {expected.titles[pid] for pid in expected.truth.pages}
    lake = tmp_path / "lake"
    source = resources_source(tmp_path, mediawiki, ["page"])
    pages_only = run_crawl(source, lake, crawl_db, tmp_path / "crawl-1.log").check()
    before = crawl_db.records()
    assert {r["resource_type"] for r in before} == {"page"}
    assert len(before) == len(titles)

    source = resources_source(tmp_path, mediawiki, ["page", "html"])
    later = run_crawl(
        source, lake, crawl_db, tmp_path / "crawl-2.log", args=["-a", "recrawl=all"]
    ).check()
    after = crawl_db.records()
    added = after[len(before) :]
    assert after[: len(before)] == before
    assert {r["resource_type"] for r in added} == {"html"}
    assert_one_per_page(added, titles, "html records added")
    assert later.stat("holocron/records/unchanged") == len(titles)  # pages refetched, unchanged
    print(  # request counts, shown with -s
        f"{len(titles)} pages: {requests_made(pages_only)} requests for [page]; "
        f"{requests_made(later)} for recrawl=all with [page, html]"
    )


def test_files_are_file_records_with_their_image_info(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    """Namespace 6 in ``discovery.namespaces``: the File: pages (uploaded by the test bed's
    import.sh) are ``file`` records with their image info, equal to the wiki's ``image`` table.
    A seed under the ``Image:`` alias is typed ``file`` too: one work item per file."""
    truth = {
        mediawiki.title(6, name): (size, int(sha1, 36), f"{major}/{minor}", actor)
        for name, size, sha1, major, minor, actor in mediawiki.sql(
            "SELECT img_name, img_size, img_sha1, img_major_mime, img_minor_mime, actor_name"
            " FROM image JOIN actor ON actor_id = img_actor"
        )
    }
    assert len(truth) >= 5
    path = write_source(tmp_path / "s.yaml", mediawiki.api_url, ["Image:Holocron.png"])
    document = yaml.safe_load(path.read_text("utf-8"))
    document["seeds"]["allpages"] = [6]
    document["discovery"] = {"links": False, "namespaces": [0, 6]}
    path.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    lake = tmp_path / "lake"
    run_crawl(path, lake, crawl_db, tmp_path / "crawl.log").check()
    rows = crawl_db.records()
    assert {row["resource_type"] for row in rows} == {"file"}
    assert_one_per_page(rows, set(truth), "file records")
    for row in rows:
        payload = json.loads(row["payload"])
        [info] = payload["imageinfo"]
        size, sha1, mime, user = truth[row["resource_id"]]
        assert (info["size"], int(info["sha1"], 16), info["mime"], info["user"]) == (
            size,
            sha1,
            mime,
            user,
        )
        assert info["url"].startswith(mediawiki.api_url.removesuffix("api.php") + "images/")
        assert payload["revisions"][0]["slots"]["main"]["content"]
    items = {(i["resource_type"], i["resource_id"]): i["status"] for i in crawl_db.work_items()}
    assert items.pop(("file", "Image:Holocron.png")) == "skipped"  # normalized to File:
    assert items.pop(("listing", "allpages?apnamespace=6")) == "completed"
    assert items == {("file", title): "completed" for title in truth}
    assert {f.type_dir.name for f in read_lake(lake)} == {"file"}
