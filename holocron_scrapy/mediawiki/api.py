"""The MediaWiki Action API, as pure functions: query URLs, continuation, merging, title resolution.

No Scrapy and no I/O here, so every rule is tested offline on recorded real responses.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from holocron_scrapy.safe_text import printable

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: What a page record holds: the current revision (content and ids), the page's links and its
#: page info. ``redirects=1`` resolves redirects server-side; ``formatversion=2`` gives lists and
#: real booleans.
PAGE_QUERY: dict[str, str] = {
    "action": "query",
    "format": "json",
    "formatversion": "2",
    "prop": "revisions|links|info",
    "rvprop": "ids|timestamp|flags|comment|user|sha1|size|contentmodel|content",
    "rvslots": "main",
    "pllimit": "max",
    "redirects": "1",
}

#: Props the page query adds on demand, each with its parameters: ``categories`` and
#: ``templates`` (``discovery.categories``, ``discovery.templates``) continue on their own like
#: the links, and :class:`PageSet` merges them; ``imageinfo`` (``file`` items) is the current
#: version of the file: its URL, size, SHA-1, MIME type, upload time and uploader (the file
#: itself is not downloaded).
OPTIONAL_PROPS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "categories": {"cllimit": "max"},
        "templates": {"tllimit": "max"},
        "imageinfo": {"iiprop": "url|size|sha1|mime|timestamp|user"},
    }
)

#: MediaWiki's canonical (English) namespace names and their aliases, which every wiki accepts
#: whatever its language (``NamespaceInfo::$canonicalNames``, ``$wgNamespaceAliases``).
CANONICAL_NAMESPACES: Mapping[str, int] = MappingProxyType(
    {
        "media": -2,
        "special": -1,
        "talk": 1,
        "user": 2,
        "user talk": 3,
        "project": 4,
        "project talk": 5,
        "file": 6,
        "image": 6,
        "file talk": 7,
        "image talk": 7,
        "mediawiki": 8,
        "mediawiki talk": 9,
        "template": 10,
        "template talk": 11,
        "help": 12,
        "help talk": 13,
        "category": 14,
        "category talk": 15,
    }
)

#: Anonymous clients may ask for the content of at most 50 titles per request.
MAX_TITLES_PER_REQUEST = 50

_MAX_REDIRECT_HOPS = 10

#: ``maxlag`` sent with every request unless the setting says otherwise: Wikimedia's etiquette
#: (https://www.mediawiki.org/wiki/Manual:Maxlag_parameter) asks non-interactive clients for 5.
DEFAULT_MAXLAG = 5

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


def query_url(
    api_url: str,
    titles: list[str],
    cont: dict[str, str] | None = None,
    maxlag: float | None = None,
    *,
    props: Sequence[str] = (),
) -> str:
    """The URL of a page query for ``titles``, continued with ``cont`` when given.

    ``props`` (names of :data:`OPTIONAL_PROPS`) are added to :data:`PAGE_QUERY`'s, each with
    its parameters; without them the query is :data:`PAGE_QUERY` exactly.

    ``maxlag`` (seconds; ``None``, 0 or less: not sent) asks the wiki to refuse the request
    while its database replicas lag more than that. Every value is percent-encoded with
    ``quote`` (``+`` as ``%2B``: an unencoded ``+`` would be read as a space and silently ask
    for another title).
    """
    params = dict(PAGE_QUERY)
    for prop in props:
        params["prop"] += f"|{prop}"
        params.update(OPTIONAL_PROPS[prop])
    params["titles"] = "|".join(titles)
    if cont:
        params.update(cont)
    if maxlag is not None and maxlag > 0:
        params["maxlag"] = f"{maxlag:g}"
    return f"{api_url}?{urlencode(params, quote_via=quote)}"


def namespace_of(title: str) -> int:
    """The namespace a title's prefix names by its canonical name or alias
    (:data:`CANONICAL_NAMESPACES`, any case, ``_`` or spaces), else 0. A wiki's localized names
    (``Kategorie:``) are not known here: the API answers with the page's ``ns``."""
    prefix, sep, _ = title.partition(":")
    if not sep:
        return 0
    return CANONICAL_NAMESPACES.get(" ".join(prefix.replace("_", " ").split()).lower(), 0)


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


@dataclass
class PageSet:
    """The pages of one batch query, merged across its continuation responses.

    With several props in one query, each continues on its own (``"continue":
    "||revisions|info"`` while links go on): later responses carry more ``links`` and no
    ``revisions``. Pages are merged by page id (by title for missing and invalid ones): list
    values are concatenated in response order, other keys keep their first value.

    An answer must never mix two pages: one page id given for two titles, one title given two
    page ids, or one title normalized or redirected to two targets is an identity conflict.
    Nothing is merged across it; :meth:`conflict` names it for each title concerned.
    """

    pages: dict[str, dict[str, Any]] = field(default_factory=dict)
    normalized: dict[str, str] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    interwiki: set[str] = field(default_factory=set)
    conflicts: dict[str, str] = field(default_factory=dict)  # title -> the conflict
    _keys: dict[str, str] = field(default_factory=dict)  # title -> its page's key

    def add(self, data: dict[str, Any]) -> None:
        query = data.get("query") or {}
        for entry in query.get("normalized", []):
            self._map(self.normalized, "normalized", entry["from"], entry["to"])
        for entry in query.get("redirects", []):
            self._map(self.redirects, "redirected", entry["from"], entry["to"])
        for entry in query.get("interwiki", []):
            self.interwiki.add(entry["title"])
        for page in query.get("pages", []):
            title = page.get("title")
            key = f"id:{page['pageid']}" if "pageid" in page else f"title:{title}"
            known = self._keys.setdefault(str(title), key)
            if known != key:
                self._conflict(f"{title!r} answered as {_named(known)} and {_named(key)}", title)
            merged = self.pages.get(key)
            if merged is None:
                self.pages[key] = dict(page)
                continue
            if merged.get("title") != title:
                first = merged.get("title")
                self._conflict(f"{_named(key)} answered for {first!r} and {title!r}", first, title)
                continue  # never merged into the other title's page
            for name, value in page.items():
                if isinstance(value, list) and isinstance(merged.get(name), list):
                    merged[name] = merged[name] + value
                else:
                    merged.setdefault(name, value)

    def _map(self, mapping: dict[str, str], how: str, source: str, target: str) -> None:
        known = mapping.setdefault(source, target)
        if known != target:
            self._conflict(f"{source!r} {how} to both {known!r} and {target!r}", source)

    def _conflict(self, why: str, *titles: Any) -> None:
        for title in titles:
            self.conflicts.setdefault(str(title), why)

    def conflict(self, *titles: str) -> str | None:
        """The identity conflict of the answer about the first of ``titles`` that has one."""
        for title in titles:
            if title in self.conflicts:
                return f"identity conflict in the API's answer: {self.conflicts[title]}"
        return None

    def resolve(self, title: str) -> str:
        """The title that ``title`` stands for after normalization and redirects."""
        title = self.normalized.get(title, title)
        for _ in range(_MAX_REDIRECT_HOPS):
            target = self.redirects.get(title)
            if target is None:
                break
            title = target
        return title

    def page(self, title: str) -> dict[str, Any] | None:
        for page in self.pages.values():
            if page.get("title") == title:
                return page
        return None


def _named(key: str) -> str:
    kind, _, value = key.partition(":")
    return f"page id {value}" if kind == "id" else "a page without id"


#: ``imageinfo`` continues into a file's older versions (``iistart``) when a query names one
#: file: the page query wants the current version only, so it does not follow it.
OLDER_FILE_VERSIONS = "iistart"


def next_continue(data: dict[str, Any], drop: Sequence[str] = ()) -> dict[str, str] | None:
    """The whole ``continue`` object to send back, or ``None`` when the result is complete.

    Keys in ``drop`` are left out; when nothing but the ``continue`` key itself is left, the
    result is complete."""
    cont = data.get("continue")
    if not cont:
        return None
    kept = {str(k): str(v) for k, v in cont.items() if k not in drop}
    if len(kept) < len(cont) and set(kept) <= {"continue"}:
        return None
    return kept


def current_file_version(page: dict[str, Any]) -> dict[str, Any]:
    """``page`` with the first (current) entry of its ``imageinfo`` only: a continuation that
    ran on without ``iistart`` answers the current version again."""
    info = page.get("imageinfo")
    if isinstance(info, list) and len(info) > 1:
        return {**page, "imageinfo": info[:1]}
    return page
