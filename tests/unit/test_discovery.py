"""``discovery.categories``, ``discovery.templates``, ``discovery.backlinks``: validation, the
page query's optional props, and what a page, a category page and a discovery listing queue,
on constructed responses shaped as the real API's (MediaWiki 1.39, formatversion=2)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.http import TextResponse
from scrapy.settings import Settings
from scrapy.utils.test import get_reactor_settings

from holocron_scrapy.config.sources import Discovery, SourceConfigError, load_source
from holocron_scrapy.items import ResourceRecord
from holocron_scrapy.mediawiki import api as mwapi
from holocron_scrapy.mediawiki import listings
from holocron_scrapy.model import NewWorkItem, WorkItem
from holocron_scrapy.spiders.mediawiki import MediaWikiSpider

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.unit.conftest import Crawl

API = "http://127.0.0.1:8091/api.php"


def write_source(tmp_path: Path, discovery: str) -> Path:
    path = tmp_path / "discovery.yaml"
    path.write_text(
        f"""\
name: testwiki
type: mediawiki
api_url: {API}
user_agent: "HolocronScrapy/0.1 (holocron tests; tests@holocron.invalid)"
seeds:
  titles: ["Ezra Bridger"]
discovery:
{discovery}
""",
        encoding="utf-8",
    )
    return path


def make_spider(tmp_path: Path, discovery: str) -> MediaWikiSpider:
    settings = {"TELNETCONSOLE_ENABLED": False, "MEDIAWIKI_MAXLAG": 0, **get_reactor_settings()}
    crawler = Crawler(MediaWikiSpider, Settings(settings))
    spider = MediaWikiSpider.from_crawler(crawler, source=str(write_source(tmp_path, discovery)))
    crawler._apply_settings()
    assert isinstance(spider, MediaWikiSpider)
    return spider


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def item(title: str, depth: int, resource_type: str = "page") -> WorkItem:
    return WorkItem(7, "mediawiki", "testwiki", resource_type, title, depth, -depth, 1)


def respond(request: Request, data: dict[str, Any]) -> TextResponse:
    return TextResponse(
        url=request.url,
        body=json.dumps(data).encode(),
        headers={"Content-Type": "application/json"},
        request=request,
    )


def run(spider: MediaWikiSpider, items: list[WorkItem], responses: list[dict[str, Any]]) -> Any:
    """The outputs of a page query answered by ``responses`` (continuations in order)."""
    request: Any = spider.page_query.request(items, {})
    out: list[Any] = []
    for data in responses:
        assert isinstance(request, Request)
        found = list(request.callback(respond(request, data)))
        request = next((o for o in found if isinstance(o, Request)), None)
        out += [o for o in found if not isinstance(o, Request)]
    assert request is None, "the query continues beyond the responses given"
    return out


ALL_ON = """\
  links: false
  categories: true
  templates: true
  backlinks: true
  max_depth: 2
  namespaces: [0, 10, 14]"""


# -- validation -----------------------------------------------------------------------------------


def test_the_keys_default_to_off_and_load(tmp_path: Path) -> None:
    assert Discovery() == Discovery(categories=False, templates=False, backlinks=False)
    config = load_source(str(write_source(tmp_path, ALL_ON)))
    assert (config.discovery.categories, config.discovery.templates) == (True, True)
    assert config.discovery.backlinks is True
    assert config.discovery.links is False


@pytest.mark.parametrize("key", ["categories", "templates", "backlinks"])
def test_a_key_that_is_no_boolean_is_refused(tmp_path: Path, key: str) -> None:
    path = write_source(tmp_path, f'  {key}: "yes"')
    with pytest.raises(SourceConfigError) as info:
        load_source(str(path))
    assert info.value.key == f"discovery.{key}"
    assert str(info.value) == f"{path}: discovery.{key}: expected true or false, got string 'yes'"


def test_a_misspelt_key_suggests_the_right_one(tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError, match=r"did you mean 'backlinks'\?"):
        load_source(str(write_source(tmp_path, "  backlink: true")))


# -- the page query -------------------------------------------------------------------------------


def test_the_default_query_is_page_query_exactly(tmp_path: Path) -> None:
    assert query_of(mwapi.query_url(API, ["X"])) == {**mwapi.PAGE_QUERY, "titles": "X"}
    spider = make_spider(tmp_path, "  links: true")
    (request,) = spider.requests_for([item("Ezra Bridger", 0)])
    assert request.url == mwapi.query_url(API, ["Ezra Bridger"])
    assert query_of(request.url) == {**mwapi.PAGE_QUERY, "titles": "Ezra Bridger"}


@pytest.mark.parametrize(
    ("keys", "prop", "limits"),
    [
        ("  categories: true", "revisions|links|info|categories", {"cllimit": "max"}),
        ("  templates: true", "revisions|links|info|templates", {"tllimit": "max"}),
        (
            "  categories: true\n  templates: true",
            "revisions|links|info|categories|templates",
            {"cllimit": "max", "tllimit": "max"},
        ),
        ("  backlinks: true", "revisions|links|info", {}),
    ],
)
def test_optional_props_only_when_enabled(
    tmp_path: Path, keys: str, prop: str, limits: dict[str, str]
) -> None:
    spider = make_spider(tmp_path, keys)
    (request,) = spider.requests_for([item("Ezra Bridger", 0)])
    assert query_of(request.url) == {
        **mwapi.PAGE_QUERY,
        "prop": prop,
        **limits,
        "titles": "Ezra Bridger",
    }


# -- what a page queues ---------------------------------------------------------------------------

PAGE = {"pageid": 12, "ns": 0, "title": "Ezra Bridger", "lastrevid": 99, "revisions": [{}]}
# Two responses, as the API continues each prop on its own: categories first, templates later.
PAGE_RESPONSES = [
    {
        "continue": {"tlcontinue": "12|10|Infobox", "continue": "||revisions|info|categories"},
        "query": {
            "pages": [
                {
                    **PAGE,
                    "links": [{"ns": 0, "title": "Kanan Jarrus"}],
                    "categories": [
                        {"ns": 14, "title": "Category:Jedi"},
                        {"ns": 14, "title": "Category:Rebels"},
                    ],
                    "templates": [{"ns": 10, "title": "Template:Canon"}],
                }
            ]
        },
    },
    {
        "batchcomplete": True,
        "query": {
            "pages": [
                {
                    "pageid": 12,
                    "ns": 0,
                    "title": "Ezra Bridger",
                    "templates": [
                        {"ns": 10, "title": "Template:Infobox"},
                        {"ns": 0, "title": "Transcluded article"},
                        {"ns": 2, "title": "User:Someone/box"},
                    ],
                }
            ]
        },
    },
]


def queued(out: list[Any]) -> list[tuple[str, str, int]]:
    return [(o.resource_type, o.resource_id, o.depth) for o in out if isinstance(o, NewWorkItem)]


def test_a_page_queues_its_categories_templates_and_backlinks(tmp_path: Path) -> None:
    spider = make_spider(tmp_path, ALL_ON)
    out = run(spider, [item("Ezra Bridger", 0)], PAGE_RESPONSES)
    # Links are off; categories and templates in the namespaces (0, 10, 14), each typed by its
    # namespace; the pages linking to it as a backlinks listing; all at depth 1.
    assert queued(out) == [
        ("category", "Category:Jedi", 1),
        ("category", "Category:Rebels", 1),
        ("template", "Template:Canon", 1),
        ("template", "Template:Infobox", 1),
        ("page", "Transcluded article", 1),
        ("listing", "backlinks?bltitle=Ezra%20Bridger", 1),
    ]
    (record,) = [o for o in out if isinstance(o, ResourceRecord)]
    assert record.resource_type == "page"
    assert [t["title"] for t in record.payload["templates"]] == [
        "Template:Canon",
        "Template:Infobox",
        "Transcluded article",
        "User:Someone/box",
    ]


def test_a_category_page_is_a_category_record_and_queues_its_members(tmp_path: Path) -> None:
    spider = make_spider(tmp_path, ALL_ON)
    category = {
        "pageid": 40,
        "ns": 14,
        "title": "Category:Jedi",
        "lastrevid": 5,
        "categories": [{"ns": 14, "title": "Category:Force users"}],
    }
    out = run(spider, [item("Category:Jedi", 1, "category")], [{"query": {"pages": [category]}}])
    assert queued(out) == [
        ("category", "Category:Force users", 2),
        ("listing", "categorymembers?cmtitle=Category:Jedi", 2),
        ("listing", "backlinks?bltitle=Category:Jedi", 2),
    ]
    (record,) = [o for o in out if isinstance(o, ResourceRecord)]
    assert (record.resource_type, record.resource_id, record.version) == (
        "category",
        "Category:Jedi",
        "5",
    )
    assert spider.request_builders()["category"] == spider.page_query.requests
    assert spider.request_builders()["template"] == spider.page_query.requests


def test_nothing_is_queued_at_max_depth(tmp_path: Path) -> None:
    spider = make_spider(tmp_path, ALL_ON)
    out = run(spider, [item("Ezra Bridger", 2)], PAGE_RESPONSES)
    assert queued(out) == []
    assert [type(o) for o in out] == [ResourceRecord]


def test_without_the_keys_categories_are_plain_pages(tmp_path: Path) -> None:
    spider = make_spider(tmp_path, "  links: true\n  namespaces: [0, 14]")
    assert spider.discoverer.resource_type_for(14) == "page"
    assert spider.discoverer.resource_type_for(10) == "page"
    page = {**PAGE, "links": [{"ns": 14, "title": "Category:Jedi"}]}
    out = run(spider, [item("Ezra Bridger", 0)], [{"query": {"pages": [page]}}])
    assert queued(out) == [("page", "Category:Jedi", 1)]


def test_a_redirect_target_keeps_the_type_of_its_namespace(tmp_path: Path) -> None:
    spider = make_spider(tmp_path, ALL_ON)
    data = {
        "query": {
            "redirects": [{"from": "Category:Jedis", "to": "Category:Jedi"}],
            "pages": [{"pageid": 40, "ns": 14, "title": "Category:Jedi", "lastrevid": 5}],
        }
    }
    out = run(spider, [item("Category:Jedis", 1, "category")], [data])
    assert queued(out) == [("category", "Category:Jedi", 1)]


def test_one_resource_type_per_namespace(tmp_path: Path) -> None:
    spider = make_spider(tmp_path, ALL_ON.replace("[0, 10, 14]", "[0, 6, 10, 14]"))
    types = {ns: spider.discoverer.resource_type_for(ns) for ns in (0, 1, 6, 10, 14, None)}
    assert types == {0: "page", 1: "page", 6: "file", 10: "template", 14: "category", None: "page"}
    # Files are file items only when their namespace is followed.
    assert make_spider(tmp_path, ALL_ON).discoverer.resource_type_for(6) == "page"


def test_the_namespace_of_a_title_by_its_canonical_prefix() -> None:
    cases = {
        "Ezra Bridger": 0,
        "Category:Jedi": 14,
        "category_talk: Jedi": 15,
        " CATEGORY :Jedi": 14,
        "Template:Infobox": 10,
        "File:Saber.png": 6,
        "Image:Saber.png": 6,
        "Star Wars: A New Hope": 0,
        "Kategorie:Jedi": 0,  # a localized name: only the API knows it
    }
    assert {title: mwapi.namespace_of(title) for title in cases} == cases


def test_a_seed_title_has_the_resource_type_of_its_namespace(
    make_crawl: Callable[..., Crawl], tmp_path: Path
) -> None:
    """A seed and a discovery of the same page are one work item (one dedupe key)."""
    crawl = make_crawl(seeds=["Ezra Bridger"])
    discovery = "  categories: true\n  templates: true\n  namespaces: [0, 6, 10, 14]"
    path = write_source(tmp_path, discovery).read_text("utf-8")
    path = path.replace(
        'titles: ["Ezra Bridger"]',
        'titles: ["Ezra Bridger", "Category:Jedi", "template:Infobox", "Image:Saber.png"]',
    )
    (tmp_path / "typed.yaml").write_text(path, "utf-8")
    crawl.spider.config = load_source(str(tmp_path / "typed.yaml"))
    seeds = [(s.resource_type, s.resource_id) for s in crawl.spider.seed_work_items()]
    assert seeds == [
        ("page", "Ezra Bridger"),
        ("category", "Category:Jedi"),
        ("template", "template:Infobox"),
        ("file", "Image:Saber.png"),
    ]
    frontier, spider = crawl.frontier, crawl.spider

    async def run() -> None:
        await frontier.spider_opened(spider)
        # Found again (as a category, a link): nothing new; a new category is added.
        for title, ns in (("Category:Jedi", 14), ("Ezra Bridger", 0), ("Category:Sith", 14)):
            resource_type = spider.discoverer.resource_type_for(ns)
            frontier.discover(spider.discoverer.work_item(title, 1, None, resource_type))
        await frontier.flush()

    asyncio.run(run())
    rows = crawl.rows("work_items")
    assert sorted((r["resource_type"], r["resource_id"]) for r in rows) == sorted(
        [*seeds, ("category", "Category:Sith")]
    )


def test_a_page_of_another_type_than_its_item_is_queued_under_its_own(tmp_path: Path) -> None:
    """A localized prefix (``Kategorie:``) cannot be typed before the API answers with the
    page's namespace: the item is skipped and the page queued under its type."""
    spider = make_spider(tmp_path, ALL_ON)
    page = {"pageid": 40, "ns": 14, "title": "Kategorie:Jedi", "lastrevid": 5}
    out = run(spider, [item("Kategorie:Jedi", 0)], [{"query": {"pages": [page]}}])
    assert queued(out) == [("category", "Kategorie:Jedi", 0)]
    [outcome] = [o for o in out if not isinstance(o, NewWorkItem)]
    assert outcome.error_message == "a category page: queued as 'category'"


# -- discovery listings ---------------------------------------------------------------------------


def test_the_backlinks_listing_url_and_members() -> None:
    listing = listings.backlinks("Ezra Bridger")
    assert listings.Listing.parse(listing.resource_id) == listing
    assert {
        "list": "backlinks",
        "bltitle": "Ezra Bridger",
        "bllimit": "max",
        "blfilterredir": "nonredirects",
    }.items() <= query_of(listings.listing_url(API, listing)).items()
    data = {"query": {"backlinks": [{"pageid": 3, "ns": 0, "title": "Kanan Jarrus"}]}}
    assert listings.members(listing, data) == [listings.Member("Kanan Jarrus", 0)]


async def drain(request: Request, data: dict[str, Any]) -> list[Any]:
    assert request.callback is not None
    response = respond(request, data)
    return [obj async for obj in request.callback(response, **request.cb_kwargs)]


@pytest.mark.parametrize(
    ("listing", "rows", "expected"),
    [
        (
            listings.backlinks("Ezra Bridger"),
            {
                "backlinks": [
                    {"pageid": 3, "ns": 0, "title": "Kanan Jarrus"},
                    {"pageid": 4, "ns": 2, "title": "User:Fan"},
                ]
            },
            {"Kanan Jarrus": ("page", 1)},
        ),
        (
            listings.categorymembers("Category:Jedi"),
            {
                "categorymembers": [
                    {"pageid": 3, "ns": 0, "title": "Kanan Jarrus", "type": "page"},
                    {"pageid": 5, "ns": 14, "title": "Category:Masters", "type": "subcat"},
                    {"pageid": 6, "ns": 6, "title": "File:Saber.png", "type": "file"},
                ]
            },
            {"Kanan Jarrus": ("page", 1), "Category:Masters": ("category", 1)},
        ),
    ],
)
def test_a_discovery_listing_queues_its_members_in_the_namespaces(
    make_crawl: Callable[..., Crawl],
    tmp_path: Path,
    listing: listings.Listing,
    rows: dict[str, Any],
    expected: dict[str, tuple[str, int]],
) -> None:
    crawl = make_crawl(seeds=["Ezra Bridger"])
    discovery = "  links: false\n  categories: true\n  backlinks: true\n  namespaces: [0, 14]"
    crawl.spider.config = load_source(str(write_source(tmp_path, discovery)))
    frontier, spider = crawl.frontier, crawl.spider

    async def run() -> None:
        await frontier.spider_opened(spider)
        frontier.discover(spider.discoverer.listing_item(listing, 1, None))
        claimed = [i for i in await frontier.claim_batch() if i.resource_type == "listing"]
        (request,) = spider.requests_for(claimed)
        await drain(request, {"batchcomplete": True, "query": rows})
        await frontier.flush()

    asyncio.run(run())
    found = {
        title: (row["resource_type"], row["depth"])
        for title, row in crawl.item_rows().items()
        if row["resource_type"] != "listing" and title != "Ezra Bridger"
    }
    assert found == expected
