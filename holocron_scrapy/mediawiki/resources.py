"""What is stored per page besides its current revision: the source file's ``resources:``.

Each resource is its own record type and its own work item (dedupe key
``mediawiki:<source>:<type>:<title>``), so adding one to a source later fetches only it:

* ``page`` — the current revision with its content and ids, links and info (the default; it
  drives discovery: seeds and links are page items, and a completed page queues the page's other
  resources under its canonical title);
* ``html`` — ``action=parse``: the rendered HTML with its sections, links and categories; the
  payload is the ``parse`` object;
* ``revisions`` — the full history (ids, timestamps, users, comments, sizes, SHA-1s; the content
  too with ``MEDIAWIKI_REVISIONS_CONTENT``), oldest first, followed through every ``continue``
  and merged into one page object;
* ``info`` — page info and page props, 50 titles per request; redirects are not followed (the
  title is canonical already).

Pure functions: no Scrapy and no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote, urlencode

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

PAGE = "page"
#: Category and template pages are resources of their own type when their discovery is on
#: (``discovery.categories``, ``discovery.templates``), file description pages when their
#: namespace (6) is in ``discovery.namespaces``; they are fetched as pages are (a file's with
#: its ``imageinfo``).
CATEGORY = "category"
TEMPLATE = "template"
FILE = "file"
#: The resource types fetched by the page query, and checked by ``recrawl=changed``.
PAGE_TYPES: tuple[str, ...] = (PAGE, CATEGORY, TEMPLATE, FILE)
FILE_NAMESPACE = 6
TEMPLATE_NAMESPACE = 10
CATEGORY_NAMESPACE = 14
HTML = "html"
REVISIONS = "revisions"
INFO = "info"
#: The resource types a source file may list, ``page`` first.
RESOURCE_TYPES: tuple[str, ...] = (PAGE, HTML, REVISIONS, INFO)
DEFAULT_RESOURCES: tuple[str, ...] = (PAGE,)

#: The rendered page. ``revid`` says which revision was rendered. ``disablelimitreport`` drops
#: the parser's report comments from the HTML (``Cached time: …``, CPU time, the parser cache key):
#: they change whenever the page is parsed again, and an unchanged page must hash the same.
PARSE_QUERY: Mapping[str, str] = {
    "action": "parse",
    "format": "json",
    "formatversion": "2",
    "prop": "text|sections|links|categories|revid|displaytitle",
    "disablelimitreport": "1",
}

#: Every revision of one page, oldest first (the API allows ``rvlimit`` and ``rvdir`` for one
#: title per request only). ``rvlimit=max`` is 500 for anonymous clients, 50 with content.
HISTORY_QUERY: Mapping[str, str] = {
    "action": "query",
    "format": "json",
    "formatversion": "2",
    "prop": "revisions",
    "rvprop": "ids|timestamp|flags|comment|user|sha1|size",
    "rvslots": "main",
    "rvlimit": "max",
    "rvdir": "newer",
}
HISTORY_CONTENT_RVPROP = "ids|timestamp|flags|comment|user|sha1|size|contentmodel|content"

#: Page info (the props anonymous clients may read) and page props, 50 titles per request.
INFO_QUERY: Mapping[str, str] = {
    "action": "query",
    "format": "json",
    "formatversion": "2",
    "prop": "info|pageprops",
    "inprop": "protection|url|displaytitle|talkid|subjectid",
}


class DiscoveryFlags(Protocol):
    """What :func:`resource_type_of` reads of a source's ``discovery`` (the source file's
    :class:`holocron_scrapy.config.sources.Discovery`, which imports this module)."""

    @property
    def categories(self) -> bool: ...
    @property
    def templates(self) -> bool: ...
    @property
    def namespaces(self) -> tuple[int, ...]: ...


def resource_type_of(ns: object, discovery: DiscoveryFlags) -> str:
    """The resource type of a title in namespace ``ns`` (every seed, link, listing member and
    redirect target goes through here, so one page is one work item): ``category`` (14) with
    ``discovery.categories``, ``template`` (10) with ``discovery.templates``, ``file`` (6) when
    6 is in ``discovery.namespaces``, else ``page``."""
    if ns == CATEGORY_NAMESPACE and discovery.categories:
        return CATEGORY
    if ns == TEMPLATE_NAMESPACE and discovery.templates:
        return TEMPLATE
    if ns == FILE_NAMESPACE and FILE_NAMESPACE in discovery.namespaces:
        return FILE
    return PAGE


def _url(
    api_url: str,
    base: Mapping[str, str],
    extra: Mapping[str, str],
    cont: Mapping[str, str] | None,
    maxlag: float | None,
) -> str:
    params = {**base, **extra}
    if cont:
        params.update(cont)
    if maxlag is not None and maxlag > 0:
        params["maxlag"] = f"{maxlag:g}"
    return f"{api_url}?{urlencode(params, quote_via=quote)}"


def parse_url(api_url: str, title: str, maxlag: float | None = None) -> str:
    """``action=parse`` of one page (``missingtitle`` error when it does not exist)."""
    return _url(api_url, PARSE_QUERY, {"page": title}, None, maxlag)


def history_url(
    api_url: str,
    title: str,
    cont: Mapping[str, str] | None = None,
    maxlag: float | None = None,
    *,
    content: bool = False,
) -> str:
    """One page of the revision history of ``title``, continued with ``cont`` (the whole
    ``continue`` object of the previous response) when given."""
    extra = {"titles": title}
    if content:
        extra["rvprop"] = HISTORY_CONTENT_RVPROP
    return _url(api_url, HISTORY_QUERY, extra, cont, maxlag)


def info_url(
    api_url: str,
    titles: Sequence[str],
    cont: Mapping[str, str] | None = None,
    maxlag: float | None = None,
) -> str:
    """Page info and page props of ``titles`` (at most 50), without following redirects."""
    return _url(api_url, INFO_QUERY, {"titles": "|".join(titles)}, cont, maxlag)


def continued(url: str, cont: Mapping[str, str]) -> str:
    """``url`` (a first request, without ``continue``) continued with the whole ``continue``
    object of its last response."""
    return f"{url}&{urlencode(cont, quote_via=quote)}"
