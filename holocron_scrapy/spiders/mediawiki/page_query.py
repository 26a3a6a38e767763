"""Page items (and category, template and file items): up to ``MEDIAWIKI_TITLES_PER_REQUEST`` titles
per ``action=query`` for the current revision with its content, the page's links and its info,
following ``continue`` until every prop is complete (a page with 5,000 links loses none); the
pages are merged by page id across those responses. Then each title ends one way:

* a page: a record (the merged page as the API served it) and, while its depth is below
  ``max_depth``, what it leads to (see :class:`holocron_scrapy.mediawiki.discovery.Discoverer`);
* a redirect or a non-canonical title: skipped, and the target page queued at the same depth
  (the target is the record, the redirect is not); a redirect whose title had a record (a
  moved page) gets a record saying so (``redirect_to``);
* missing: a record of its deletion if it had a record before, else skipped; invalid: skipped;
* an answer that mixes up identities (one page id for two titles, one title with two page ids):
  failed, naming the conflict; nothing of the other title is merged into its record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from holocron_scrapy.frontier.extension import work_items_of
from holocron_scrapy.mediawiki import api as mwapi
from holocron_scrapy.mediawiki import resources
from holocron_scrapy.mediawiki.api_request import answered_url, api_request
from holocron_scrapy.mediawiki.pages import PageSet
from holocron_scrapy.mediawiki.recrawl import REDIRECT_VERSION, deletion_payload, redirect_payload
from holocron_scrapy.model import DELETED_VERSION, Outcome, Status, WorkItem
from holocron_scrapy.safe_text import printable
from holocron_scrapy.spiders.mediawiki.responses import note_response, record

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import scrapy
    from scrapy.http import Response

    from holocron_scrapy.items import ResourceRecord
    from holocron_scrapy.spiders.mediawiki.options import Wiki


class PageQuery:
    """``callback``: the spider's method its requests name (``JOBDIR``)."""

    def __init__(self, wiki: Wiki, callback: Callable[[Response], Any]) -> None:
        self.wiki = wiki
        self.callback = callback

    def requests(self, items: list[WorkItem]) -> list[scrapy.Request]:
        n = self.wiki.options.titles_per_request
        return [self.request(items[i : i + n], {}) for i in range(0, len(items), n)]

    def request(
        self, items: list[WorkItem], state: dict[str, Any], cont: dict[str, str] | None = None
    ) -> scrapy.Request:
        discovery = self.wiki.config.discovery
        props = [
            prop
            for prop, on in (
                ("categories", discovery.categories),
                ("templates", discovery.templates),
                ("imageinfo", items[0].resource_type == resources.FILE),
            )
            if on
        ]
        options = self.wiki.options
        url = mwapi.query_url(
            options.api_url, [i.resource_id for i in items], cont, options.maxlag, props=props
        )
        return api_request(
            url,
            options.url_limit,
            callback=self.callback,
            errback=self.wiki.request_failed,
            dont_filter=True,  # the SQL queue is the dedupe; JOBDIR's dupefilter must not drop
            priority=max(i.priority for i in items),
            meta={"holocron_work_items": items, "holocron_state": state},
        )

    def parse(self, response: Response) -> Iterator[Any]:
        request = response.request
        assert request is not None
        items = work_items_of(request)
        state: dict[str, Any] = request.meta["holocron_state"]
        data, failures = self.wiki.api.data(response, request, items)
        if data is None:
            yield from failures
            return
        pages: PageSet = state.setdefault("pages", PageSet())
        pages.add(data)
        state.setdefault("first_url", answered_url(response))
        note_response(state, request, response)
        cont = mwapi.next_continue(data, drop=(mwapi.OLDER_FILE_VERSIONS,))
        if (stop := self.wiki.chain_step(state, response, cont)) is not None:
            yield from stop
            return
        if cont is not None:
            yield self.request(items, state, cont)
            return
        for item in items:
            yield from self.finish(item, pages, state, response)

    def finish(
        self, item: WorkItem, pages: PageSet, state: dict[str, Any], response: Response
    ) -> Iterator[Any]:
        discoverer = self.wiki.discoverer
        target = pages.resolve(item.resource_id)
        conflict = pages.conflict(item.resource_id, target)
        if conflict is not None:
            self.wiki.stats().inc_value("holocron/mediawiki/identity_conflicts")
            yield Outcome(item.id, Status.FAILED, conflict, depth=item.depth)
            return
        page = pages.page(target)
        if page is None:
            reason = "interwiki" if target in pages.interwiki else "not in the API's answer"
            yield Outcome.skipped(item, f"unresolved title {target!r} ({reason})")
            return
        if page.get("invalid"):
            reason = printable(page.get("invalidreason"))
            yield Outcome.skipped(item, f"invalid title: {reason}")
            return
        if page.get("missing"):
            if item.version is not None and item.version != DELETED_VERSION:
                # It had a record: record that it is gone (recrawl=changed requeues such pages).
                yield self.record(item, deletion_payload(page, item.version), state, response)
                return
            yield Outcome.skipped(item, "missing: the page does not exist")
            return
        resource_type = discoverer.resource_type_for(page.get("ns"))
        if target != item.resource_id:
            how = "redirect" if pages.normalized.get(item.resource_id) != target else "normalized"
            refused = self.wiki.bounds.redirect_refused(item.hops)
            if refused is not None:
                self.wiki.stats().inc_value("holocron/bounds/redirects_refused")
                yield Outcome(item.id, Status.FAILED, f"{how} to {target!r}: {refused}")
                return
            yield discoverer.work_item(target, item.depth, item, resource_type, item.hops + 1)
            if how == "redirect" and item.version is not None:
                # It had a record (a page moved, or turned into a redirect): record that it is
                # a redirect now; the target is the page's record.
                payload = redirect_payload(item.resource_id, target)
                yield self.record(item, payload, state, response)
                return
            yield Outcome.skipped(item, f"{how} to {target!r}")
            return
        if resource_type != item.resource_type:
            # A title whose prefix is a localized namespace name (``Kategorie:X`` typed ``page``
            # as a seed): the page is recorded under the type of its namespace, as discovered.
            yield discoverer.work_item(target, item.depth, item, resource_type)
            yield Outcome.skipped(item, f"a {resource_type} page: queued as {resource_type!r}")
            return
        # Links first: the state middleware buffers them before the record reaches the
        # pipelines, and the frontier writes them before it completes the record's work item,
        # so a crash can never leave a completed page whose links were not queued.
        if item.depth < self.wiki.config.discovery.max_depth:
            yield from discoverer.from_page(item, page)
        yield from discoverer.other_resources(item)
        yield self.record(item, page, state, response)

    def record(
        self, item: WorkItem, page: dict[str, Any], state: dict[str, Any], response: Response
    ) -> ResourceRecord:
        """The record of a page (or of its deletion: version ``"deleted"``)."""
        version = DELETED_VERSION if page.get("deleted") else page.get("lastrevid")
        if page.get("redirect_to"):
            version = REDIRECT_VERSION
        payload = mwapi.current_file_version(page)
        return record(item, item.resource_type, payload, state, response, version=version)
