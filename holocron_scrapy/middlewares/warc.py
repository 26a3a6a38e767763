"""Downloader middleware: every HTTP exchange of the crawl into rolling WARC files
(:mod:`holocron_scrapy.lake.warc`), when ``HOLOCRON_WARC_DIR`` is set.

It sits next to the downloader (priority 950, after HttpCompressionMiddleware's 590 on the way
out), so it sees each response as received: every redirect and retry, the body still encoded as
its ``Content-Encoding`` says, and the request headers as sent. ``Transfer-Encoding`` is left
out of the recorded headers, because the body is recorded de-chunked. Writes run in a thread of
their own, one at a time, and the response waits for its record (back-pressure, not memory).

Settings: ``HOLOCRON_WARC_DIR`` (unset: off), ``HOLOCRON_WARC_MAX_BYTES`` (1 GB: then a new
file), ``HOLOCRON_WARC_PREFIX`` (``holocron``). Stats: ``holocron/warc/records``,
``holocron/warc/files``, ``holocron/warc/errors``.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Self, TypeVar
from urllib.parse import urlsplit

import scrapy
from scrapy import signals
from scrapy.exceptions import NotConfigured

from holocron_scrapy import defaults
from holocron_scrapy.outage import short_error

if TYPE_CHECKING:
    from collections.abc import Callable

    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Headers, Response
    from scrapy.statscollectors import StatsCollector

    from holocron_scrapy.lake.warc import WarcFiles

logger = logging.getLogger(__name__)

NOT_RECORDED = {b"transfer-encoding"}
T = TypeVar("T")


class WarcMiddleware:
    def __init__(self, files: WarcFiles, stats: StatsCollector) -> None:
        self.files = files
        self.stats = stats
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warc")

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        directory = settings.get("HOLOCRON_WARC_DIR", defaults.WARC_DIR)
        if not directory:
            raise NotConfigured("HOLOCRON_WARC_DIR is not set")
        from holocron_scrapy.lake.warc import WarcFiles  # warcio: only when on

        files = WarcFiles(
            Path(directory).absolute(),
            prefix=settings.get("HOLOCRON_WARC_PREFIX", defaults.WARC_PREFIX),
            max_bytes=settings.getint("HOLOCRON_WARC_MAX_BYTES", defaults.WARC_MAX_BYTES),
            software=f"holocron-scrapy (Scrapy {scrapy.__version__})",
        )
        assert crawler.stats is not None
        middleware = cls(files, crawler.stats)
        crawler.signals.connect(middleware.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(middleware.spider_closed, signal=signals.spider_closed)
        return middleware

    async def spider_opened(self) -> None:
        recovered = await self._run(self.files.recover)
        self.stats.inc_value("holocron/warc/recovered", len(recovered))

    async def spider_closed(self) -> None:
        await self._run(self.files.close)
        self._executor.shutdown(wait=True)
        self.stats.set_value("holocron/warc/files", len(self.files.closed_files))

    async def process_response(self, request: Request, response: Response) -> Response:
        url = urlsplit(response.url)
        target = url.path or "/"
        if url.query:
            target += f"?{url.query}"
        protocol = response.protocol or "HTTP/1.1"
        try:
            await self._run(
                lambda: self.files.write_exchange(
                    response.url,
                    status=_status_line(response.status),
                    protocol=protocol,
                    response_headers=_headers(response.headers),
                    body=response.body,
                    request_line=f"{request.method} {target} {protocol}",
                    request_headers=[("Host", url.netloc), *_headers(request.headers)],
                    request_body=request.body,
                )
            )
        except OSError as exc:
            self.stats.inc_value("holocron/warc/errors")
            logger.error("Could not write a WARC record: %(error)s", {"error": short_error(exc)})
        else:
            self.stats.inc_value("holocron/warc/records")
        return response

    async def _run(self, function: Callable[[], T]) -> T:
        return await asyncio.wrap_future(self._executor.submit(function))


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _headers(headers: Headers) -> list[tuple[str, str]]:
    pairs = []
    for name, values in headers.items():
        if name.lower() in NOT_RECORDED:
            continue
        for value in values:
            pairs.append((name.decode("latin-1"), value.decode("latin-1")))
    return pairs
