"""``scrapy ingest_status``: the state of a source in the state database.

::

    scrapy ingest_status -a source=wikipedia [--by-type] [--runs 10] [--examples 3]

Work items by status, by resource type (the in-progress, failed and skipped ones; every status
with ``--by-type``), the leases held and by which worker
(expired ones marked), the last runs, and the most frequent failure and skip messages (URLs and
quoted parts blanked) with example items. Read-only, as ``ingest_verify``; the queries are in
:mod:`holocron_scrapy.store.operations`. Exit status 0; 2 on a usage error (no source, no database).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scrapy.exceptions import UsageError
from sqlalchemy.exc import SQLAlchemyError

from holocron_scrapy.audit.verify import read_only_engine
from holocron_scrapy.ops_command import SourceCommand, database_of
from holocron_scrapy.outage import short_error
from holocron_scrapy.store.dburl import DatabaseConfigError, masked
from holocron_scrapy.store.operations import source_state, source_systems
from holocron_scrapy.store.schema import build_tables
from holocron_scrapy.store.sql import as_datetime

if TYPE_CHECKING:
    import argparse
    from datetime import datetime

    from holocron_scrapy.store.operations import Messages, SourceState


class Command(SourceCommand):
    def short_desc(self) -> str:
        return "Show a source's work items, leases, runs and most frequent failures"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument(
            "--by-type",
            action="store_true",
            help="count every status by resource type",
        )
        parser.add_argument("--runs", type=int, default=10, metavar="N", help="last N runs")
        parser.add_argument(
            "--examples", type=int, default=3, metavar="N", help="examples per message"
        )

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        assert self.settings is not None
        name = self.source_name(args, opts)
        try:
            url, schema = database_of(self.settings)
            engine = read_only_engine(url)
        except (DatabaseConfigError, FileNotFoundError) as exc:
            raise UsageError(str(exc), print_help=False) from exc
        tables = build_tables(schema)
        try:
            with engine.connect() as conn:
                systems = source_systems(conn, tables, name)
                states = [
                    source_state(
                        conn,
                        tables,
                        system,
                        name,
                        all_types=opts.by_type,
                        runs=opts.runs,
                        examples=opts.examples,
                    )
                    for system in systems
                ]
        except SQLAlchemyError as exc:
            raise UsageError(
                f"cannot read the state database {masked(url)}: {short_error(exc)}",
                print_help=False,
            ) from exc
        finally:
            engine.dispose()
        if not states:
            print(f"ingest_status {name}: no runs of this source in {masked(url)}")
        for state in states:
            for line in report_lines(state):
                print(line)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{status}={n}" for status, n in counts.items())


def _when(value: Any, now: datetime) -> str:
    moment = as_datetime(value)
    if moment is None:
        return "-"
    seconds = (moment - now).total_seconds()
    relative = f"in {seconds:.0f} s" if seconds >= 0 else f"{-seconds:.0f} s ago"
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({relative})"


def _message_lines(status: str, found: Messages, now: datetime) -> list[str]:
    if not found.total:
        return [f"{status}: none"]
    lines = [f"{status}: {found.total} items, {len(found.counts)} kinds of message:"]
    for pattern, count in found.counts.most_common(10):
        lines.append(f"  {count} x {pattern}")
        lines.extend(f"      e.g. {item}: {message}" for item, message in found.examples[pattern])
    return lines


def report_lines(state: SourceState) -> list[str]:
    """The report of one source, as printed."""
    total = sum(state.by_status.values())
    lines = [
        f"ingest_status {state.source_name} ({state.source_system}): {total} work items: "
        f"{_counts(state.by_status)}",
        f"by resource type ({', '.join(state.by_type_statuses)}):",
    ]
    lines += [f"  {kind}: {_counts(counts)}" for kind, counts in sorted(state.by_type.items())]
    if not state.by_type:
        lines.append("  none")
    lines.append("leases:")
    for lease in state.leases:
        expired = (as_datetime(lease["last_expiry"]) or state.now) < state.now
        lines.append(
            f"  {lease['lease_owner'] or '(no owner)'}: {lease['items']} items, expiring "
            f"{_when(lease['first_expiry'], state.now)} to {_when(lease['last_expiry'], state.now)}"
            + (" EXPIRED" if expired else "")
        )
    if not state.leases:
        lines.append("  none")
    lines.append(f"runs (last {len(state.runs)}):")
    for run in state.runs:
        lines.append(
            f"  {run['run_id']} {run['worker_id']} {run['hostname']} pid {run['pid']}: "
            f"{run['status']}"
            + (f" ({run['finish_reason']})" if run["finish_reason"] else "")
            + f", started {_when(run['started_at'], state.now)}, "
            f"completed={run['items_completed']} failed={run['items_failed']} "
            f"skipped={run['items_skipped']} records={run['records_written']}"
        )
    for status, found in state.messages.items():
        lines += _message_lines(status, found, state.now)
    return lines
