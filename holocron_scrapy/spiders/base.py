"""What every holocron spider shares: ``-a source=`` and ``-a recrawl=``, the source file's own
Scrapy settings and User-Agent applied to the crawl, and the stats and frontier look-ups."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import scrapy
from scrapy.exceptions import CloseSpider, UsageError

from holocron_scrapy import defaults
from holocron_scrapy.config.contact import ContactError, contact_from_settings
from holocron_scrapy.config.sources import SourceConfigError
from holocron_scrapy.frontier.extension import Frontier

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from scrapy.crawler import Crawler
    from scrapy.statscollectors import StatsCollector

RECRAWL_MODES = ("all", "changed")
#: Completed work items read per state-database query by ``recrawl=changed`` (both spiders).
RECRAWL_READ_SIZE = 1000


class _Source(Protocol):
    @property
    def settings(self) -> Mapping[str, Any]: ...
    @property
    def user_agent(self) -> str: ...


_S = TypeVar("_S", bound=_Source)


def apply_source(crawler: Crawler, ref: str, loader: Callable[..., _S]) -> _S:
    """Load the source file ``ref`` with ``loader`` (a broken file is a usage error naming the
    file and key) and give its Scrapy settings and User-Agent, with ``HOLOCRON_CONTACT`` merged
    in, to this crawl only (the crawler's settings are not frozen yet when a spider is built)."""
    sources_dir = defaults.sources_dir(crawler.settings)
    try:
        contact = contact_from_settings(crawler.settings)
        config = loader(ref, sources_dir, contact=contact)
    except (SourceConfigError, ContactError) as exc:
        raise UsageError(str(exc)) from exc
    crawler.settings.setdict(dict(config.settings), priority="spider")
    crawler.settings.set("USER_AGENT", config.user_agent, priority="spider")
    return config


class SourceSpider(scrapy.Spider):
    """Base of the spiders that crawl a source file through the SQL frontier."""

    def __init__(self, source: str | None = None, recrawl: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if not source:
            raise UsageError("missing -a source=NAME (a file in sources/ or a path to a YAML file)")
        if recrawl is not None and recrawl not in RECRAWL_MODES:
            raise UsageError(f"-a recrawl={recrawl!r}: expected one of {', '.join(RECRAWL_MODES)}")
        self.source = source
        self.recrawl = recrawl
        self._frontier: Frontier | None = None

    @property
    def stats(self) -> StatsCollector:
        assert self.crawler.stats is not None
        return self.crawler.stats

    def frontier(self) -> Frontier:
        if self._frontier is None:
            frontier = self.crawler.get_extension(Frontier)
            if frontier is None:
                raise CloseSpider("the holocron Frontier extension is not enabled")
            self._frontier = frontier
        return self._frontier
