"""``scrapy ingest_verify``: audit a source's lake and state database (see
:mod:`holocron_scrapy.audit.verify`).

::

    scrapy ingest_verify -a source=wikipedia [--ground-truth ids.txt] [--examples 5]
                         [--progress-seconds 10]

The source is a name (as in the lake and the database: no source file needed) or a path to a
source file (its ``name``). The database and the lake are those of ``scrapy crawl``: the
settings and environment ``HOLOCRON_DB_URL``, ``HOLOCRON_DB_SCHEMA``, ``HOLOCRON_LAKE_DIR``
(``-s NAME=VALUE`` works as for any command). Nothing is written but a sort's temporary files
(see :mod:`holocron_scrapy.audit.lake_files`). Memory stays bounded whatever the size of the
source; a progress line goes to stderr every ``--progress-seconds``.

Exit status: 0 when every check passes, 1 when a problem was found, 2 on a usage error (no
source, a bad source file, a database or ground truth that cannot be read).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from scrapy.exceptions import UsageError
from sqlalchemy.exc import SQLAlchemyError

from holocron_scrapy.audit.verify import (
    DEFAULT_EXAMPLES,
    PROGRESS_SECONDS,
    load_ground_truth,
    verify,
)
from holocron_scrapy.ops_command import SourceCommand
from holocron_scrapy.outage import short_error
from holocron_scrapy.store.dburl import masked

if TYPE_CHECKING:
    import argparse

    from holocron_scrapy.audit.verify import Report

EXIT_PROBLEMS = 1


class Command(SourceCommand):
    def short_desc(self) -> str:
        return "Audit a source's lake and state database (records, files, hashes, work items)"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument(
            "--ground-truth",
            metavar="FILE",
            help="expected resource ids (one per line, or a JSON list): the completed set "
            "must equal them",
        )
        parser.add_argument(
            "--resource-type",
            metavar="TYPE",
            help="compare the ground truth with completed items of this type only "
            "(default: every type but listings)",
        )
        parser.add_argument(
            "--examples",
            type=int,
            default=DEFAULT_EXAMPLES,
            metavar="N",
            help=f"examples shown per problem class (default {DEFAULT_EXAMPLES})",
        )
        parser.add_argument(
            "--progress-seconds",
            type=float,
            default=PROGRESS_SECONDS,
            metavar="S",
            help=f"a progress line on stderr every S seconds (default {PROGRESS_SECONDS:g})",
        )

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        assert self.settings is not None
        if opts.examples < 0:
            raise UsageError("--examples must be 0 or more", print_help=False)
        source_name = self.source_name(args, opts)
        truth = None
        if opts.ground_truth:
            try:
                truth = load_ground_truth(Path(opts.ground_truth))
            except (OSError, ValueError) as exc:
                raise UsageError(f"cannot read the ground truth: {exc}", print_help=False) from exc
        report = self._verify(source_name, truth, opts)
        for line in report.lines():
            print(line)
        self.exitcode = 0 if report.ok else EXIT_PROBLEMS

    def _verify(self, source_name: str, truth: set[str] | None, opts: argparse.Namespace) -> Report:
        assert self.settings is not None
        engine, tables, url = self.read_only_database()
        lake = self.lake_dir()
        try:
            return verify(
                engine,
                tables,
                lake,
                source_name,
                ground_truth=truth,
                resource_type=opts.resource_type,
                examples=opts.examples,
                progress=_say,
                progress_seconds=opts.progress_seconds,
            )
        except SQLAlchemyError as exc:
            raise UsageError(
                f"cannot read the state database {masked(url)}: {short_error(exc)}",
                print_help=False,
            ) from exc
        finally:
            engine.dispose()


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
