"""The body budget: a request waits while the response bodies held reach the budget, and goes on
when they are freed (in the loop's thread or a pipeline's) or after the longest wait."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading

import pytest
from scrapy import Request
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.utils.test import get_crawler

from holocron_scrapy.middlewares.body_budget import BodyBudgetMiddleware

URL = "https://wiki.example/w/api.php"


def middleware(**settings: object) -> BodyBudgetMiddleware:
    return BodyBudgetMiddleware.from_crawler(get_crawler(settings_dict=settings))


def response(size: int) -> Response:
    return Response(URL, body=b"x" * size, request=Request(URL))


async def settle(task: asyncio.Task[None]) -> bool:
    """Let the loop run a few rounds; whether ``task`` ended."""
    for _ in range(5):
        await asyncio.sleep(0)
    return task.done()


def test_a_request_waits_until_the_held_bodies_are_freed() -> None:
    mw = middleware(HOLOCRON_BODY_BUDGET=1000)

    async def run() -> None:
        kept = [mw.process_response(Request(URL), response(600)) for _ in range(2)]
        assert mw.held == 1200
        assert mw.stats.get_value("holocron/body_budget/peak_bytes") == 1200
        task = asyncio.ensure_future(mw.process_request(Request(URL + "?next")))
        assert not await settle(task)  # 1,200 bytes held: over the budget
        kept.pop()
        gc.collect()
        assert await settle(task)  # 600 held: under it
        assert mw.held == 600
        del kept[:]
        gc.collect()
        await settle(task)
        assert mw.held == 0

    asyncio.run(run())
    assert mw.stats.get_value("holocron/body_budget/waited") == 1
    assert mw.stats.get_value("holocron/body_budget/timeouts") is None


def test_under_the_budget_nothing_waits() -> None:
    mw = middleware(HOLOCRON_BODY_BUDGET=1000)

    async def run() -> None:
        kept = mw.process_response(Request(URL), response(999))
        assert await settle(asyncio.ensure_future(mw.process_request(Request(URL))))
        assert kept.body

    asyncio.run(run())
    assert mw.stats.get_value("holocron/body_budget/waited") is None


def test_a_body_freed_in_a_pipeline_thread_is_released_on_the_loop() -> None:
    mw = middleware(HOLOCRON_BODY_BUDGET=100)

    async def run() -> None:
        held = [mw.process_response(Request(URL), response(500))]
        task = asyncio.ensure_future(mw.process_request(Request(URL)))
        assert not await settle(task)
        freer = threading.Thread(target=held.clear)  # the last reference dies in that thread
        freer.start()
        freer.join()
        gc.collect()
        assert await settle(task)
        assert mw.held == 0

    asyncio.run(run())


def test_a_body_never_freed_does_not_wedge_the_crawl(caplog: pytest.LogCaptureFixture) -> None:
    mw = middleware(HOLOCRON_BODY_BUDGET=100, HOLOCRON_BODY_BUDGET_MAX_WAIT=0.05)

    async def run() -> None:
        kept = mw.process_response(Request(URL), response(500))
        for _ in range(2):
            await asyncio.wait_for(mw.process_request(Request(URL)), timeout=5)
        assert kept.body

    with caplog.at_level(logging.WARNING):
        asyncio.run(run())
    assert mw.stats.get_value("holocron/body_budget/timeouts") == 2
    warnings = [r for r in caplog.records if "still held after" in r.getMessage()]
    assert len(warnings) == 1  # logged once


@pytest.mark.parametrize(
    "settings",
    [{"HOLOCRON_BODY_BUDGET": 0}, {"HOLOCRON_BODY_BUDGET_MAX_WAIT": 0}],
)
def test_off_or_invalid_is_not_configured(settings: dict[str, object]) -> None:
    with pytest.raises(NotConfigured):
        middleware(**settings)
