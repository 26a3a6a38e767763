"""The payload stored for an HTTP response body (re-exported by :mod:`holocron_scrapy.http.api`):
a JSON response as the JSON it holds; anything else as ``{content_type, encoding, text}``, or
``{content_type, encoding: "base64", base64}`` when it is not text.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Literal

#: The formats of a stored payload.
PayloadFormat = Literal["json", "text", "base64"]

_JSON_TYPE_RE = re.compile(r"^application/(?:[\w.+-]+\+)?json$|^text/json$", re.IGNORECASE)
_TEXT_TYPE_RE = re.compile(
    r"^text/|^application/(?:[\w.+-]+\+)?(?:xml|javascript|ecmascript|x-www-form-urlencoded)$",
    re.IGNORECASE,
)


class PayloadError(ValueError):
    """A body that cannot be stored as its Content-Type says (invalid JSON)."""


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_json_type(content_type: str) -> bool:
    return bool(_JSON_TYPE_RE.match(media_type(content_type)))


def encode_payload(
    body: bytes, content_type: str, text_encoding: str | None
) -> tuple[Any, PayloadFormat]:
    """The payload to store for a body and its format.

    JSON (``application/json``, ``*+json``): the parsed document, for discovery and the
    ``resource_id`` only — what is stored is the body's own text (:func:`json_text`). It must
    be UTF-8 (RFC 8259) and JSON: ``PayloadError`` otherwise, also for ``NaN`` and
    ``Infinity``, which are not JSON. Text (``text/*``, XML, JavaScript):
    ``{content_type, encoding, text}`` decoded with ``text_encoding`` (the response's, else
    UTF-8). Anything else, or text that does not decode:
    ``{content_type, encoding: "base64", base64}``.
    """
    if is_json_type(content_type):
        try:
            return json.loads(json_text(body), parse_constant=_not_json_constant), "json"
        except ValueError as exc:
            snippet = body[:120].decode("utf-8", "replace")
            raise PayloadError(
                f"not JSON ({exc}); Content-Type {content_type!r}, body starts {snippet!r}"
            ) from exc
    if _TEXT_TYPE_RE.match(media_type(content_type)):
        encoding = text_encoding or "utf-8"
        try:
            text = body.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            pass
        else:
            return {"content_type": content_type, "encoding": encoding, "text": text}, "text"
    encoded = base64.b64encode(body).decode("ascii")
    return {"content_type": content_type, "encoding": "base64", "base64": encoded}, "base64"


def json_text(body: bytes) -> str:
    """A JSON body's exact text, as stored (a UTF-8 byte order mark dropped):
    ``UnicodeDecodeError`` when it is not UTF-8. Numbers, escapes, key order and duplicate
    keys stay as the server sent them; its UTF-8 encoding is the body's bytes."""
    return body.decode("utf-8-sig")


def _not_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")
