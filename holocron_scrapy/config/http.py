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
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BeforeValidator,
    Field,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

from holocron_scrapy.config.contact import HOW_TO_GIVE, contact_problem
from holocron_scrapy.config.document import read_document, resolve_source_path
from holocron_scrapy.config.errors import SourceConfigError, fail, kind, validate
from holocron_scrapy.config.fields import (
    NAME_PATTERN,
    OWNED_BY_KEYS,
    Depth,
    Flag,
    Name,
    NullIsEmpty,
    Settings,
    Unique,
    Url,
    UserAgent,
    at_least,
    at_least_one,
    bad_char,
    check,
    from_keys,
    one_of,
    url_problem,
)
from holocron_scrapy.config.sources import (
    FILE_KEYS,
    SourceType,
    Strategy,
    default_sources_dir,
    with_contact,
)
from holocron_scrapy.http import api as http_api

logger = logging.getLogger(__name__)

HTTP_TYPE = "http"
METHODS: tuple[str, ...] = ("GET", "POST")
PAGINATION_KINDS: tuple[str, ...] = ("json_next", "page_number", "link_header")
_TYPE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_HEADER_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: ``${NAME}`` in a header or param value: the environment variable NAME (secrets stay out of
#: source files).
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _string_map(*, env: bool = False, header: bool = False, null: Any = None) -> BeforeValidator:
    """A mapping of names to strings (numbers are written as text); with ``env``, ``${NAME}`` is
    replaced by the environment variable NAME; with ``header``, names are HTTP header names;
    ``null`` stands for ``null``."""

    def convert(value: Any) -> Any:
        if value is None or isinstance(value, MappingProxyType):
            return null if value is None else value
        if not isinstance(value, dict):
            fail(f"expected a mapping, got {kind(value)}")
        result = {}
        for name, item in value.items():
            if not isinstance(name, str) or not name:
                fail("names must be non-empty strings", str(name))
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                fail(f"expected a string, got {kind(item)}", name)
            text = str(item)
            for variable in _ENV_RE.findall(text) if env else ():
                if variable not in os.environ:
                    fail(f"the environment variable {variable} is not set", name)
            text = _ENV_RE.sub(lambda m: os.environ[m.group(1)], text) if env else text
            bad = bad_char(text)
            if bad:
                fail(f"must not contain control characters (found {bad})", name)
            if header and not _HEADER_RE.fullmatch(name):
                fail("is not a valid HTTP header name", name)
            if header and name.lower() in OWNED_BY_KEYS:
                fail(f"set it with the top-level {OWNED_BY_KEYS[name.lower()]!r} key instead", name)
            result[name] = text
        return MappingProxyType(result)

    return BeforeValidator(convert)


def _env_names(raw: Any) -> list[str]:
    """The names of a raw ``headers`` / ``params`` mapping whose values name a variable."""
    items = raw.items() if isinstance(raw, dict) else ()
    return [name for name, value in items if isinstance(value, str) and _ENV_RE.search(value)]


def _url_ref(ref: str) -> str | None:
    if not ref.strip():
        return "must not be empty"
    if any(ch.isspace() for ch in ref.strip()):
        return "must not contain whitespace (percent-encode it: %20)"
    return None


def _json_path(path: str) -> str | None:
    if not path or any(not part for part in path.split(".")) or bad_char(path):
        return f"expected a dotted JSON path like 'meta.next_cursor', got {path!r}"
    return None


def _param_name(name: str) -> str | None:
    if not name or bad_char(name) or any(ch in name for ch in "&=#? "):
        return f"expected a query parameter name, got {name!r}"
    return None


def _type_name(name: str) -> str | None:
    if _TYPE_NAME_RE.fullmatch(name) and name != http_api.RESOURCE_LISTING:
        return None
    return (
        f"{name!r} must match {NAME_PATTERN} (a directory in the lake) and not be "
        f"{http_api.RESOURCE_LISTING!r} (the type of paginated seeds)"
    )


def _template(template: str) -> str | None:
    if "{value}" in template or "{last_segment}" in template:
        return None
    return "must hold {value} or {last_segment}, e.g. 'works/{last_segment}'"


def _pattern(pattern: str) -> str | None:
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"is not a regular expression: {exc}"
    return None


def _domain(value: Any) -> Any:
    domain = value.strip().lower().rstrip(".") if isinstance(value, str) else value
    if isinstance(domain, str) and (
        not domain or "/" in domain or ":" in domain or any(c.isspace() for c in domain)
    ):
        fail(f"expected a host name like example.org, got {value!r}")
    return domain


def _start(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, str | int):
        fail(f"expected a string or an integer, got {kind(value)}")
    return str(value)


def _a_mapping_of(key: str, test: Callable[[str], str | None]) -> BeforeValidator:
    """A bare string passing ``test`` stands for ``{key: value}`` (a seed URL, a JSON field's
    path)."""

    def expand(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        problem = test(value)
        if problem:
            fail(problem)
        return {key: value}

    return BeforeValidator(expand)


UrlRef = Annotated[
    StrictStr, check(_url_ref), BeforeValidator(lambda v: v.strip() if isinstance(v, str) else v)
]
JsonPath = Annotated[StrictStr, check(_json_path)]
ParamName = Annotated[StrictStr, check(_param_name)]
Patterns = Annotated[
    tuple[Annotated[StrictStr, check(_pattern)], ...],
    BeforeValidator(lambda v: [v] if isinstance(v, str) else v),
]
Method = Annotated[
    Literal["GET", "POST"],
    one_of(METHODS, "method"),
    BeforeValidator(lambda v: v.upper() if isinstance(v, str) and v.upper() in METHODS else v),
]


@dataclass(frozen=True, eq=False, config=FILE_KEYS)
class HttpSeed:
    """A request to start from: a GET of ``url``, or a POST with a JSON or form body."""

    url: UrlRef = Field(description="the URL, relative to base_url or absolute")  # then absolute
    method: Method = "GET"
    json: Any = None
    form: Annotated[Mapping[str, str] | None, _string_map()] = None

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


@dataclasses.dataclass(frozen=True, slots=True)
class Pagination:
    """How a seed pages to its end (each seed is then a ``listing`` work item)."""

    kind: Literal["json_next", "page_number", "link_header"]
    field: str | None = None  # json_next: the JSON path of the next cursor (or URL)
    param: str | None = None  # the query parameter of the cursor or the page number
    start: str | None = None  # the first cursor, or the first page number
    until_empty: str | None = None  # page_number: the list whose emptiness ends it
    max_pages: int | None = None


@dataclass(frozen=True, config=FILE_KEYS)
class PaginationKeys:
    """``pagination:`` as written: exactly one of ``json_next``, ``page_number``, ``link_header``,
    with the keys that apply to it."""

    json_next: JsonPath | None = None  # the JSON path of the next cursor, or of the next URL
    page_number: ParamName | None = None  # the query parameter of the page number
    link_header: Flag = False  # the Link header's rel=next
    param: ParamName | None = None  # json_next: the query parameter the cursor is sent as
    start: Annotated[str | None, BeforeValidator(_start)] = None
    until_empty: JsonPath | None = None  # page_number: the list whose emptiness ends it
    max_pages: Annotated[int, at_least(1)] | None = None

    def pagination(self) -> Pagination:
        given = {k for k, v in dataclasses.asdict(self).items() if v not in (None, False)}
        kinds = [k for k in PAGINATION_KINDS if k in given]
        if len(kinds) != 1:
            fail(f"give exactly one of {', '.join(PAGINATION_KINDS)}, got {len(kinds)}")
        kind_ = kinds[0]
        applies = {
            "json_next": {"param", "start"},
            "page_number": {"start", "until_empty", "max_pages"},
        }
        for extra in sorted(given - applies.get(kind_, set()) - {kind_}):
            fail(f"does not apply to {kind_} pagination", extra)
        if kind_ == "page_number":
            if self.until_empty is None:
                fail(
                    "is required for page_number (the JSON list whose emptiness ends the "
                    "listing, e.g. results)",
                    "until_empty",
                )
            start = self.start or "1"
            if not start.lstrip("-").isdigit():
                fail(f"must be a page number, got {start!r}", "start")
            return Pagination(
                "page_number",
                param=self.page_number,
                start=start,
                until_empty=self.until_empty,
                max_pages=self.max_pages,
            )
        if kind_ == "json_next":
            if self.start is not None and self.param is None:
                fail("needs param (the query parameter it is sent as)", "start")
            return Pagination("json_next", field=self.json_next, param=self.param, start=self.start)
        return Pagination("link_header")


@dataclass(frozen=True, config=FILE_KEYS)
class JsonField:
    """URLs found at a JSON path: the values themselves, or ``url`` with ``{value}`` /
    ``{last_segment}`` filled in (both resolved against ``base_url``)."""

    path: JsonPath = Field(
        validation_alias="field", description="the JSON path of the values, e.g. referenced_works"
    )
    url: Annotated[UrlRef, check(_template)] | None = None


@dataclass(frozen=True, config=FILE_KEYS)
class HtmlLinks:
    """Links of HTML pages to follow (Scrapy's ``LinkExtractor`` ``allow`` / ``deny``)."""

    allow: Patterns = ()
    deny: Patterns = ()


@dataclass(frozen=True, config=FILE_KEYS)
class HttpDiscovery:
    json_fields: tuple[Annotated[JsonField, _a_mapping_of("field", _json_path)], ...] = ()
    html_links: Annotated[
        HtmlLinks | None, BeforeValidator(lambda v: {} if v is None or v is True else v)
    ] = None
    # empty: the hosts of base_url and the seeds
    allowed_domains: Annotated[
        tuple[Annotated[StrictStr, BeforeValidator(_domain)], ...],
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
        tuple[Annotated[HttpSeed, _a_mapping_of("url", _url_ref)], ...],
        at_least_one("URL or request"),
    ] = Field(description="a list of URLs, or {url, method: POST, json: ...} requests")
    headers: Annotated[Mapping[str, str], _string_map(env=True, header=True, null={})] = Field(
        default_factory=lambda: MappingProxyType({})
    )
    params: Annotated[Mapping[str, str], _string_map(env=True, null={})] = Field(
        default_factory=lambda: MappingProxyType({})
    )
    # Headers whose value comes from the environment: masked in the stored request headers.
    secret_headers: frozenset[str] = Field(default=frozenset(), exclude=True)
    # Params whose value comes from the environment: redacted wherever it would be stored.
    secret_params: frozenset[str] = Field(default=frozenset(), exclude=True)
    resource_type: Annotated[StrictStr, check(_type_name)] = "resource"
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
        secret_headers=frozenset(n.lower() for n in _env_names(document.get("headers"))),
        secret_params=frozenset(_env_names(document.get("params"))),
    )
    problem = contact_problem(config.user_agent)
    if problem:
        logger.warning(
            "%(path)s: user_agent %(ua)r %(problem)s; site operators ask for one (%(how)s)",
            {"path": path, "ua": config.user_agent, "problem": problem, "how": HOW_TO_GIVE},
        )
    return config
