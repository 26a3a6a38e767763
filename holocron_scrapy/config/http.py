"""Source files of ``type: http``: ``sources/NAME.yaml`` -> a validated :class:`HttpSourceConfig`.

``scrapy crawl http -a source=openalex`` reads ``sources/openalex.yaml``::

    name: openalex
    type: http
    base_url: https://api.openalex.org/
    user_agent: "HolocronScrapy/0.1 (https://example.org/contact; ops@example.org)"
    params: {mailto: ops@example.org}
    seeds: ["works?filter=topics.id:T10017&per-page=200"]
    resource_type: work
    resource_id: id
    pagination: {json_next: meta.next_cursor, param: cursor, start: "*"}
    discovery:
      json_fields:
        - {field: results.id, url: "works/{last_segment}"}
        - {field: referenced_works, url: "works/{last_segment}"}
      max_depth: 1

Each key is declared once below, with its type, default and constraint (pydantic, the value types
of :mod:`holocron_scrapy.config.fields`); the first problem is one :class:`SourceConfigError`
naming the file and the dotted key, with a "did you mean" for a mistyped key
(:mod:`holocron_scrapy.config.errors`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

from holocron_scrapy.config.contact import HOW_TO_GIVE, contact_problem
from holocron_scrapy.config.document import read_document, resolve_source_path
from holocron_scrapy.config.errors import SourceConfigError, fail, validate
from holocron_scrapy.config.fields import (
    NAME_PATTERN,
    Depth,
    Name,
    NullIsEmpty,
    Settings,
    Unique,
    Url,
    UserAgent,
    at_least_one,
    from_keys,
    url_problem,
)
from holocron_scrapy.config.http_keys import (
    METHODS,
    PAGINATION_KINDS,
    Domain,
    JsonPath,
    Method,
    Pagination,
    PaginationKeys,
    Patterns,
    TypeName,
    UrlRef,
    UrlTemplate,
    a_mapping_of,
    env_names,
    json_path_problem,
    string_map,
    url_ref_problem,
)
from holocron_scrapy.config.sources import (
    FILE_KEYS,
    SourceType,
    Strategy,
    default_sources_dir,
    with_contact,
)
from holocron_scrapy.http import api as http_api

__all__ = [
    "METHODS",
    "PAGINATION_KINDS",
    "HtmlLinks",
    "HttpDiscovery",
    "HttpSeed",
    "HttpSourceConfig",
    "JsonField",
    "Pagination",
    "load_http_source",
]

logger = logging.getLogger(__name__)

HTTP_TYPE = "http"


@dataclass(frozen=True, eq=False, config=FILE_KEYS)
class HttpSeed:
    """A request to start from: a GET of ``url``, or a POST with a JSON or form body."""

    url: UrlRef = Field(description="the URL, relative to base_url or absolute")  # then absolute
    method: Method = "GET"
    json: Any = None
    form: Annotated[Mapping[str, str] | None, string_map()] = None

    @model_validator(mode="after")
    def _body_fits_method(self) -> HttpSeed:
        has_body = self.json is not None or self.form is not None
        if self.json is not None and self.form is not None:
            fail("give either json or form, not both", "form")
        if self.method == "GET" and has_body:
            fail("a seed with a json or form body must be method: POST", "method")
        if self.method == "POST" and not has_body:
            fail("a POST seed needs a json or form body", "json")
        return self

    @property
    def resource_id(self) -> str:
        if self.method == "POST":
            return http_api.post_key(self.url, self.json, self.form)
        return http_api.resource_key(self.url)


@dataclass(frozen=True, config=FILE_KEYS)
class JsonField:
    """URLs found at a JSON path: the values themselves, or ``url`` with ``{value}`` /
    ``{last_segment}`` filled in (both resolved against ``base_url``)."""

    path: JsonPath = Field(
        validation_alias="field", description="the JSON path of the values, e.g. referenced_works"
    )
    url: UrlTemplate | None = None


@dataclass(frozen=True, config=FILE_KEYS)
class HtmlLinks:
    """Links of HTML pages to follow (Scrapy's ``LinkExtractor`` ``allow`` / ``deny``)."""

    allow: Patterns = ()
    deny: Patterns = ()


@dataclass(frozen=True, config=FILE_KEYS)
class HttpDiscovery:
    json_fields: tuple[Annotated[JsonField, a_mapping_of("field", json_path_problem)], ...] = ()
    html_links: Annotated[
        HtmlLinks | None, BeforeValidator(lambda v: {} if v is None or v is True else v)
    ] = None
    # empty: the hosts of base_url and the seeds
    allowed_domains: Annotated[
        tuple[Domain, ...],
        at_least_one("domain (or leave the key out)"),
        Unique,
    ] = ()
    max_depth: Depth = 1
    strategy: Strategy = "breadth"


@dataclass(frozen=True, config=FILE_KEYS)
class HttpSourceConfig:
    path: Path = Field(exclude=True)  # the file (not a key of it)
    name: Name = Field(description=f"the source name, matching {NAME_PATTERN}")
    type: SourceType = Field(description=HTTP_TYPE)
    base_url: Url = Field(description="the site's or API's URL; seeds are relative to it")
    user_agent: UserAgent = Field(description="a User-Agent with contact information")
    seeds: Annotated[
        tuple[Annotated[HttpSeed, a_mapping_of("url", url_ref_problem)], ...],
        at_least_one("URL or request"),
    ] = Field(description="a list of URLs, or {url, method: POST, json: ...} requests")
    headers: Annotated[Mapping[str, str], string_map(env=True, header=True, null={})] = Field(
        default_factory=lambda: MappingProxyType({})
    )
    params: Annotated[Mapping[str, str], string_map(env=True, null={})] = Field(
        default_factory=lambda: MappingProxyType({})
    )
    # Headers whose value comes from the environment: masked in the stored request headers.
    secret_headers: frozenset[str] = Field(default=frozenset(), exclude=True)
    # Params whose value comes from the environment: redacted wherever it would be stored.
    secret_params: frozenset[str] = Field(default=frozenset(), exclude=True)
    resource_type: TypeName = "resource"
    resource_id: JsonPath = "url"  # or a JSON path of the record (``id``)
    pagination: Annotated[
        Pagination | None, from_keys(PaginationKeys, PaginationKeys.pagination)
    ] = None
    discovery: Annotated[HttpDiscovery, NullIsEmpty] = Field(default_factory=HttpDiscovery)
    settings: Settings = Field(default_factory=lambda: MappingProxyType({}))

    @field_validator("seeds")
    @classmethod
    def _absolute(cls, seeds: tuple[HttpSeed, ...], info: ValidationInfo) -> tuple[HttpSeed, ...]:
        """The seeds resolved against ``base_url``, each request once."""
        base_url = info.data.get("base_url")
        if base_url is None:
            return seeds  # its own error is reported
        unique: dict[str, HttpSeed] = {}
        for index, seed in enumerate(seeds):
            url = http_api.absolute_url(base_url, seed.url)
            problem = url_problem(url)
            if problem:
                fail(problem, index)
            absolute = dataclasses.replace(seed, url=url)
            unique.setdefault(absolute.resource_id, absolute)
        return tuple(unique.values())

    @property
    def allowed_domains(self) -> tuple[str, ...]:
        """Where discovered URLs may lead: ``discovery.allowed_domains``, else the hosts of
        ``base_url`` and of the seeds."""
        if self.discovery.allowed_domains:
            return self.discovery.allowed_domains
        hosts = [urlsplit(u).hostname or "" for u in (self.base_url, *(s.url for s in self.seeds))]
        return tuple(dict.fromkeys(h for h in hosts if h))


def load_http_source(
    ref: str, sources_dir: Path | None = None, *, contact: str | None = None
) -> HttpSourceConfig:
    """Find, read and validate an http source file (``SourceConfigError`` on any problem,
    including a file of another type: it names the spider to run it with); ``contact`` is
    merged into its ``user_agent`` (:mod:`holocron_scrapy.config.contact`)."""
    if sources_dir is None:
        sources_dir = default_sources_dir()
    path = resolve_source_path(ref, sources_dir).absolute()
    document = read_document(path, sources_dir)
    kind_ = document.get("type")
    if kind_ != HTTP_TYPE and isinstance(kind_, str) and kind_:
        raise SourceConfigError(
            path,
            "type",
            f"a {kind_!r} source: run it with `scrapy crawl {kind_}`, not `scrapy crawl http`",
        )
    config = validate(
        HttpSourceConfig,
        with_contact(document, contact),
        path,
        path=path,
        secret_headers=frozenset(n.lower() for n in env_names(document.get("headers"))),
        secret_params=frozenset(env_names(document.get("params"))),
    )
    problem = contact_problem(config.user_agent)
    if problem:
        logger.warning(
            "%(path)s: user_agent %(ua)r %(problem)s; site operators ask for one (%(how)s)",
            {"path": path, "ua": config.user_agent, "problem": problem, "how": HOW_TO_GIVE},
        )
    return config
