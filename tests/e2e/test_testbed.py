"""Checks of the test bed itself: the wiki answers, and the SQL ground truth
(:meth:`MediaWiki.reachable`) agrees with what the API says."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.testbed.gen_files import FILES, png
from tests.e2e.wiki import MAX_REDIRECT_HOPS, GroundTruth, MediaWiki

if TYPE_CHECKING:
    from collections.abc import Iterable

BATCH = 50  # titles/pageids per API request (anonymous limit)


def _batches(values: Iterable[Any], size: int = BATCH) -> Iterable[list[Any]]:
    items = list(values)
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _api_links(wiki: MediaWiki, page_ids: list[int], namespaces: list[int] | None) -> set[str]:
    """All link targets of the pages, through prop=links (pllimit=max + continue)."""
    titles: set[str] = set()
    for batch in _batches(page_ids):
        for data in wiki.query_all(
            prop="links", pageids=batch, pllimit="max", plnamespace=namespaces
        ):
            for page in data["query"]["pages"]:
                titles.update(link["title"] for link in page.get("links", []))
    return titles


def _sql_links(wiki: MediaWiki, page_id: int) -> set[str]:
    rows = wiki.sql("SELECT pl_namespace, pl_title FROM pagelinks WHERE pl_from = ?", page_id)
    return {wiki.title(ns, key) for ns, key in rows}


def _api_reachable(
    wiki: MediaWiki, seeds: list[str], max_depth: int, namespaces: list[int]
) -> GroundTruth:
    """The same crawl as MediaWiki.reachable, through the API only."""
    truth = GroundTruth()
    redirect_targets: dict[str, str] = {}

    def resolve_all(titles: Iterable[str]) -> dict[str, int | None]:
        """title -> final page id (None: missing or unresolvable)."""
        info: dict[str, dict[str, Any]] = {}
        pending = set(titles)
        out: dict[str, int | None] = {}
        for batch in _batches(sorted(pending)):
            data = wiki.api(prop="info", titles=batch)
            renamed = {n["from"]: n["to"] for n in data["query"].get("normalized", [])}
            by_title = {p["title"]: p for p in data["query"]["pages"]}
            for title in batch:
                info[title] = by_title[renamed.get(title, title)]
        for title in pending:
            page = info[title]
            for hops in range(MAX_REDIRECT_HOPS + 1):
                if page.get("missing"):
                    truth.missing.add(page["title"])
                    out[title] = None
                    break
                if not page.get("redirect"):
                    out[title] = page["pageid"]
                    break
                truth.redirects.add(page["pageid"])
                if hops == MAX_REDIRECT_HOPS:
                    out[title] = None
                    break
                source = page["title"]
                if source not in redirect_targets:
                    data = wiki.api(titles=source, redirects=True)
                    hop = [r for r in data["query"]["redirects"] if r["from"] == source]
                    redirect_targets[source] = hop[0]["to"]
                page = wiki.api(prop="info", titles=redirect_targets[source])["query"]["pages"][0]
        return out

    level = []
    for pid in resolve_all(seeds).values():
        if pid is not None and pid not in truth.pages:
            truth.pages[pid] = 0
            level.append(pid)
    depth = 0
    while level and depth < max_depth:
        targets = _api_links(wiki, level, namespaces)
        nxt = []
        for pid in resolve_all(targets).values():
            if pid is not None and pid not in truth.pages:
                truth.pages[pid] = depth + 1
                nxt.append(pid)
        level, depth = nxt, depth + 1
    return truth


# ------------------------------------------------------------------ the wiki


def test_wiki_answers(mediawiki: MediaWiki) -> None:
    assert mediawiki.api_url == f"http://127.0.0.1:{mediawiki.port}/api.php"
    general = mediawiki.api(meta="siteinfo")["query"]["general"]
    assert general["sitename"] == "Testwiki"
    assert general["generator"].startswith("MediaWiki 1.39")
    assert mediawiki.is_running()


def test_query_all_follows_continue(mediawiki: MediaWiki) -> None:
    responses = mediawiki.query_all(list="allpages", aplimit=40, apnamespace=0)
    assert len(responses) > 2
    assert all("continue" in r for r in responses[:-1])
    assert "continue" not in responses[-1]
    titles = [p["title"] for r in responses for p in r["query"]["allpages"]]
    (count,) = mediawiki.sql("SELECT COUNT(*) FROM page WHERE page_namespace = 0")[0]
    assert len(titles) == len(set(titles)) == count
    # the generated 300 pages, the installer's Main Page and the uploaded files' pages
    (total,) = mediawiki.sql("SELECT COUNT(*) FROM page")[0]
    (files,) = mediawiki.sql("SELECT COUNT(*) FROM page WHERE page_namespace = 6")[0]
    assert (total, files) == (301 + len(FILES), len(FILES))


def test_files_are_uploaded(mediawiki: MediaWiki) -> None:
    """import.sh uploads gen_files.py's images: a File: page and an ``image`` row each."""
    rows = mediawiki.sql("SELECT img_name, img_size, img_sha1, img_major_mime FROM image")
    expected = {}
    for name, (width, height, rgb) in FILES.items():
        data = png(width, height, rgb)
        expected[name.replace(" ", "_")] = (len(data), hashlib.sha1(data).hexdigest(), "image")
    got = {name: (size, f"{int(sha1, 36):040x}", major) for name, size, sha1, major in rows}
    assert got == expected


def test_largest_page_needs_plcontinue(mediawiki: MediaWiki) -> None:
    title, count = mediawiki.largest_page()
    print(f"largest page: {title!r}, {count} links")
    assert count > 500
    responses = mediawiki.query_all(prop="links", titles=title, pllimit="max")
    assert len(responses) >= 2
    assert "plcontinue" in responses[0]["continue"]
    pages = [p for r in responses for p in r["query"]["pages"]]
    links = [lk["title"] for p in pages for lk in p.get("links", [])]
    assert len(links) == len(set(links)) == count


# ------------------------------------------------- ground truth vs the API


def test_links_match_pagelinks(mediawiki: MediaWiki) -> None:
    title, _ = mediawiki.largest_page()
    names = [title, "Darth Vader", "Padmé Amidala", "Tatooine"]
    ids = [
        pid
        for (pid,) in mediawiki.sql(
            "SELECT page_id FROM page WHERE page_is_redirect = 0"
            " ORDER BY page_id LIMIT 10 OFFSET 40"
        )
    ]
    for name in names:
        ns, key = mediawiki.normalize(name)
        rows = mediawiki.sql(
            "SELECT page_id FROM page WHERE page_namespace = ? AND page_title = ?", ns, key
        )
        assert rows, name
        ids.append(rows[0][0])
    for pid in ids:
        assert _api_links(mediawiki, [pid], None) == _sql_links(mediawiki, pid), pid


def test_every_redirect_has_a_target(mediawiki: MediaWiki) -> None:
    rows = mediawiki.sql(
        "SELECT page_id FROM page WHERE page_is_redirect = 1"
        " AND page_id NOT IN (SELECT rd_from FROM redirect)"
    )
    assert rows == []
    (n,) = mediawiki.sql("SELECT COUNT(*) FROM redirect")[0]
    assert n == 24


def test_redirects_resolve_as_in_the_api(mediawiki: MediaWiki) -> None:
    rows = mediawiki.sql(
        "SELECT p.page_id, p.page_title FROM page p WHERE p.page_is_redirect = 1 ORDER BY 1"
    )
    kinds = {"page": 0, "missing": 0, "double": 0}
    for rid, key in rows:
        title = key.replace("_", " ")
        truth = mediawiki.reachable([title], max_depth=0, namespaces=[0])
        assert rid in truth.redirects
        data = mediawiki.api(titles=title, redirects=True)["query"]
        (page,) = data["pages"]
        if page.get("missing"):
            kinds["missing"] += 1
            assert truth.pages == {}
            assert truth.missing == {page["title"]}
        else:
            kinds["page"] += 1
            assert truth.pages == {page["pageid"]: 0}
            assert truth.missing == set()
        assert len(truth.redirects) == len(data["redirects"])
        if len(data["redirects"]) > 1:
            kinds["double"] += 1
    assert kinds["page"] > 10
    assert kinds["missing"] >= 1
    assert kinds["double"] >= 1


def test_seed_normalization_and_missing_seed(mediawiki: MediaWiki) -> None:
    a = mediawiki.reachable(["Darth Vader"], 1, [0])
    b = mediawiki.reachable(["darth_Vader"], 1, [0])
    assert a == b
    c = mediawiki.reachable(["Vader"], 1, [0])  # a redirect seed: same pages, one redirect more
    assert c.pages == a.pages
    assert c.redirects - a.redirects == {
        pid
        for (pid,) in mediawiki.sql(
            "SELECT page_id FROM page WHERE page_namespace = 0 AND page_title = 'Vader'"
        )
    }
    none = mediawiki.reachable(["No such page here"], 2, [0])
    assert none == GroundTruth(pages={}, missing={"No such page here"}, redirects=set())
    assert mediawiki.normalize("help:some_page") == (12, "Some_page")
    assert mediawiki.normalize("Star Wars: episode_IV") == (0, "Star_Wars:_episode_IV")


def test_reachable_sizes(mediawiki: MediaWiki) -> None:
    d1 = mediawiki.reachable(["Darth Vader"], 1, [0])
    d2 = mediawiki.reachable(["Darth Vader"], 2, [0])
    two = mediawiki.reachable(["Darth Vader", "Tatooine"], 1, [0])
    for name, t in (("depth 1", d1), ("depth 2", d2), ("2 seeds, depth 1", two)):
        print(
            f"Darth Vader {name}: {len(t.pages)} pages, {len(t.missing)} missing, "
            f"{len(t.redirects)} redirects"
        )
    assert 20 < len(d1.pages) < len(d2.pages)
    assert d1.missing
    assert d1.redirects
    assert set(d1.pages.values()) == {0, 1}
    assert set(d2.pages.values()) == {0, 1, 2}
    assert {p: d for p, d in d2.pages.items() if d <= 1} == d1.pages
    assert d1.missing <= d2.missing
    assert set(two.pages) >= set(d1.pages)
    assert list(two.pages.values()).count(0) == 2


@pytest.mark.parametrize(
    ("seeds", "max_depth", "namespaces"),
    [
        (["Darth Vader"], 1, [0]),
        (["Darth Vader"], 2, [0]),
        (["Old name of Anakin", "padmé_Amidala", "No such page here"], 1, [0, 2, 12, 14]),
        (["Timeline of galactic history"], 1, [0]),
    ],
)
def test_reachable_matches_an_api_crawl(
    mediawiki: MediaWiki, seeds: list[str], max_depth: int, namespaces: list[int]
) -> None:
    expected = _api_reachable(mediawiki, seeds, max_depth, namespaces)
    got = mediawiki.reachable(seeds, max_depth, namespaces)
    assert got.pages == expected.pages
    assert got.missing == expected.missing
    assert got.redirects == expected.redirects
    assert got.pages
    assert got.missing


def test_broken_redirect_seed_is_missing(mediawiki: MediaWiki) -> None:
    rows = mediawiki.sql(
        "SELECT p.page_title, r.rd_title FROM page p JOIN redirect r ON r.rd_from = p.page_id"
        " LEFT JOIN page t ON t.page_namespace = r.rd_namespace AND t.page_title = r.rd_title"
        " WHERE t.page_id IS NULL"
    )
    assert len(rows) == 1
    source, target = rows[0]
    truth = mediawiki.reachable([source], 3, [0])
    assert truth.pages == {}
    assert truth.missing == {target.replace("_", " ")}
    assert len(truth.redirects) == 1
    data = mediawiki.api(titles=source.replace("_", " "), redirects=True)["query"]  # the API agrees
    assert data["pages"][0]["missing"] is True
    assert data["pages"][0]["title"] == target.replace("_", " ")
