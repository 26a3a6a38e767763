"""What the operations commands (``ingest_verify``, ``ingest_status``, ``ingest_requeue``) share:
``-a source=NAME`` (or ``--source NAME``) naming a source as stored in the lake and the
database, or a source file (its ``name``), and the state database of ``scrapy crawl``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError
from scrapy.utils.conf import arglist_to_dict

from holocron_scrapy import defaults
from holocron_scrapy.audit.verify import read_only_engine
from holocron_scrapy.config.contact import ContactError, contact_from_settings
from holocron_scrapy.config.sources import SourceConfigError, load_source
from holocron_scrapy.lake.files import COMPONENT_PATTERN, LakePathError, safe_component
from holocron_scrapy.store.dburl import DatabaseConfigError, resolve_db_url, resolve_schema
from holocron_scrapy.store.schema import build_tables

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    import sqlalchemy as sa
    from scrapy.settings import BaseSettings
    from sqlalchemy.engine import URL

    from holocron_scrapy.store.schema import Tables


def source_name_of(ref: str | None, settings: BaseSettings) -> str:
    """The source name ``ref`` gives: a name, or the ``name`` of the source file it names
    (``UsageError`` otherwise)."""
    if not ref:
        raise UsageError("which source? -a source=NAME (or --source NAME)")
    if ref.endswith((".yaml", ".yml")) or os.sep in ref:
        sources_dir = defaults.sources_dir(settings)
        try:
            contact = contact_from_settings(settings)
            return load_source(ref, sources_dir, contact=contact).name
        except (SourceConfigError, ContactError) as exc:
            raise UsageError(str(exc), print_help=False) from exc
    try:
        return safe_component(ref)
    except LakePathError:
        raise UsageError(
            f"source {ref!r} is neither a source name ({COMPONENT_PATTERN}) nor a .yaml source "
            "file",
            print_help=False,
        ) from None


def database_of(settings: BaseSettings) -> tuple[URL, str | None]:
    """The state database's URL and schema (settings, else environment), as ``scrapy crawl``."""
    url = resolve_db_url(settings.get("HOLOCRON_DB_URL", defaults.DB_URL), os.environ)
    return url, resolve_schema(
        settings.get("HOLOCRON_DB_SCHEMA", defaults.DB_SCHEMA), os.environ, url
    )


class SourceCommand(ScrapyCommand):
    """A command about one source: ``-a source=NAME`` or ``--source NAME``."""

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

    def source_name(self, args: list[str], opts: argparse.Namespace) -> str:
        assert self.settings is not None
        if args:
            raise UsageError(f"unexpected arguments: {' '.join(args)}")
        return source_name_of(opts.source or opts.spargs.get("source"), self.settings)

    def read_only_database(self) -> tuple[sa.Engine, Tables, URL]:
        """The crawl's state database, opened read-only (see :func:`read_only_engine`)."""
        assert self.settings is not None
        try:
            url, schema = database_of(self.settings)
            engine = read_only_engine(url)
        except (DatabaseConfigError, FileNotFoundError) as exc:
            raise UsageError(str(exc), print_help=False) from exc
        return engine, build_tables(schema), url

    def lake_dir(self) -> Path:
        assert self.settings is not None
        return defaults.lake_dir(self.settings)
