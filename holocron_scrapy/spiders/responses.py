"""What both spiders read from responses and failures: headers as text, and the message a
request that failed for good gives its work items."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scrapy.exceptions import DownloadCancelledError
from scrapy.spidermiddlewares.httperror import HttpError

from holocron_scrapy.safe_text import printable

if TYPE_CHECKING:
    import scrapy
    from twisted.python.failure import Failure


def headers_of(headers: Any) -> dict[str, str]:
    return {k.decode("latin-1"): b", ".join(v).decode("latin-1") for k, v in headers.items()}


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
