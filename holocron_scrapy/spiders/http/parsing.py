"""The HTTP spider's answers: a resource's record (its discoveries first) or what its redirect,
``304`` or undecodable body means for its work item, and a listing's pages (what each lists
queued, its cursor saved, the next page asked for)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import scrapy
from scrapy.http import TextResponse
from scrapy.linkextractors import LinkExtractor

from holocron_scrapy.bounds import stopped
from holocron_scrapy.frontier.extension import work_items_of
from holocron_scrapy.http import api as http_api
from holocron_scrapy.items import ResourceRecord
from holocron_scrapy.model import Outcome, Status, WorkItem
from holocron_scrapy.spiders.http.requests import NOT_MODIFIED, REDIRECT_STATUSES
from holocron_scrapy.spiders.responses import headers_of

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    from scrapy.http import Response

    from holocron_scrapy.bounds import Chain
    from holocron_scrapy.model import NewWorkItem
    from holocron_scrapy.spiders.http.requests import HttpRequests
    from holocron_scrapy.spiders.http.site import HttpSite

logger = logging.getLogger(__name__)


def _header(response: Response, name: str) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value else None


class HttpResponses:
    """``new_work_item``: the work item a discovered URL becomes; ``requests``: builds a
    listing's next page."""

    def __init__(
        self, site: HttpSite, new_work_item: Callable[..., NewWorkItem], requests: HttpRequests
    ) -> None:
        self.site = site
        self.new_work_item = new_work_item
        self.requests = requests
        links = site.config.discovery.html_links
        # allowed_domains are checked on every discovered URL (host_allowed; LinkExtractor's
        # allow_domains would compare host:port with them).
        self.link_extractor = (
            None if links is None else LinkExtractor(allow=links.allow, deny=links.deny)
        )

    def parse_resource(self, response: Response) -> Iterator[Any]:
        """One record per resource; its discoveries first (they are queued before the record
        completes its work item)."""
        request = response.request
        assert request is not None
        [item] = work_items_of(request)
        if response.status in REDIRECT_STATUSES:
            yield from self._redirect(item, response)
            return
        if response.status == NOT_MODIFIED:
            self.site.stats().inc_value("holocron/http/not_modified")
            yield Outcome(
                item.id,
                Status.COMPLETED,
                content_hash=item.content_hash,
                depth=item.depth,
                version=item.version,
            )
            return
        if isinstance(decoded := self._payload(response, item), Outcome):
            yield decoded
            return
        payload, form = decoded
        # The source's secrets, should the server echo them, are stored nowhere.
        secrets, config = self.site.secrets, self.site.config
        payload = secrets.redact_json(payload)
        resource_id = http_api.record_resource_id(
            payload, self.site.config.resource_id, item.resource_id
        )
        if resource_id is None:
            message = f"no resource_id at {self.site.config.resource_id!r} in the response"
            yield Outcome(item.id, Status.FAILED, message)
            return
        if item.depth < self.site.config.discovery.max_depth:
            for url in self.discovered_urls(response, payload if form == "json" else None):
                yield self.new_work_item(http_api.resource_key(url), item.depth + 1, item)
        self.site.stats().inc_value(f"holocron/http/payload/{form}")
        yield ResourceRecord(
            work_item=item,
            resource_type=item.resource_type,
            resource_id=resource_id,
            payload=payload,
            request_uri=request.meta["holocron_url"],
            request_method=request.method,
            request_headers=secrets.redact_json(
                http_api.masked_headers(headers_of(request.headers), config.secret_headers)
            ),
            status_code=response.status,
            response_headers=secrets.redact_json(headers_of(response.headers)),
            fetched_at_utc=datetime.now(UTC).replace(tzinfo=None),
            duration_ms=round(request.meta.get("download_latency", 0.0) * 1000),
            version=http_api.version_of(
                _header(response, "ETag"), _header(response, "Last-Modified")
            ),
            payload_format=form,
            # The body's own text, the secrets it echoes masked as in the decoded payload.
            raw_payload=secrets.redact(http_api.json_text(response.body))
            if form == "json"
            else None,
        )

    def _redirect(self, item: WorkItem, response: Response) -> Iterator[Any]:
        location = (response.headers.get("Location") or b"").decode("latin-1")
        if not location:
            yield Outcome(item.id, Status.FAILED, f"HTTP {response.status} without a Location")
            return
        target = self._url_key(http_api.absolute_url(response.url, location))
        self.site.stats().inc_value("holocron/http/redirects")
        if not http_api.host_allowed(target, self.site.config.allowed_domains):
            yield Outcome.skipped(item, f"redirect to {target!r}, outside allowed_domains")
            return
        refused = self.site.bounds.redirect_refused(item.hops)
        if refused is not None:
            self.site.stats().inc_value("holocron/bounds/redirects_refused")
            yield Outcome(item.id, Status.FAILED, f"redirect to {target!r}: {refused}")
            return
        yield self.new_work_item(target, item.depth, item, item.resource_type, item.hops + 1)
        yield Outcome.skipped(item, f"redirect to {target!r}")

    def _url_key(self, url: str) -> str:
        """The resource id of a URL the crawl found: canonical, without the source's params."""
        return http_api.resource_key(self.site.secrets.strip_params(url))

    def _payload(
        self, response: Response, item: WorkItem
    ) -> tuple[Any, http_api.PayloadFormat] | Outcome:
        """The payload to store and its format, or the failure of ``item`` when the body is not
        what its Content-Type says (invalid JSON)."""
        content_type = (response.headers.get("Content-Type") or b"").decode("latin-1")
        encoding = response.encoding if isinstance(response, TextResponse) else None
        try:
            return http_api.encode_payload(response.body, content_type, encoding)
        except http_api.PayloadError as exc:
            url = response.meta.get("holocron_url", response.url)
            message = self.site.secrets.redact(str(exc))
            logger.warning("%(error)s for %(url)s", {"error": message, "url": url})
            self.site.stats().inc_value("holocron/http/bad_payload")
            return Outcome(item.id, Status.FAILED, message)

    def discovered_urls(self, response: Response, data: Any) -> Iterator[str]:
        """URLs of the JSON fields (in ``data``) and HTML links of a response, each once,
        within the allowed domains."""
        seen: set[str] = set()
        candidates: list[str] = []
        if data is not None:
            for json_field in self.site.config.discovery.json_fields:
                base = self.site.config.base_url if json_field.url else response.url
                for value in http_api.json_values(data, json_field.path):
                    url = http_api.discovered_url(value, json_field.url, base)
                    if url is not None:
                        candidates.append(url)
        if self.link_extractor is not None and isinstance(response, scrapy.http.HtmlResponse):
            candidates += [link.url for link in self.link_extractor.extract_links(response)]
        for url in candidates:
            key = self._url_key(url)
            if key not in seen and http_api.host_allowed(key, self.site.config.allowed_domains):
                seen.add(key)
                yield key

    async def parse_listing(self, response: Response) -> AsyncIterator[Any]:
        """One page of a listing: what it lists into the queue (at the listing's depth), then
        the next page's URL saved as its cursor, then that page requested; at the end the
        listing is completed."""
        request = response.request
        assert request is not None
        [item] = work_items_of(request)
        pagination = self.site.config.pagination
        assert pagination is not None
        if response.status in REDIRECT_STATUSES:
            for obj in self._listing_redirect(item, response):
                yield obj
            return
        if isinstance(decoded := self._payload(response, item), Outcome):
            yield decoded
            return
        payload, form = decoded
        data = payload if form == "json" else None
        frontier = self.site.frontier()
        found = 0
        for url in self.discovered_urls(response, data):
            # Straight into the frontier's buffer: save_cursor flushes it before the cursor.
            frontier.discover(self.new_work_item(url, item.depth, item))
            found += 1
        self.site.stats().inc_value("holocron/http/listing_pages")
        self.site.stats().inc_value("holocron/http/listed", found)
        links = [v.decode("latin-1") for v in response.headers.getlist("Link")]
        step = http_api.next_step(
            pagination, request.meta["holocron_url"], data, links, response.url
        )
        if step.next_url is not None:
            step = http_api.PageStep(self.site.secrets.strip_params(step.next_url), step.reason)
        if step.next_url is None:
            logger.debug(
                "Listing %(id)s ends: %(why)s", {"id": item.resource_id, "why": step.reason}
            )
            yield Outcome(item.id, Status.COMPLETED, depth=item.depth)
            return
        chain: Chain = request.meta["holocron_chain"]
        # A numbered page with the body of an earlier one: the API ignores the page parameter.
        body = response.body if pagination.kind == "page_number" else None
        reason = chain.step(len(response.body), step.next_url, body)
        if reason is not None:
            url = request.meta["holocron_url"]
            for outcome in stopped([item], reason, url, self.site.stats(), "listing_stopped"):
                yield outcome
            return
        if await frontier.save_cursor(item, {"next": step.next_url}):
            next_request = self.requests.listing(item, step.next_url, chain)
            if next_request is not None:
                yield next_request

    def _listing_redirect(self, item: WorkItem, response: Response) -> Iterator[Any]:
        """A listing page that moved: the same page asked for at its new place (within
        ``allowed_domains``; with the source's secrets only on its own hosts)."""
        request = response.request
        assert request is not None
        location = (response.headers.get("Location") or b"").decode("latin-1")
        if not location:
            yield Outcome(item.id, Status.FAILED, f"HTTP {response.status} without a Location")
            return
        target = self.site.secrets.strip_params(http_api.absolute_url(response.url, location))
        self.site.stats().inc_value("holocron/http/redirects")
        if not http_api.host_allowed(target, self.site.config.allowed_domains):
            message = f"redirect to {target!r}, outside allowed_domains"
            yield Outcome(item.id, Status.FAILED, message, depth=item.depth)
            return
        chain: Chain = request.meta["holocron_chain"]
        reason = chain.step(len(response.body), target)
        if reason is not None:
            url = request.meta["holocron_url"]
            yield from stopped([item], reason, url, self.site.stats(), "listing_stopped")
            return
        next_request = self.requests.listing(item, target, chain)
        if next_request is not None:
            yield next_request
