"""The value types of ``type: http`` source files and their ``pagination:`` (the models of
:mod:`holocron_scrapy.config.http` use them): request parts (URL references, methods, header and
param maps with ``${NAME}`` from the environment), JSON paths, patterns, domains.
"""

from __future__ import annotations

import dataclasses
import os
import re
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, StrictStr
from pydantic.dataclasses import dataclass

from holocron_scrapy.config.errors import fail, kind
from holocron_scrapy.config.fields import (
    NAME_PATTERN,
    OWNED_BY_KEYS,
    Flag,
    at_least,
    bad_char,
    check,
    one_of,
)
from holocron_scrapy.config.sources import FILE_KEYS
from holocron_scrapy.model import RESOURCE_LISTING

if TYPE_CHECKING:
    from collections.abc import Callable

METHODS: tuple[str, ...] = ("GET", "POST")
PAGINATION_KINDS: tuple[str, ...] = ("json_next", "page_number", "link_header")
_TYPE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_HEADER_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: ``${NAME}`` in a header or param value: the environment variable NAME (secrets stay out of
#: source files).
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def string_map(*, env: bool = False, header: bool = False, null: Any = None) -> BeforeValidator:
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


def env_names(raw: Any) -> list[str]:
    """The names of a raw ``headers`` / ``params`` mapping whose values name a variable."""
    items = raw.items() if isinstance(raw, dict) else ()
    return [name for name, value in items if isinstance(value, str) and _ENV_RE.search(value)]


def url_ref_problem(ref: str) -> str | None:
    if not ref.strip():
        return "must not be empty"
    if any(ch.isspace() for ch in ref.strip()):
        return "must not contain whitespace (percent-encode it: %20)"
    return None


def json_path_problem(path: str) -> str | None:
    if not path or any(not part for part in path.split(".")) or bad_char(path):
        return f"expected a dotted JSON path like 'meta.next_cursor', got {path!r}"
    return None


def _param_name(name: str) -> str | None:
    if not name or bad_char(name) or any(ch in name for ch in "&=#? "):
        return f"expected a query parameter name, got {name!r}"
    return None


def _type_name(name: str) -> str | None:
    if _TYPE_NAME_RE.fullmatch(name) and name != RESOURCE_LISTING:
        return None
    return (
        f"{name!r} must match {NAME_PATTERN} (a directory in the lake) and not be "
        f"{RESOURCE_LISTING!r} (the type of paginated seeds)"
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


def a_mapping_of(key: str, test: Callable[[str], str | None]) -> BeforeValidator:
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
    StrictStr,
    check(url_ref_problem),
    BeforeValidator(lambda v: v.strip() if isinstance(v, str) else v),
]
JsonPath = Annotated[StrictStr, check(json_path_problem)]
ParamName = Annotated[StrictStr, check(_param_name)]
Patterns = Annotated[
    tuple[Annotated[StrictStr, check(_pattern)], ...],
    BeforeValidator(lambda v: [v] if isinstance(v, str) else v),
]
TypeName = Annotated[StrictStr, check(_type_name)]
UrlTemplate = Annotated[UrlRef, check(_template)]
Domain = Annotated[StrictStr, BeforeValidator(_domain)]
Method = Annotated[
    Literal["GET", "POST"],
    one_of(METHODS, "method"),
    BeforeValidator(lambda v: v.upper() if isinstance(v, str) and v.upper() in METHODS else v),
]


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
