"""The http spider with identities longer than ``work_items.resource_id``: a POST seed whose
body makes its key too long is still sent from the source file; a discovered URL too long
(kept as a prefix and its digest) fails for good, unrequested."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import sqlalchemy as sa

from holocron_scrapy.model import NewWorkItem, Status
from holocron_scrapy.store.limits import is_shortened
from tests.unit.test_http_spider import BASE, SITE_SOURCE, item, make_spider

if TYPE_CHECKING:
    from collections.abc import Callable

    from holocron_scrapy.spiders.http import HttpSpider

__all__ = ["make_spider"]  # the fixture

QUERY = "x" * 3000
LONG_POST_SOURCE = SITE_SOURCE.replace(
    "{url: /api/form, method: POST, form: {q: jedi}}",
    f"{{url: /api/search, method: POST, json: {{q: {QUERY}}}}}",
)


def test_a_post_seed_with_a_long_body_is_seeded_shortened_and_sent_whole(
    make_spider: Callable[..., HttpSpider],
) -> None:
    spider = make_spider(LONG_POST_SOURCE)
    frontier = spider.frontier()
    asyncio.run(frontier.start_run(spider))
    wi = frontier.store.tables.work_items
    with frontier.store.engine.connect() as conn:
        seeded = list(conn.scalars(sa.select(wi.c.resource_id).order_by(wi.c.id)))
    [key] = [k for k in seeded if k.startswith("POST ")]
    assert len(key) == 2000
    assert is_shortened(key)
    (request,) = spider.requests_for([item(key, resource_type="page")])
    assert (request.method, json.loads(request.body)) == ("POST", {"q": QUERY})


def test_a_discovered_url_too_long_fails_for_good_unrequested(
    make_spider: Callable[..., HttpSpider],
) -> None:
    spider = make_spider(SITE_SOURCE)
    frontier = spider.frontier()
    url = f"{BASE}site/" + "p" * 5000
    frontier.discover(NewWorkItem("http", "site", "page", url, depth=1))
    [key] = frontier.writes.discovered.values()
    assert is_shortened(key.resource_id)
    long_page = item(key.resource_id, resource_type="page")
    frontier.in_flight.add(long_page.id)

    assert spider.requests_for([long_page]) == []

    failed = frontier.writes.outcomes[long_page.id]
    assert (failed.status, failed.final) == (Status.FAILED, True)
    assert failed.error_message == (
        "URL longer than 2000 characters (work_items.resource_id): kept as a prefix and its "
        "sha256, it cannot be requested"
    )
    assert spider.crawler.stats is not None
    assert spider.crawler.stats.get_value("holocron/http/url_too_long") == 1
    assert spider.crawler.stats.get_value("holocron/limits/work_item_fitted") == 1
