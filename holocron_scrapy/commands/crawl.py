"""``scrapy crawl``, checking the source file and the database settings before anything starts.

The source file is validated by the loader of the spider's source type (``mediawiki``:
:mod:`holocron_scrapy.config.sources`, ``http``: :mod:`holocron_scrapy.config.http`); a file of
another
type is refused (``scrapy crawl http -a source=wikipedia``: run it with ``scrapy crawl
mediawiki``). A broken ``sources/NAME.yaml`` is reported as one line naming the file and the key
(``scrapy: error: sources/x.yaml: discovery.max_depth: …``), exit status 2, and nothing is
written: no database, no lake directory. A database that cannot be used (bad URL or schema
name, unreachable server, wrong credentials) is reported the same way, password masked.

A source's name stands for one source in a database: its first crawl records its URL
(``api_url``, ``base_url``), and a source file of the same name with another URL is refused
the same way (``name: 'x' was crawled from … into this database``), before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.exceptions import UsageError
from sqlalchemy.exc import SQLAlchemyError

from holocron_scrapy.config.contact import ContactError, contact_from_settings
from holocron_scrapy.config.http import load_http_source
from holocron_scrapy.config.sources import SourceConfigError, load_source
from holocron_scrapy.frontier.settings import state_store_from_settings
from holocron_scrapy.outage import short_error
from holocron_scrapy.store.dburl import DatabaseConfigError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping

    from holocron_scrapy.store.state_store import StateStore

#: spider name -> the loader that validates its source files (``contact=`` keyword).
SOURCE_LOADERS: Mapping[str, Callable[..., object]] = {
    "mediawiki": load_source,
    "http": load_http_source,
}


class Command(ScrapyCrawlCommand):
    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        assert self.settings is not None
        source = opts.spargs.get("source")
        loader = SOURCE_LOADERS.get(args[0]) if args else None
        config = None
        if source is not None and loader is not None:
            sources_dir = self.settings.get("HOLOCRON_SOURCES_DIR")
            try:
                contact = contact_from_settings(self.settings)
                config = loader(source, Path(sources_dir) if sources_dir else None, contact=contact)
            except (SourceConfigError, ContactError) as exc:
                raise UsageError(str(exc), print_help=False) from exc
        if self.settings.getbool("HOLOCRON_ENABLED", True):
            self._check_state_database(args[0] if config is not None else None, config)
        super().run(args, opts)

    def _check_state_database(self, source_system: str | None, config: object) -> None:
        """Open the state database and create its tables now, before the reactor runs; check
        that the source's name stands for the same source as before in it."""
        assert self.settings is not None
        try:
            store = state_store_from_settings(self.settings)
        except DatabaseConfigError as exc:
            raise UsageError(str(exc), print_help=False) from exc
        try:
            store.create_tables()
            if source_system is not None:
                _check_identity(store, source_system, config)
        except SQLAlchemyError as exc:
            raise UsageError(
                f"cannot use the state database {store.url_for_log}: {short_error(exc)}",
                print_help=False,
            ) from exc
        finally:
            store.dispose()


def _check_identity(store: StateStore, source_system: str, config: object) -> None:
    """Refuse a source file whose name was crawled from another URL into this database."""
    name = getattr(config, "name", None)
    url = getattr(config, "api_url", None) or getattr(config, "base_url", None)
    if not isinstance(name, str) or not isinstance(url, str):
        return
    known = store.source_url(source_system=source_system, source_name=name, url=url)
    if known != url:
        raise UsageError(
            f"{getattr(config, 'path', '?')}: name: {name!r} was crawled from {known} into "
            f"this database ({store.url_for_log}), not from {url}: give this source another "
            "name, or use another database",
            print_help=False,
        )
