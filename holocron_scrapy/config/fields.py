"""The value types of source files, declared once and shared by the models of both source types.

Each is a type with its constraint (``Annotated`` with a validator): ``Title``, ``Url``,
``Name``... YAML scalars are taken strictly (``"2"`` is not an integer, ``1`` not a boolean); a
list becomes a tuple, without duplicates. A constraint that fails says why with
:func:`holocron_scrapy.config.errors.fail`; type errors are worded by
:mod:`holocron_scrapy.config.errors` from pydantic's.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, StrictBool, StrictInt, StrictStr, TypeAdapter

from holocron_scrapy.config.errors import fail, kind, suggest

T = TypeVar("T")

MAX_DEPTH_LIMIT = 100
MAX_TITLE_BYTES = 255  # MediaWiki's limit on a title (without its namespace prefix)
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
SETTING_PATTERN = r"^[A-Z][A-Z0-9_]*$"
_NAME_RE = re.compile(NAME_PATTERN.strip("^$"))
_SETTING_RE = re.compile(SETTING_PATTERN.strip("^$"))
_TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
# Characters MediaWiki never allows in a title (see $wgLegalTitleChars); U+FFFD marks bad input.
_ILLEGAL_TITLE_CHARS = frozenset("#<>[]{}|\ufffd")
#: Where a crawl keeps its state: read (and checked) before any source file is, so a source
#: file may not name them (the check would validate another store than the crawl uses).
SETTINGS_OF_THE_CRAWL = ("HOLOCRON_DB_URL", "HOLOCRON_DB_SCHEMA", "HOLOCRON_LAKE_DIR")
#: Settings (and HTTP headers) that a top-level key already sets: two places for one value.
OWNED_BY_KEYS = {"USER_AGENT": "user_agent", "user-agent": "user_agent"}

Flag = StrictBool


def bad_char(text: str) -> str | None:
    """The first control (Cc) or lone surrogate (Cs) character of ``text``, as ``U+XXXX``."""
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            return f"U+{ord(ch):04X}"
    return None


def check(test: Callable[[Any], str | None]) -> AfterValidator:
    """A constraint: ``test`` returns why a value is refused, or ``None``."""

    def check(value: Any) -> Any:
        problem = test(value)
        if problem:
            fail(problem)
        return value

    return AfterValidator(check)


def at_least_one(what: str) -> BeforeValidator:
    """A list (a tuple once validated) of at least one ``what``."""

    def check(value: Any) -> Any:
        if not isinstance(value, list | tuple):
            fail(f"expected a list, got {kind(value)}")
        if not value:
            fail(f"must list at least one {what}")
        return tuple(value)

    return BeforeValidator(check)


def _unique(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(values))  # drop duplicates, keep the order


Unique = AfterValidator(_unique)


def between(low: int, high: int, note: str = "") -> AfterValidator:
    bounds = f"between {low} and {high}" + (f" ({note})" if note else "")
    return check(lambda n: None if low <= n <= high else f"must be {bounds}, got {n}")


def at_least(low: int, what: str = "") -> AfterValidator:
    """An integer of ``low`` or more (``what``: what it is, for the message)."""
    bound = f"{what} ({low} or more)" if what else f"{low} or more"
    return check(lambda n: None if n >= low else f"must be {bound}, got {n}")


def one_of(choices: Sequence[str], noun: str, plural: str = "") -> BeforeValidator:
    """A string among ``choices`` (a ``Literal``), with a "did you mean"."""

    def check(value: Any) -> Any:
        if not isinstance(value, str):
            fail(f"expected a string, got {kind(value)}")
        if value not in choices:
            fail(
                f"unsupported {noun} {value!r}{suggest(value, choices)}; "
                f"allowed{' ' + plural if plural else ''}: {', '.join(choices)}"
            )
        return value

    return BeforeValidator(check)


def from_keys(model: type[T], convert: Callable[[T], Any]) -> BeforeValidator:
    """A value written as the keys of ``model`` (validated by it, "did you mean" included),
    turned into another type by ``convert``; a value of that type already passes."""

    def validate(value: Any) -> Any:
        if isinstance(value, dict):
            return convert(TypeAdapter(model).validate_python(value))
        return value  # None, a value of the type, or an error of the type's

    validate.keys_model = model  # type: ignore[attr-defined]  # for errors._model_at
    return BeforeValidator(validate)


def _null_is_empty(value: Any) -> Any:
    return {} if value is None else value


#: A section whose entries are all commented out (``null``) is an empty one.
NullIsEmpty = BeforeValidator(_null_is_empty)


def _not_blank(text: str) -> str | None:
    if not text.strip():
        return "must not be empty"
    bad = bad_char(text)
    return f"must not contain control characters (found {bad})" if bad else None


def _title(title: str) -> str | None:
    problem = _not_blank(title)
    if problem:
        return problem
    illegal = sorted({ch for ch in title if ch in _ILLEGAL_TITLE_CHARS})
    if illegal:
        return f"contains characters MediaWiki does not allow in titles: {' '.join(illegal)}"
    size = len(title.encode("utf-8"))
    if size > MAX_TITLE_BYTES:
        return f"is {size} UTF-8 bytes long; MediaWiki titles are at most {MAX_TITLE_BYTES}"
    return None


def url_problem(url: str) -> str | None:
    """Why ``url`` is not an absolute http(s) URL, or ``None``."""
    if not url:
        return "must not be empty"
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in url):
        return "must not contain whitespace or control characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        return f"is not a valid URL: {exc}"
    if parts.scheme.lower() not in ("http", "https"):
        got = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        return f"must be an http:// or https:// URL, got {got}"
    return None if host else f"must include a host name, got {url!r}"


def _user_agent(text: str) -> str | None:
    if not text.strip():
        return "must not be empty (name the tool and give contact information)"
    return _not_blank(text)


def _name(name: str) -> str | None:
    if _NAME_RE.fullmatch(name):
        return None
    return (
        f"{name!r} does not match {NAME_PATTERN} (lower-case letters, digits, '-' and '_', "
        "at most 64 characters; it names a directory in the lake)"
    )


def _timestamp(value: Any) -> Any:
    if isinstance(value, datetime):  # YAML reads an unquoted timestamp as a datetime
        moment = value.astimezone(UTC) if value.tzinfo is not None else value
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, str) and not _TIMESTAMP_RE.fullmatch(value):
        fail(f'expected a UTC timestamp like "2026-01-01T00:00:00Z", got {value!r}')
    return value


def _settings(settings: Mapping[str, Any]) -> Mapping[str, Any]:
    for name in settings:
        if not _SETTING_RE.fullmatch(name):
            upper = name.upper()
            hint = f" (did you mean {upper!r}?)" if _SETTING_RE.fullmatch(upper) else ""
            fail(
                f"is not a Scrapy setting name{hint}; setting names match {SETTING_PATTERN}, "
                "e.g. DOWNLOAD_DELAY",
                name,
            )
        if name in SETTINGS_OF_THE_CRAWL:
            fail(
                "is where the crawl keeps its state, not a setting of one source: give it "
                f"on the command line (-s {name}=…)",
                name,
            )
        if name in OWNED_BY_KEYS:
            fail(f"set it with the top-level {OWNED_BY_KEYS[name]!r} key instead", name)
    return MappingProxyType(dict(settings))


Name = Annotated[StrictStr, check(_name)]
Url = Annotated[StrictStr, check(url_problem)]
UserAgent = Annotated[StrictStr, check(_user_agent)]
Title = Annotated[StrictStr, check(_title)]
SearchTerm = Annotated[StrictStr, check(_not_blank)]
Category = Annotated[
    Title,
    check(
        lambda t: (
            None
            if t.lower().startswith("category:")
            else f"expected a 'Category:...' title, got {t!r}"
        )
    ),
]
PageId = Annotated[StrictInt, at_least(1, "a page id")]
Namespace = Annotated[StrictInt, at_least(0)]
Depth = Annotated[StrictInt, between(0, MAX_DEPTH_LIMIT, "seeds are 0")]
Levels = Annotated[StrictInt, between(0, MAX_DEPTH_LIMIT)]
Timestamp = Annotated[StrictStr, BeforeValidator(_timestamp)]
#: A source's Scrapy settings, for this source only.
Settings = Annotated[Mapping[StrictStr, Any], NullIsEmpty, AfterValidator(_settings)]
