"""One add-on wires every holocron component into a crawl (``ADDONS`` in settings.py).

It works in any Scrapy project, not only this one:
``ADDONS = {"holocron_scrapy.addon.HolocronAddon": 0}`` in the project's settings gives its spiders
(those written against :class:`holocron_scrapy.frontier.extension.FrontierSpider`) the SQL
frontier, the state middleware and the lake and IngestRecords pipelines. It sets what the
components require at add-on priority (a project's own settings win) and refuses a reactor they
cannot run on.

The components' own settings are not set here: each component reads its settings with the
default of :mod:`holocron_scrapy.defaults`, so it works the same when it is listed by hand
instead of through the add-on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scrapy.settings import Settings

PREFIX = "holocron_scrapy"
#: the components use asyncio primitives (scrapy.utils.asyncio), which need this reactor
ASYNCIO_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"


class HolocronAddonError(ValueError):
    """A project setting the holocron components cannot work with."""


class HolocronAddon:
    """SQL frontier, state and Retry-After middlewares, lake and IngestRecords pipelines, progress
    log."""

    def update_settings(self, settings: Settings) -> None:
        settings.set("TWISTED_REACTOR", ASYNCIO_REACTOR, priority="addon")
        reactor = settings.get("TWISTED_REACTOR")
        if reactor != ASYNCIO_REACTOR:
            raise HolocronAddonError(
                f"TWISTED_REACTOR = {reactor!r}: the holocron add-on needs {ASYNCIO_REACTOR!r} "
                "(set that, or leave TWISTED_REACTOR unset)"
            )
        settings["EXTENSIONS"][f"{PREFIX}.frontier.extension.Frontier"] = 100
        settings["EXTENSIONS"][f"{PREFIX}.extensions.progress.CrawlProgress"] = 500
        settings["EXTENSIONS"][f"{PREFIX}.extensions.manifest.RunManifest"] = 600
        # Close to the spider, so discoveries and outcomes leave the stream first.
        settings["SPIDER_MIDDLEWARES"][f"{PREFIX}.middlewares.state.StateMiddleware"] = 950
        settings["DOWNLOADER_MIDDLEWARES"][f"{PREFIX}.middlewares.claims.ClaimCheckMiddleware"] = 50
        # A request waits for the memory budget of bodies before it takes a slot of the shared
        # request budget (a slot then goes unused less often).
        settings["DOWNLOADER_MIDDLEWARES"][
            f"{PREFIX}.middlewares.body_budget.BodyBudgetMiddleware"
        ] = 55
        # After the claim check: only requests that will be fetched take a slot of the budget.
        budget = f"{PREFIX}.middlewares.budget.SharedBudgetMiddleware"
        settings["DOWNLOADER_MIDDLEWARES"][budget] = 60
        # Its process_response runs before RetryMiddleware's (550): Retry-After is honoured and
        # 429/503 are not retried a second time without waiting.
        settings["DOWNLOADER_MIDDLEWARES"][
            f"{PREFIX}.middlewares.retry_after.RetryAfterMiddleware"
        ] = 560
        # Next to the downloader: responses as received, before decompression and redirects.
        settings["DOWNLOADER_MIDDLEWARES"][f"{PREFIX}.middlewares.warc.WarcMiddleware"] = 950
        settings["ITEM_PIPELINES"][f"{PREFIX}.pipelines.lake.LakePipeline"] = 300
        settings["ITEM_PIPELINES"][f"{PREFIX}.pipelines.ingest.IngestRecordsPipeline"] = 400
