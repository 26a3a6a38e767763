"""``scrapy lake_export``: a source's records as Hive-partitioned Parquet (see
:mod:`holocron_scrapy.lake.export`).

::

    scrapy lake_export -a source=wikipedia --output /data/parquet

The database is the crawl's (``HOLOCRON_DB_URL``, ``HOLOCRON_DB_SCHEMA``), read-only. A second
export into the same directory writes only the records added since the first. Exit status 0, or
2 on a usage error (no source or output, a database that cannot be read, an export already
running into that directory).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from scrapy.exceptions import UsageError
from sqlalchemy.exc import SQLAlchemyError

from holocron_scrapy.ops_command import SourceCommand
from holocron_scrapy.outage import short_error
from holocron_scrapy.store.dburl import masked

if TYPE_CHECKING:
    import argparse


class Command(SourceCommand):
    default_settings = {"LOG_ENABLED": True, "LOG_LEVEL": "INFO"}

    def syntax(self) -> str:
        return "-a source=NAME --output DIR [options]"

    def short_desc(self) -> str:
        return "Export a source's records to Hive-partitioned Parquet (incremental)"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("--output", metavar="DIR", help="the Parquet dataset's directory")
        parser.add_argument(
            "--file-mb",
            type=int,
            default=256,
            metavar="MB",
            help="roll part files at about this size (default 256)",
        )

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if not opts.output:
            raise UsageError("where to? --output DIR", print_help=False)
        if opts.file_mb < 1:
            raise UsageError("--file-mb must be 1 or more", print_help=False)
        # Imported here: pyarrow costs every other command (Scrapy imports all of them) ~0.5 s.
        from holocron_scrapy.lake.export import ParquetExport

        source_name = self.source_name(args, opts)
        engine, tables, url = self.read_only_database()
        export = ParquetExport(
            engine,
            tables,
            Path(opts.output),
            source_name,
            target_file_bytes=opts.file_mb * 1024 * 1024,
        )
        try:
            result = export.run()
        except SQLAlchemyError as exc:
            raise UsageError(
                f"cannot read the state database {masked(url)}: {short_error(exc)}",
                print_help=False,
            ) from exc
        except RuntimeError as exc:
            raise UsageError(str(exc), print_help=False) from exc
        finally:
            engine.dispose()
        sys.stdout.write(
            f"exported {result.rows} records of {source_name} into {len(result.files)} files "
            f"under {export.root} (watermark ingest_id {result.watermark}, "
            f"{result.gaps} open gaps)\n"
        )
