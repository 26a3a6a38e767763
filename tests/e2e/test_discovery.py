"""``discovery.categories``, ``discovery.templates`` and ``discovery.backlinks`` against the
real MediaWiki, from one seed article. Ground truth: the wiki's own tables (``page``,
``categorylinks``, ``templatelinks`` with ``linktarget``, ``pagelinks``, ``redirect``).

Each expectation is a map ``(resource_type, title) -> depth`` of the records the crawl must
write (one IngestRecords row and one lake file in the type's directory each), the depth being
the smallest one the title is reached at.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from holocron_scrapy.mediawiki import listings
from tests.e2e.crawl_helpers import (
    Database,
    assert_same_set,
    read_lake,
    run_crawl,
    write_source,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.wiki import MediaWiki

Expected = dict[tuple[str, str], int]
TYPE_OF_NAMESPACE = {14: "category", 10: "template"}


class Wiki:
    """The wiki's pages, read once: (ns, db key) -> (page id, is a redirect), and back."""

    def __init__(self, mediawiki: MediaWiki) -> None:
        self.mw = mediawiki
        rows = mediawiki.sql(
            "SELECT page_id, page_namespace, page_title, page_is_redirect FROM page"
        )
        self.pages = {(ns, key): (pid, bool(redirect)) for pid, ns, key, redirect in rows}
        self.by_id = {pid: (ns, key, bool(redirect)) for pid, ns, key, redirect in rows}
        self.redirects = {
            pid: (ns, key)
            for pid, ns, key in mediawiki.sql(
                "SELECT rd_from, rd_namespace, rd_title FROM redirect"
            )
        }

    def resolve(self, ns: int, key: str) -> tuple[int, str] | None:
        """A title's page after one redirect hop; ``None`` when there is no page."""
        page = self.pages.get((ns, key))
        if page is None:
            return None
        if page[1]:
            ns, key = self.redirects[page[0]]
            target = self.pages.get((ns, key))
            assert target is None or not target[1], "the model does not handle double redirects"
            return None if target is None else (ns, key)
        return ns, key

    def seed(self) -> tuple[int, str]:
        """The first article (by page id) with two categories that have a page, two templates
        and three articles linking to it: (page id, db key)."""
        rows = self.mw.sql(
            "SELECT p.page_id, p.page_title FROM page p"
            " WHERE p.page_namespace = 0 AND p.page_is_redirect = 0"
            " AND (SELECT COUNT(*) FROM categorylinks cl JOIN page c ON c.page_namespace = 14"
            "      AND c.page_title = cl.cl_to WHERE cl.cl_from = p.page_id) >= 2"
            " AND (SELECT COUNT(*) FROM templatelinks tl JOIN linktarget lt"
            "      ON lt.lt_id = tl.tl_target_id"
            "      WHERE tl.tl_from = p.page_id AND lt.lt_namespace = 10) >= 2"
            " AND (SELECT COUNT(*) FROM pagelinks pl JOIN page b ON b.page_id = pl.pl_from"
            "      WHERE pl.pl_namespace = 0 AND pl.pl_title = p.page_title"
            "      AND b.page_namespace = 0 AND b.page_is_redirect = 0) >= 3"
            " ORDER BY p.page_id LIMIT 1"
        )
        assert rows, "no article with categories, templates and backlinks in the test wiki"
        pid, key = rows[0]
        return int(pid), str(key)


def add(expected: Expected, wiki: Wiki, ns: int, key: str, depth: int) -> None:
    title = (TYPE_OF_NAMESPACE.get(ns, "page"), wiki.mw.title(ns, key))
    expected[title] = min(expected.get(title, depth), depth)


def category_truth(wiki: Wiki, seed_id: int, seed_key: str) -> Expected:
    """``categories: true, links: false, namespaces: [0, 14], max_depth: 2``: the seed (0); its
    categories that have a page (1); their own categories that have a page, and their members in
    ns 0 and 14 (2). A category without a page is skipped as missing and lists nothing."""
    expected: Expected = {}
    add(expected, wiki, 0, seed_key, 0)
    for (category,) in wiki.mw.sql("SELECT cl_to FROM categorylinks WHERE cl_from = ?", seed_id):
        page = wiki.pages.get((14, category))
        if page is None:
            continue
        assert not page[1], "the model does not handle category redirects"
        add(expected, wiki, 14, category, 1)
        for (parent,) in wiki.mw.sql("SELECT cl_to FROM categorylinks WHERE cl_from = ?", page[0]):
            if (14, parent) in wiki.pages:
                add(expected, wiki, 14, parent, 2)
        for (member,) in wiki.mw.sql("SELECT cl_from FROM categorylinks WHERE cl_to = ?", category):
            ns, key, redirect = wiki.by_id[member]
            assert not redirect, "the model does not handle redirects in categories"
            if ns in (0, 14):
                add(expected, wiki, ns, key, 2)
    return expected


def template_truth(wiki: Wiki, seed_id: int, seed_key: str) -> Expected:
    """``templates: true, links: false, namespaces: [0, 10], max_depth: 1``: the seed (0) and
    the pages it transcludes in ns 0 and 10 (1), redirects resolved, missing ones left out."""
    expected: Expected = {}
    add(expected, wiki, 0, seed_key, 0)
    for ns, key in wiki.mw.sql(
        "SELECT lt.lt_namespace, lt.lt_title FROM templatelinks tl"
        " JOIN linktarget lt ON lt.lt_id = tl.tl_target_id WHERE tl.tl_from = ?",
        seed_id,
    ):
        if ns in (0, 10) and (page := wiki.resolve(ns, key)) is not None:
            add(expected, wiki, *page, 1)
    return expected


def backlink_truth(wiki: Wiki, seed_key: str) -> Expected:
    """``backlinks: true, links: false, namespaces: [0], max_depth: 1``: the seed (0) and the
    articles (not redirects) that link to it (1)."""
    expected: Expected = {}
    add(expected, wiki, 0, seed_key, 0)
    for (source,) in wiki.mw.sql(
        "SELECT pl_from FROM pagelinks WHERE pl_namespace = 0 AND pl_title = ?", seed_key
    ):
        ns, key, redirect = wiki.by_id[source]
        if ns == 0 and not redirect:
            add(expected, wiki, ns, key, 1)
    return expected


def crawl(
    mediawiki: MediaWiki,
    tmp_path: Path,
    db: Database,
    seed: str,
    discovery: dict[str, Any],
) -> tuple[Expected, Path]:
    """Run the crawl; return what it recorded (as an expectation) and its lake."""
    source = write_source(
        tmp_path / "s.yaml",
        mediawiki.api_url,
        [seed],
        max_depth=discovery.pop("max_depth"),
        namespaces=discovery.pop("namespaces"),
        discovery_extra={"links": False, **discovery},
    )
    lake = tmp_path / "lake"
    run_crawl(source, lake, db, tmp_path / "crawl.log").check()
    rows = db.records()
    recorded = [(row["resource_type"], row["resource_id"]) for row in rows]
    assert len(recorded) == len(set(recorded)), "resources recorded twice"
    files = sorted((f.type_dir.name, f.payload["title"]) for f in read_lake(lake))
    assert files == sorted(recorded), "the lake and IngestRecords disagree"
    items = db.work_items()
    unfinished = [i["resource_id"] for i in items if i["status"] not in ("completed", "skipped")]
    assert not unfinished, f"unfinished work items: {unfinished}"
    depths = {
        (i["resource_type"], i["resource_id"]): i["depth"]
        for i in items
        if i["status"] == "completed" and i["resource_type"] != "listing"
    }
    assert_same_set(depths, recorded, "completed items and records")
    return depths, lake


def test_categories_are_category_records_and_their_members_pages(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    wiki = Wiki(mediawiki)
    seed_id, seed_key = wiki.seed()
    expected = category_truth(wiki, seed_id, seed_key)
    assert sum(1 for kind, _ in expected if kind == "category") >= 2
    assert sum(1 for kind, _ in expected if kind == "page") > 5
    discovery = {"categories": True, "namespaces": [0, 14], "max_depth": 2}
    got, lake = crawl(mediawiki, tmp_path, crawl_db, mediawiki.title(0, seed_key), discovery)
    assert_same_set(got, expected, "records (type, title)")
    assert got == expected, "depths differ"
    assert {path.name for path in (lake / "mediawiki" / "e2ewiki").iterdir()} == {
        "page",
        "category",
    }


def test_templates_are_template_records(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    wiki = Wiki(mediawiki)
    seed_id, seed_key = wiki.seed()
    expected = template_truth(wiki, seed_id, seed_key)
    assert sum(1 for kind, _ in expected if kind == "template") >= 2
    discovery = {"templates": True, "namespaces": [0, 10], "max_depth": 1}
    got, _ = crawl(mediawiki, tmp_path, crawl_db, mediawiki.title(0, seed_key), discovery)
    assert_same_set(got, expected, "records (type, title)")
    assert got == expected, "depths differ"


def test_backlinks_are_the_pages_linking_to_the_seed(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    wiki = Wiki(mediawiki)
    _, seed_key = wiki.seed()
    expected = backlink_truth(wiki, seed_key)
    assert len(expected) >= 4
    discovery = {"backlinks": True, "namespaces": [0], "max_depth": 1}
    seed = mediawiki.title(0, seed_key)
    got, _ = crawl(mediawiki, tmp_path, crawl_db, seed, discovery)
    assert got == expected
    listing = [i for i in crawl_db.work_items() if i["resource_type"] == "listing"]
    assert [(i["resource_id"], i["status"], i["depth"]) for i in listing] == [
        (listings.backlinks(seed).resource_id, "completed", 1)
    ]


def test_a_seed_category_is_the_same_work_item_as_the_discovered_one(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database
) -> None:
    """The seed's own category, given as a seed too: one ``category`` work item, one record."""
    wiki = Wiki(mediawiki)
    seed_id, seed_key = wiki.seed()
    categories = [
        key
        for (key,) in mediawiki.sql("SELECT cl_to FROM categorylinks WHERE cl_from = ?", seed_id)
        if (14, key) in wiki.pages
    ]
    category = mediawiki.title(14, categories[0])
    source = write_source(
        tmp_path / "s.yaml",
        mediawiki.api_url,
        [mediawiki.title(0, seed_key), category],
        max_depth=1,
        namespaces=[0, 14],
        discovery_extra={"links": False, "categories": True},
    )
    run_crawl(source, tmp_path / "lake", crawl_db, tmp_path / "crawl.log").check()
    items = [i for i in crawl_db.work_items() if i["resource_id"] == category]
    assert [(i["resource_type"], i["status"], i["depth"]) for i in items] == [
        ("category", "completed", 0)
    ]
    records = [r for r in crawl_db.records() if r["resource_id"] == category]
    assert [r["resource_type"] for r in records] == ["category"]
    expected = {("category", mediawiki.title(14, key)) for key in categories}
    recorded = {(r["resource_type"], r["resource_id"]) for r in crawl_db.records()}
    assert expected <= recorded
