"""What the mediawiki spider's parts use, built by the spider for its source: the settings they
build requests with, and the collaborators they share (never the spider itself)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from holocron_scrapy.model import dedupe_key
from holocron_scrapy.spiders.mediawiki.responses import chain_step

if TYPE_CHECKING:
    from collections.abc import Callable

    from scrapy.http import Response
    from scrapy.statscollectors import StatsCollector
    from twisted.python.failure import Failure

    from holocron_scrapy.bounds import Bounds
    from holocron_scrapy.config.sources import SourceConfig
    from holocron_scrapy.frontier.extension import Frontier
    from holocron_scrapy.mediawiki.discovery import Discoverer
    from holocron_scrapy.spiders.mediawiki.responses import ApiResponses


@dataclass(frozen=True, slots=True)
class ApiOptions:
    api_url: str
    maxlag: float
    url_limit: int  # URLLENGTH_LIMIT: longer queries are POSTed (mediawiki.api_request)
    list_limit: str
    titles_per_request: int
    revisions_content: bool


@dataclass(frozen=True, slots=True)
class Wiki:
    """The source and its API options; ``api`` decodes answers, ``discoverer`` makes work
    items; ``stats`` and ``frontier`` look the crawler's up when first used (they exist once
    the crawl starts); ``request_failed``: the spider's errback of a work item's request."""

    config: SourceConfig
    options: ApiOptions
    api: ApiResponses
    discoverer: Discoverer
    bounds: Bounds
    stats: Callable[[], StatsCollector]
    frontier: Callable[[], Frontier]
    request_failed: Callable[[Failure], None]

    def dedupe_key(self, resource_type: str, resource_id: str) -> str:
        """The dedupe key of a work item of this source."""
        return dedupe_key(
            self.discoverer.source_system, self.config.name, resource_type, resource_id
        )

    def chain_step(
        self, state: dict[str, Any], response: Response, cont: dict[str, str] | None
    ) -> list[Any] | None:
        """See :func:`.responses.chain_step`."""
        return chain_step(self.bounds, self.stats(), state, response, cont)
