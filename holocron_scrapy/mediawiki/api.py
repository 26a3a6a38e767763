"""The MediaWiki Action API, as pure functions: page query URLs, namespaces, continuation.

No Scrapy and no I/O here, so every rule is tested offline on recorded real responses. The
error codes and shape checks are in :mod:`.errors`, the merging of a batch's pages and title
resolution in :mod:`.pages` (their names are importable from here too).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from holocron_scrapy.mediawiki.errors import (
    API_ERRORS,
    ERROR_HEADER,
    ApiError,
    ErrorRule,
    OnError,
    check_envelope,
    check_shape,
    error_rule,
    warnings_of,
)
from holocron_scrapy.mediawiki.pages import PageSet

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "API_ERRORS",
    "CANONICAL_NAMESPACES",
    "DEFAULT_MAXLAG",
    "ERROR_HEADER",
    "MAX_TITLES_PER_REQUEST",
    "OLDER_FILE_VERSIONS",
    "OPTIONAL_PROPS",
    "PAGE_QUERY",
    "ApiError",
    "ErrorRule",
    "OnError",
    "PageSet",
    "check_envelope",
    "check_shape",
    "current_file_version",
    "error_rule",
    "namespace_of",
    "next_continue",
    "query_url",
    "warnings_of",
]

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

#: ``maxlag`` sent with every request unless the setting says otherwise: Wikimedia's etiquette
#: (https://www.mediawiki.org/wiki/Manual:Maxlag_parameter) asks non-interactive clients for 5.
DEFAULT_MAXLAG = 5


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
