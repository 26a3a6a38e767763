"""RetryAfterMiddleware: waits as long as the server asks (HTTP 429/503, MediaWiki maxlag,
ratelimited, readonly), then retries; never a second, immediate retry by RetryMiddleware."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import pytest
from scrapy import Request, Spider
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.exceptions import NotConfigured
from scrapy.http import Response, TextResponse
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler

from holocron_scrapy.addon import HolocronAddon
from holocron_scrapy.middlewares import retry_after
from holocron_scrapy.middlewares.retry_after import (
    MAXLAG_TIMES_KEY,
    TIMES_KEY,
    RetryAfterMiddleware,
    backoff,
    parse_retry_after,
)

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

URL = "https://wiki.test/api.php?action=query&titles=Yoda"
NOW = datetime(2026, 11, 22, 6, 15, 45, tzinfo=UTC)
# A real maxlag answer of the test bed wiki (tests/fixtures/cassettes, maxlag=-1).
MAXLAG_BODY = (
    b'{"error":{"code":"maxlag","info":"Waiting for a database server: 0 seconds lagged.",'
    b'"host":"localhost","lag":0,"type":"db"}}'
)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The middleware's sleeps, recorded instead of slept."""
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(retry_after, "sleep", fake_sleep)
    return slept


def crawler_with(**settings: Any) -> Crawler:
    crawler = get_crawler(Spider, settings_dict=settings)
    crawler.spider = crawler._create_spider("test")
    return crawler


def middleware(**settings: Any) -> tuple[RetryAfterMiddleware, Crawler]:
    crawler = crawler_with(**settings)
    return build_from_crawler(RetryAfterMiddleware, crawler), crawler


def respond(
    request: Request, status: int = 200, headers: dict[str, str] | None = None, body: bytes = b"{}"
) -> Response:
    return TextResponse(
        request.url,
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
        body=body,
        request=request,
    )


def process(mw: RetryAfterMiddleware, request: Request, response: Response) -> Request | Response:
    return asyncio.run(mw.process_response(request, response))


# -- Retry-After values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (b"5", 5.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(hours=1), usegmt=True), 0.0),  # in the past
        ("Sun, 22 Nov 2026 06:16:45 GMT", 60.0),
        ("Sunday, 22-Nov-26 06:16:45 GMT", 60.0),  # the obsolete formats RFC 9110 accepts
        ("Sun Nov 22 06:16:45 2026", 60.0),
        ("soon", None),
        ("", None),
        ("nan", None),
        ("inf", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | bytes | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n, 5.0, 300.0) for n in range(1, 9)] == [5, 10, 20, 40, 80, 160, 300, 300]


# -- HTTP 429 / 503 -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_waits_retry_after_then_retries(
    status: int, waits: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    mw, crawler = middleware()
    request = Request(URL, meta={"holocron_work_items": []})
    with caplog.at_level(logging.INFO, logger=retry_after.__name__):
        out = process(mw, request, respond(request, status, {"Retry-After": "7"}))
    assert isinstance(out, Request)
    assert out.url == URL
    assert out.dont_filter
    assert out.meta[TIMES_KEY] == 1
    assert out.meta["holocron_work_items"] == []
    assert waits == [7.0]
    assert crawler.stats is not None
    assert crawler.stats.get_value(f"retry_after/http_{status}") == 1
    assert crawler.stats.get_value("retry_after/wait_seconds") == 7.0
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"Waiting 7.0 s before retrying {URL} (http_{status}, try 1 of 10)")


def test_http_date_retry_after(waits: list[float]) -> None:
    mw, _ = middleware()
    request = Request(URL)
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=40), usegmt=True)
    assert isinstance(process(mw, request, respond(request, 503, {"Retry-After": later})), Request)
    assert 38.0 <= waits[0] <= 40.0


def test_retry_after_is_capped(waits: list[float]) -> None:
    mw, _ = middleware(HOLOCRON_RETRY_AFTER_MAX=30)
    request = Request(URL)
    process(mw, request, respond(request, 429, {"Retry-After": "86400"}))
    assert waits == [30.0]


def test_without_retry_after_the_back_off_is_exponential(waits: list[float]) -> None:
    mw, crawler = middleware(HOLOCRON_RETRY_AFTER_DEFAULT=2, HOLOCRON_RETRY_AFTER_MAX=10)
    request = Request(URL)
    for _ in range(5):
        out = process(mw, request, respond(request, 429, {"Retry-After": "garbage"}))
        assert isinstance(out, Request)
        request = out
    assert waits == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert request.meta[TIMES_KEY] == 5
    assert crawler.stats is not None
    assert crawler.stats.get_value("retry_after/wait_seconds") == 34.0


def test_gives_up_after_the_limit_and_retry_middleware_does_not_retry_again(
    waits: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    mw, crawler = middleware(HOLOCRON_RETRY_AFTER_TIMES=2, RETRY_TIMES=3)
    retry_mw = build_from_crawler(RetryMiddleware, crawler)
    request = Request(URL)
    sent = 0
    while True:
        sent += 1
        response = respond(request, 429, {"Retry-After": "1"})
        # The response chain: RetryAfterMiddleware (560) first, then RetryMiddleware (550).
        out = process(mw, request, response)
        if isinstance(out, Request):
            request = out
            continue
        out = retry_mw.process_response(request, out)
        break
    assert out is response  # handed on: HttpError → the errback fails the work items
    assert sent == 3  # the first try and 2 retries, no extra immediate retry
    assert waits == [1.0, 1.0]
    assert request.meta["dont_retry"] is True
    assert crawler.stats is not None
    assert crawler.stats.get_value("retry_after/http_429") == 2
    assert crawler.stats.get_value("retry_after/gave_up/http_429") == 1
    assert crawler.stats.get_value("retry/count") is None
    assert "Gave up waiting" in caplog.text


def test_other_statuses_pass_untouched(waits: list[float]) -> None:
    mw, crawler = middleware()
    request = Request(URL)
    for status in (200, 404, 500, 502):
        response = respond(request, status, {"Retry-After": "5"})
        assert process(mw, request, response) is response
    assert waits == []
    assert crawler.stats is not None
    assert crawler.stats.get_value("retry_after/wait_seconds") is None


def test_dont_retry_opts_out(waits: list[float]) -> None:
    mw, _ = middleware()
    request = Request(URL, meta={"dont_retry": True})
    response = respond(request, 429, {"Retry-After": "5"})
    assert process(mw, request, response) is response
    assert waits == []


# -- MediaWiki API errors (HTTP 200, MediaWiki-API-Error) ---------------------------------------


def maxlag_response(request: Request, retry_after: str | None = "5") -> Response:
    headers = {"MediaWiki-API-Error": "maxlag", "X-Database-Lag": "0"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return respond(request, 200, headers, MAXLAG_BODY)


def test_maxlag_waits_without_counting_a_failure(waits: list[float]) -> None:
    mw, crawler = middleware(HOLOCRON_RETRY_AFTER_TIMES=1, HOLOCRON_RETRY_AFTER_MAXLAG_TIMES=3)
    request = Request(URL)
    for _ in range(3):
        out = process(mw, request, maxlag_response(request))
        assert isinstance(out, Request)
        request = out
    assert request.meta[MAXLAG_TIMES_KEY] == 3
    assert TIMES_KEY not in request.meta
    assert waits == [5.0, 5.0, 5.0]
    # Its own cap reached: the response goes to the spider, which fails the items with it.
    last = maxlag_response(request)
    assert process(mw, request, last) is last
    assert crawler.stats is not None
    assert crawler.stats.get_value("retry_after/maxlag") == 3
    assert crawler.stats.get_value("retry_after/gave_up/maxlag") == 1


def test_maxlag_without_retry_after_waits_5_s(waits: list[float]) -> None:
    mw, _ = middleware(HOLOCRON_RETRY_AFTER_DEFAULT=0.2)
    request = Request(URL)
    process(mw, request, maxlag_response(request, retry_after=None))
    assert waits == [5.0]


def test_ratelimited_backs_off_exponentially_and_readonly_pauses(waits: list[float]) -> None:
    mw, crawler = middleware(HOLOCRON_RETRY_AFTER_DEFAULT=3)
    request = Request(URL)
    for _ in range(2):
        response = respond(request, 200, {"MediaWiki-API-Error": "ratelimited"})
        out = process(mw, request, response)
        assert isinstance(out, Request)
        request = out
    out = process(mw, request, respond(request, 200, {"MediaWiki-API-Error": "readonly"}))
    assert isinstance(out, Request)
    assert waits == [3.0, 6.0, 60.0]
    assert out.meta[TIMES_KEY] == 3  # both count towards HOLOCRON_RETRY_AFTER_TIMES
    assert crawler.stats is not None
    assert crawler.stats.get_value("retry_after/ratelimited") == 2
    assert crawler.stats.get_value("retry_after/readonly") == 1


@pytest.mark.parametrize("code", ["badvalue", "missingtitle", "badcontinue", ""])
def test_other_api_errors_go_to_the_spider(waits: list[float], code: str) -> None:
    mw, _ = middleware()
    request = Request(URL)
    response = respond(request, 200, {"MediaWiki-API-Error": code, "Retry-After": "5"})
    assert process(mw, request, response) is response
    assert waits == []


# -- the download slot ----------------------------------------------------------------------------


def test_the_source_slot_is_paused_and_its_delay_raised(
    waits: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    from scrapy.core.downloader import Slot

    mw, _ = middleware(AUTOTHROTTLE_ENABLED=True, AUTOTHROTTLE_MAX_DELAY=20)
    slot = Slot(concurrency=1, delay=0.5, jitter=0.0)
    downloader = type("FakeDownloader", (), {"slots": {"wiki.test": slot}})()
    mw.crawler = type("FakeCrawler", (), {"engine": type("E", (), {"downloader": downloader})})()  # type: ignore[assignment]
    monkeypatch.setattr(retry_after.time, "monotonic", lambda: 1000.0)
    request = Request(URL, meta={"download_slot": "wiki.test"})
    process(mw, request, respond(request, 429, {"Retry-After": "60"}))
    assert slot.delay == 20.0  # raised to the wait, at most AUTOTHROTTLE_MAX_DELAY
    assert slot.lastseen + slot.delay == 1060.0  # nothing else goes to the wiki before then


# -- settings and wiring --------------------------------------------------------------------------


def test_not_configured_when_disabled() -> None:
    with pytest.raises(NotConfigured):
        middleware(HOLOCRON_RETRY_AFTER_ENABLED=False)


def test_not_configured_with_a_negative_wait() -> None:
    with pytest.raises(NotConfigured):
        middleware(HOLOCRON_RETRY_AFTER_DEFAULT=-1)


def test_the_addon_puts_it_before_retry_middleware_in_the_response_chain() -> None:
    from scrapy.core.downloader.middleware import DownloaderMiddlewareManager

    crawler = get_crawler(
        Spider,
        settings_dict={"ADDONS": {HolocronAddon: 0}, "HOLOCRON_ENABLED": False},
    )
    names = [
        type(mw).__name__ for mw in DownloaderMiddlewareManager.from_crawler(crawler).middlewares
    ]
    # process_response runs from the last middleware of this list to the first.
    assert names.index("RetryAfterMiddleware") == names.index("RetryMiddleware") + 1


NO_HANDLERS: dict[str, Any] = {"DOWNLOAD_HANDLERS": {"http": None, "https": None}}


def engine_slot(crawler: Crawler, request: Request) -> Any:
    """The real downloader slot of ``request``, as the crawl's downloader makes it (in a running
    loop: the download handlers need one; the crawler has none for http, nothing is fetched)."""
    crawler.engine = crawler._create_engine()
    _, slot = crawler.engine.downloader._get_slot(request)
    return slot


@pytest.mark.parametrize("concurrent", [False, True])
def test_without_autothrottle_the_configured_delay_comes_back_when_the_wait_ends(
    monkeypatch: pytest.MonkeyPatch, concurrent: bool
) -> None:
    settings = {"AUTOTHROTTLE_ENABLED": False, "DOWNLOAD_DELAY": 1.0}
    mw, crawler = middleware(**settings, **NO_HANDLERS, DOWNLOAD_DELAY_JITTER=0)
    request = Request(URL, meta={"download_slot": "wiki.test"})
    during: list[float] = []
    slots: list[Any] = []

    async def short_sleep(seconds: float) -> None:
        during.append(slots[0].delay)
        await asyncio.sleep(seconds / 100)  # 6 s and 3 s asked: 60 ms and 30 ms
        during.append(slots[0].delay)

    monkeypatch.setattr(retry_after, "sleep", short_sleep)
    lagged = respond(request, 200, {"MediaWiki-API-Error": "maxlag", "Retry-After": "6"})

    async def run() -> None:
        slots.append(engine_slot(crawler, request))
        assert slots[0].delay == 1.0
        waits = [mw.process_response(request, lagged)]
        if concurrent:  # a second lagged answer while the first wait is under way
            waits.append(mw.process_response(request, respond(request, 429, {"Retry-After": "3"})))
        await asyncio.gather(*waits)

    asyncio.run(run())
    # Paused (and spaced) as long as the waits last, then the configured delay again.
    assert during[0] == 6.0
    assert all(delay == 6.0 for delay in during[:-1])
    assert slots[0].delay == 1.0
    assert crawler.stats is not None
    assert crawler.stats.get_value("retry_after/delay_restored") == 1


def test_with_autothrottle_the_raised_delay_is_left_to_it(waits: list[float]) -> None:
    mw, crawler = middleware(AUTOTHROTTLE_ENABLED=True, DOWNLOAD_DELAY=1.0, **NO_HANDLERS)
    request = Request(URL, meta={"download_slot": "wiki.test"})

    async def run() -> float:
        slot = engine_slot(crawler, request)
        await mw.process_response(request, respond(request, 429, {"Retry-After": "6"}))
        return float(slot.delay)

    assert asyncio.run(run()) == 6.0  # AutoThrottle lowers it as answers come back
    assert waits == [6.0]
