"""The shared shell of the commands that read one source's state (``ingest_verify``,
``lake_export``: ``-a source=NAME`` / ``--source NAME`` and the crawl's database. Outside
the commands package, which Scrapy scans for commands)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError
from scrapy.utils.conf import arglist_to_dict

from holocron_scrapy.dburl import DatabaseConfigError, resolve_db_url, resolve_schema
from holocron_scrapy.lake import COMPONENT_PATTERN, LakePathError, safe_component
from holocron_scrapy.schema import build_tables
from holocron_scrapy.sources import SourceConfigError, load_source
from holocron_scrapy.verify import read_only_engine

if TYPE_CHECKING:
    import argparse

    import sqlalchemy as sa
    from sqlalchemy.engine import URL

    from holocron_scrapy.schema import Tables


class SourceCommand(ScrapyCommand):
    requires_project = True
    requires_crawler_process = False
    default_settings = {"LOG_ENABLED": False}

    def syntax(self) -> str:
        return "-a source=NAME [options]"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument(
            "-a",
            dest="spargs",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="source=NAME (a source name, or a source file's path)",
        )
        parser.add_argument("--source", help="the same as -a source=NAME")

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        try:
            opts.spargs = arglist_to_dict(opts.spargs)
        except ValueError:
            raise UsageError("Invalid -a value, use -a NAME=VALUE", print_help=False) from None

    def source_name(self, opts: argparse.Namespace) -> str:
        """The source's name: given as a name, or read from the source file given."""
        assert self.settings is not None
        ref = opts.source or opts.spargs.get("source")
        if not ref:
            raise UsageError("which source? -a source=NAME (or --source NAME)")
        if ref.endswith((".yaml", ".yml")) or os.sep in ref:
            sources_dir = self.settings.get("HOLOCRON_SOURCES_DIR")
            try:
                return load_source(ref, Path(sources_dir) if sources_dir else None).name
            except SourceConfigError as exc:
                raise UsageError(str(exc), print_help=False) from exc
        try:
            return safe_component(ref)
        except LakePathError:
            raise UsageError(
                f"source {ref!r} is neither a source name ({COMPONENT_PATTERN}) nor a "
                ".yaml source file",
                print_help=False,
            ) from None

    def read_only_database(self) -> tuple[sa.Engine, Tables, URL]:
        """The crawl's state database (``HOLOCRON_DB_URL``/``HOLOCRON_DB_SCHEMA``), read-only."""
        assert self.settings is not None
        try:
            url = resolve_db_url(self.settings.get("HOLOCRON_DB_URL"), os.environ)
            schema = resolve_schema(self.settings.get("HOLOCRON_DB_SCHEMA"), os.environ, url)
            engine = read_only_engine(url)
        except (DatabaseConfigError, FileNotFoundError) as exc:
            raise UsageError(str(exc), print_help=False) from exc
        return engine, build_tables(schema), url

    def lake_dir(self) -> Path:
        assert self.settings is not None
        return Path(self.settings.get("HOLOCRON_LAKE_DIR", "local/data_lake")).absolute()
