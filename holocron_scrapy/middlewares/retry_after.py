"""Downloader middleware: wait as long as the server asks, then send the request again.

Scrapy's RetryMiddleware retries 429 and 503 at once and ignores ``Retry-After``
(scrapy/scrapy#3849); MediaWiki says "slow down" with HTTP 200 and a ``MediaWiki-API-Error``
header. This middleware sits just before RetryMiddleware in the response chain (the add-on puts
it at 560, RetryMiddleware is 550) and handles both the way pywikibot and mwclient do:

* HTTP 429 and 503, and the API errors ``ratelimited`` and ``readonly``: wait ``Retry-After``
  (seconds or an HTTP-date) or, without it, the rule's pause or an exponential back-off from
  ``HOLOCRON_RETRY_AFTER_DEFAULT``; never more than ``HOLOCRON_RETRY_AFTER_MAX``. At most
  ``HOLOCRON_RETRY_AFTER_TIMES`` times, then the response goes on, marked ``dont_retry`` so
  that RetryMiddleware does not retry it once more without waiting (an HTTP error then fails the
  work items in the spider's errback, an API error in its callback).
* the API error ``maxlag``: the wiki's replicas lag; wait and retry without counting it as a
  failure, up to ``HOLOCRON_RETRY_AFTER_MAXLAG_TIMES``.

The wait does not block the reactor (``await sleep``). The source's download slot is paused
for the same time and its delay raised (at most ``AUTOTHROTTLE_MAX_DELAY``), so the other
requests to that wiki are spaced too. With AutoThrottle on, it lowers the delay again as answers
come back; with AutoThrottle off (an explicit ``DOWNLOAD_DELAY``), the delay the slot had before
comes back when the last wait on it ends (unless something else changed it meanwhile). Only the
slot's public ``delay`` (what AutoThrottle sets) and ``lastseen`` (for the pause: Scrapy has no
public per-slot pause) are written.
The request meta key ``dont_retry`` opts a request out, as it does for RetryMiddleware.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Self

from scrapy.exceptions import NotConfigured
from scrapy.utils.asyncio import sleep

from holocron_scrapy import defaults
from holocron_scrapy.mediawiki import api as mwapi

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.core.downloader import Slot
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.statscollectors import StatsCollector

logger = logging.getLogger(__name__)

#: HTTP statuses that mean "come back later".
RETRY_AFTER_STATUSES: frozenset[int] = frozenset({429, 503})
#: Request meta keys of the counters: failures (429, 503, ratelimited, readonly), and maxlag.
TIMES_KEY = "retry_after_times"
MAXLAG_TIMES_KEY = "retry_after_maxlag_times"


def parse_retry_after(value: str | bytes | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date.

    ``None`` when the header is absent or unreadable; a date in the past gives 0.
    """
    if value is None:
        return None
    text = (value.decode("latin-1") if isinstance(value, bytes) else value).strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110: HTTP-dates are UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff(attempt: int, default: float, cap: float) -> float:
    """Exponential back-off: ``default`` for the first attempt, doubled each time, capped."""
    return min(cap, default * 2.0 ** max(0, attempt - 1))


class RetryAfterMiddleware:
    def __init__(
        self,
        stats: StatsCollector,
        *,
        default: float = defaults.RETRY_AFTER_DEFAULT,
        max_wait: float = defaults.RETRY_AFTER_MAX,
        max_times: int = defaults.RETRY_AFTER_TIMES,
        maxlag_times: int = defaults.RETRY_AFTER_MAXLAG_TIMES,
        max_delay: float = 60.0,
        crawler: Crawler | None = None,
        autothrottle: bool = True,
    ) -> None:
        self.stats = stats
        self.default = default
        self.max_wait = max_wait
        self.max_times = max_times
        self.maxlag_times = maxlag_times
        self.max_delay = max_delay
        self.crawler = crawler
        self.autothrottle = autothrottle
        # slot key -> (its delay before the first wait, the delay set, waits under way)
        self._raised: dict[str, tuple[float, float, int]] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        settings = crawler.settings
        if not settings.getbool("HOLOCRON_RETRY_AFTER_ENABLED", defaults.RETRY_AFTER_ENABLED):
            raise NotConfigured("HOLOCRON_RETRY_AFTER_ENABLED is off")
        default = settings.getfloat("HOLOCRON_RETRY_AFTER_DEFAULT", defaults.RETRY_AFTER_DEFAULT)
        max_wait = settings.getfloat("HOLOCRON_RETRY_AFTER_MAX", defaults.RETRY_AFTER_MAX)
        if default < 0 or max_wait < 0:
            raise NotConfigured("HOLOCRON_RETRY_AFTER_DEFAULT and _MAX must not be negative")
        assert crawler.stats is not None
        return cls(
            crawler.stats,
            default=default,
            max_wait=max_wait,
            max_times=settings.getint("HOLOCRON_RETRY_AFTER_TIMES", defaults.RETRY_AFTER_TIMES),
            maxlag_times=settings.getint(
                "HOLOCRON_RETRY_AFTER_MAXLAG_TIMES", defaults.RETRY_AFTER_MAXLAG_TIMES
            ),
            max_delay=settings.getfloat("AUTOTHROTTLE_MAX_DELAY", 60.0),
            crawler=crawler,
            autothrottle=settings.getbool("AUTOTHROTTLE_ENABLED"),
        )

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        if request.meta.get("dont_retry", False):
            return response
        reason, rule = self._reason(response)
        if rule is None:
            return response
        key = TIMES_KEY if rule.counted else MAXLAG_TIMES_KEY
        limit = self.max_times if rule.counted else self.maxlag_times
        attempt = request.meta.get(key, 0) + 1
        if attempt > limit:
            self.stats.inc_value(f"retry_after/gave_up/{reason}")
            logger.warning(
                "Gave up waiting for %(url)s after %(n)d tries (%(reason)s)",
                {"url": request.url, "n": attempt - 1, "reason": reason},
            )
            request.meta["dont_retry"] = True  # RetryMiddleware must not retry it without waiting
            return response
        asked = parse_retry_after(response.headers.get("Retry-After"))
        if asked is not None:
            wait = min(asked, self.max_wait)
        elif rule.wait is not None:
            wait = min(rule.wait, self.max_wait)
        else:
            wait = backoff(attempt, self.default, self.max_wait)
        self.stats.inc_value(f"retry_after/{reason}")
        total = self.stats.get_value("retry_after/wait_seconds", 0.0) + wait
        self.stats.set_value("retry_after/wait_seconds", round(total, 3))
        logger.info(
            "Waiting %(wait).1f s before retrying %(url)s (%(reason)s, try %(n)d of %(limit)d)",
            {"wait": wait, "url": request.url, "reason": reason, "n": attempt, "limit": limit},
        )
        slot_key = self._slow_down(request, wait)
        try:
            await sleep(wait)
        finally:
            self._recover(slot_key)
        retry = request.replace(dont_filter=True)
        retry.meta[key] = attempt
        return retry

    def _reason(self, response: Response) -> tuple[str, mwapi.ErrorRule | None]:
        """The reason to wait (stats name) and its rule, or ``("", None)`` to let it pass."""
        if response.status in RETRY_AFTER_STATUSES:
            return f"http_{response.status}", mwapi.ErrorRule(mwapi.OnError.WAIT)
        header = response.headers.get(mwapi.ERROR_HEADER)
        if response.status == 200 and header:
            code = header.decode("latin-1").split(",")[0].strip()
            rule = mwapi.error_rule(code)
            if rule.on_error is mwapi.OnError.WAIT:
                return code, rule
        return "", None

    def _slot(self, key: str | None) -> Slot | None:
        if self.crawler is None or key is None:
            return None
        try:
            engine = self.crawler.engine
        except RuntimeError:  # no crawl under way (a component built on its own)
            return None
        slot: Slot | None = engine.downloader.slots.get(key)
        return slot

    def _slow_down(self, request: Request, wait: float) -> str | None:
        """Pause the request's download slot for ``wait`` and raise its delay (for the others).
        Returns the slot's key for :meth:`_recover`, or None when there is no slot."""
        key: str | None = request.meta.get("download_slot")
        slot = self._slot(key)
        if slot is None or key is None:
            return None
        before, _, waits = self._raised.get(key, (slot.delay, 0.0, 0))
        slot.delay = max(slot.delay, min(wait, self.max_delay))
        # Nothing else goes to that slot before the wait is over (see Downloader._process_queue:
        # the next send is due at lastseen + delay).
        slot.lastseen = max(slot.lastseen, time.monotonic() + wait - slot.delay)
        self._raised[key] = (before, slot.delay, waits + 1)
        return key

    def _recover(self, key: str | None) -> None:
        """A wait on the slot ended: when it was the last one and AutoThrottle is off, the delay
        the slot had before comes back (unless something else set another one meanwhile)."""
        if key is None or key not in self._raised:
            return
        before, raised, waits = self._raised.pop(key)
        if waits > 1:
            self._raised[key] = (before, raised, waits - 1)
            return
        slot = self._slot(key)
        if self.autothrottle or slot is None or slot.delay != raised:
            return
        slot.delay = before
        self.stats.inc_value("retry_after/delay_restored")
