"""The work items a crawl learns of: seeds, a page's links, categories, templates and
backlinks, a listing's members, and a completed page's other resources."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from holocron_scrapy.mediawiki import api as mwapi
from holocron_scrapy.mediawiki import listings, resources
from holocron_scrapy.model import RESOURCE_LISTING, NewWorkItem

if TYPE_CHECKING:
    from collections.abc import Iterator

    from holocron_scrapy.config.sources import SourceConfig
    from holocron_scrapy.model import WorkItem


class Discoverer:
    """New work items of one source, at their depth and priority (``strategy``)."""

    def __init__(self, config: SourceConfig, source_system: str) -> None:
        self.config = config
        self.source_system = source_system

    def work_item(
        self,
        resource_id: str,
        depth: int,
        parent: WorkItem | None,
        resource_type: str = resources.PAGE,
        hops: int = 0,
    ) -> NewWorkItem:
        """``hops``: the redirects that led to it (see :mod:`holocron_scrapy.bounds`)."""
        return NewWorkItem(
            self.source_system,
            self.config.name,
            resource_type,
            resource_id,
            depth,
            self.priority_of(depth),
            parent.id if parent else None,
            None,
            hops,
        )

    def priority_of(self, depth: int) -> int:
        """Breadth first: shallower first; depth first: deeper first."""
        return -depth if self.config.discovery.strategy == "breadth" else depth

    def listing_item(
        self, listing: listings.Listing, depth: int, parent: WorkItem | None
    ) -> NewWorkItem:
        return self.work_item(listing.resource_id, depth, parent, RESOURCE_LISTING)

    def resource_type_for(self, ns: object) -> str:
        """See :func:`resources.resource_type_of`."""
        return resources.resource_type_of(ns, self.config.discovery)

    def seeds(self) -> list[NewWorkItem]:
        """The seed titles and the seed listings, at depth 0. A title's resource type is that of
        the namespace its prefix names, as for a discovered title."""
        seeds = [
            self.work_item(t, 0, None, self.resource_type_for(mwapi.namespace_of(t)))
            for t in self.config.seeds.titles
        ]
        seeds += [
            self.listing_item(lst, 0, None) for lst in listings.seed_listings(self.config.seeds)
        ]
        return seeds

    def from_page(self, item: WorkItem, page: dict[str, Any]) -> Iterator[NewWorkItem]:
        """What a page below ``max_depth`` queues at depth + 1: its links, categories and
        templates in the configured namespaces (each title once, links first), the members of a
        category page (``discovery.categories``) and the pages linking to it
        (``discovery.backlinks``), both as listings."""
        discovery = self.config.discovery
        depth = item.depth + 1
        # One pass over the page's titles; what is the same for every title computed once.
        new = NewWorkItem
        system, name, parent = self.source_system, self.config.name, item.id
        priority = self.priority_of(depth)
        namespaces = discovery.namespaces
        types: dict[object, str] = {}
        seen: set[str] = set()
        for prop, on in (
            ("links", discovery.links),
            ("categories", discovery.categories),
            ("templates", discovery.templates),
        ):
            if not on:
                continue
            for link in page.get(prop, ()):
                title, ns = link.get("title"), link.get("ns")
                if ns in namespaces and title and title not in seen:
                    seen.add(title)
                    kind = types.get(ns)
                    if kind is None:
                        kind = types[ns] = self.resource_type_for(ns)
                    yield new(system, name, kind, title, depth, priority, parent, None, 0)
        if discovery.categories and page.get("ns") == listings.CATEGORY_NAMESPACE:
            members = listings.categorymembers(item.resource_id)
            yield self.listing_item(members, depth, item)
        if discovery.backlinks:
            yield self.listing_item(listings.backlinks(item.resource_id), depth, item)

    def listed(self, listing: listings.Listing, member: listings.Member) -> bool:
        """Whether a listing's member is queued: every member, except that the listings of
        discovery (backlinks; category members with ``discovery.categories``) keep only the
        configured namespaces."""
        discovery = self.config.discovery
        filtered = listing.module == "backlinks" or (
            listing.module == "categorymembers" and discovery.categories
        )
        return not filtered or member.ns in discovery.namespaces

    def from_stored(self, item: WorkItem, payload: str) -> list[NewWorkItem] | None:
        """What a completed item found again by a shorter path leads to at its new depth, read
        from the ``payload`` of its last record: a page's links and listings below
        ``max_depth`` and its other resources, as its parse queues them; None (fetch it again)
        for a page whose last record says it was deleted."""
        if item.resource_type not in resources.PAGE_TYPES:
            return []  # html, revisions, info: what they hold does not depend on the depth
        page = json.loads(payload)
        if not isinstance(page, dict) or page.get("deleted"):
            return None
        found = []
        if item.depth < self.config.discovery.max_depth:
            found = list(self.from_page(item, page))
        return found + list(self.other_resources(item))

    def other_resources(self, item: WorkItem) -> Iterator[NewWorkItem]:
        """A completed page's other configured resources, as work items under its canonical
        title at its depth (their own dedupe keys: each is fetched and recorded on its own)."""
        for resource_type in self.config.resources:
            if resource_type != resources.PAGE:
                yield self.work_item(item.resource_id, item.depth, item, resource_type)
