"""The API's error codes → work item outcomes (mwapi.API_ERRORS), and maxlag on every request.

The envelopes are MediaWiki 1.39's (``formatversion=2``): the maxlag one was recorded from the
test bed (tests/fixtures/cassettes/test_api_error_envelope_fails_the_items.yaml), the others
carry the codes and messages of MediaWiki's own i18n (apierror-*).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
from scrapy import Request
from scrapy.http import TextResponse

from holocron_scrapy.mediawiki import api as mwapi
from holocron_scrapy.model import Outcome, Status
from tests.unit.test_mediawiki_spider import make_spider, work_items

if TYPE_CHECKING:
    from pathlib import Path

    from holocron_scrapy.spiders.mediawiki import MediaWikiSpider

ENVELOPES: dict[str, dict[str, Any]] = {
    "maxlag": {
        "code": "maxlag",
        "info": "Waiting for a database server: 0 seconds lagged.",
        "host": "localhost",
        "lag": 0,
        "type": "db",
    },
    "badvalue": {
        "code": "badvalue",
        "info": 'Unrecognized value for parameter "prop": nope.',
    },
    "missingtitle": {"code": "missingtitle", "info": "The page you specified doesn't exist."},
    "invalidtitle": {"code": "invalidtitle", "info": 'Bad title "Foo[bar]".'},
    "badcontinue": {
        "code": "badcontinue",
        "info": "Invalid continue param. You should pass the original value returned by the "
        "previous query.",
    },
    "internal_api_error_DBQueryError": {
        "code": "internal_api_error_DBQueryError",
        "info": "[0f3b] Exception caught: A database query error has occurred. This may indicate "
        "a bug in the software.",
        "errorclass": "Wikimedia\\Rdbms\\DBQueryError",
    },
}


def envelope(request: Request, code: str) -> TextResponse:
    body = json.dumps({"error": {**ENVELOPES[code], "docref": "See /api.php for API usage."}})
    return TextResponse(
        request.url,
        body=body.encode(),
        headers={"Content-Type": "application/json", "MediaWiki-API-Error": code},
        request=request,
    )


def outcomes(out: list[Any]) -> list[tuple[Status, str]]:
    assert all(isinstance(o, Outcome) for o in out), out
    return [(o.status, str(o.error_message)) for o in out]


@pytest.mark.parametrize(
    ("code", "on_error"),
    [
        ("maxlag", mwapi.OnError.WAIT),
        ("ratelimited", mwapi.OnError.WAIT),
        ("readonly", mwapi.OnError.WAIT),
        ("missingtitle", mwapi.OnError.SKIP),
        ("invalidtitle", mwapi.OnError.SKIP),
        ("badcontinue", mwapi.OnError.RETRY),
        ("internal_api_error_DBQueryError", mwapi.OnError.RETRY),
        ("internal_api_error_", mwapi.OnError.RETRY),
        ("internal_api_errorX", mwapi.OnError.FAIL),
        ("badvalue", mwapi.OnError.FAIL),
        ("unknown", mwapi.OnError.FAIL),
    ],
)
def test_the_error_table(code: str, on_error: mwapi.OnError) -> None:
    assert mwapi.error_rule(code).on_error is on_error


@pytest.mark.parametrize("code", ["missingtitle", "invalidtitle"])
def test_missing_and_invalid_titles_skip_the_items(tmp_path: Path, code: str) -> None:
    spider = make_spider(tmp_path)
    [req] = spider.requests_for(work_items("Yoda", "Foo[bar]"))
    out = list(spider.parse_query(envelope(req, code)))
    message = f"MediaWiki API error {code}: {ENVELOPES[code]['info']}"
    assert outcomes(out) == [(Status.SKIPPED, message)] * 2
    assert spider.crawler.stats is not None
    assert spider.crawler.stats.get_value(f"holocron/mediawiki/api_error/{code}") == 1


@pytest.mark.parametrize("code", ["badvalue", "maxlag"])
def test_other_codes_fail_the_items_with_the_apis_message(tmp_path: Path, code: str) -> None:
    # maxlag reaches the spider only once the RetryAfterMiddleware gave up waiting.
    spider = make_spider(tmp_path)
    [req] = spider.requests_for(work_items("Yoda"))
    out = list(spider.parse_query(envelope(req, code)))
    assert outcomes(out) == [
        (Status.FAILED, f"MediaWiki API error {code}: {ENVELOPES[code]['info']}")
    ]


@pytest.mark.parametrize("code", ["badcontinue", "internal_api_error_DBQueryError"])
def test_transient_errors_are_retried_within_retry_times_then_fail(
    tmp_path: Path, code: str
) -> None:
    spider = make_spider(tmp_path)
    retry_times = spider.crawler.settings.getint("RETRY_TIMES")
    assert retry_times >= 1
    [req] = spider.requests_for(work_items("Yoda"))
    for attempt in range(1, retry_times + 1):
        [retry] = list(spider.parse_query(envelope(req, code)))
        assert isinstance(retry, Request)
        assert retry.url == req.url
        assert retry.meta["retry_times"] == attempt
        assert retry.meta["holocron_work_items"] == req.meta["holocron_work_items"]
        assert retry.callback == spider.parse_query
        req = retry
    out = list(spider.parse_query(envelope(req, code)))
    assert outcomes(out) == [
        (Status.FAILED, f"MediaWiki API error {code}: {ENVELOPES[code]['info']}")
    ]
    stats = spider.crawler.stats
    assert stats is not None
    assert stats.get_value(f"retry/reason_count/api_error/{code}") == retry_times
    assert stats.get_value("retry/max_reached") == 1


def test_a_retried_continuation_keeps_the_pages_merged_so_far(tmp_path: Path) -> None:
    spider = make_spider(tmp_path)
    [req] = spider.requests_for(work_items("Yoda"))
    req.meta["holocron_state"]["pages"] = pages = mwapi.PageSet()
    [retry] = list(spider.parse_query(envelope(req, "badcontinue")))
    assert isinstance(retry, Request)
    assert retry.meta["holocron_state"]["pages"] is pages


# -- maxlag -----------------------------------------------------------------------------------


def query_params(request: Request) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.url).query)


def first_request(spider: MediaWikiSpider) -> Request:
    return spider.requests_for(work_items("Yoda"))[0]


def test_every_query_carries_maxlag_5(tmp_path: Path) -> None:
    spider = make_spider(tmp_path, maxlag=5)  # the project's default (settings.py)
    req = first_request(spider)
    assert query_params(req)["maxlag"] == ["5"]
    # continuation requests too
    body = {"continue": {"plcontinue": "1|0|B", "continue": "||"}, "query": {"pages": []}}
    resp = TextResponse(req.url, body=json.dumps(body).encode(), request=req)
    [cont] = [o for o in spider.parse_query(resp) if isinstance(o, Request)]
    assert query_params(cont)["maxlag"] == ["5"]
    assert query_params(cont)["plcontinue"] == ["1|0|B"]


@pytest.mark.parametrize(("value", "sent"), [(0, None), (-1, None), (2.5, ["2.5"]), (10, ["10"])])
def test_maxlag_setting(tmp_path: Path, value: float, sent: list[str] | None) -> None:
    spider = make_spider(tmp_path, maxlag=value)
    assert query_params(first_request(spider)).get("maxlag") == sent


def test_query_url_takes_maxlag() -> None:
    url = mwapi.query_url("https://wiki.test/api.php", ["Yoda"], None, 5)
    assert url.endswith("&titles=Yoda&maxlag=5")
    assert "maxlag" not in mwapi.query_url("https://wiki.test/api.php", ["Yoda"])
