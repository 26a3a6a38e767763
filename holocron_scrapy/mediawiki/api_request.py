"""Action API requests that every server and middleware accepts, however long their query.

A query over ``URLLENGTH_LIMIT`` characters (Scrapy's, 2,083 by default: 50 Cyrillic or
Japanese titles make one, or a continuation that repeats long titles) would be dropped by
Scrapy's ``UrlLengthMiddleware`` and refused by many servers: it is sent as a POST of the same
parameters to the API's URL instead (the Action API reads a query from either; reads need no
token). ``meta["holocron_url"]`` keeps the query's URL either way: records, messages and logs
name that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import scrapy

if TYPE_CHECKING:
    from scrapy.http import Response

FORM_TYPE = "application/x-www-form-urlencoded"


def api_request(url: str, max_length: int, **kwargs: Any) -> scrapy.Request:
    """A GET of ``url``, or when it is longer than ``max_length`` (0: no limit), a POST of its
    query string to the URL before the ``?``."""
    meta = {**kwargs.pop("meta", {}), "holocron_url": url}
    if not max_length or len(url) <= max_length:
        return scrapy.Request(url, meta=meta, **kwargs)
    base, _, query = url.partition("?")
    headers = {**kwargs.pop("headers", {}), "Content-Type": FORM_TYPE}
    return scrapy.Request(base, method="POST", body=query, headers=headers, meta=meta, **kwargs)


def query_url_of(request: scrapy.Request) -> str:
    """The URL of the query ``request`` asks (a POST's too)."""
    return str(request.meta.get("holocron_url", request.url))


def answered_url(response: Response) -> str:
    """The URL a record names as its request: the response's (after redirects) for a GET, the
    query's for a POST."""
    request = response.request
    if request is not None and request.method == "POST":
        return query_url_of(request)
    return response.url


def shown(request: scrapy.Request) -> scrapy.Request:
    """``request`` as messages show it: its query's URL, as a GET."""
    if request.method != "POST":
        return request
    return request.replace(url=query_url_of(request), method="GET", body=b"")
