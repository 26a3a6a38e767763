"""Per-source settings files: ``sources/NAME.yaml`` → a validated :class:`SourceConfig`.

A crawl is started with ``scrapy crawl mediawiki -a source=wikipedia``. ``source`` is either a
name, looked up as ``NAME.yaml`` in the project's ``sources/`` directory, or a path to a YAML file.
The file says which wiki to crawl, as whom, from which seeds, how far to follow links, and which
Scrapy settings apply to this source only::

    name: wikipedia
    type: mediawiki
    api_url: https://en.wikipedia.org/w/api.php
    user_agent: "HolocronScrapy/0.1 (https://example.org/contact; ops@example.org)"
    seeds:
      titles: ["Star Wars", "Luke Skywalker"]
    discovery:
      links: true
      max_depth: 2
      strategy: breadth
      namespaces: [0]
    settings:
      DOWNLOAD_DELAY: 1.0

Everything is checked when the file is loaded. The first problem found is raised as one
:class:`SourceConfigError` naming the file and the dotted key (``discovery.max_depth``), so a typo
fails the crawl before any request is sent. Nothing here touches Scrapy's crawler or the network.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import reprlib
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NoReturn, cast
from urllib.parse import urlsplit

import yaml
from scrapy.utils.conf import closest_scrapy_cfg

from holocron_scrapy.config.contact import HOW_TO_GIVE, merge_contact
from holocron_scrapy.config.reading import SourceReadError, load_yaml, read_bounded
from holocron_scrapy.mediawiki.resources import DEFAULT_RESOURCES, PAGE, RESOURCE_TYPES
from holocron_scrapy.packaged import shipped_sources_dir

logger = logging.getLogger(__name__)

SOURCE_TYPES: tuple[str, ...] = ("mediawiki", "http")  # http: see http_source.py
STRATEGIES: tuple[str, ...] = ("breadth", "depth")
MAX_DEPTH_LIMIT = 100
MAX_TITLE_BYTES = 255  # MediaWiki's limit on a title (without its namespace prefix)
YAML_SUFFIXES: tuple[str, ...] = (".yaml", ".yml")
SEED_KINDS: tuple[str, ...] = (
    "titles",
    "pageids",
    "categories",
    "search",
    "opensearch",
    "allpages",
    "recentchanges",
)
_TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
SETTING_PATTERN = r"^[A-Z][A-Z0-9_]*$"
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_SETTING_RE = re.compile(r"[A-Z][A-Z0-9_]*")

# Characters MediaWiki never allows in a title (see $wgLegalTitleChars); U+FFFD marks bad input.
_ILLEGAL_TITLE_CHARS = frozenset("#<>[]{}|\ufffd")

# Settings that a top-level key already sets; two places for one value would be ambiguous.
_SETTINGS_OWNED_BY_KEYS: Mapping[str, str] = MappingProxyType({"USER_AGENT": "user_agent"})
#: Where a crawl keeps its state: read (and checked) before any source file is, so a source
#: file may not name them (the check would validate another store than the crawl uses).
_SETTINGS_OF_THE_CRAWL = ("HOLOCRON_DB_URL", "HOLOCRON_DB_SCHEMA", "HOLOCRON_LAKE_DIR")

_PLACEHOLDER_CONTACT_RE = re.compile(r"example\.(?:org|com|net)\b|CHANGE[-_ ]?ME", re.IGNORECASE)

#: Wikimedia's wikis: their User-Agent policy blocks clients without contact information, so a
#: source on one of these hosts is refused (other hosts get a warning).
WIKIMEDIA_DOMAINS: tuple[str, ...] = (
    "wikipedia.org",
    "wikimedia.org",
    "wikidata.org",
    "wiktionary.org",
    "wikibooks.org",
    "wikiquote.org",
    "wikisource.org",
    "wikinews.org",
    "wikiversity.org",
    "wikivoyage.org",
    "mediawiki.org",
)
WIKIMEDIA_UA_POLICY = "https://meta.wikimedia.org/wiki/User-Agent_policy"


class SourceConfigError(Exception):
    """A source file that cannot be used: ``str(e) == f"{path}: {key}: {message}"``.

    ``key`` is the dotted key of the problem (``discovery.max_depth``, ``seeds.titles[2]``), or one
    of ``source`` (the file cannot be found or read), ``<yaml>`` (not valid YAML) and ``<root>``
    (the document is empty or not a mapping).
    """

    def __init__(self, path: Path, key: str, message: str) -> None:
        super().__init__(path, key, message)  # keeps the exception picklable
        self.path = path
        self.key = key
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.key}: {self.message}"


@dataclass(frozen=True, slots=True)
class Seeds:
    """Where a crawl starts, at depth 0: page titles, and listings whose members are pages
    (see :mod:`holocron_scrapy.mediawiki.listings`)."""

    titles: tuple[str, ...] = ()
    pageids: tuple[int, ...] = ()
    categories: tuple[str, ...] = ()  # members, into subcategories to discovery.category_depth
    search: tuple[str, ...] = ()  # full-text search (list=search)
    opensearch: tuple[str, ...] = ()  # title prefix suggestions (action=opensearch)
    allpages: tuple[int, ...] = ()  # namespaces enumerated whole
    recentchanges_since: str | None = None  # pages changed since (ISO 8601 timestamp)


@dataclass(frozen=True, slots=True)
class Discovery:
    """Which links found on crawled pages are followed, and how far."""

    links: bool = True
    max_depth: int = 1  # seeds are depth 0
    strategy: Literal["breadth", "depth"] = "breadth"
    namespaces: tuple[int, ...] = (0,)
    category_depth: int = 0  # subcategory levels a category seed descends (0: its own members)
    categories: bool = False  # a page's categories, and a category page's members
    templates: bool = False  # the templates a page uses
    backlinks: bool = False  # the pages that link to a page


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """A validated source file."""

    path: Path
    name: str  # the source_name: a directory name in the lake
    type: str  # the kind of site; only "mediawiki" for now
    api_url: str
    user_agent: str
    seeds: Seeds
    discovery: Discovery = field(default_factory=Discovery)
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # What is stored per page (holocron_scrapy.mediawiki.resources); always holds "page".
    resources: tuple[str, ...] = DEFAULT_RESOURCES


def default_sources_dir() -> Path:
    """``<project root>/sources``, the project root being the directory of the closest
    ``scrapy.cfg`` above the working directory; ``./sources`` when there is none."""
    cfg = closest_scrapy_cfg()
    if cfg:
        return Path(cfg).parent / "sources"
    return Path.cwd() / "sources"


def resolve_source_path(ref: str, sources_dir: Path) -> Path:
    """The file a ``source`` argument names.

    A reference holding a path separator or ending in ``.yaml``/``.yml`` is a path (``~`` is
    expanded, relative paths are relative to the working directory). Anything else is a source
    name: ``sources_dir/NAME.yaml``, or ``sources_dir/NAME.yml`` when only that one exists.
    The file is not required to exist.

    A name not found in ``sources_dir`` is looked up among the source files shipped with the
    package (:func:`holocron_scrapy.packaged.shipped_sources_dir`): the user's own directory
    comes first.
    """
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    if any(sep in ref for sep in separators) or ref.lower().endswith(YAML_SUFFIXES):
        return Path(ref).expanduser()
    shipped = shipped_sources_dir()
    for directory in (sources_dir, shipped):
        if directory is None:
            continue
        for suffix in YAML_SUFFIXES:
            candidate = directory / f"{ref}{suffix}"
            if candidate.exists():
                return candidate
    return sources_dir / f"{ref}.yaml"


def available_sources(sources_dir: Path | None) -> list[str]:
    """The source names (file stems) of the YAML files in ``sources_dir``, sorted."""
    if sources_dir is None:
        return []
    try:
        entries = list(sources_dir.iterdir())
    except OSError:
        return []
    return sorted(
        {p.stem for p in entries if p.suffix.lower() in YAML_SUFFIXES and p.is_file()},
    )


def load_source(
    ref: str, sources_dir: Path | None = None, *, contact: str | None = None
) -> SourceConfig:
    """Find, read and validate a source file; raise :class:`SourceConfigError` on any problem.

    ``contact`` (``HOLOCRON_CONTACT``, validated by :mod:`holocron_scrapy.config.contact`) is merged
    into the file's ``user_agent`` before the User-Agent is checked."""
    if sources_dir is None:
        sources_dir = default_sources_dir()
    path = resolve_source_path(ref, sources_dir).absolute()
    document = _read_document(path, sources_dir)
    config = _Validator(path).source(document)
    if contact:
        config = replace(config, user_agent=merge_contact(config.user_agent, contact))
    _check_user_agent(config)
    logger.debug("Loaded source %(name)s from %(path)s", {"name": config.name, "path": path})
    return config


# --- reading ---------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys instead of keeping the last one."""


def _construct_mapping_without_duplicates(
    loader: yaml.SafeLoader, node: yaml.MappingNode
) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue  # merge keys (<<) may be overridden; complex keys fail later anyway
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # unhashable; construct_mapping reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping_without_duplicates,
)


def _read_document(path: Path, sources_dir: Path) -> dict[Any, Any]:
    try:
        raw = read_bounded(path)  # a regular file of a bounded size (not /dev/zero, a FIFO)
    except SourceReadError as exc:
        raise SourceConfigError(path, exc.key or "source", exc.message) from exc
    except FileNotFoundError as exc:
        names = available_sources(sources_dir)
        listing = ", ".join(names) if names else "none"
        shipped = available_sources(shipped_sources_dir())
        if shipped:
            listing += f"; shipped with holocron-scrapy: {', '.join(shipped)}"
        raise SourceConfigError(
            path, "source", f"no such source file; available sources in {sources_dir}: {listing}"
        ) from exc
    except IsADirectoryError as exc:
        raise SourceConfigError(path, "source", "is a directory, not a YAML file") from exc
    except OSError as exc:
        raise SourceConfigError(
            path, "source", f"cannot read the file: {exc.strerror or exc}"
        ) from exc

    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceConfigError(
            path, "<yaml>", f"the file is not UTF-8 text (bad byte at offset {exc.start})"
        ) from exc
    if not text.strip():
        raise SourceConfigError(path, "<root>", "the file is empty")

    try:
        # A SafeLoader subclass (no tags run code); aliases bounded, unconstructable values named.
        document = load_yaml(text, _StrictLoader)
    except SourceReadError as exc:
        raise SourceConfigError(path, exc.key or "<yaml>", exc.message) from exc
    except yaml.MarkedYAMLError as exc:
        raise SourceConfigError(path, "<yaml>", _describe_yaml_error(exc)) from exc
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow in a document
        character = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise SourceConfigError(
            path,
            "<yaml>",
            f"character U+{ord(character):04X} at offset {exc.position} is not allowed in YAML "
            f"({exc.reason})",
        ) from exc
    except yaml.YAMLError as exc:
        raise SourceConfigError(path, "<yaml>", " ".join(str(exc).split())) from exc

    if document is None:
        raise SourceConfigError(path, "<root>", "the file has no content, only comments")
    if not isinstance(document, dict):
        raise SourceConfigError(
            path, "<root>", f"expected a mapping of keys at the top level, got {_kind(document)}"
        )
    return document


def _describe_yaml_error(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = exc.problem or exc.context or "invalid YAML"
    message = f"{where}{problem}"
    if exc.context and exc.problem:
        message += f" ({exc.context})"
    if "'\\t'" in problem:
        message += "; YAML indentation must use spaces, not tabs"
    return message


# --- validation ------------------------------------------------------------------------------


def _kind(value: object) -> str:
    """A YAML-ish name for the type of ``value``, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {reprlib.repr(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    by_lower = {c.lower(): c for c in choices}
    matches = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[matches[0]]!r}?)" if matches else ""


def _bad_char(text: str) -> str | None:
    """The first control (Cc) or lone surrogate (Cs) character of ``text``, as ``U+XXXX``."""
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            return f"U+{ord(ch):04X}"
    return None


_Handler = Callable[[str, Any], Any]


class _Validator:
    """Turns a loaded YAML document into a :class:`SourceConfig`, or raises at the first problem.

    Keys are visited in file order; missing required keys are reported after that.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, message: str) -> NoReturn:
        raise SourceConfigError(self.path, key, message)

    # shapes

    def section(
        self,
        prefix: str,
        document: dict[Any, Any],
        handlers: Mapping[str, _Handler],
        required: Mapping[str, str] = MappingProxyType({}),
    ) -> dict[str, Any]:
        """Validate each key of a mapping with its handler; ``required`` maps key → hint."""
        allowed = list(handlers)
        values: dict[str, Any] = {}
        for key, value in document.items():
            if not isinstance(key, str):
                self.fail(f"{prefix}{key}", f"keys must be strings, got {_kind(key)}")
            dotted = f"{prefix}{key}"
            if key not in handlers:
                self.fail(
                    dotted,
                    f"unknown key{_suggest(key, allowed)}; allowed keys here: {', '.join(allowed)}",
                )
            values[key] = handlers[key](dotted, value)
        for key, hint in required.items():
            if key not in values:
                self.fail(f"{prefix}{key}", f"is required{hint}")
        return values

    def string(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            self.fail(key, f"expected a string, got {_kind(value)}")
        return value

    def integer(self, key: str, value: Any) -> int:
        # YAML true/false load as bool, which is a subclass of int: refuse them explicitly.
        if isinstance(value, bool) or not isinstance(value, int):
            hint = " (remove the quotes)" if isinstance(value, str) and value.strip() else ""
            self.fail(key, f"expected an integer, got {_kind(value)}{hint}")
        return value

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            self.fail(key, f"expected true or false, got {_kind(value)}")
        return value

    def sequence(self, key: str, value: Any) -> list[Any]:
        if not isinstance(value, list):
            self.fail(key, f"expected a list, got {_kind(value)}")
        return value

    def mapping(self, key: str, value: Any, *, optional: bool = False) -> dict[Any, Any]:
        if value is None and optional:
            return {}  # a section whose entries are all commented out
        if not isinstance(value, dict):
            self.fail(key, f"expected a mapping, got {_kind(value)}")
        return value

    # the document

    def source(self, document: dict[Any, Any]) -> SourceConfig:
        kind = document.get("type")
        if kind != "mediawiki" and kind in SOURCE_TYPES:  # validated by its own module
            self.fail("type", f"a {kind!r} source: run it with `scrapy crawl {kind}`")
        values = self.section(
            "",
            document,
            {
                "name": self.name,
                "type": self.source_type,
                "api_url": self.api_url,
                "user_agent": self.user_agent,
                "seeds": self.seeds,
                "discovery": self.discovery,
                "settings": self.settings,
                "resources": self.resources,
            },
            required={
                "name": f" (the source name, matching {NAME_PATTERN})",
                "type": f" (one of: {', '.join(SOURCE_TYPES)})",
                "api_url": " (the wiki's api.php URL)",
                "user_agent": " (a User-Agent with contact information)",
                "seeds": f" (a mapping with at least one of: {', '.join(SEED_KINDS)})",
            },
        )
        return SourceConfig(
            path=self.path,
            name=values["name"],
            type=values["type"],
            api_url=values["api_url"],
            user_agent=values["user_agent"],
            seeds=values["seeds"],
            discovery=values.get("discovery", Discovery()),
            settings=MappingProxyType(values.get("settings", {})),
            resources=values.get("resources", DEFAULT_RESOURCES),
        )

    def name(self, key: str, value: Any) -> str:
        name = self.string(key, value)
        if not _NAME_RE.fullmatch(name):
            self.fail(
                key,
                f"{name!r} does not match {NAME_PATTERN} (lower-case letters, digits, '-' and '_', "
                "at most 64 characters; it names a directory in the lake)",
            )
        return name

    def source_type(self, key: str, value: Any) -> str:
        source_type = self.string(key, value)
        if source_type not in SOURCE_TYPES:
            self.fail(
                key,
                f"unsupported type {source_type!r}{_suggest(source_type, SOURCE_TYPES)}; "
                f"allowed types: {', '.join(SOURCE_TYPES)}",
            )
        return source_type

    def api_url(self, key: str, value: Any) -> str:
        url = self.string(key, value)
        if not url:
            self.fail(key, "must not be empty")
        if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in url):
            self.fail(key, "must not contain whitespace or control characters")
        try:
            parts = urlsplit(url)
            host = parts.hostname
            _ = parts.port  # raises ValueError for a port that is not a number in range
        except ValueError as exc:
            self.fail(key, f"is not a valid URL: {exc}")
        if parts.scheme.lower() not in ("http", "https"):
            got = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
            self.fail(key, f"must be an http:// or https:// URL, got {got}")
        if not host:
            self.fail(key, f"must include a host name, got {url!r}")
        return url

    def user_agent(self, key: str, value: Any) -> str:
        user_agent = self.string(key, value)
        if not user_agent.strip():
            self.fail(key, "must not be empty (name the tool and give contact information)")
        bad = _bad_char(user_agent)
        if bad:
            self.fail(key, f"must not contain control characters (found {bad})")
        return user_agent

    def seeds(self, key: str, value: Any) -> Seeds:
        if value is None:
            self.fail(key, "expected a mapping with 'titles', got null")
        values = self.section(
            f"{key}.",
            self.mapping(key, value),
            {
                "titles": self.titles,
                "pageids": self.pageids,
                "categories": self.categories,
                "search": self.search_terms,
                "opensearch": self.search_terms,
                "allpages": self.namespaces,
                "recentchanges": self.recentchanges,
            },
        )
        if not values:
            self.fail(
                f"{key}.titles",
                "is required (a list of at least one page title), unless another kind of seed "
                f"is given: {', '.join(SEED_KINDS)}",
            )
        return Seeds(
            titles=values.get("titles", ()),
            pageids=values.get("pageids", ()),
            categories=values.get("categories", ()),
            search=values.get("search", ()),
            opensearch=values.get("opensearch", ()),
            allpages=values.get("allpages", ()),
            recentchanges_since=values.get("recentchanges"),
        )

    def pageids(self, key: str, value: Any) -> tuple[int, ...]:
        items = self.sequence(key, value)
        if not items:
            self.fail(key, "must list at least one page id")
        ids = []
        for index, item in enumerate(items):
            pageid = self.integer(f"{key}[{index}]", item)
            if pageid <= 0:
                self.fail(f"{key}[{index}]", f"must be a page id (1 or more), got {pageid}")
            ids.append(pageid)
        return tuple(dict.fromkeys(ids))

    def categories(self, key: str, value: Any) -> tuple[str, ...]:
        titles = self.titles(key, value)
        for index, title in enumerate(titles):
            if not title.lower().startswith("category:"):
                self.fail(f"{key}[{index}]", f"expected a 'Category:...' title, got {title!r}")
        return titles

    def search_terms(self, key: str, value: Any) -> tuple[str, ...]:
        items = self.sequence(key, value)
        if not items:
            self.fail(key, "must list at least one search")
        terms = []
        for index, item in enumerate(items):
            term = self.string(f"{key}[{index}]", item)
            if not term.strip():
                self.fail(f"{key}[{index}]", "must not be empty")
            bad = _bad_char(term)
            if bad:
                self.fail(f"{key}[{index}]", f"must not contain control characters (found {bad})")
            terms.append(term)
        return tuple(dict.fromkeys(terms))

    def recentchanges(self, key: str, value: Any) -> str:
        values = self.section(
            f"{key}.",
            self.mapping(key, value),
            {"since": self.timestamp},
            required={"since": ' (an ISO 8601 UTC timestamp, e.g. "2026-01-01T00:00:00Z")'},
        )
        since: str = values["since"]
        return since

    def timestamp(self, key: str, value: Any) -> str:
        if isinstance(value, datetime):  # YAML reads an unquoted timestamp as a datetime
            moment = value.astimezone(UTC) if value.tzinfo is not None else value
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        text = self.string(key, value)
        if not _TIMESTAMP_RE.fullmatch(text):
            self.fail(key, f'expected a UTC timestamp like "2026-01-01T00:00:00Z", got {text!r}')
        return text

    def titles(self, key: str, value: Any) -> tuple[str, ...]:
        items = self.sequence(key, value)
        if not items:
            self.fail(key, "must list at least one title")
        titles = [self.title(f"{key}[{index}]", item) for index, item in enumerate(items)]
        return tuple(dict.fromkeys(titles))  # drop duplicates, keep the order

    def title(self, key: str, value: Any) -> str:
        title = self.string(key, value)
        if not title.strip():
            self.fail(key, "must not be empty")
        bad = _bad_char(title)
        if bad:
            self.fail(key, f"must not contain control characters (found {bad})")
        illegal = sorted({ch for ch in title if ch in _ILLEGAL_TITLE_CHARS})
        if illegal:
            self.fail(
                key,
                f"contains characters MediaWiki does not allow in titles: {' '.join(illegal)}",
            )
        size = len(title.encode("utf-8"))
        if size > MAX_TITLE_BYTES:
            self.fail(key, f"is {size} UTF-8 bytes long; MediaWiki titles are at most 255")
        return title

    def discovery(self, key: str, value: Any) -> Discovery:
        values = self.section(
            f"{key}.",
            self.mapping(key, value, optional=True),
            {
                "links": self.boolean,
                "max_depth": self.max_depth,
                "strategy": self.strategy,
                "namespaces": self.namespaces,
                "category_depth": self.category_depth,
                "categories": self.boolean,
                "templates": self.boolean,
                "backlinks": self.boolean,
            },
        )
        return Discovery(**values)

    def category_depth(self, key: str, value: Any) -> int:
        depth = self.integer(key, value)
        if not 0 <= depth <= MAX_DEPTH_LIMIT:
            self.fail(key, f"must be between 0 and {MAX_DEPTH_LIMIT}, got {depth}")
        return depth

    def max_depth(self, key: str, value: Any) -> int:
        depth = self.integer(key, value)
        if not 0 <= depth <= MAX_DEPTH_LIMIT:
            self.fail(key, f"must be between 0 and {MAX_DEPTH_LIMIT} (seeds are 0), got {depth}")
        return depth

    def strategy(self, key: str, value: Any) -> Literal["breadth", "depth"]:
        strategy = self.string(key, value)
        if strategy not in STRATEGIES:
            self.fail(
                key,
                f"unknown strategy {strategy!r}{_suggest(strategy, STRATEGIES)}; "
                f"allowed: {', '.join(STRATEGIES)}",
            )
        return cast('Literal["breadth", "depth"]', strategy)

    def namespaces(self, key: str, value: Any) -> tuple[int, ...]:
        items = self.sequence(key, value)
        if not items:
            self.fail(key, "must list at least one namespace number (0 is the main namespace)")
        numbers = []
        for index, item in enumerate(items):
            number = self.integer(f"{key}[{index}]", item)
            if number < 0:
                self.fail(f"{key}[{index}]", f"must be 0 or more, got {number}")
            numbers.append(number)
        return tuple(dict.fromkeys(numbers))

    def resources(self, key: str, value: Any) -> tuple[str, ...]:
        items = self.sequence(key, value)
        allowed = ", ".join(RESOURCE_TYPES)
        if not items:
            self.fail(key, f"must list at least one resource ({allowed})")
        names = []
        for index, item in enumerate(items):
            name = self.string(f"{key}[{index}]", item)
            if name not in RESOURCE_TYPES:
                self.fail(
                    f"{key}[{index}]",
                    f"unknown resource {name!r}{_suggest(name, RESOURCE_TYPES)}; "
                    f"allowed: {allowed}",
                )
            names.append(name)
        if PAGE not in names:
            # Seeds and links are page items, and a completed page queues its other resources.
            self.fail(key, f"must include {PAGE!r}: the page drives discovery of the others")
        return tuple(dict.fromkeys(names))

    def settings(self, key: str, value: Any) -> dict[str, Any]:
        settings = self.mapping(key, value, optional=True)
        for name in settings:
            if not isinstance(name, str):
                self.fail(f"{key}.{name}", f"setting names must be strings, got {_kind(name)}")
            if not _SETTING_RE.fullmatch(name):
                upper = name.upper()
                hint = f" (did you mean {upper!r}?)" if _SETTING_RE.fullmatch(upper) else ""
                self.fail(
                    f"{key}.{name}",
                    f"is not a Scrapy setting name{hint}; setting names match {SETTING_PATTERN}, "
                    "e.g. DOWNLOAD_DELAY",
                )
            if name in _SETTINGS_OF_THE_CRAWL:
                self.fail(
                    f"{key}.{name}",
                    "is where the crawl keeps its state, not a setting of one source: give it "
                    f"on the command line (-s {name}=…)",
                )
            if name in _SETTINGS_OWNED_BY_KEYS:
                self.fail(
                    f"{key}.{name}",
                    f"set it with the top-level {_SETTINGS_OWNED_BY_KEYS[name]!r} key instead",
                )
        return dict(settings)


_warned_user_agents: set[tuple[Path, str]] = set()


def is_wikimedia_host(host: str) -> bool:
    """Whether ``host`` is one of Wikimedia's wikis (``en.wikipedia.org``, ``wikidata.org``…)."""
    host = host.lower().rstrip(".")
    return any(host == domain or host.endswith(f".{domain}") for domain in WIKIMEDIA_DOMAINS)


def _contact_problem(user_agent: str) -> str | None:
    """Why ``user_agent`` gives no way to reach its operator, or ``None`` when it does."""
    if _PLACEHOLDER_CONTACT_RE.search(user_agent):
        return "still holds the shipped placeholder contact"
    if "@" not in user_agent and "://" not in user_agent:
        return "has no contact URL or e-mail address"
    return None


def _check_user_agent(config: SourceConfig) -> None:
    """Refuse a Wikimedia source without a real contact; warn for other hosts (once per file
    and User-Agent in a process)."""
    problem = _contact_problem(config.user_agent)
    if problem is None:
        return
    host = urlsplit(config.api_url).hostname or ""
    if is_wikimedia_host(host):
        raise SourceConfigError(
            config.path,
            "user_agent",
            f"{config.user_agent!r} {problem}; Wikimedia's User-Agent policy "
            f"({WIKIMEDIA_UA_POLICY}) requires a way to contact you and blocks clients "
            f"without one, so {host} is not crawled with it; {HOW_TO_GIVE} (it replaces the "
            "placeholder). Put your own URL or e-mail address in it otherwise: "
            '"HolocronScrapy/0.1 (https://<your site>; <you>@<your domain>)"',
        )
    if (config.path, config.user_agent) in _warned_user_agents:
        return
    _warned_user_agents.add((config.path, config.user_agent))
    if _PLACEHOLDER_CONTACT_RE.search(config.user_agent):
        logger.warning(
            "%(path)s: user_agent still holds a placeholder contact (%(ua)r); put your own URL "
            "or e-mail address there before crawling a public wiki",
            {"path": config.path, "ua": config.user_agent},
        )
    elif "@" not in config.user_agent and "://" not in config.user_agent:
        logger.warning(
            "%(path)s: user_agent %(ua)r has no contact URL or e-mail address; wiki operators "
            "ask for one (https://www.mediawiki.org/wiki/API:Etiquette)",
            {"path": config.path, "ua": config.user_agent},
        )
