"""``scrapy crawl http -a source=NAME``: any JSON API or web site, driven by a ``type: http``
source file (:mod:`holocron_scrapy.config.http`), through the same SQL frontier, state
middleware and pipelines as the MediaWiki spider.

Work items are requests (:mod:`holocron_scrapy.http.api`): a URL, or a POST seed. Without
``pagination`` every seed and every discovered URL is a resource: one response, one record,
its discoveries queued at depth + 1 while the depth is below ``max_depth``. With ``pagination``
each seed is a ``listing``: it pages to its end, saving the next page's URL in
``work_items.cursor`` after each page (after what the page listed is in the queue), so a crawl
killed in the middle resumes from there; what a page lists is queued at the listing's depth.

A resource answered with a redirect is skipped ("redirect to X") and X queued at the same
depth (X is the record, as for a MediaWiki redirect); robots.txt forbids (skipped), an HTTP 404
or 410 (skipped), other HTTP errors after the retries and bodies that are not what their
Content-Type says (failed) end the work item with the reason, and the crawl goes on.

``-a recrawl=all`` fetches every known item again (listings from their first page);
``-a recrawl=changed`` asks for every completed resource again with the validators of its
last response (``If-None-Match``, else ``If-Modified-Since``; kept in ``work_items.version``):
a 304 completes it unchanged. In both, an unchanged payload writes no file and no row.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

import scrapy
from scrapy import signals
from scrapy.exceptions import IgnoreRequest
from scrapy.http import FormRequest, HtmlResponse, JsonRequest, TextResponse
from scrapy.linkextractors import LinkExtractor
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.asyncio import run_in_thread

from holocron_scrapy.bounds import Bounds, Chain, stopped
from holocron_scrapy.config.http import HttpSeed, HttpSourceConfig, load_http_source
from holocron_scrapy.frontier.extension import work_items_of
from holocron_scrapy.http import api as http_api
from holocron_scrapy.items import ResourceRecord
from holocron_scrapy.middlewares.claims import StaleClaim
from holocron_scrapy.model import NewWorkItem, Outcome, Status, WorkItem
from holocron_scrapy.secrets import RedactingFilter, SourceSecrets
from holocron_scrapy.spiders.base import SourceSpider, apply_source
from holocron_scrapy.spiders.responses import failure_message, headers_of
from holocron_scrapy.store.limits import fit_resource_id, is_shortened, resource_id_length

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence

    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from twisted.python.failure import Failure

    from holocron_scrapy.reexpand import Stored

logger = logging.getLogger(__name__)

#: Completed work items read per state-database query by ``recrawl=changed``.
RECRAWL_READ_SIZE = 1000
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
NOT_MODIFIED = 304
#: HTTP statuses that say the resource does not exist: its work item is skipped, not failed.
GONE_STATUSES = (404, 410)


def _header(response: Response, name: str) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value else None


class HttpSpider(SourceSpider):
    name = "http"
    source_system = "http"
    # Web pages and most APIs publish robots.txt for crawlers like this one.
    custom_settings = {"ROBOTSTXT_OBEY": True}

    config: HttpSourceConfig
    _seeds: dict[str, HttpSeed]
    _link_extractor: LinkExtractor | None
    _log_filter: RedactingFilter
    bounds: Bounds = Bounds()
    secrets: SourceSecrets

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.config = apply_source(crawler, spider.source, load_http_source)
        spider.bounds = Bounds.from_settings(crawler.settings)
        config = spider.config
        spider.secrets = SourceSecrets.of(
            urls=[config.base_url, *(seed.url for seed in config.seeds)],
            headers=config.headers,
            params=config.params,
            secret_headers=config.secret_headers,
            secret_params=config.secret_params,
        )
        spider._log_filter = RedactingFilter(spider.secrets)
        crawler.signals.connect(spider._filter_logs, signal=signals.engine_started)
        crawler.signals.connect(spider._unfilter_logs, signal=signals.engine_stopped)
        # By the id their work items hold: a long POST body's is shortened
        # (holocron_scrapy.store.limits).
        spider._seeds = {fit_resource_id(seed.resource_id): seed for seed in spider.config.seeds}
        links = spider.config.discovery.html_links
        # allowed_domains are checked on every discovered URL (host_allowed; LinkExtractor's
        # allow_domains would compare host:port with them).
        spider._link_extractor = (
            None if links is None else LinkExtractor(allow=links.allow, deny=links.deny)
        )
        return spider

    @property
    def source_name(self) -> str:
        return self.config.name

    async def start(self) -> AsyncIterator[Any]:
        # The SQL frontier schedules all the work (see holocron_scrapy.frontier.extension);
        # recrawl=changed
        # first puts the completed resources back into the queue (the engine keeps the crawl
        # open until this generator ends).
        if self.recrawl == "changed":
            await self._requeue_completed()
        return
        yield

    async def _requeue_completed(self) -> None:
        """``recrawl=changed``: every completed resource goes back to the queue, to be asked for
        with its validators (``If-None-Match`` / ``If-Modified-Since``): a 304 completes it as it
        was, anything else is recorded if its payload changed. Listings are not run again."""
        frontier = self.frontier()
        if frontier.spider is None:
            return  # the state database could not be opened: the crawl is closing
        # All ids first: what this run completes meanwhile (new ids) is not asked for twice.
        ids: list[int] = []
        while True:
            rows = await run_in_thread(
                frontier.store.completed_versions,
                source_system=self.source_system,
                source_name=self.source_name,
                resource_type=self.config.resource_type,
                after_id=ids[-1] if ids else 0,
                limit=RECRAWL_READ_SIZE,
            )
            if not rows:
                break
            ids += [row[0] for row in rows]
        for start in range(0, len(ids), RECRAWL_READ_SIZE):
            n = await frontier.requeue(ids[start : start + RECRAWL_READ_SIZE])
            self.stats.inc_value("holocron/http/recrawl_requeued", n)
        logger.info("recrawl=changed: %(n)d resources asked for again if changed", {"n": len(ids)})

    # -- the frontier's side -------------------------------------------------------------------

    def priority_for(self, depth: int) -> int:
        return -depth if self.config.discovery.strategy == "breadth" else depth

    def new_work_item(
        self,
        resource_id: str,
        depth: int,
        parent: WorkItem | None,
        resource_type: str = "",
        hops: int = 0,
    ) -> NewWorkItem:
        """``hops``: the redirects that led to it (see :mod:`holocron_scrapy.bounds`)."""
        return NewWorkItem(
            source_system=self.source_system,
            source_name=self.source_name,
            resource_type=resource_type or self.config.resource_type,
            resource_id=resource_id,
            depth=depth,
            priority=self.priority_for(depth),
            discovered_from=parent.id if parent else None,
            hops=hops,
        )

    def expand_stored(self, item: WorkItem, stored: Stored) -> list[NewWorkItem] | None:
        """What a completed resource found again by a shorter path leads to at its new depth,
        read from its last record (:mod:`holocron_scrapy.reexpand`) as :meth:`parse` reads a
        response: its JSON fields, or its HTML links. None (fetch it again) for a POST."""
        if not item.resource_id.startswith(("http://", "https://")):
            return None
        if item.depth >= self.config.discovery.max_depth:
            return []
        data, response = None, None
        if http_api.is_json_type(stored.content_type):
            data = json.loads(stored.payload)
            response = TextResponse(item.resource_id, body=b"", encoding="utf-8")
        else:
            wrapped = json.loads(stored.payload)
            if "text" not in wrapped:
                return []  # not text: nothing to discover
            cls = (
                HtmlResponse if "html" in http_api.media_type(stored.content_type) else TextResponse
            )
            body = wrapped["text"].encode(wrapped["encoding"])
            response = cls(item.resource_id, body=body, encoding=wrapped["encoding"])
        return [
            self.new_work_item(url, item.depth + 1, item)
            for url in self._discovered_urls(response, data)
        ]

    def seed_work_items(self) -> list[NewWorkItem]:
        kind = http_api.RESOURCE_LISTING if self.config.pagination else ""
        return [self.new_work_item(seed.resource_id, 0, None, kind) for seed in self.config.seeds]

    def requests_for(self, items: Sequence[WorkItem]) -> list[scrapy.Request]:
        requests = []
        for item in items:
            if item.resource_type == http_api.RESOURCE_LISTING:
                request = self._listing_request(item)
            else:
                request = self._resource_request(item)
            if request is not None:
                requests.append(request)
        return requests

    def _seed_of(self, item: WorkItem) -> HttpSeed | None:
        """The seed a POST work item (or a listing) stands for; a GET needs none."""
        seed = self._seeds.get(item.resource_id)
        if seed is None and item.resource_id.startswith("POST "):
            self.frontier().fail([item], "this POST seed is no longer in the source file")
        return seed

    def _filter_logs(self) -> None:
        """Mask the source's secrets in every log line of the crawl (see :mod:`.secrets`)."""
        for handler in logging.root.handlers:
            handler.addFilter(self._log_filter)

    def _unfilter_logs(self) -> None:
        for handler in logging.root.handlers:
            handler.removeFilter(self._log_filter)

    def _request(
        self, url: str, item: WorkItem, seed: HttpSeed | None, **kwargs: Any
    ) -> scrapy.Request:
        """A request for ``url``, as a POST when ``seed`` is one: with the source's params and
        headers on its own hosts, without them elsewhere (:mod:`holocron_scrapy.secrets`)."""
        own = self.secrets.own(url)
        if not own:
            self.stats.inc_value("holocron/secrets/withheld")
        full_url = http_api.with_params(url, self.config.params) if own else url
        common: dict[str, Any] = {
            "headers": dict(self.config.headers) if own else {},
            "errback": self.request_failed,
            "dont_filter": True,  # the SQL queue is the dedupe; JOBDIR's dupefilter must not drop
            "priority": item.priority,
            **kwargs,
        }
        common["meta"] = {"holocron_work_items": [item], "holocron_url": url, **common["meta"]}
        if not own:  # the page that led here may name the source's params in its URL
            common["meta"]["referrer_policy"] = "no-referrer"
        if seed is not None and seed.method == "POST":
            if seed.form is not None:
                return FormRequest(full_url, formdata=dict(seed.form), **common)
            return JsonRequest(full_url, data=seed.json, **common)
        return scrapy.Request(full_url, **common)

    def _resource_request(self, item: WorkItem) -> scrapy.Request | None:
        seed = self._seed_of(item)
        if seed is None and item.resource_id.startswith("POST "):
            return None
        if seed is None and is_shortened(item.resource_id):
            # Only a prefix and a digest of the URL are kept: it cannot be requested.
            message = (
                f"URL longer than {resource_id_length()} characters (work_items.resource_id): "
                "kept as a prefix and its sha256, it cannot be requested"
            )
            self.stats.inc_value("holocron/http/url_too_long")
            self.frontier().fail([item], message, final=True)
            return None
        request = self._request(
            seed.url if seed else item.resource_id,
            item,
            seed,
            callback=self.parse_resource,
            # A redirect is an answer of its own (see parse_resource), not followed blindly.
            meta={
                "dont_redirect": True,
                "handle_httpstatus_list": [*REDIRECT_STATUSES, NOT_MODIFIED],
            },
        )
        if self.recrawl == "changed":
            for name, value in http_api.conditional_headers(item.version).items():
                request.headers[name] = value
        return request

    def _listing_request(
        self, item: WorkItem, url: str | None = None, chain: Chain | None = None
    ) -> scrapy.Request | None:
        seed = self._seed_of(item)
        if seed is None:
            if not item.resource_id.startswith("POST "):
                self.frontier().fail([item], "this paginated seed is no longer in the source")
            return None
        if url is None and item.cursor:
            url = json.loads(item.cursor)["next"]
            self.stats.inc_value("holocron/http/listings_resumed")
            logger.info(
                "Listing %(listing)s resumes from its cursor %(url)s",
                {"listing": item.resource_id, "url": url},
            )
        if url is None:
            url = self._first_page(seed.url)
        chain = chain or self.bounds.listing()
        # A redirect is followed by parse_listing, which leaves the secrets home when it leads
        # to another host (Scrapy's RedirectMiddleware would send every header there).
        meta = {
            "holocron_chain": chain,
            "dont_redirect": True,
            "handle_httpstatus_list": list(REDIRECT_STATUSES),
        }
        return self._request(url, item, seed, callback=self.parse_listing, meta=meta)

    def _first_page(self, url: str) -> str:
        pagination = self.config.pagination
        if pagination is not None and pagination.param and pagination.start is not None:
            return http_api.set_param(url, pagination.param, pagination.start)
        return url

    # -- responses -----------------------------------------------------------------------------

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
            self.stats.inc_value("holocron/http/not_modified")
            yield Outcome(
                item.id,
                Status.COMPLETED,
                content_hash=item.content_hash,
                depth=item.depth,
                version=item.version,
            )
            return
        decoded = self._payload(response, item)
        if isinstance(decoded, Outcome):
            yield decoded
            return
        payload, form = decoded
        # The source's secrets, should the server echo them, are stored nowhere.
        secrets = self.secrets
        payload = secrets.redact_json(payload)
        resource_id = http_api.record_resource_id(
            payload, self.config.resource_id, item.resource_id
        )
        if resource_id is None:
            message = f"no resource_id at {self.config.resource_id!r} in the response"
            yield Outcome(item.id, Status.FAILED, message)
            return
        if item.depth < self.config.discovery.max_depth:
            for url in self._discovered_urls(response, payload if form == "json" else None):
                yield self.new_work_item(http_api.resource_key(url), item.depth + 1, item)
        self.stats.inc_value(f"holocron/http/payload/{form}")
        yield ResourceRecord(
            work_item=item,
            resource_type=item.resource_type,
            resource_id=resource_id,
            payload=payload,
            request_uri=request.meta["holocron_url"],
            request_method=request.method,
            request_headers=secrets.redact_json(
                http_api.masked_headers(headers_of(request.headers), self.config.secret_headers)
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
        self.stats.inc_value("holocron/http/redirects")
        if not http_api.host_allowed(target, self.config.allowed_domains):
            yield Outcome.skipped(item, f"redirect to {target!r}, outside allowed_domains")
            return
        refused = self.bounds.redirect_refused(item.hops)
        if refused is not None:
            self.stats.inc_value("holocron/bounds/redirects_refused")
            yield Outcome(item.id, Status.FAILED, f"redirect to {target!r}: {refused}")
            return
        yield self.new_work_item(target, item.depth, item, item.resource_type, item.hops + 1)
        yield Outcome.skipped(item, f"redirect to {target!r}")

    def _url_key(self, url: str) -> str:
        """The resource id of a URL the crawl found: canonical, without the source's params."""
        return http_api.resource_key(self.secrets.strip_params(url))

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
            message = self.secrets.redact(str(exc))
            logger.warning("%(error)s for %(url)s", {"error": message, "url": url})
            self.stats.inc_value("holocron/http/bad_payload")
            return Outcome(item.id, Status.FAILED, message)

    def _discovered_urls(self, response: Response, data: Any) -> Iterator[str]:
        """URLs of the JSON fields (in ``data``) and HTML links of a response, each once,
        within the allowed domains."""
        seen: set[str] = set()
        candidates: list[str] = []
        if data is not None:
            for json_field in self.config.discovery.json_fields:
                base = self.config.base_url if json_field.url else response.url
                for value in http_api.json_values(data, json_field.path):
                    url = http_api.discovered_url(value, json_field.url, base)
                    if url is not None:
                        candidates.append(url)
        if self._link_extractor is not None and isinstance(response, scrapy.http.HtmlResponse):
            candidates += [link.url for link in self._link_extractor.extract_links(response)]
        for url in candidates:
            key = self._url_key(url)
            if key not in seen and http_api.host_allowed(key, self.config.allowed_domains):
                seen.add(key)
                yield key

    async def parse_listing(self, response: Response) -> AsyncIterator[Any]:
        """One page of a listing: what it lists into the queue (at the listing's depth), then
        the next page's URL saved as its cursor, then that page requested; at the end the
        listing is completed."""
        request = response.request
        assert request is not None
        [item] = work_items_of(request)
        pagination = self.config.pagination
        assert pagination is not None
        if response.status in REDIRECT_STATUSES:
            for obj in self._listing_redirect(item, response):
                yield obj
            return
        decoded = self._payload(response, item)
        if isinstance(decoded, Outcome):
            yield decoded
            return
        payload, form = decoded
        data = payload if form == "json" else None
        frontier = self.frontier()
        found = 0
        for url in self._discovered_urls(response, data):
            # Straight into the frontier's buffer: save_cursor flushes it before the cursor.
            frontier.discover(self.new_work_item(url, item.depth, item))
            found += 1
        self.stats.inc_value("holocron/http/listing_pages")
        self.stats.inc_value("holocron/http/listed", found)
        links = [v.decode("latin-1") for v in response.headers.getlist("Link")]
        step = http_api.next_step(
            pagination, request.meta["holocron_url"], data, links, response.url
        )
        if step.next_url is not None:
            step = http_api.PageStep(self.secrets.strip_params(step.next_url), step.reason)
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
            for outcome in stopped([item], reason, url, self.stats, "listing_stopped"):
                yield outcome
            return
        if await frontier.save_cursor(item, {"next": step.next_url}):
            next_request = self._listing_request(item, step.next_url, chain)
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
        target = self.secrets.strip_params(http_api.absolute_url(response.url, location))
        self.stats.inc_value("holocron/http/redirects")
        if not http_api.host_allowed(target, self.config.allowed_domains):
            message = f"redirect to {target!r}, outside allowed_domains"
            yield Outcome(item.id, Status.FAILED, message, depth=item.depth)
            return
        chain: Chain = request.meta["holocron_chain"]
        reason = chain.step(len(response.body), target)
        if reason is not None:
            url = request.meta["holocron_url"]
            yield from stopped([item], reason, url, self.stats, "listing_stopped")
            return
        next_request = self._listing_request(item, target, chain)
        if next_request is not None:
            yield next_request

    def request_failed(self, failure: Failure) -> None:
        """Errback: a request that failed for good (after retries) ends its work item."""
        request: scrapy.Request = failure.request  # type: ignore[attr-defined]
        error = failure.value
        if isinstance(error, StaleClaim):
            return
        status = Status.FAILED
        if isinstance(error, HttpError) and error.response.status in GONE_STATUSES:
            status = Status.SKIPPED
        # Messages name the URL without the source's params (they may hold a key).
        shown = request.replace(url=request.meta.get("holocron_url", request.url))
        if isinstance(error, IgnoreRequest) and not isinstance(error, HttpError):  # robots.txt
            message = f"{error or 'ignored'}: {shown.url}"
            status = Status.SKIPPED
        else:
            default_maxsize = self.crawler.settings.getint("DOWNLOAD_MAXSIZE")
            message = failure_message(failure, shown, default_maxsize)
        message = self.secrets.redact(message)
        logger.warning("Request failed: %(msg)s", {"msg": message})
        frontier = self.frontier()
        for item in work_items_of(request):
            if frontier.is_claimed(item):
                frontier.finish(Outcome(item.id, status, message, depth=item.depth))
