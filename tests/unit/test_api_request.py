"""Requests that no server or middleware refuses for their length (issue 10, "batches the
server will not accept"): long Action API queries are POSTed, and the state middleware fails
the items of any request Scrapy's UrlLengthMiddleware would drop. The crawl of 50 Cyrillic
titles on the real MediaWiki is in tests/e2e/test_hostile.py."""

from __future__ import annotations

import asyncio
import dataclasses
import urllib.parse
from typing import TYPE_CHECKING, Any

from scrapy.utils.misc import build_from_crawler

from holocron_scrapy.mediawiki import api as mwapi
from holocron_scrapy.mediawiki.api_request import FORM_TYPE, api_request, query_url_of, shown
from holocron_scrapy.middlewares.state import StateMiddleware
from tests.unit.test_state_middleware import claim, request_for, response_to

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from tests.unit.conftest import Crawl

API = "http://127.0.0.1:8091/api.php"
TITLES = [f"Страница {n}" for n in range(50)]


def test_a_short_query_is_a_get_and_a_long_one_a_post_of_the_same_parameters() -> None:
    short = api_request(mwapi.query_url(API, ["Yoda"]), 2083, meta={"x": 1})
    assert (short.method, short.meta["x"], query_url_of(short)) == ("GET", 1, short.url)
    url = mwapi.query_url(API, TITLES, {"plcontinue": "1|0|Страница 9", "continue": "||"})
    assert len(url) > 2083
    long = api_request(url, 2083, priority=3)
    assert (long.method, long.url, long.priority) == ("POST", API, 3)
    assert long.headers["Content-Type"] == FORM_TYPE.encode()
    params = dict(urllib.parse.parse_qsl(long.body.decode("ascii")))
    assert params["titles"] == "|".join(TITLES)
    assert params["plcontinue"] == "1|0|Страница 9"
    assert query_url_of(long) == url
    assert (shown(long).method, shown(long).url) == ("GET", url)
    assert api_request(url, 0).method == "GET"  # URLLENGTH_LIMIT 0: no limit


def test_the_page_query_posts_a_batch_of_long_titles(make_crawl: Callable[..., Crawl]) -> None:
    crawl = make_crawl()
    items = claim(crawl)
    batch = [dataclasses.replace(items[0], resource_id=title) for title in TITLES]
    [request] = crawl.spider.requests_for(batch)  # 50 titles: one query
    assert (request.method, request.url) == ("POST", crawl.spider.config.api_url)
    params = dict(urllib.parse.parse_qsl(request.body.decode("ascii")))
    assert params["titles"] == "|".join(TITLES)
    [short] = crawl.spider.requests_for(items[:1])
    assert short.method == "GET"


def test_a_request_scrapy_would_drop_fails_its_items_with_the_reason(crawl: Crawl) -> None:
    mw = build_from_crawler(StateMiddleware, crawl.crawler)
    items = claim(crawl)
    too_long = request_for(items[:1], f"{API}?action=query&titles={'x' * 3000}")
    fine = request_for(items[1:2])

    async def output() -> AsyncIterator[Any]:
        yield too_long
        yield fine

    async def run() -> list[Any]:
        out = [obj async for obj in mw.process_spider_output(response_to(fine), output())]
        await crawl.frontier.flush()
        return out

    assert asyncio.run(run()) == [fine]
    row = crawl.item_rows()[items[0].resource_id]
    assert row["status"] in ("failed", "pending")  # pending: to be tried again after a back-off
    assert row["error_message"].startswith(
        f"request URL of {len(too_long.url)} characters, over URLLENGTH_LIMIT (2083): "
    )
    assert crawl.stat("holocron/state/refused/urllength") == 1


def test_a_request_over_depth_limit_fails_its_items_with_the_reason(
    make_crawl: Callable[..., Crawl],
) -> None:
    crawl = make_crawl({"DEPTH_LIMIT": 2})
    mw = build_from_crawler(StateMiddleware, crawl.crawler)
    items = claim(crawl)
    continued = request_for(items[:1], f"{API}?action=query&titles=A&plcontinue=3")
    response = response_to(request_for(items[:1]))
    response.meta["depth"] = 2  # the third request of a chain

    async def output() -> AsyncIterator[Any]:
        yield continued

    async def run() -> list[Any]:
        out = [obj async for obj in mw.process_spider_output(response, output())]
        await crawl.frontier.flush()
        return out

    assert asyncio.run(run()) == []
    message = crawl.item_rows()[items[0].resource_id]["error_message"]
    assert message.startswith("request at Scrapy depth 3, over DEPTH_LIMIT (2; it counts")
    assert crawl.stat("holocron/state/refused/depth") == 1
