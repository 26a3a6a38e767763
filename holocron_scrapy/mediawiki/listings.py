"""MediaWiki listings as pure functions: the work items that enumerate pages.

A listing (``list=allpages``, ``list=categorymembers``, ``list=search``, ``list=recentchanges``,
``list=backlinks``, ``action=opensearch``, or a batch of page ids) is one work item of resource
type ``listing``. Its resource id is the listing's identifying API parameters in a canonical
order, e.g. ``allpages?apnamespace=0``, ``categorymembers?cmtitle=Category:Jedi``,
``search?srsearch=lightsaber``, ``recentchanges?rcstart=2026-01-01T00:00:00Z``,
``pageids?pageids=4210|4211``, ``backlinks?bltitle=Darth Vader``, ``opensearch?search=luke``.
Each response's members become page work items, and the ``continue`` object to send back next
is the listing's cursor, saved in ``work_items.cursor``: a listing stopped in the middle resumes
from it.

The end of a listing is the absence of ``continue``, never a batch shorter than the limit (a
wiki in miser mode returns short, even empty, batches with a ``continue``).

No Scrapy and no I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode

from holocron_scrapy.mediawiki import api as mwapi
from holocron_scrapy.mediawiki import resources
from holocron_scrapy.model import RESOURCE_LISTING as RESOURCE_LISTING  # noqa: PLC0414 (re-export)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from holocron_scrapy.config.sources import Seeds

#: Page ids per ``pageids`` listing (the API's limit for anonymous clients).
MAX_PAGEIDS_PER_LISTING = 50

CATEGORY_NAMESPACE = resources.CATEGORY_NAMESPACE

#: Parameters of every listing query.
_COMMON: dict[str, str] = {"action": "query", "format": "json", "formatversion": "2"}

#: module -> (the parameter that identifies the listing, the fixed parameters of its query;
#: ``{limit}`` is replaced by the list limit). ``pageids`` is no ``list=`` module: a plain
#: query for page ids answers with their titles.
_MODULES: dict[str, tuple[str, dict[str, str]]] = {
    "allpages": (
        "apnamespace",
        {"list": "allpages", "aplimit": "{limit}", "apfilterredir": "nonredirects"},
    ),
    "categorymembers": (
        "cmtitle",
        {"list": "categorymembers", "cmlimit": "{limit}", "cmprop": "ids|title|type"},
    ),
    "search": (
        "srsearch",
        {"list": "search", "srlimit": "{limit}", "srwhat": "text", "srprop": ""},
    ),
    "recentchanges": (
        "rcstart",
        {
            "list": "recentchanges",
            "rclimit": "{limit}",
            "rcprop": "title|ids|timestamp",
            "rcdir": "newer",
            "rctype": "edit|new",
        },
    ),
    "pageids": ("pageids", {}),
    # prefix suggestions (action=opensearch): one answer, no continuation; redirects are
    # returned as they are (the page query resolves them)
    "opensearch": (
        "search",
        {"action": "opensearch", "limit": "{limit}", "namespace": "0", "redirects": "return"},
    ),
    # discovery.backlinks: the pages linking to a page (redirects to it left out)
    "backlinks": (
        "bltitle",
        {"list": "backlinks", "bllimit": "{limit}", "blfilterredir": "nonredirects"},
    ),
}
#: The key of each module's members in ``query``.
_RESULT_KEYS: dict[str, str] = {
    "allpages": "allpages",
    "categorymembers": "categorymembers",
    "search": "search",
    "recentchanges": "recentchanges",
    "pageids": "pages",
    "backlinks": "backlinks",
    "opensearch": "opensearch",  # see as_query
}


class ListingError(ValueError):
    """A listing resource id that names no listing this module knows."""


@dataclass(frozen=True, slots=True)
class Listing:
    """A listing: its module and the value of its identifying parameter."""

    module: str
    value: str

    @property
    def resource_id(self) -> str:
        """The canonical resource id, ``module?param=value`` (``:`` and ``|`` kept readable)."""
        param = _MODULES[self.module][0]
        return f"{self.module}?{urlencode({param: self.value}, quote_via=quote, safe=':|')}"

    @classmethod
    def parse(cls, resource_id: str) -> Listing:
        module, sep, query = resource_id.partition("?")
        if not sep or module not in _MODULES:
            raise ListingError(f"not a listing: {resource_id!r}")
        pairs = parse_qsl(query, keep_blank_values=True)
        param = _MODULES[module][0]
        if len(pairs) != 1 or pairs[0][0] != param:
            raise ListingError(f"a {module} listing takes exactly {param}=: {resource_id!r}")
        return cls(module, pairs[0][1])


def allpages(namespace: int) -> Listing:
    return Listing("allpages", str(namespace))


def categorymembers(category: str) -> Listing:
    return Listing("categorymembers", category)


def search(text: str) -> Listing:
    return Listing("search", text)


def recentchanges(since: str) -> Listing:
    return Listing("recentchanges", since)


def pageids(ids: Iterable[int]) -> Listing:
    return Listing("pageids", "|".join(str(i) for i in ids))


def backlinks(title: str) -> Listing:
    return Listing("backlinks", title)


def opensearch(prefix: str) -> Listing:
    return Listing("opensearch", prefix)


def seed_listings(seeds: Seeds) -> list[Listing]:
    """The listings a source's seeds start (besides its titles), in the file's order."""
    listings = [allpages(ns) for ns in seeds.allpages]
    listings += [categorymembers(title) for title in seeds.categories]
    listings += [search(text) for text in seeds.search]
    listings += [opensearch(prefix) for prefix in seeds.opensearch]
    if seeds.recentchanges_since is not None:
        listings.append(recentchanges(seeds.recentchanges_since))
    ids = list(seeds.pageids)
    listings += [
        pageids(ids[i : i + MAX_PAGEIDS_PER_LISTING])
        for i in range(0, len(ids), MAX_PAGEIDS_PER_LISTING)
    ]
    return listings


def listing_url(
    api_url: str,
    listing: Listing,
    cont: Mapping[str, str] | None = None,
    *,
    limit: str = "max",
    maxlag: float | None = None,
) -> str:
    """The URL of a listing's query, continued with ``cont`` (the whole ``continue`` object of
    the previous response) when given; ``maxlag`` as in
    :func:`holocron_scrapy.mediawiki.api.query_url`."""
    param, fixed = _MODULES[listing.module]
    params = dict(_COMMON)
    params.update({k: v.replace("{limit}", limit) for k, v in fixed.items()})
    params[param] = listing.value
    if cont:
        params.update(cont)
    if maxlag is not None and maxlag > 0:
        params["maxlag"] = f"{maxlag:g}"
    return f"{api_url}?{urlencode(params, quote_via=quote)}"


def as_query(listing: Listing, data: Any) -> Any:
    """A decoded response of ``listing`` in the shape of a query result: ``action=opensearch``
    answers ``[prefix, [titles], [descriptions], [urls]]``, which becomes
    ``{"query": {"opensearch": [{"title": …, "ns": …}, …]}}`` (the namespace that the title's
    prefix names: a search for ``Category:Je`` suggests categories). Anything else (another
    listing's answer, an error envelope) is returned as it is."""
    if listing.module != "opensearch" or not isinstance(data, list):
        return data
    titles = data[1] if len(data) > 1 and isinstance(data[1], list) else []
    rows = [{"title": t, "ns": mwapi.namespace_of(t)} for t in titles if isinstance(t, str)]
    return {"query": {"opensearch": rows}}


@dataclass(frozen=True, slots=True)
class Member:
    """A page a listing response names."""

    title: str
    ns: int | None
    subcategory: bool = False  # a categorymembers member of type "subcat"


def members(listing: Listing, data: Mapping[str, Any]) -> list[Member]:
    """The pages named by one response of ``listing`` (each title once, in the API's order).

    Missing and invalid pages of a ``pageids`` listing are left out.
    """
    rows = (data.get("query") or {}).get(_RESULT_KEYS[listing.module]) or ()
    found: dict[str, Member] = {}
    for row in rows:
        title = row.get("title")
        if not isinstance(title, str) or not title or row.get("missing") or row.get("invalid"):
            continue
        ns = row.get("ns")
        subcategory = listing.module == "categorymembers" and (
            row.get("type") == "subcat" or ns == CATEGORY_NAMESPACE
        )
        found.setdefault(title, Member(title, ns if isinstance(ns, int) else None, subcategory))
    return list(found.values())
