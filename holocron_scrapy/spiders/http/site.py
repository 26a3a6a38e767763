"""What the HTTP spider's parts share, built by the spider for its source (never the spider
itself)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from scrapy.statscollectors import StatsCollector

    from holocron_scrapy.bounds import Bounds
    from holocron_scrapy.config.http import HttpSourceConfig
    from holocron_scrapy.frontier.extension import Frontier
    from holocron_scrapy.secrets import SourceSecrets


@dataclass(frozen=True, slots=True)
class HttpSite:
    """The source, its secrets (:mod:`holocron_scrapy.secrets`) and bounds; ``stats`` and
    ``frontier`` look the crawler's up when first used (they exist once the crawl starts)."""

    config: HttpSourceConfig
    secrets: SourceSecrets
    bounds: Bounds
    stats: Callable[[], StatsCollector]
    frontier: Callable[[], Frontier]
