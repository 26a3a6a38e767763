"""Listings: the pure functions of holocron_scrapy.mediawiki.listings, and the spider's listing
callback
on constructed responses (shaped as the real API's) with a real frontier on SQLite."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
from scrapy.http import TextResponse

from holocron_scrapy.config.sources import Seeds, load_source
from holocron_scrapy.mediawiki import listings
from holocron_scrapy.mediawiki.listings import (
    Listing,
    ListingError,
    listing_url,
    members,
    seed_listings,
)
from holocron_scrapy.model import Outcome, Status

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from scrapy import Request

    from holocron_scrapy.model import WorkItem
    from tests.unit.conftest import Crawl

API = "http://127.0.0.1:8091/api.php"


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


# -- canonical ids ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listing", "resource_id"),
    [
        (listings.allpages(0), "allpages?apnamespace=0"),
        (listings.categorymembers("Category:Jedi"), "categorymembers?cmtitle=Category:Jedi"),
        (
            listings.categorymembers("Category:Jedi Masters & 1+1"),
            "categorymembers?cmtitle=Category:Jedi%20Masters%20%26%201%2B1",
        ),
        (listings.search("lightsaber"), "search?srsearch=lightsaber"),
        (
            listings.recentchanges("2026-01-01T00:00:00Z"),
            "recentchanges?rcstart=2026-01-01T00:00:00Z",
        ),
        (listings.pageids([4210, 7]), "pageids?pageids=4210|7"),
        (listings.opensearch("luke sky"), "opensearch?search=luke%20sky"),
    ],
)
def test_canonical_ids_round_trip(listing: Listing, resource_id: str) -> None:
    assert listing.resource_id == resource_id
    assert Listing.parse(resource_id) == listing


@pytest.mark.parametrize(
    "resource_id",
    ["Star Wars", "allpages", "nolist?x=1", "allpages?cmtitle=X", "allpages?apnamespace=0&x=1"],
)
def test_parse_refuses_what_is_no_listing(resource_id: str) -> None:
    with pytest.raises(ListingError):
        Listing.parse(resource_id)


def test_seed_listings_in_order_and_pageids_in_batches_of_50() -> None:
    seeds = Seeds(
        titles=("Star Wars",),
        pageids=tuple(range(1, 61)),
        categories=("Category:Jedi",),
        search=("lightsaber",),
        opensearch=("luke",),
        allpages=(0, 14),
        recentchanges_since="2026-01-01T00:00:00Z",
    )
    ids = [listing.resource_id for listing in seed_listings(seeds)]
    assert ids[:6] == [
        "allpages?apnamespace=0",
        "allpages?apnamespace=14",
        "categorymembers?cmtitle=Category:Jedi",
        "search?srsearch=lightsaber",
        "opensearch?search=luke",
        "recentchanges?rcstart=2026-01-01T00:00:00Z",
    ]
    assert ids[6] == "pageids?pageids=" + "|".join(str(i) for i in range(1, 51))
    assert ids[7] == "pageids?pageids=" + "|".join(str(i) for i in range(51, 61))
    assert seed_listings(Seeds(titles=("X",))) == []


# -- URLs ---------------------------------------------------------------------------------------


def test_allpages_url_with_continuation_limit_and_maxlag() -> None:
    cont = {"apcontinue": "1+1=2_(holonet_show)_(alias)", "continue": "-||"}
    url = listing_url(API, listings.allpages(0), cont, limit="10", maxlag=5)
    assert url.startswith(API + "?")
    assert "apcontinue=1%2B1%3D2_%28holonet_show%29_%28alias%29" in url  # + never a space
    assert query_of(url) == {
        "action": "query",
        "format": "json",
        "formatversion": "2",
        "list": "allpages",
        "aplimit": "10",
        "apfilterredir": "nonredirects",
        "apnamespace": "0",
        "apcontinue": "1+1=2_(holonet_show)_(alias)",
        "continue": "-||",
        "maxlag": "5",
    }


@pytest.mark.parametrize(
    ("listing", "expected"),
    [
        (
            listings.categorymembers("Category:Jedi"),
            {"list": "categorymembers", "cmlimit": "max", "cmprop": "ids|title|type"},
        ),
        (
            listings.search("lightsaber"),
            {"list": "search", "srlimit": "max", "srwhat": "text", "srsearch": "lightsaber"},
        ),
        (
            listings.recentchanges("2026-01-01T00:00:00Z"),
            {"rclimit": "max", "rcdir": "newer", "rcstart": "2026-01-01T00:00:00Z"},
        ),
        (listings.pageids([4210, 7]), {"pageids": "4210|7", "action": "query"}),
        (
            listings.opensearch("luke"),
            {"action": "opensearch", "search": "luke", "limit": "max", "namespace": "0"},
        ),
    ],
)
def test_urls_of_each_module(listing: Listing, expected: dict[str, str]) -> None:
    query = query_of(listing_url(API, listing))
    assert expected.items() <= query.items()
    assert "maxlag" not in query
    assert "continue" not in query


# -- members ------------------------------------------------------------------------------------

# The real API's shapes (MediaWiki 1.39, formatversion=2).
ALLPAGES = {
    "batchcomplete": True,
    "continue": {"apcontinue": "100%_Pure_Spice", "continue": "-||"},
    "query": {
        "allpages": [
            {"pageid": 7011, "ns": 0, "title": "1+1=2 (holonet show) (alias)"},
            {"pageid": 5066, "ns": 0, "title": "1+1=2 (holonet show) (character)"},
        ]
    },
}
CATEGORYMEMBERS = {
    "batchcomplete": True,
    "continue": {"cmcontinue": "page|41302d453334|8831", "continue": "-||"},
    "query": {
        "categorymembers": [
            {"pageid": 1, "ns": 0, "title": "4-LOM", "type": "page"},
            {"pageid": 2, "ns": 14, "title": "Category:Droids", "type": "subcat"},
            {"pageid": 3, "ns": 6, "title": "File:R2.png", "type": "file"},
        ]
    },
}


def test_members_of_each_shape() -> None:
    assert [m.title for m in members(listings.allpages(0), ALLPAGES)] == [
        "1+1=2 (holonet show) (alias)",
        "1+1=2 (holonet show) (character)",
    ]
    found = members(listings.categorymembers("Category:Individuals"), CATEGORYMEMBERS)
    assert [(m.title, m.ns, m.subcategory) for m in found] == [
        ("4-LOM", 0, False),
        ("Category:Droids", 14, True),
        ("File:R2.png", 6, False),
    ]
    pages = {
        "query": {
            "pages": [
                {"pageid": 4210, "ns": 0, "title": "Darth Vader"},
                {"pageid": 9, "missing": True},
            ]
        }
    }
    assert [m.title for m in members(listings.pageids([4210, 9]), pages)] == ["Darth Vader"]
    # Miser mode: an empty batch that continues is not the end, and names nobody.
    assert members(listings.search("x"), {"continue": {"sroffset": 50}, "query": {}}) == []


# The real API's answer (MediaWiki 1.39, test bed): a JSON array, not a query result.
OPENSEARCH = [
    "s",
    ["Sabine Wren", "Category:Sith"],
    ["", ""],
    ["http://127.0.0.1:8091/wiki/Sabine_Wren", "http://127.0.0.1:8091/wiki/Category:Sith"],
]


def test_opensearch_answers_become_members() -> None:
    listing = listings.opensearch("s")
    query = listings.as_query(listing, OPENSEARCH)
    assert [(m.title, m.ns) for m in members(listing, query)] == [
        ("Sabine Wren", 0),
        ("Category:Sith", 14),
    ]
    assert listings.as_query(listing, ["s", [], [], []]) == {"query": {"opensearch": []}}
    error = {"error": {"code": "badinteger", "info": "Invalid value"}}
    assert listings.as_query(listing, error) is error  # the envelope is checked as any
    assert listings.as_query(listings.search("s"), OPENSEARCH) is OPENSEARCH  # others: as is


# -- the spider's callback ------------------------------------------------------------------------


def response_to(request: Request, data: Any) -> TextResponse:
    return TextResponse(
        url=request.url,
        body=json.dumps(data).encode(),
        headers={"Content-Type": "application/json"},
        request=request,
    )


async def drain(request: Request, data: Any) -> list[Any]:
    assert request.callback is not None
    return [obj async for obj in request.callback(response_to(request, data), **request.cb_kwargs)]


def listing_crawl(make_crawl: Callable[..., Crawl], tmp_path: Path, seeds_yaml: str) -> Crawl:
    crawl = make_crawl()
    source = tmp_path / "listing.yaml"
    source.write_text(
        f"""\
name: testwiki
type: mediawiki
api_url: {API}
user_agent: "HolocronScrapy/0.1 (holocron tests; tests@holocron.invalid)"
seeds:
{seeds_yaml}
discovery:
  links: false
  category_depth: 1
""",
        encoding="utf-8",
    )
    crawl.spider.config = load_source(str(source))
    return crawl


def test_a_category_listing_queues_members_saves_its_cursor_then_completes(
    make_crawl: Callable[..., Crawl], tmp_path: Path
) -> None:
    crawl = listing_crawl(make_crawl, tmp_path, '  categories: ["Category:Individuals"]')
    frontier, spider = crawl.frontier, crawl.spider

    async def run() -> tuple[list[Any], list[Any], WorkItem]:
        await frontier.spider_opened(spider)
        (item,) = await frontier.claim_batch()
        assert item.resource_id == "categorymembers?cmtitle=Category:Individuals"
        (request,) = spider.requests_for([item])
        assert query_of(request.url)["cmtitle"] == "Category:Individuals"
        first = await drain(request, CATEGORYMEMBERS)
        last = await drain(first[0], {"batchcomplete": True, "query": {"categorymembers": []}})
        return first, last, item

    first, last, item = asyncio.run(run())
    (next_request,) = first
    assert query_of(next_request.url)["cmcontinue"] == "page|41302d453334|8831"
    rows = crawl.item_rows()
    assert {title: (row["resource_type"], row["depth"]) for title, row in rows.items()} == {
        "categorymembers?cmtitle=Category:Individuals": ("listing", 0),
        "4-LOM": ("page", 0),
        "Category:Droids": ("page", 0),
        "File:R2.png": ("page", 0),
        "categorymembers?cmtitle=Category:Droids": ("listing", 1),
    }
    # The members were written before the cursor, which is the whole continue object.
    assert json.loads(rows[item.resource_id]["cursor"]) == CATEGORYMEMBERS["continue"]
    assert crawl.stat("holocron/frontier/cursors_saved") == 1
    assert last == [Outcome(item.id, Status.COMPLETED, depth=0)]


def test_a_listing_resumes_from_its_saved_cursor(
    make_crawl: Callable[..., Crawl], tmp_path: Path
) -> None:
    crawl = listing_crawl(make_crawl, tmp_path, "  allpages: [0]")
    frontier, spider = crawl.frontier, crawl.spider

    async def run() -> Request:
        await frontier.spider_opened(spider)
        (item,) = await frontier.claim_batch()
        (request,) = spider.requests_for([item])
        await drain(request, ALLPAGES)
        # The crawl dies here; its claim goes back to the queue with the cursor.
        frontier.store.release(owner=frontier.owner)
        (again,) = [i for i in await frontier.claim_batch() if i.resource_type == "listing"]
        assert again.id == item.id
        (resumed,) = spider.requests_for([again])
        return resumed

    resumed = asyncio.run(run())
    assert query_of(resumed.url)["apcontinue"] == "100%_Pure_Spice"
    assert query_of(resumed.url)["continue"] == "-||"
    assert crawl.stat("holocron/listings/resumed") == 1
    assert {"1+1=2 (holonet show) (alias)", "1+1=2 (holonet show) (character)"} <= set(
        crawl.item_rows()
    )


def test_a_listing_api_error_fails_it(make_crawl: Callable[..., Crawl], tmp_path: Path) -> None:
    crawl = listing_crawl(make_crawl, tmp_path, '  search: ["lightsaber"]')

    async def run() -> list[Any]:
        await crawl.frontier.spider_opened(crawl.spider)
        (item,) = await crawl.frontier.claim_batch()
        (request,) = crawl.spider.requests_for([item])
        return await drain(request, {"error": {"code": "srsearch-error", "info": "bad search"}})

    (outcome,) = asyncio.run(run())
    assert outcome.status == Status.FAILED
    assert outcome.error_message == "MediaWiki API error srsearch-error: bad search"


def test_an_opensearch_listing_queues_its_suggestions_and_completes(
    make_crawl: Callable[..., Crawl], tmp_path: Path
) -> None:
    crawl = listing_crawl(make_crawl, tmp_path, '  opensearch: ["s"]')

    async def run() -> tuple[WorkItem, list[Any]]:
        await crawl.frontier.spider_opened(crawl.spider)
        (item,) = await crawl.frontier.claim_batch()
        (request,) = crawl.spider.requests_for([item])
        assert query_of(request.url)["action"] == "opensearch"
        out = await drain(request, OPENSEARCH)
        await crawl.frontier.flush()
        return item, out

    item, out = asyncio.run(run())
    assert out == [Outcome(item.id, Status.COMPLETED, depth=0)]  # no continuation
    assert {t: row["resource_type"] for t, row in crawl.item_rows().items()} == {
        "opensearch?search=s": "listing",
        "Sabine Wren": "page",
        "Category:Sith": "page",  # discovery.categories is off: a plain page
    }


def test_an_opensearch_error_fails_the_listing(
    make_crawl: Callable[..., Crawl], tmp_path: Path
) -> None:
    crawl = listing_crawl(make_crawl, tmp_path, '  opensearch: ["s"]')

    async def run() -> list[Any]:
        await crawl.frontier.spider_opened(crawl.spider)
        (item,) = await crawl.frontier.claim_batch()
        (request,) = crawl.spider.requests_for([item])
        return await drain(request, {"error": {"code": "badinteger", "info": "bad limit"}})

    (outcome,) = asyncio.run(run())
    assert (outcome.status, outcome.error_message) == (
        Status.FAILED,
        "MediaWiki API error badinteger: bad limit",
    )
