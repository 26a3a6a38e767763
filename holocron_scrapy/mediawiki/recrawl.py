"""``-a recrawl=changed``: which completed pages changed at the source, from batched ``prop=info``
(the full pass, when the change feeds do not reach back to the sync point: see
:mod:`holocron_scrapy.mediawiki.feeds`).

Every completed page item holds the ``lastrevid`` of its last record (``work_items.version``).
One ``prop=info`` query per 50 titles answers each page's current ``lastrevid``: a different one
means the page changed (an edit, a move or a redirect: redirects are not followed, so a page
turned into a redirect is seen as changed), ``missing`` that it was deleted. A page ``touched``
after its last record was completed changed too, though its ``lastrevid`` did not: a template
it uses, a page it links to (created or deleted), a category was edited, so its links,
categories and html may differ (the wiki's clock against the crawler's: a crawler whose clock
runs late refetches a few unchanged pages, which write nothing). All go back into the queue;
the refetch records the new content, or the deletion (see the mediawiki spider).
Pure functions, no Scrapy and no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from holocron_scrapy.model import DELETED_VERSION

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The version of an item whose last record says it is a redirect now (a moved page).
REDIRECT_VERSION = "redirect"

#: The current revision id of each page (``lastrevid``), and ``missing`` for deleted ones. No
#: ``redirects``: a redirect is answered as the redirect page itself.
INFO_QUERY: dict[str, str] = {
    "action": "query",
    "format": "json",
    "formatversion": "2",
    "prop": "info",
}


@dataclass(frozen=True, slots=True)
class KnownPage:
    """A completed page item: its id, title and version (``lastrevid``) at its last record,
    and when that record was completed (naive UTC)."""

    work_item_id: int
    title: str
    version: str | None
    finished_at: datetime | None = None


@dataclass(slots=True)
class Verdict:
    """What a ``prop=info`` answer says about the pages asked for."""

    changed: list[KnownPage] = field(default_factory=list)
    touched: list[KnownPage] = field(default_factory=list)  # changed: same lastrevid, touched
    deleted: list[KnownPage] = field(default_factory=list)
    unchanged: list[KnownPage] = field(default_factory=list)
    unanswered: list[KnownPage] = field(default_factory=list)  # absent or invalid

    @property
    def to_refetch(self) -> list[KnownPage]:
        return self.changed + self.touched + self.deleted


def info_url(api_url: str, titles: Sequence[str], maxlag: float | None = None) -> str:
    """The URL of one ``prop=info`` query for ``titles`` (at most 50), with ``maxlag`` like
    every other API request."""
    params = dict(INFO_QUERY)
    params["titles"] = "|".join(titles)
    if maxlag is not None and maxlag > 0:
        params["maxlag"] = f"{maxlag:g}"
    return f"{api_url}?{urlencode(params, quote_via=quote)}"


def compare(data: dict[str, Any], known: Sequence[KnownPage]) -> Verdict:
    """Sort ``known`` pages by what the ``prop=info`` response ``data`` says of them now.

    A page whose last record is a deletion (version ``"deleted"``) and is still missing is
    unchanged; one that exists again is changed.
    """
    query = data.get("query") or {}
    normalized = {entry["from"]: entry["to"] for entry in query.get("normalized", [])}
    pages = {page.get("title"): page for page in query.get("pages", [])}
    verdict = Verdict()
    for page_item in known:
        page = pages.get(normalized.get(page_item.title, page_item.title))
        if page is None or page.get("invalid"):
            verdict.unanswered.append(page_item)
        elif page.get("missing"):
            if page_item.version == DELETED_VERSION:
                verdict.unchanged.append(page_item)
            else:
                verdict.deleted.append(page_item)
        elif page_item.version == REDIRECT_VERSION:
            # Recorded as a redirect: still one is unchanged (its target is fetched on its own;
            # the change feeds see a redirect retargeted), a page again is changed.
            (verdict.unchanged if page.get("redirect") else verdict.changed).append(page_item)
        elif str(page.get("lastrevid")) != page_item.version:
            verdict.changed.append(page_item)
        elif _touched_since(page, page_item.finished_at):
            verdict.touched.append(page_item)
        else:
            verdict.unchanged.append(page_item)
    return verdict


def _touched_since(page: dict[str, Any], finished_at: datetime | None) -> bool:
    touched = page.get("touched")
    if finished_at is None or not isinstance(touched, str):
        return False
    try:
        moment = datetime.strptime(touched, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return False
    return moment.replace(tzinfo=None) > finished_at


def redirect_payload(title: str, target: str) -> dict[str, Any]:
    """The payload of the record saying a title that had a record is a redirect now (a moved
    page): the same for as long as it redirects to the same page."""
    return {"title": title, "redirect": True, "redirect_to": target}


def deletion_payload(page: dict[str, Any], version_before: str | None) -> dict[str, Any]:
    """The payload of the record saying a page is gone: the API's ``missing`` page object,
    marked ``deleted``, with the ``lastrevid`` of the page's last record."""
    before: int | str | None = version_before
    if version_before is not None and version_before.isdigit():
        before = int(version_before)
    return {**page, "deleted": True, "lastrevid_before": before}
