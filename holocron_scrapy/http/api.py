"""The generic HTTP spider's logic as pure functions: URLs, resource ids, JSON paths, pagination
and payloads. No Scrapy requests, no I/O: the spider (``spiders/http.py``) is a shell around
these.

* A work item's ``resource_id`` is its request: the canonical absolute URL of a GET
  (:func:`resource_key`: query sorted, fragment dropped), or ``POST <url> <body>`` for a POST seed
  (:func:`post_key`). The source-wide ``params`` (an API key, OpenAlex's ``mailto``) are added
  when the request is sent (:func:`with_params`) and are no part of the identity.
* A JSON path is dotted (``meta.next_cursor``); a list on the way is walked element by element,
  so ``results.id`` is every result's id (:func:`json_values`).
* Payloads (:func:`encode_payload`, from :mod:`holocron_scrapy.http.payloads`): a JSON response
  is stored as the JSON it holds; anything else as ``{content_type, encoding, text}``, or
  ``{content_type, encoding: "base64", base64}`` when it is not text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from w3lib.url import add_or_replace_parameter, canonicalize_url

from holocron_scrapy.http import payloads
from holocron_scrapy.model import canonical_json
from holocron_scrapy.store.limits import clean_text

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

# The payload functions, where the spider finds its logic.
PayloadError = payloads.PayloadError
PayloadFormat: TypeAlias = payloads.PayloadFormat
encode_payload = payloads.encode_payload
is_json_type = payloads.is_json_type
json_text = payloads.json_text
media_type = payloads.media_type

_LINK_RE = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")
_REL_RE = re.compile(r"""rel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))""", re.IGNORECASE)


class Pagination(Protocol):
    """How a listing pages (the source file's :class:`holocron_scrapy.config.http.Pagination`,
    which imports this module)."""

    @property
    def kind(self) -> str: ...
    @property
    def field(self) -> str | None: ...
    @property
    def param(self) -> str | None: ...
    @property
    def start(self) -> str | None: ...
    @property
    def until_empty(self) -> str | None: ...
    @property
    def max_pages(self) -> int | None: ...


# -- identities -----------------------------------------------------------------------------


def absolute_url(base_url: str, ref: str) -> str:
    """``ref`` resolved against ``base_url`` (an absolute ``ref`` stays as it is)."""
    return urljoin(base_url, ref.strip())


def resource_key(url: str) -> str:
    """The identity of a GET: the canonical URL (query sorted, fragment dropped)."""
    return canonicalize_url(url)


def post_key(url: str, json_body: Any = None, form: Mapping[str, str] | None = None) -> str:
    """The identity of a POST: ``POST <canonical url> <body>`` with the JSON body in its
    canonical form, or the form sorted and URL-encoded."""
    body = canonical_json(json_body) if form is None else urlencode(sorted(form.items()))
    return f"POST {resource_key(url)} {body}"


def with_params(url: str, params: Mapping[str, str]) -> str:
    """``url`` with the ``params`` it does not already have appended (the URL's own win), its
    query otherwise untouched."""
    if not params:
        return url
    parts = urlsplit(url)
    present = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    missing = [(k, v) for k, v in params.items() if k not in present]
    if not missing:
        return url
    query = f"{parts.query}&{urlencode(missing)}" if parts.query else urlencode(missing)
    return urlunsplit(parts._replace(query=query))


def host_allowed(url: str, domains: Iterable[str]) -> bool:
    """Whether ``url`` is http(s) on one of ``domains`` or a subdomain of one."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.scheme not in ("http", "https") or not host:
        return False
    return any(host == d or host.endswith(f".{d}") for d in (d.lower() for d in domains))


#: Request headers never stored as sent (with the headers a source fills from the environment).
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})


def masked_headers(headers: Mapping[str, str], secret: Iterable[str] = ()) -> dict[str, str]:
    """``headers`` with the values of :data:`SENSITIVE_HEADERS` and of ``secret`` (lower-case
    names) replaced by ``***``, as stored with a record."""
    hidden = SENSITIVE_HEADERS | set(secret)
    return {k: "***" if k.lower() in hidden else v for k, v in headers.items()}


# -- JSON paths -----------------------------------------------------------------------------


def json_values(data: Any, path: str) -> list[Any]:
    """The values at a dotted ``path``; lists met on the way are walked element by element
    (``results.id``) and a list at the end gives its elements. Nulls are left out."""
    nodes = [data]
    for part in path.split("."):
        found: list[Any] = []
        for node in nodes:
            for value in node if isinstance(node, list) else [node]:
                if isinstance(value, dict) and part in value:
                    found.append(value[part])
        nodes = found
    values: list[Any] = []
    for node in nodes:
        values.extend(node if isinstance(node, list) else [node])
    return [v for v in values if v is not None]


def json_value(data: Any, path: str) -> Any:
    """The one value at a dotted ``path`` (no list walking), or ``None``."""
    node = data
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def record_resource_id(payload: Any, id_path: str, url_key: str) -> str | None:
    """A record's ``resource_id``: ``url_key`` for ``id_path == "url"``, else the scalar at the
    JSON path (``None`` when there is none)."""
    if id_path == "url":
        return url_key
    value = json_value(payload, id_path)
    if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
        return None
    return str(value)


def last_segment(value: str) -> str:
    """The last non-empty path segment of a URL or path (``https://openalex.org/W42`` -> W42)."""
    segments = [s for s in urlsplit(value).path.split("/") if s]
    return segments[-1] if segments else ""


def discovered_url(value: Any, template: str | None, base_url: str) -> str | None:
    """The URL a discovered JSON value stands for: the value itself (resolved against
    ``base_url``), or ``template`` with ``{value}`` and ``{last_segment}`` filled in."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = clean_text(str(value).strip())  # a lone surrogate has no URL encoding
    if not text:
        return None
    if template is not None:
        tail = last_segment(text)
        if "{last_segment}" in template and not tail:
            return None
        text = template.replace("{value}", text).replace("{last_segment}", tail)
    return absolute_url(base_url, text)


# -- pagination -----------------------------------------------------------------------------


def link_next(values: Iterable[str]) -> str | None:
    """The ``rel="next"`` target of ``Link`` header values (RFC 8288), or ``None``."""
    for value in values:
        for target, params in _LINK_RE.findall(value):
            for quoted, bare in _REL_RE.findall(params):
                if "next" in (quoted or bare).lower().split():
                    return str(target)
    return None


def page_number_of(url: str, param: str, start: int) -> int:
    """The page number a URL asks for (``start`` when it does not say)."""
    for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if name == param and value.lstrip("-").isdigit():
            return int(value)
    return start


def set_param(url: str, name: str, value: str) -> str:
    """``url`` with query parameter ``name`` set to ``value`` (replaced if present)."""
    return add_or_replace_parameter(url, name, value)


@dataclass(frozen=True, slots=True)
class PageStep:
    """What a listing page says about the next one: its URL, or ``None`` at the end."""

    next_url: str | None
    reason: str  # why it ends (for the log), or ""


def next_json(data: Any, url: str, field: str, param: str | None) -> PageStep:
    """``json_next``: the value at ``field`` is the next cursor (sent back as ``param``), or,
    without ``param``, the next page's URL. A missing, null or empty value ends the listing."""
    value = json_value(data, field)
    if value is None or value == "" or isinstance(value, bool | dict | list):
        return PageStep(None, f"no {field}")
    if param is None:
        return PageStep(absolute_url(url, str(value)), "")
    return PageStep(set_param(url, param, str(value)), "")


def next_page_number(
    data: Any, url: str, *, param: str, start: int, until_empty: str, max_pages: int | None
) -> PageStep:
    """``page_number``: the next page while this one's list at ``until_empty`` is not empty
    and fewer than ``max_pages`` pages were read."""
    if not json_values(data, until_empty):
        return PageStep(None, f"{until_empty} is empty")
    page = page_number_of(url, param, start)
    if max_pages is not None and page - start + 1 >= max_pages:
        return PageStep(None, f"max_pages {max_pages}")
    return PageStep(set_param(url, param, str(page + 1)), "")


def next_link_header(links: Iterable[str], url: str) -> PageStep:
    """``link_header``: the ``rel="next"`` link, resolved against the page's URL."""
    target = link_next(links)
    if target is None:
        return PageStep(None, "no Link rel=next")
    return PageStep(absolute_url(url, target), "")


def next_step(
    pagination: Pagination, url: str, data: Any, links: Iterable[str], response_url: str
) -> PageStep:
    """Where a listing goes after the page at ``url`` (answered from ``response_url``, with
    ``data`` when it was JSON and the ``Link`` header values ``links``)."""
    if pagination.kind == "link_header":
        return next_link_header(links, response_url)
    if data is None:
        return PageStep(None, "not JSON")
    if pagination.kind == "json_next":
        assert pagination.field is not None
        return next_json(data, url, pagination.field, pagination.param)
    assert pagination.param is not None
    assert pagination.until_empty is not None
    return next_page_number(
        data,
        url,
        param=pagination.param,
        start=int(pagination.start or 1),
        until_empty=pagination.until_empty,
        max_pages=pagination.max_pages,
    )


# -- versions (recrawl=changed) ------------------------------------------------------------

_ETAG = "etag:"
_LAST_MODIFIED = "last-modified:"


def version_of(etag: str | None, last_modified: str | None) -> str | None:
    """A resource's version from its response's validators (the ETag, else Last-Modified),
    kept in ``work_items.version`` for the conditional request of ``recrawl=changed``."""
    if etag:
        return f"{_ETAG}{etag}"
    if last_modified:
        return f"{_LAST_MODIFIED}{last_modified}"
    return None


def conditional_headers(version: str | None) -> dict[str, str]:
    """``If-None-Match`` / ``If-Modified-Since`` for a version of :func:`version_of`."""
    if version and version.startswith(_ETAG):
        return {"If-None-Match": version.removeprefix(_ETAG)}
    if version and version.startswith(_LAST_MODIFIED):
        return {"If-Modified-Since": version.removeprefix(_LAST_MODIFIED)}
    return {}
