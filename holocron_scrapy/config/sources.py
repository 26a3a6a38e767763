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

import logging
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass
from scrapy.utils.conf import closest_scrapy_cfg

from holocron_scrapy.config.contact import (
    HOW_TO_GIVE,
    PLACEHOLDER_CONTACT_RE,
    contact_problem,
    merge_contact,
)
from holocron_scrapy.config.document import (
    YAML_SUFFIXES,
    available_sources,
    read_document,
    resolve_source_path,
)
from holocron_scrapy.config.errors import SourceConfigError, fail, validate
from holocron_scrapy.config.fields import (
    MAX_DEPTH_LIMIT,
    MAX_TITLE_BYTES,
    NAME_PATTERN,
    SETTING_PATTERN,
    Category,
    Depth,
    Flag,
    Levels,
    Name,
    Namespace,
    NullIsEmpty,
    PageId,
    SearchTerm,
    Settings,
    Timestamp,
    Title,
    Unique,
    Url,
    UserAgent,
    at_least_one,
    check,
    one_of,
)
from holocron_scrapy.mediawiki.resources import DEFAULT_RESOURCES, PAGE, RESOURCE_TYPES

__all__ = [
    "MAX_DEPTH_LIMIT",
    "MAX_TITLE_BYTES",
    "NAME_PATTERN",
    "SETTING_PATTERN",
    "YAML_SUFFIXES",
    "Discovery",
    "Seeds",
    "SourceConfig",
    "SourceConfigError",
    "available_sources",
    "default_sources_dir",
    "load_source",
    "resolve_source_path",
]

logger = logging.getLogger(__name__)

SOURCE_TYPES: tuple[str, ...] = ("mediawiki", "http")  # http: see config/http.py
STRATEGIES: tuple[str, ...] = ("breadth", "depth")
SEED_KINDS: tuple[str, ...] = (
    "titles",
    "pageids",
    "categories",
    "search",
    "opensearch",
    "allpages",
    "recentchanges",
)
#: The models of a source file: a key that is not a field is an error ("did you mean").
FILE_KEYS = ConfigDict(extra="forbid")

Strategy = Annotated[Literal["breadth", "depth"], one_of(STRATEGIES, "strategy")]
SourceType = Annotated[str, one_of(SOURCE_TYPES, "type", "types")]
ResourceType = Annotated[str, one_of(RESOURCE_TYPES, "resource")]

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


@dataclass(frozen=True, config=FILE_KEYS)
class RecentChanges:
    """``seeds.recentchanges``: the pages changed since a moment."""

    since: Timestamp = Field(description='an ISO 8601 UTC timestamp, e.g. "2026-01-01T00:00:00Z"')


@dataclass(frozen=True, config=FILE_KEYS)
class Seeds:
    """Where a crawl starts, at depth 0: page titles, and listings whose members are pages
    (see :mod:`holocron_scrapy.mediawiki.listings`)."""

    titles: Annotated[tuple[Title, ...], at_least_one("title"), Unique] = ()
    pageids: Annotated[tuple[PageId, ...], at_least_one("page id"), Unique] = ()
    # members, into subcategories to discovery.category_depth
    categories: Annotated[tuple[Category, ...], at_least_one("title"), Unique] = ()
    search: Annotated[tuple[SearchTerm, ...], at_least_one("search"), Unique] = ()  # list=search
    # title prefix suggestions (action=opensearch)
    opensearch: Annotated[tuple[SearchTerm, ...], at_least_one("search"), Unique] = ()
    allpages: Annotated[tuple[Namespace, ...], at_least_one("namespace"), Unique] = ()
    recentchanges: RecentChanges | None = Field(default=None, repr=False)
    #: pages changed since (``recentchanges.since``)
    recentchanges_since: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _some_seed(self) -> Seeds:
        if self.recentchanges is not None:
            object.__setattr__(self, "recentchanges_since", self.recentchanges.since)
        if not any(getattr(self, kind_) for kind_ in SEED_KINDS[:-1]) and not (
            self.recentchanges_since
        ):
            fail(
                "is required (a list of at least one page title), unless another kind of seed "
                f"is given: {', '.join(SEED_KINDS)}",
                "titles",
            )
        return self


@dataclass(frozen=True, config=FILE_KEYS)
class Discovery:
    """Which links found on crawled pages are followed, and how far."""

    links: Flag = True
    max_depth: Depth = 1  # seeds are depth 0
    strategy: Strategy = "breadth"
    namespaces: Annotated[
        tuple[Namespace, ...],
        at_least_one("namespace number (0 is the main namespace)"),
        Unique,
    ] = (0,)
    category_depth: Levels = 0  # subcategory levels a category seed descends (0: its own members)
    categories: Flag = False  # a page's categories, and a category page's members
    templates: Flag = False  # the templates a page uses
    backlinks: Flag = False  # the pages that link to a page


def _has_page(names: tuple[str, ...]) -> str | None:
    # Seeds and links are page items, and a completed page queues its other resources.
    return (
        None if PAGE in names else f"must include {PAGE!r}: the page drives discovery of the others"
    )


@dataclass(frozen=True, config=FILE_KEYS)
class SourceConfig:
    """A validated source file of ``type: mediawiki``."""

    path: Path = Field(exclude=True)  # the file (not a key of it)
    name: Name = Field(description=f"the source name, matching {NAME_PATTERN}")  # in the lake
    type: SourceType = Field(description=f"one of: {', '.join(SOURCE_TYPES)}")
    api_url: Url = Field(description="the wiki's api.php URL")
    user_agent: UserAgent = Field(description="a User-Agent with contact information")
    seeds: Seeds = Field(description=f"a mapping with at least one of: {', '.join(SEED_KINDS)}")
    discovery: Annotated[Discovery, NullIsEmpty] = Field(default_factory=Discovery)
    settings: Settings = Field(default_factory=lambda: MappingProxyType({}))
    # What is stored per page (holocron_scrapy.mediawiki.resources); always holds "page".
    resources: Annotated[
        tuple[ResourceType, ...],
        at_least_one(f"resource ({', '.join(RESOURCE_TYPES)})"),
        Unique,
        check(_has_page),
    ] = DEFAULT_RESOURCES


def default_sources_dir() -> Path:
    """``<project root>/sources``, the project root being the directory of the closest
    ``scrapy.cfg`` above the working directory; ``./sources`` when there is none."""
    cfg = closest_scrapy_cfg()
    if cfg:
        return Path(cfg).parent / "sources"
    return Path.cwd() / "sources"


def load_source(
    ref: str, sources_dir: Path | None = None, *, contact: str | None = None
) -> SourceConfig:
    """Find, read and validate a source file; raise :class:`SourceConfigError` on any problem.

    ``contact`` (``HOLOCRON_CONTACT``, validated by :mod:`holocron_scrapy.config.contact`) is merged
    into the file's ``user_agent`` before the User-Agent is checked."""
    if sources_dir is None:
        sources_dir = default_sources_dir()
    path = resolve_source_path(ref, sources_dir).absolute()
    document = read_document(path, sources_dir)
    kind = document.get("type")
    if kind != "mediawiki" and kind in SOURCE_TYPES:  # validated by its own module
        raise SourceConfigError(
            path, "type", f"a {kind!r} source: run it with `scrapy crawl {kind}`"
        )
    config = validate(SourceConfig, with_contact(document, contact), path, path=path)
    _check_user_agent(config)
    logger.debug("Loaded source %(name)s from %(path)s", {"name": config.name, "path": path})
    return config


def with_contact(document: dict[Any, Any], contact: str | None) -> dict[Any, Any]:
    """``document`` with ``contact`` merged into its ``user_agent`` (when it is a string)."""
    user_agent = document.get("user_agent")
    if not contact or not isinstance(user_agent, str):
        return document
    return {**document, "user_agent": merge_contact(user_agent, contact)}


_warned_user_agents: set[tuple[Path, str]] = set()


def is_wikimedia_host(host: str) -> bool:
    """Whether ``host`` is one of Wikimedia's wikis (``en.wikipedia.org``, ``wikidata.org``…)."""
    host = host.lower().rstrip(".")
    return any(host == domain or host.endswith(f".{domain}") for domain in WIKIMEDIA_DOMAINS)


def _check_user_agent(config: SourceConfig) -> None:
    """Refuse a Wikimedia source without a real contact; warn for other hosts (once per file
    and User-Agent in a process)."""
    problem = contact_problem(config.user_agent)
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
    if PLACEHOLDER_CONTACT_RE.search(config.user_agent):
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
