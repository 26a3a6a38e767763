"""``scrapy crawl``, checking the source file and the database settings before anything starts.

The source file is validated by the loader of the spider's source type (``mediawiki``:
:mod:`holocron_scrapy.sources`, ``http``: :mod:`holocron_scrapy.http_source`); a file of another
type is refused (``scrapy crawl http -a source=wikipedia``: run it with ``scrapy crawl
mediawiki``). A broken ``sources/NAME.yaml`` is reported as one line naming the file and the key
(``scrapy: error: sources/x.yaml: discovery.max_depth: …``), exit status 2, and nothing is
written: no database, no lake directory. A database that cannot be used (bad URL or schema
name, unreachable server, wrong credentials) is reported the same way, password masked.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.exceptions import UsageError
from sqlalchemy.exc import SQLAlchemyError

from holocron_scrapy.contact import ContactError, contact_from_settings
from holocron_scrapy.dburl import DatabaseConfigError
from holocron_scrapy.frontier import state_store_from_settings
from holocron_scrapy.http_source import load_http_source
from holocron_scrapy.outage import short_error
from holocron_scrapy.sources import SourceConfigError, load_source

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping

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
        if source is not None and loader is not None:
            sources_dir = self.settings.get("HOLOCRON_SOURCES_DIR")
            try:
                contact = contact_from_settings(self.settings)
                loader(source, Path(sources_dir) if sources_dir else None, contact=contact)
            except (SourceConfigError, ContactError) as exc:
                raise UsageError(str(exc), print_help=False) from exc
        if self.settings.getbool("HOLOCRON_ENABLED", True):
            self._check_state_database()
        super().run(args, opts)

    def _check_state_database(self) -> None:
        """Open the state database and create its tables now, before the reactor runs."""
        assert self.settings is not None
        try:
            store = state_store_from_settings(self.settings)
        except DatabaseConfigError as exc:
            raise UsageError(str(exc), print_help=False) from exc
        try:
            store.create_tables()
        except SQLAlchemyError as exc:
            raise UsageError(
                f"cannot use the state database {store.url_for_log}: {short_error(exc)}",
                print_help=False,
            ) from exc
        finally:
            store.dispose()
