"""The HTTP spider's requests for claimed work items: a resource (a URL, or a POST seed) or a
listing page, with the source's params and headers on its own hosts only
(:mod:`holocron_scrapy.secrets`) and, for ``recrawl=changed``, the validators of the last
response."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import scrapy
from scrapy.http import FormRequest, JsonRequest

from holocron_scrapy.http import api as http_api
from holocron_scrapy.store.limits import fit_resource_id, is_shortened, resource_id_length

if TYPE_CHECKING:
    from collections.abc import Callable

    from twisted.python.failure import Failure

    from holocron_scrapy.bounds import Chain
    from holocron_scrapy.config.http import HttpSeed
    from holocron_scrapy.model import WorkItem
    from holocron_scrapy.spiders.http.site import HttpSite

logger = logging.getLogger(__name__)

REDIRECT_STATUSES = (301, 302, 303, 307, 308)
NOT_MODIFIED = 304


@dataclass(frozen=True, slots=True)
class HttpCallbacks:
    """The spider's methods the requests name (``JOBDIR`` serializes them by name)."""

    resource: Callable[..., Any]
    listing: Callable[..., Any]
    errback: Callable[[Failure], None]


class HttpRequests:
    """``conditional``: ask with the last response's validators (``recrawl=changed``)."""

    def __init__(self, site: HttpSite, callbacks: HttpCallbacks, *, conditional: bool) -> None:
        self.site = site
        self.callbacks = callbacks
        self.conditional = conditional
        # By the id their work items hold: a long POST body's is shortened
        # (holocron_scrapy.store.limits).
        self.seeds = {fit_resource_id(seed.resource_id): seed for seed in site.config.seeds}

    def seed_of(self, item: WorkItem) -> HttpSeed | None:
        """The seed a POST work item (or a listing) stands for; a GET needs none."""
        seed = self.seeds.get(item.resource_id)
        if seed is None and item.resource_id.startswith("POST "):
            self.site.frontier().fail([item], "this POST seed is no longer in the source file")
        return seed

    def request(
        self, url: str, item: WorkItem, seed: HttpSeed | None, **kwargs: Any
    ) -> scrapy.Request:
        """A request for ``url``, as a POST when ``seed`` is one: with the source's params and
        headers on its own hosts, without them elsewhere (:mod:`holocron_scrapy.secrets`)."""
        own = self.site.secrets.own(url)
        if not own:
            self.site.stats().inc_value("holocron/secrets/withheld")
        full_url = http_api.with_params(url, self.site.config.params) if own else url
        common: dict[str, Any] = {
            "headers": dict(self.site.config.headers) if own else {},
            "errback": self.callbacks.errback,
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

    def resource(self, item: WorkItem) -> scrapy.Request | None:
        seed = self.seed_of(item)
        if seed is None and item.resource_id.startswith("POST "):
            return None
        if seed is None and is_shortened(item.resource_id):
            # Only a prefix and a digest of the URL are kept: it cannot be requested.
            message = (
                f"URL longer than {resource_id_length()} characters (work_items.resource_id): "
                "kept as a prefix and its sha256, it cannot be requested"
            )
            self.site.stats().inc_value("holocron/http/url_too_long")
            self.site.frontier().fail([item], message, final=True)
            return None
        request = self.request(
            seed.url if seed else item.resource_id,
            item,
            seed,
            callback=self.callbacks.resource,
            # A redirect is an answer of its own (see parse_resource), not followed blindly.
            meta={
                "dont_redirect": True,
                "handle_httpstatus_list": [*REDIRECT_STATUSES, NOT_MODIFIED],
            },
        )
        if self.conditional:
            for name, value in http_api.conditional_headers(item.version).items():
                request.headers[name] = value
        return request

    def listing(
        self, item: WorkItem, url: str | None = None, chain: Chain | None = None
    ) -> scrapy.Request | None:
        seed = self.seed_of(item)
        if seed is None:
            if not item.resource_id.startswith("POST "):
                self.site.frontier().fail([item], "this paginated seed is no longer in the source")
            return None
        if url is None and item.cursor:
            url = json.loads(item.cursor)["next"]
            self.site.stats().inc_value("holocron/http/listings_resumed")
            logger.info(
                "Listing %(listing)s resumes from its cursor %(url)s",
                {"listing": item.resource_id, "url": url},
            )
        if url is None:
            url = self._first_page(seed.url)
        chain = chain or self.site.bounds.listing()
        # A redirect is followed by parse_listing, which leaves the secrets home when it leads
        # to another host (Scrapy's RedirectMiddleware would send every header there).
        meta = {
            "holocron_chain": chain,
            "dont_redirect": True,
            "handle_httpstatus_list": list(REDIRECT_STATUSES),
        }
        return self.request(url, item, seed, callback=self.callbacks.listing, meta=meta)

    def _first_page(self, url: str) -> str:
        pagination = self.site.config.pagination
        if pagination is not None and pagination.param and pagination.start is not None:
            return http_api.set_param(url, pagination.param, pagination.start)
        return url
