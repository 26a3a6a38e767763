"""One add-on wires every holocron component into a crawl (``ADDONS`` in settings.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scrapy.settings import Settings

PREFIX = "holocron_scrapy"


class HolocronAddon:
    """SQL frontier, state and Retry-After middlewares, lake and IngestRecords pipelines, progress
    log."""

    def update_settings(self, settings: Settings) -> None:
        settings["EXTENSIONS"][f"{PREFIX}.frontier.Frontier"] = 100
        settings["EXTENSIONS"][f"{PREFIX}.progress.CrawlProgress"] = 500
        settings["EXTENSIONS"][f"{PREFIX}.extensions.manifest.RunManifest"] = 600
        # Close to the spider, so discoveries and outcomes leave the stream first.
        settings["SPIDER_MIDDLEWARES"][f"{PREFIX}.middlewares.state.StateMiddleware"] = 950
        settings["DOWNLOADER_MIDDLEWARES"][f"{PREFIX}.middlewares.claims.ClaimCheckMiddleware"] = 50
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
