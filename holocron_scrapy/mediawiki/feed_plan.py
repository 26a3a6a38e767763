"""What a page of change feed entries (:mod:`.feeds`) puts back into the queue, decided from the
work items the entries' titles name:

* an edit or a new page: the item, unless its record already has that revision or a later one;
  a title the queue does not know joins at depth 0 when its namespace is enumerated whole by an
  ``allpages`` seed (a page linked from a refetched page is discovered as usual; a skipped
  "missing" item whose page now exists is requeued and fetched);
* a deletion, a restore, an upload, a merge, an import: the items of the titles it names;
* a move: the old title (its refetch finds a redirect, whose target is queued at its depth, or
  a missing page, recorded as deleted) and the new one (requeued if known, else queued at the
  old one's depth when its namespace is crawled);
* an edit of a template or a module: also every page that transcludes it (``list=embeddedin``,
  see :func:`.feeds.embeddedin_url`): their links, categories and html change, their
  ``lastrevid`` not;
* a page added to or removed from a category (``categorize``): the category's members listing,
  if the crawl has one (a category seed, or a category page with ``discovery.categories``),
  runs again, and the members it did not know join as its members do.


Pure functions, no Scrapy and no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from holocron_scrapy.model import DELETED_VERSION

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from holocron_scrapy.mediawiki.feeds import Change
    from holocron_scrapy.store.sync import KnownItem

#: Namespaces whose pages others transclude: an edit there re-renders the pages using it.
TRANSCLUDED_NAMESPACES = frozenset({10, 828})  # Template:, Module:
REOPENABLE = frozenset({"completed", "skipped"})


def titles_of(changes: Collection[Change]) -> dict[str, int]:
    """Every title the changes name (a move's target, a merge's destination too), with its
    namespace (``-1`` when the entry does not say: a merge destination)."""
    titles: dict[str, int] = {}
    for change in changes:
        titles.setdefault(change.title, change.ns)
        if change.target is not None:
            titles.setdefault(change.target[1], change.target[0])
        if change.dest is not None:
            titles.setdefault(change.dest, -1)
    return titles


@dataclass(slots=True)
class Plan:
    """What the changes put into the queue: titles to requeue (with their other resources),
    new titles ``(title, ns, depth)``, and templates whose users are to be looked up."""

    requeue: set[str] = field(default_factory=set)
    new: dict[str, tuple[int, int]] = field(default_factory=dict)
    transcluded: set[str] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)  # whose members changed


def plan(
    changes: Collection[Change],
    known: Mapping[str, KnownItem],
    *,
    allpages: Collection[int],
    namespaces: Collection[int],
) -> Plan:
    """See the module docstring. ``known``: the page-type work item of each title named."""
    result = Plan()

    def reopen(title: str) -> bool:
        item = known.get(title)
        if item is not None and item.status in REOPENABLE:
            result.requeue.add(title)
        return item is not None

    def join(title: str, ns: int, depth: int) -> None:
        if title not in known and title not in result.new:
            result.new[title] = (ns, depth)

    for change in changes:
        if change.ns in TRANSCLUDED_NAMESPACES and change.kind in ("edit", "new"):
            result.transcluded.add(change.title)
        if change.kind == "categorize":
            result.categories.add(change.title)
        elif change.kind in ("edit", "new"):
            item = known.get(change.title)
            if item is None:
                if change.ns in allpages:
                    join(change.title, change.ns, 0)
            elif not _has_revision(item, change.revid):
                reopen(change.title)
        elif change.kind.startswith("move/") and change.target is not None:
            old = known.get(change.title)
            if old is not None and old.status == "completed":
                reopen(change.title)
            target_ns, target = change.target
            if not reopen(target):
                if old is not None and target_ns in namespaces:
                    join(target, target_ns, old.depth)
                elif target_ns in allpages:
                    join(target, target_ns, 0)
        elif change.kind == "delete/delete":
            item = known.get(change.title)
            if item is not None and item.version not in (None, DELETED_VERSION):
                reopen(change.title)  # its refetch records the deletion
        else:
            if not reopen(change.title) and change.ns in allpages:
                join(change.title, change.ns, 0)
            if change.dest is not None:
                reopen(change.dest)
    return result


def _has_revision(item: KnownItem, revid: int | None) -> bool:
    """Whether the item's last record already holds revision ``revid`` or a later one."""
    version = item.version
    if item.status != "completed" or revid is None or version is None:
        return False
    if version == DELETED_VERSION or not version.isdigit():
        return False
    return int(version) >= revid
