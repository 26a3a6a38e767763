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

The file is read and checked with the helpers of :mod:`holocron_scrapy.config.sources`: the first
problem is one :class:`SourceConfigError` naming the file and the dotted key, with a "did you
mean" for a mistyped key.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from holocron_scrapy.config.contact import HOW_TO_GIVE, merge_contact
from holocron_scrapy.config.sources import (
    NAME_PATTERN,
    SourceConfigError,
    _bad_char,
    _contact_problem,
    _kind,
    _read_document,
    _Validator,
    default_sources_dir,
    resolve_source_path,
)
from holocron_scrapy.http import api as http_api

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

logger = logging.getLogger(__name__)

HTTP_TYPE = "http"
METHODS: tuple[str, ...] = ("GET", "POST")
PAGINATION_KINDS: tuple[str, ...] = ("json_next", "page_number", "link_header")
_TYPE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_HEADER_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADERS_OWNED_BY_KEYS: Mapping[str, str] = MappingProxyType({"user-agent": "user_agent"})
#: ``${NAME}`` in a header or param value: the environment variable NAME (secrets stay out of
#: source files).
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True, eq=False)
class HttpSeed:
    """A request to start from: a GET of ``url``, or a POST with a JSON or form body."""

    url: str  # absolute
    method: str = "GET"
    json: Any = None
    form: Mapping[str, str] | None = None

    @property
    def resource_id(self) -> str:
        if self.method == "POST":
            return http_api.post_key(self.url, self.json, self.form)
        return http_api.resource_key(self.url)


@dataclass(frozen=True, slots=True)
class Pagination:
    """How a seed pages to its end (each seed is then a ``listing`` work item)."""

    kind: Literal["json_next", "page_number", "link_header"]
    field: str | None = None  # json_next: the JSON path of the next cursor (or URL)
    param: str | None = None  # the query parameter of the cursor or the page number
    start: str | None = None  # the first cursor, or the first page number
    until_empty: str | None = None  # page_number: the list whose emptiness ends it
    max_pages: int | None = None


@dataclass(frozen=True, slots=True)
class JsonField:
    """URLs found at a JSON path: the values themselves, or ``url`` with ``{value}`` /
    ``{last_segment}`` filled in (both resolved against ``base_url``)."""

    path: str
    url: str | None = None


@dataclass(frozen=True, slots=True)
class HtmlLinks:
    """Links of HTML pages to follow (Scrapy's ``LinkExtractor`` ``allow`` / ``deny``)."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HttpDiscovery:
    json_fields: tuple[JsonField, ...] = ()
    html_links: HtmlLinks | None = None
    allowed_domains: tuple[str, ...] = ()  # empty: the hosts of base_url and the seeds
    max_depth: int = 1
    strategy: Literal["breadth", "depth"] = "breadth"


@dataclass(frozen=True, slots=True)
class HttpSourceConfig:
    path: Path
    name: str
    base_url: str
    user_agent: str
    seeds: tuple[HttpSeed, ...]
    type: str = HTTP_TYPE
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Headers whose value comes from the environment: masked in the stored request headers.
    secret_headers: frozenset[str] = frozenset()
    # Params whose value comes from the environment: redacted wherever it would be stored.
    secret_params: frozenset[str] = frozenset()
    resource_type: str = "resource"
    resource_id: str = "url"  # or a JSON path of the record (``id``)
    pagination: Pagination | None = None
    discovery: HttpDiscovery = field(default_factory=HttpDiscovery)
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

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
    document = _read_document(path, sources_dir)
    kind = document.get("type")
    if kind != HTTP_TYPE and isinstance(kind, str) and kind:
        raise SourceConfigError(
            path,
            "type",
            f"a {kind!r} source: run it with `scrapy crawl {kind}`, not `scrapy crawl http`",
        )
    config = _HttpValidator(path).http_source(document)
    if contact:
        config = replace(config, user_agent=merge_contact(config.user_agent, contact))
    problem = _contact_problem(config.user_agent)
    if problem:
        logger.warning(
            "%(path)s: user_agent %(ua)r %(problem)s; site operators ask for one (%(how)s)",
            {"path": path, "ua": config.user_agent, "problem": problem, "how": HOW_TO_GIVE},
        )
    return config


class _HttpValidator(_Validator):
    """The http keys, on top of the shared shapes of :class:`sources._Validator`."""

    def http_source(self, document: dict[Any, Any]) -> HttpSourceConfig:
        values = self.section(
            "",
            document,
            {
                "name": self.name,
                "type": self.source_type,
                "base_url": self.api_url,
                "user_agent": self.user_agent,
                "headers": self.headers,
                "params": self.params,
                "seeds": self.http_seeds,
                "resource_type": self.type_name,
                "resource_id": self.json_path,
                "pagination": self.pagination,
                "discovery": self.http_discovery,
                "settings": self.settings,
            },
            required={
                "name": f" (the source name, matching {NAME_PATTERN})",
                "type": " (http)",
                "base_url": " (the site's or API's URL; seeds are relative to it)",
                "user_agent": " (a User-Agent with contact information)",
                "seeds": " (a list of URLs, or {url, method: POST, json: ...} requests)",
            },
        )
        base_url = values["base_url"]
        seeds = tuple(
            HttpSeed(http_api.absolute_url(base_url, s.url), s.method, s.json, s.form)
            for s in values["seeds"]
        )
        for index, seed in enumerate(seeds):
            self.api_url(f"seeds[{index}]", seed.url)
        unique: dict[str, HttpSeed] = {}
        for seed in seeds:
            unique.setdefault(seed.resource_id, seed)
        return HttpSourceConfig(
            path=self.path,
            name=values["name"],
            base_url=base_url,
            user_agent=values["user_agent"],
            seeds=tuple(unique.values()),
            headers=MappingProxyType(values.get("headers", {})),
            secret_headers=frozenset(
                name.lower()
                for name, raw in (document.get("headers") or {}).items()
                if isinstance(raw, str) and _ENV_RE.search(raw)
            ),
            params=MappingProxyType(values.get("params", {})),
            secret_params=frozenset(
                name
                for name, raw in (document.get("params") or {}).items()
                if isinstance(raw, str) and _ENV_RE.search(raw)
            ),
            resource_type=values.get("resource_type", "resource"),
            resource_id=values.get("resource_id", "url"),
            pagination=values.get("pagination"),
            discovery=values.get("discovery", HttpDiscovery()),
            settings=MappingProxyType(values.get("settings", {})),
        )

    def string_map(self, key: str, value: Any, *, env: bool = False) -> dict[str, str]:
        """A mapping of names to strings (numbers are written as text); with ``env``,
        ``${NAME}`` is replaced by the environment variable NAME."""
        result = {}
        for name, item in self.mapping(key, value, optional=True).items():
            dotted = f"{key}.{name}"
            if not isinstance(name, str) or not name:
                self.fail(dotted, "names must be non-empty strings")
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                self.fail(dotted, f"expected a string, got {_kind(item)}")
            text = str(item)
            if env:
                for variable in _ENV_RE.findall(text):
                    if variable not in os.environ:
                        self.fail(dotted, f"the environment variable {variable} is not set")
                text = _ENV_RE.sub(lambda m: os.environ[m.group(1)], text)
            bad = _bad_char(text)
            if bad:
                self.fail(dotted, f"must not contain control characters (found {bad})")
            result[name] = text
        return result

    def headers(self, key: str, value: Any) -> dict[str, str]:
        headers = self.string_map(key, value, env=True)
        for name in headers:
            if not _HEADER_RE.fullmatch(name):
                self.fail(f"{key}.{name}", "is not a valid HTTP header name")
            if name.lower() in _HEADERS_OWNED_BY_KEYS:
                owner = _HEADERS_OWNED_BY_KEYS[name.lower()]
                self.fail(f"{key}.{name}", f"set it with the top-level {owner!r} key instead")
        return headers

    def params(self, key: str, value: Any) -> dict[str, str]:
        return self.string_map(key, value, env=True)

    def http_seeds(self, key: str, value: Any) -> list[HttpSeed]:
        items = self.sequence(key, value)
        if not items:
            self.fail(key, "must list at least one URL or request")
        return [self.http_seed(f"{key}[{i}]", item) for i, item in enumerate(items)]

    def http_seed(self, key: str, value: Any) -> HttpSeed:
        if isinstance(value, str):
            return HttpSeed(self.url_ref(key, value))
        values = self.section(
            f"{key}.",
            self.mapping(key, value),
            {
                "url": self.url_ref,
                "method": self.method,
                "json": lambda _k, v: v,
                "form": self.string_map,
            },
            required={"url": " (the URL, relative to base_url or absolute)"},
        )
        method = values.get("method", "GET")
        has_body = "json" in values or "form" in values
        if "json" in values and "form" in values:
            self.fail(f"{key}.form", "give either json or form, not both")
        if method == "GET" and has_body:
            self.fail(f"{key}.method", "a seed with a json or form body must be method: POST")
        if method == "POST" and not has_body:
            self.fail(f"{key}.json", "a POST seed needs a json or form body")
        return HttpSeed(values["url"], method, values.get("json"), values.get("form"))

    def url_ref(self, key: str, value: Any) -> str:
        ref = self.string(key, value).strip()
        if not ref:
            self.fail(key, "must not be empty")
        if any(ch.isspace() for ch in ref):
            self.fail(key, "must not contain whitespace (percent-encode it: %20)")
        return ref

    def method(self, key: str, value: Any) -> str:
        method = self.string(key, value).upper()
        if method not in METHODS:
            self.fail(key, f"unsupported method {value!r}; allowed: {', '.join(METHODS)}")
        return method

    def type_name(self, key: str, value: Any) -> str:
        name = self.string(key, value)
        if not _TYPE_NAME_RE.fullmatch(name) or name == http_api.RESOURCE_LISTING:
            self.fail(
                key,
                f"{name!r} must match {NAME_PATTERN} (a directory in the lake) and not be "
                f"{http_api.RESOURCE_LISTING!r} (the type of paginated seeds)",
            )
        return name

    def json_path(self, key: str, value: Any) -> str:
        path = self.string(key, value)
        if not path or any(not part for part in path.split(".")) or _bad_char(path):
            self.fail(key, f"expected a dotted JSON path like 'meta.next_cursor', got {path!r}")
        return path

    def pagination(self, key: str, value: Any) -> Pagination:
        values = self.section(
            f"{key}.",
            self.mapping(key, value),
            {
                "json_next": self.json_path,
                "page_number": self.param_name,
                "link_header": self.boolean,
                "param": self.param_name,
                "start": self.start,
                "until_empty": self.json_path,
                "max_pages": self.positive,
            },
        )
        kinds = [k for k in PAGINATION_KINDS if values.get(k) not in (None, False)]
        if len(kinds) != 1:
            self.fail(key, f"give exactly one of {', '.join(PAGINATION_KINDS)}, got {len(kinds)}")
        kind = kinds[0]
        allowed = {
            "json_next": {"param", "start"},
            "page_number": {"start", "until_empty", "max_pages"},
            "link_header": set(),
        }[kind]
        for extra in sorted(set(values) - allowed - {kind}):
            self.fail(f"{key}.{extra}", f"does not apply to {kind} pagination")
        if kind == "page_number":
            if "until_empty" not in values:
                self.fail(
                    f"{key}.until_empty",
                    "is required for page_number (the JSON list "
                    "whose emptiness ends the listing, e.g. results)",
                )
            start = values.get("start", "1")
            if not start.lstrip("-").isdigit():
                self.fail(f"{key}.start", f"must be a page number, got {start!r}")
            return Pagination(
                "page_number",
                param=values["page_number"],
                start=start,
                until_empty=values["until_empty"],
                max_pages=values.get("max_pages"),
            )
        if kind == "json_next":
            if "start" in values and "param" not in values:
                self.fail(f"{key}.start", "needs param (the query parameter it is sent as)")
            return Pagination(
                "json_next",
                field=values["json_next"],
                param=values.get("param"),
                start=values.get("start"),
            )
        return Pagination("link_header")

    def param_name(self, key: str, value: Any) -> str:
        name = self.string(key, value)
        if not name or _bad_char(name) or any(ch in name for ch in "&=#? "):
            self.fail(key, f"expected a query parameter name, got {name!r}")
        return name

    def start(self, key: str, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.fail(key, f"expected a string or an integer, got {_kind(value)}")
        return str(value)

    def positive(self, key: str, value: Any) -> int:
        number = self.integer(key, value)
        if number < 1:
            self.fail(key, f"must be 1 or more, got {number}")
        return number

    def http_discovery(self, key: str, value: Any) -> HttpDiscovery:
        values = self.section(
            f"{key}.",
            self.mapping(key, value, optional=True),
            {
                "json_fields": self.json_fields,
                "html_links": self.html_links,
                "allowed_domains": self.domains,
                "max_depth": self.max_depth,
                "strategy": self.strategy,
            },
        )
        return HttpDiscovery(**values)

    def json_fields(self, key: str, value: Any) -> tuple[JsonField, ...]:
        fields = []
        for index, item in enumerate(self.sequence(key, value)):
            dotted = f"{key}[{index}]"
            if isinstance(item, str):
                fields.append(JsonField(self.json_path(dotted, item)))
                continue
            values = self.section(
                f"{dotted}.",
                self.mapping(dotted, item),
                {"field": self.json_path, "url": self.url_template},
                required={"field": " (the JSON path of the values, e.g. referenced_works)"},
            )
            fields.append(JsonField(values["field"], values.get("url")))
        return tuple(fields)

    def url_template(self, key: str, value: Any) -> str:
        template = self.url_ref(key, value)
        if "{value}" not in template and "{last_segment}" not in template:
            self.fail(key, "must hold {value} or {last_segment}, e.g. 'works/{last_segment}'")
        return template

    def html_links(self, key: str, value: Any) -> HtmlLinks:
        if value is True:
            return HtmlLinks()
        values = self.section(
            f"{key}.",
            self.mapping(key, value, optional=True),
            {"allow": self.patterns, "deny": self.patterns},
        )
        return HtmlLinks(**values)

    def patterns(self, key: str, value: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else self.sequence(key, value)
        patterns = []
        for index, item in enumerate(items):
            pattern = self.string(f"{key}[{index}]", item)
            try:
                re.compile(pattern)
            except re.error as exc:
                self.fail(f"{key}[{index}]", f"is not a regular expression: {exc}")
            patterns.append(pattern)
        return tuple(patterns)

    def domains(self, key: str, value: Any) -> tuple[str, ...]:
        items = self.sequence(key, value)
        if not items:
            self.fail(key, "must list at least one domain (or leave the key out)")
        domains = []
        for index, item in enumerate(items):
            domain = self.string(f"{key}[{index}]", item).strip().lower().rstrip(".")
            if not domain or "/" in domain or ":" in domain or any(c.isspace() for c in domain):
                self.fail(f"{key}[{index}]", f"expected a host name like example.org, got {item!r}")
            domains.append(domain)
        return tuple(dict.fromkeys(domains))
