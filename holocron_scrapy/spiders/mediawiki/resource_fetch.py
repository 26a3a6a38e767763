"""A page's other resources (:mod:`holocron_scrapy.mediawiki.resources`): ``html`` (one
``action=parse`` per title), ``revisions`` (one history per title, followed through every
``continue``) and ``info`` (50 titles per request), each recorded under its own resource type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from holocron_scrapy.frontier.extension import work_items_of
from holocron_scrapy.mediawiki import api as mwapi
from holocron_scrapy.mediawiki import resources
from holocron_scrapy.mediawiki.api_request import api_request
from holocron_scrapy.mediawiki.pages import PageSet
from holocron_scrapy.model import Outcome, Status
from holocron_scrapy.safe_text import printable
from holocron_scrapy.spiders.mediawiki.responses import note_response, record

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import scrapy
    from scrapy.http import Response

    from holocron_scrapy.model import WorkItem
    from holocron_scrapy.spiders.mediawiki.options import Wiki


@dataclass(frozen=True, slots=True)
class ResourceCallbacks:
    """The spider's methods the requests name (``JOBDIR`` serializes them by name)."""

    html: Callable[[Response], Any]
    history: Callable[[Response], Any]
    info: Callable[[Response], Any]


class ResourceFetch:
    def __init__(self, wiki: Wiki, callbacks: ResourceCallbacks) -> None:
        self.wiki = wiki
        self.callbacks = callbacks

    def html_requests(self, items: list[WorkItem]) -> list[scrapy.Request]:
        """One ``action=parse`` per title (the API parses one page per request)."""
        api, maxlag = self.wiki.options.api_url, self.wiki.options.maxlag
        return self._per_title(
            items, lambda title: resources.parse_url(api, title, maxlag), self.callbacks.html
        )

    def history_requests(self, items: list[WorkItem]) -> list[scrapy.Request]:
        """One revision history per title (``rvlimit`` takes one title per request)."""
        options = self.wiki.options
        api, maxlag, content = options.api_url, options.maxlag, options.revisions_content
        return self._per_title(
            items,
            lambda title: resources.history_url(api, title, None, maxlag, content=content),
            self.callbacks.history,
        )

    def _per_title(
        self,
        items: list[WorkItem],
        url_of: Callable[[str], str],
        callback: Callable[[Response], Any],
    ) -> list[scrapy.Request]:
        return [self.request(url_of(i.resource_id), [i], callback) for i in items]

    def info_requests(self, items: list[WorkItem]) -> list[scrapy.Request]:
        n, api, maxlag = (
            self.wiki.options.titles_per_request,
            self.wiki.options.api_url,
            self.wiki.options.maxlag,
        )
        return [
            self.request(
                resources.info_url(api, [i.resource_id for i in batch], None, maxlag),
                batch,
                self.callbacks.info,
            )
            for batch in (items[i : i + n] for i in range(0, len(items), n))
        ]

    def request(
        self,
        url: str,
        items: list[WorkItem],
        callback: Callable[[Response], Any],
        state: dict[str, Any] | None = None,
    ) -> scrapy.Request:
        """A request for other resources; ``state["first_url"]`` is the URL that continuations
        extend (see :func:`resources.continued`)."""
        return api_request(
            url,
            self.wiki.options.url_limit,
            callback=callback,
            errback=self.wiki.request_failed,
            dont_filter=True,
            priority=max(i.priority for i in items),
            meta={"holocron_work_items": items, "holocron_state": state or {"first_url": url}},
        )

    def _answer(
        self, response: Response
    ) -> tuple[scrapy.Request, list[WorkItem], dict[str, Any] | None, list[Any]]:
        """The request, its items, the API's data (the response noted in the request's
        state) or ``None`` and what the error means for the items."""
        request = response.request
        assert request is not None
        items = work_items_of(request)
        data, failures = self.wiki.api.data(response, request, items)
        if data is not None:
            note_response(request.meta["holocron_state"], request, response)
        return request, items, data, failures

    def parse_html(self, response: Response) -> Iterator[Any]:
        """The ``parse`` object is the record; ``missingtitle`` skips the item (see
        :data:`mwapi.API_ERRORS`)."""
        request, items, data, failures = self._answer(response)
        if data is None:
            yield from failures
            return
        state: dict[str, Any] = request.meta["holocron_state"]
        parsed = data.get("parse")
        for item in items:
            if isinstance(parsed, dict):
                yield record(
                    item, resources.HTML, parsed, state, response, version=parsed.get("revid")
                )
            else:
                yield Outcome(item.id, Status.FAILED, "action=parse answered without 'parse'")

    def parse_merged(self, response: Response, resource_type: str) -> Iterator[Any]:
        """``revisions`` and ``info``: the pages merged across ``continue``, one record each."""
        request, items, data, failures = self._answer(response)
        if data is None:
            yield from failures
            return
        state: dict[str, Any] = request.meta["holocron_state"]
        pages: PageSet = state.setdefault("pages", PageSet())
        pages.add(data)
        cont = mwapi.next_continue(data)
        if (stop := self.wiki.chain_step(state, response, cont)) is not None:
            yield from stop
            return
        if cont is not None:
            url = resources.continued(state["first_url"], cont)
            assert request.callback is not None
            yield self.request(url, items, request.callback, state)
            return
        for item in items:
            target = pages.resolve(item.resource_id)
            page = pages.page(target)
            conflict = pages.conflict(item.resource_id, target)
            if conflict is not None:
                self.wiki.stats().inc_value("holocron/mediawiki/identity_conflicts")
                yield Outcome(item.id, Status.FAILED, conflict)
            elif page is None:
                yield Outcome.skipped(item, f"{item.resource_id!r} not in the API's answer")
            elif page.get("invalid"):
                reason = printable(page.get("invalidreason"))
                yield Outcome.skipped(item, f"invalid title: {reason}")
            elif page.get("missing"):
                yield Outcome.skipped(item, "missing: the page does not exist")
            else:
                revisions = page.get("revisions") or [{}]
                version = (
                    revisions[-1].get("revid")
                    if resource_type == resources.REVISIONS
                    else page.get("lastrevid")
                )
                yield record(item, resource_type, page, state, response, version=version)
