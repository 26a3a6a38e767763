"""One decode-or-fail path for every API callback, the records built from responses, and the
bounds of a continuation chain."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from scrapy.downloadermiddlewares.retry import get_retry_request

from holocron_scrapy.bounds import stopped
from holocron_scrapy.frontier.extension import work_items_of
from holocron_scrapy.items import ResourceRecord
from holocron_scrapy.mediawiki import errors
from holocron_scrapy.mediawiki.api_request import query_url_of
from holocron_scrapy.model import Outcome, Status, WorkItem, canonical_json
from holocron_scrapy.spiders.responses import headers_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import scrapy
    from scrapy.http import Response
    from scrapy.statscollectors import StatsCollector

    from holocron_scrapy.bounds import Bounds

logger = logging.getLogger(__name__)


class ApiResponses:
    """Turns a response into the API's data, or into what its error means for the work items
    of its request; logs each kind of API warning once and counts them all. ``spider`` is only
    handed to Scrapy's :func:`get_retry_request` (its retry budget and stats)."""

    def __init__(self, spider: scrapy.Spider, stats: Callable[[], StatsCollector]) -> None:
        self.spider = spider
        self.stats = stats
        self._warned: set[str] = set()

    def data(
        self,
        response: Response,
        request: scrapy.Request,
        items: list[WorkItem],
        adapt: Callable[[Any], Any] | None = None,
    ) -> tuple[dict[str, Any] | None, list[Any]]:
        """The response's API data (its warnings logged), or ``None`` and what the error means
        for ``items`` (a retry request or their outcomes). ``adapt`` turns a decoded body of
        another shape (``action=opensearch``'s array) into a query result first."""
        try:
            decoded = errors.decode_json(response)
            data = errors.check_shape(errors.check_envelope(adapt(decoded) if adapt else decoded))
        except errors.ApiError as exc:
            return None, list(self._error(exc, request, items))
        self._log_warnings(data)
        return data, []

    def _error(
        self, exc: errors.ApiError, request: scrapy.Request, items: list[WorkItem]
    ) -> Iterator[Any]:
        """The request again (``badcontinue``, ``internal_api_error_*``, within RETRY_TIMES), or
        an outcome per work item: skipped or failed with the API's message (see
        :data:`errors.API_ERRORS`)."""
        self.stats().inc_value(f"holocron/mediawiki/api_error/{exc.code}")
        rule = errors.error_rule(exc.code)
        if rule.on_error is errors.OnError.RETRY:
            retry = get_retry_request(request, spider=self.spider, reason=f"api_error/{exc.code}")
            if retry is not None:
                yield retry
                return
        logger.warning("%(error)s for %(url)s", {"error": exc, "url": query_url_of(request)})
        status = Status.SKIPPED if rule.on_error is errors.OnError.SKIP else Status.FAILED
        yield from (Outcome(i.id, status, str(exc)) for i in items)

    def _log_warnings(self, data: dict[str, Any]) -> None:
        for module, text in errors.warnings_of(data):
            self.stats().inc_value(f"holocron/mediawiki/warnings/{module}")
            if module not in self._warned:
                self._warned.add(module)
                logger.warning(
                    "API warning from %(module)s: %(text)s (logged once)",
                    {"module": module, "text": text},
                )


def chain_step(
    bounds: Bounds,
    stats: StatsCollector,
    state: dict[str, Any],
    response: Response,
    cont: dict[str, str] | None,
) -> list[Any] | None:
    """Count a response of the continuation chain ``state`` describes (whose next ``continue``
    is ``cont``): ``None`` while it may go on (a continuation counted), else its items failed
    with the reason (a repeated continuation, too many responses or bytes; see
    :mod:`holocron_scrapy.bounds`)."""
    chain = state.setdefault("chain", bounds.chain())
    reason = chain.step(len(response.body), None if cont is None else canonical_json(cont))
    if reason is None:
        if cont is not None:
            stats.inc_value("holocron/mediawiki/continuations")
        return None
    request = response.request
    assert request is not None
    url = query_url_of(request)
    return stopped(work_items_of(request), reason, url, stats, "chain_stopped")


def note_response(state: dict[str, Any], request: scrapy.Request, response: Response) -> None:
    """What a record tells of its (first) response, and the latency of all of them."""
    state.setdefault("fetched_at", datetime.now(UTC).replace(tzinfo=None))
    state.setdefault("request_headers", headers_of(request.headers))
    state.setdefault("response_headers", headers_of(response.headers))
    state["latency"] = state.get("latency", 0.0) + request.meta.get("download_latency", 0.0)


def record(
    item: WorkItem,
    resource_type: str,
    payload: dict[str, Any],
    state: dict[str, Any],
    response: Response,
    *,
    version: object,
) -> ResourceRecord:
    """The record of ``item`` from the responses ``state`` describes (see :func:`note_response`;
    ``state["first_url"]`` is its request URI)."""
    return ResourceRecord(
        work_item=item,
        resource_type=resource_type,
        resource_id=item.resource_id,
        payload=payload,
        request_uri=state["first_url"],
        request_headers=state["request_headers"],
        status_code=response.status,
        response_headers=state["response_headers"],
        fetched_at_utc=state["fetched_at"],
        duration_ms=round(state["latency"] * 1000),
        version=None if version is None else str(version),
    )
