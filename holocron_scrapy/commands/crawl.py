"""``scrapy crawl``, checking the source file and the database settings before anything starts.

A broken ``sources/NAME.yaml`` is reported as one line naming the file and the key
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

from holocron_scrapy.dburl import DatabaseConfigError
from holocron_scrapy.frontier import short_error, state_store_from_settings
from holocron_scrapy.sources import SourceConfigError, load_source

if TYPE_CHECKING:
    import argparse


class Command(ScrapyCrawlCommand):
    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        assert self.settings is not None
        source = opts.spargs.get("source")
        if source is not None:
            sources_dir = self.settings.get("HOLOCRON_SOURCES_DIR")
            try:
                load_source(source, Path(sources_dir) if sources_dir else None)
            except SourceConfigError as exc:
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
