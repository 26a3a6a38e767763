"""One decode-or-fail path for every API callback, and the records built from responses."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import DownloadCancelledError
from scrapy.spidermiddlewares.httperror import HttpError

from holocron_scrapy.items import ResourceRecord
from holocron_scrapy.mediawiki import api as mwapi
from holocron_scrapy.mediawiki.api_request import query_url_of
from holocron_scrapy.model import Outcome, Status, WorkItem
from holocron_scrapy.safe_text import printable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import scrapy
    from scrapy.http import Response
    from scrapy.statscollectors import StatsCollector
    from twisted.python.failure import Failure

logger = logging.getLogger(__name__)


def headers_of(headers: Any) -> dict[str, str]:
    return {k.decode("latin-1"): b", ".join(v).decode("latin-1") for k, v in headers.items()}


def decode_json(response: Response) -> Any:
    """The response body as JSON, or :class:`mwapi.ApiError` ``badjson`` saying what came."""
    try:
        return json.loads(response.body)
    except ValueError as exc:
        snippet = response.body[:120].decode("utf-8", "replace")
        ctype = (response.headers.get("Content-Type") or b"").decode("latin-1")
        raise mwapi.ApiError(
            "badjson", f"not JSON ({exc}); Content-Type {ctype!r}, body starts {snippet!r}"
        ) from exc


class ApiResponses:
    """Turns a response into the API's data, or into what its error means for the work items
    of its request; logs each kind of API warning once and counts them all."""

    def __init__(self, spider: scrapy.Spider, stats: Callable[[], StatsCollector]) -> None:
        self.spider = spider
        self._stats = stats
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
            decoded = decode_json(response)
            data = mwapi.check_shape(mwapi.check_envelope(adapt(decoded) if adapt else decoded))
        except mwapi.ApiError as exc:
            return None, list(self._error(exc, request, items))
        self._log_warnings(data)
        return data, []

    def _error(
        self, exc: mwapi.ApiError, request: scrapy.Request, items: list[WorkItem]
    ) -> Iterator[Any]:
        """The request again (``badcontinue``, ``internal_api_error_*``, within RETRY_TIMES), or
        an outcome per work item: skipped or failed with the API's message (see
        :data:`mwapi.API_ERRORS`)."""
        self._stats().inc_value(f"holocron/mediawiki/api_error/{exc.code}")
        rule = mwapi.error_rule(exc.code)
        if rule.on_error is mwapi.OnError.RETRY:
            retry = get_retry_request(request, spider=self.spider, reason=f"api_error/{exc.code}")
            if retry is not None:
                yield retry
                return
        logger.warning("%(error)s for %(url)s", {"error": exc, "url": query_url_of(request)})
        status = Status.SKIPPED if rule.on_error is mwapi.OnError.SKIP else Status.FAILED
        yield from (Outcome(i.id, status, str(exc)) for i in items)

    def _log_warnings(self, data: dict[str, Any]) -> None:
        for module, text in mwapi.warnings_of(data):
            self._stats().inc_value(f"holocron/mediawiki/warnings/{module}")
            if module not in self._warned:
                self._warned.add(module)
                logger.warning(
                    "API warning from %(module)s: %(text)s (logged once)",
                    {"module": module, "text": text},
                )


def failure_message(failure: Failure, request: scrapy.Request, default_maxsize: int) -> str:
    """What a request that failed for good (after retries) says to its work items."""
    error = failure.value
    if isinstance(error, HttpError):
        return f"HTTP {error.response.status} from {request.url}"
    if isinstance(error, DownloadCancelledError) and not str(error):
        # Scrapy cancels a body that grows past the size limit without a message (one with
        # a Content-Length over the limit is refused with one).
        maxsize = request.meta.get("download_maxsize", default_maxsize)
        return (
            f"DownloadCancelledError: Received a body larger than download max size "
            f"({maxsize} bytes, DOWNLOAD_MAXSIZE) in request <GET {request.url}>"
        )
    detail = printable(failure.getErrorMessage().strip()) or _SILENT_ERRORS.get(
        type(error).__name__, "no message"
    )
    return f"{type(error).__name__}: {detail} ({request.method} {request.url})"


#: What the download errors that carry no text of their own mean.
_SILENT_ERRORS = {
    "ResponseDataLossError": "the connection closed before the whole body arrived",
    "ResponseFailed": "the connection failed while the response was read",
}


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
