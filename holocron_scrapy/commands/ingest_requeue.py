"""``scrapy ingest_requeue``: put a source's failed or skipped work items back in the queue.

::

    scrapy ingest_requeue -a source=wikipedia                      # every failed item
    scrapy ingest_requeue -a source=wikipedia --status skipped --error "redirect to"
    scrapy ingest_requeue -a source=wikipedia --resource-type html --dry-run

The items become ``pending`` with attempt 0 (their content hash is kept: an unchanged page
writes nothing when fetched again); the next ``scrapy crawl`` fetches them. ``--status``
(repeatable: ``failed``, the default, and ``skipped``), ``--error TEXT`` (the message contains
it), ``--resource-type TYPE`` narrow the choice; ``--dry-run`` counts without changing
anything. In batches of 1,000 items along the claim index (:mod:`holocron_scrapy.store.operations`).
Exit status 0; 2 on a usage error.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from scrapy.exceptions import UsageError
from sqlalchemy.exc import SQLAlchemyError

from holocron_scrapy.frontier.settings import state_store_from_settings
from holocron_scrapy.model import Status
from holocron_scrapy.ops_command import SourceCommand, database_of
from holocron_scrapy.outage import short_error
from holocron_scrapy.store.dburl import DatabaseConfigError
from holocron_scrapy.store.operations import REQUEUEABLE, requeue, source_systems

if TYPE_CHECKING:
    import argparse


class Command(SourceCommand):
    def short_desc(self) -> str:
        return "Put a source's failed or skipped work items back in the queue"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument(
            "--status",
            action="append",
            choices=[s.value for s in REQUEUEABLE],
            help="which items (repeatable; default: failed)",
        )
        parser.add_argument("--error", metavar="TEXT", help="only items whose message has TEXT")
        parser.add_argument("--resource-type", metavar="TYPE", help="only items of this type")
        parser.add_argument("--dry-run", action="store_true", help="count, change nothing")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        assert self.settings is not None
        name = self.source_name(args, opts)
        statuses = [Status(s) for s in dict.fromkeys(opts.status or [Status.FAILED.value])]
        try:
            url, _schema = database_of(self.settings)
            if url.get_backend_name() == "sqlite" and not os.path.isfile(url.database or ""):
                raise FileNotFoundError(f"no SQLite state database at {url.database or '(none)'}")
            store = state_store_from_settings(self.settings)
        except (DatabaseConfigError, FileNotFoundError) as exc:
            raise UsageError(str(exc), print_help=False) from exc
        try:
            with store.engine.connect() as conn:
                systems = source_systems(conn, store.tables, name)
            total = sum(
                requeue(
                    store.engine,
                    store.tables,
                    system,
                    name,
                    statuses=statuses,
                    error_contains=opts.error,
                    resource_type=opts.resource_type,
                    dry_run=opts.dry_run,
                )
                for system in systems
            )
        except SQLAlchemyError as exc:
            raise UsageError(
                f"cannot use the state database {store.url_for_log}: {short_error(exc)}",
                print_help=False,
            ) from exc
        finally:
            store.dispose()
        which = [f"status {' or '.join(statuses)}"]
        if opts.error:
            which.append(f"message containing {opts.error!r}")
        if opts.resource_type:
            which.append(f"resource type {opts.resource_type}")
        verb = "would go back" if opts.dry_run else "back"
        print(f"ingest_requeue {name}: {total} work items {verb} to pending ({', '.join(which)})")
