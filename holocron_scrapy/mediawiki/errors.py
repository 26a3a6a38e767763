"""The Action API's errors and answers' shapes, as pure functions: the error envelope and the
rule of each error code, the shape checks of an answer, its warnings.

No Scrapy and no I/O here: every rule is tested offline on recorded real responses.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from holocron_scrapy import json_bytes
from holocron_scrapy.safe_text import printable

if TYPE_CHECKING:
    from collections.abc import Mapping

    from scrapy.http import Response

#: The response header that carries an error envelope's code (the status stays 200).
ERROR_HEADER = "MediaWiki-API-Error"


class OnError(enum.Enum):
    """What happens to the work items of a request the API answered with an error code."""

    WAIT = "wait"  # the RetryAfterMiddleware waits and sends the request again
    RETRY = "retry"  # retried at once with Scrapy's retry budget (RETRY_TIMES), then failed
    SKIP = "skip"  # skipped with the API's message: asking again cannot help
    FAIL = "fail"  # failed with the API's message (every code not listed)


@dataclass(frozen=True, slots=True)
class ErrorRule:
    """How an API error code is handled.

    ``wait`` is the pause when the response has no ``Retry-After`` (``None``: exponential
    back-off from ``HOLOCRON_RETRY_AFTER_DEFAULT``); ``counted`` says whether the retry counts
    towards ``HOLOCRON_RETRY_AFTER_TIMES`` (``maxlag`` does not: a lagged wiki is not a failure,
    it has its own, more generous cap).
    """

    on_error: OnError
    wait: float | None = None
    counted: bool = True


#: The API's error codes and their outcomes, in one place. A key ending in ``*`` is a prefix.
API_ERRORS: Mapping[str, ErrorRule] = MappingProxyType(
    {
        "maxlag": ErrorRule(OnError.WAIT, wait=5.0, counted=False),
        "ratelimited": ErrorRule(OnError.WAIT),
        "readonly": ErrorRule(OnError.WAIT, wait=60.0),
        "missingtitle": ErrorRule(OnError.SKIP),
        "invalidtitle": ErrorRule(OnError.SKIP),
        "badcontinue": ErrorRule(OnError.RETRY),
        "internal_api_error_*": ErrorRule(OnError.RETRY),
    }
)
_FAIL = ErrorRule(OnError.FAIL)


def error_rule(code: str) -> ErrorRule:
    """The rule of an API error code (:data:`API_ERRORS`); unknown codes fail their items."""
    rule = API_ERRORS.get(code)
    if rule is not None:
        return rule
    for key, prefix_rule in API_ERRORS.items():
        if key.endswith("*") and code.startswith(key[:-1]):
            return prefix_rule
    return _FAIL


class ApiError(Exception):
    """An API error envelope (``{"error": {...}}``, HTTP 200, ``MediaWiki-API-Error`` header)."""

    def __init__(self, code: str, info: str) -> None:
        # Both come from the server: escaped, so that no message or log line can be forged.
        code, info = printable(code, 100), printable(info)
        super().__init__(f"MediaWiki API error {code}: {info}")
        self.code = code
        self.info = info


def check_envelope(data: Any) -> dict[str, Any]:
    """Return the response object, or raise :class:`ApiError` for an error envelope."""
    if not isinstance(data, dict):
        raise ApiError("badresponse", f"expected a JSON object, got {type(data).__name__}")
    error = data.get("error")
    if error is not None:
        if isinstance(error, dict):
            raise ApiError(str(error.get("code", "unknown")), str(error.get("info", "")))
        raise ApiError("unknown", str(error))
    return data


def check_shape(data: dict[str, Any]) -> dict[str, Any]:
    """Return ``data`` when it has the shape the spider reads, else raise :class:`ApiError`
    ``badresponse`` naming what is wrong (not a ``KeyError`` or ``AttributeError`` later):
    ``query`` an object whose lists (pages, normalized, redirects, a listing's rows) hold
    objects, each page's lists too; ``normalized``/``redirects`` with ``from`` and ``to``;
    ``continue`` an object of strings or numbers; ``warnings`` an object."""
    for key in ("query", "continue", "warnings"):
        if key in data and not isinstance(data[key], dict):
            _wrong(key, data[key], "an object")
    for name, value in (data.get("continue") or {}).items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            _wrong(f"continue.{name}", value, "a string or a number")
    for name, rows in (data.get("query") or {}).items():
        if not isinstance(rows, list):
            if name in ("pages", "normalized", "redirects", "interwiki"):
                _wrong(f"query.{name}", rows, "a list of objects")
            continue  # searchinfo, a listing's counts...
        for index, row in enumerate(rows):
            where = f"query.{name}[{index}]"
            if not isinstance(row, dict):
                _wrong(where, row, "an object")
            if name in ("normalized", "redirects"):
                for end in ("from", "to"):
                    if not isinstance(row.get(end), str):
                        _wrong(f"{where}.{end}", row.get(end), "a title")
            if name == "pages":
                for prop in _PAGE_LISTS:
                    values = row.get(prop, [])
                    if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
                        _wrong(f"{where}.{prop}", values, "a list of objects")
    return data


#: The lists of a page the spider reads (their entries are objects).
_PAGE_LISTS = ("links", "categories", "templates", "revisions", "imageinfo")


def _wrong(where: str, value: Any, expected: str) -> None:
    kind = "null" if value is None else type(value).__name__
    raise ApiError("badresponse", f"the answer's {where} is {kind}, expected {expected}")


def warnings_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    """``(module, text)`` for every warning in a response (formatversion 1 and 2 shapes)."""
    found = []
    for module, body in (data.get("warnings") or {}).items():
        text = body.get("warnings", body.get("*", "")) if isinstance(body, dict) else body
        found.append((printable(module, 100), printable(text)))
    return found


def decode_json(response: Response) -> Any:
    """The response body as JSON, or :class:`ApiError` ``badjson`` saying what came."""
    try:
        return json_bytes.loads(response.body)
    except ValueError as exc:
        snippet = response.body[:120].decode("utf-8", "replace")
        ctype = (response.headers.get("Content-Type") or b"").decode("latin-1")
        raise ApiError(
            "badjson", f"not JSON ({exc}); Content-Type {ctype!r}, body starts {snippet!r}"
        ) from exc
