"""The bounds that make every crawl end, whatever a source answers (issue 10, "loops").

* A **continuation chain** (one request's ``continue`` followed until the answer is complete: a
  page query, a page's history) may take ``HOLOCRON_CHAIN_MAX_PAGES`` responses and merge
  ``HOLOCRON_CHAIN_MAX_BYTES`` of them in memory.
* A **listing** (MediaWiki ``list=``, a paginated HTTP seed) may take
  ``HOLOCRON_LISTING_MAX_PAGES`` pages per claim (its members are queued as it goes: nothing
  merges).
* In either, a continuation or cursor the chain has already sent (the same ``continue`` object,
  ``json_next`` cursor or ``Link`` next URL twice; a numbered page with the body of an earlier
  one) ends it.
* A **redirect** (a MediaWiki redirect or normalisation, an HTTP 3xx answered to a resource)
  queues its target with one hop more than the item it came from; an item reached through more
  than ``HOLOCRON_MAX_REDIRECTS`` hops fails.

Each ends its work items as failed with the reason. The defaults are here, and only here.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scrapy.exceptions import UsageError

from holocron_scrapy import defaults
from holocron_scrapy.model import Outcome, Status

if TYPE_CHECKING:
    from collections.abc import Iterable

    from scrapy.settings import BaseSettings
    from scrapy.statscollectors import StatsCollector

    from holocron_scrapy.model import WorkItem

logger = logging.getLogger(__name__)

#: The longest continuation or cursor quoted in a message.
_SHOWN = 200


@dataclass(frozen=True, slots=True)
class Bounds:
    chain_max_pages: int = defaults.CHAIN_MAX_PAGES
    chain_max_bytes: int = defaults.CHAIN_MAX_BYTES
    listing_max_pages: int = defaults.LISTING_MAX_PAGES
    max_redirects: int = defaults.MAX_REDIRECTS

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Bounds:
        """The ``HOLOCRON_*`` limits of the crawl (a usage error when one is out of range)."""
        values = {
            "chain_max_pages": settings.getint(
                "HOLOCRON_CHAIN_MAX_PAGES", defaults.CHAIN_MAX_PAGES
            ),
            "chain_max_bytes": settings.getint(
                "HOLOCRON_CHAIN_MAX_BYTES", defaults.CHAIN_MAX_BYTES
            ),
            "listing_max_pages": settings.getint(
                "HOLOCRON_LISTING_MAX_PAGES", defaults.LISTING_MAX_PAGES
            ),
            "max_redirects": settings.getint("HOLOCRON_MAX_REDIRECTS", defaults.MAX_REDIRECTS),
        }
        for name, value in values.items():
            if value < (0 if name == "max_redirects" else 1):
                raise UsageError(f"HOLOCRON_{name.upper()}: {value} is out of range")
        return cls(**values)

    def chain(self) -> Chain:
        """A new continuation chain."""
        return Chain(self.chain_max_pages, self.chain_max_bytes)

    def listing(self) -> Chain:
        """A new listing chain (one claim of a listing)."""
        return Chain(self.listing_max_pages, None, "listing")

    def redirect_refused(self, hops: int) -> str | None:
        """Why an item reached through ``hops`` redirects may not redirect again, or ``None``."""
        if hops >= self.max_redirects:
            return f"too many redirects: more than {self.max_redirects} (HOLOCRON_MAX_REDIRECTS)"
        return None


def shown(value: str) -> str:
    """``value`` as a message quotes it: ``repr``, cut at :data:`_SHOWN` characters."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}…"


@dataclass(slots=True)
class Chain:
    """One chain of requests (a continuation chain or a listing, within one claim): how many
    responses it took, how many bytes it merged and the digests of the continuations it sent.
    Picklable (it travels in request meta, which ``JOBDIR`` stores)."""

    max_pages: int
    max_bytes: int | None = None  # None: nothing is merged (a listing)
    what: str = "continuation chain"
    pages: int = 0
    size: int = 0
    seen: set[bytes] = field(default_factory=set)

    def step(self, size: int, token: str | None, body: bytes | None = None) -> str | None:
        """Count one response of ``size`` bytes whose next continuation is ``token`` (``None``:
        the chain ends here); ``body``, when given, must not repeat an earlier page's either.
        Returns why the chain must stop, or ``None``."""
        self.pages += 1
        self.size += size
        if body is not None and not self._first(b"b" + hashlib.sha256(body).digest()):
            return f"{self.what}: page {self.pages} has the body of an earlier page"
        if token is None:
            return None
        if not self._first(b"t" + hashlib.sha256(token.encode("utf-8", "replace")).digest()):
            return f"{self.what}: the continuation {shown(token)} came a second time"
        if self.pages >= self.max_pages:
            setting = "HOLOCRON_CHAIN_MAX_PAGES" if self.max_bytes else "HOLOCRON_LISTING_MAX_PAGES"
            return f"{self.what}: more than {self.max_pages} pages ({setting})"
        if self.max_bytes is not None and self.size > self.max_bytes:
            return (
                f"{self.what}: more than {self.max_bytes} bytes merged (HOLOCRON_CHAIN_MAX_BYTES)"
            )
        return None

    def _first(self, digest: bytes) -> bool:
        if digest in self.seen:
            return False
        self.seen.add(digest)
        return True


def stopped(
    items: Iterable[WorkItem], reason: str, url: str, stats: StatsCollector, event: str
) -> list[Outcome]:
    """The items of a chain stopped for ``reason`` (at ``url``, as logged), failed; counted as
    ``holocron/bounds/<event>``."""
    stats.inc_value(f"holocron/bounds/{event}")
    logger.warning("Stopped: %(reason)s (at %(url)s)", {"reason": reason, "url": url})
    return [Outcome(i.id, Status.FAILED, reason, depth=i.depth) for i in items]
