"""``scrapy ingest_status`` and ``scrapy ingest_requeue`` on a real state database (SQLite, and
PostgreSQL when HOLOCRON_TEST_PG_URL is set): counts by status and type, leases, runs, the most
frequent failures with examples; failed or skipped items back to pending by status, message and
type, in keyset batches."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from scrapy.exceptions import UsageError
from scrapy.settings import Settings
from sqlalchemy.dialects import mssql

from holocron_scrapy.commands import ingest_requeue, ingest_status
from holocron_scrapy.model import NewWorkItem, Outcome, Status
from holocron_scrapy.store.operations import (
    like_pattern,
    message_pattern,
    requeue,
    source_state,
)
from tests.conftest import open_test_store

if TYPE_CHECKING:
    from collections.abc import Iterator

    from holocron_scrapy.store.state_store import StateStore

SYSTEM, NAME, OWNER = "mediawiki", "wiki", "w1:4242:run"
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
FAILED = {
    "P2": "HTTP 503 from https://wiki.test/api.php?titles=P2",
    "P3": "HTTP 503 from https://wiki.test/api.php?titles=P3",
    "P4": "MediaWiki API error badvalue: 100% wrong_thing",
    "H1": "HTTP 503 from https://wiki.test/index.php?title=H1",
}


def fill(store: StateStore) -> None:
    """A source with items in every state: P1 completed; P2, P3, P4 (pages) and H1 (html)
    failed; P5 skipped; P6 and the listing L1 in progress under OWNER's lease; P7 pending."""
    run = store.start_run(
        source_system=SYSTEM, source_name=NAME, worker_id="w1", hostname="host1", pid=4242
    )
    kinds = {"H1": "html", "L1": "listing"}
    store.add_work_items(
        [
            NewWorkItem(SYSTEM, NAME, kinds.get(rid, "page"), rid, priority=-n)
            for n, rid in enumerate(["P1", "P2", "P3", "P4", "H1", "P5", "P6", "L1", "P7"])
        ]
    )
    claimed = store.claim(
        source_system=SYSTEM, source_name=NAME, owner=OWNER, run_id=run, limit=8, lease_seconds=600
    )
    items = {item.resource_id: item for item in claimed}
    outcomes = [Outcome.completed(items["P1"], "0" * 64)]
    outcomes += [Outcome(items[rid].id, Status.FAILED, msg) for rid, msg in FAILED.items()]
    outcomes.append(Outcome.skipped(items["P5"], "redirect to 'Q'"))
    applied = store.finish_items(outcomes, owner=OWNER)
    assert not applied.stale
    store.finish_run(run, status="finished", reason="finished", counts={"items_failed": 4})


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    """A store with :func:`fill`'s items."""
    with open_test_store(request.param, tmp_path) as opened:
        fill(opened)
        yield opened


def test_message_patterns_blank_urls_and_quoted_parts() -> None:
    assert message_pattern(FAILED["P2"]) == "HTTP 503 from <url>"
    assert message_pattern("redirect to 'Darth Vader'") == "redirect to '…'"
    assert message_pattern(None) == "(no message)"
    assert like_pattern("100%_\\") == "%100\\%\\_\\\\%"


def test_the_state_of_a_source(store: StateStore) -> None:
    with store.engine.connect() as conn:
        state = source_state(conn, store.tables, SYSTEM, NAME, examples=2)
    assert state.by_status == {
        "pending": 1,
        "in_progress": 2,
        "completed": 1,
        "failed": 4,
        "skipped": 1,
    }
    assert state.by_type == {
        "page": {"in_progress": 1, "failed": 3, "skipped": 1},
        "html": {"failed": 1},
        "listing": {"in_progress": 1},
    }
    [lease] = state.leases
    assert (lease["lease_owner"], lease["items"]) == (OWNER, 2)
    [run] = state.runs
    assert (run["worker_id"], run["status"], run["items_failed"]) == ("w1", "finished", 4)
    failed = state.messages["failed"]
    assert failed.total == 4
    assert failed.counts.most_common() == [
        ("HTTP 503 from <url>", 3),
        ("MediaWiki API error badvalue: 100% wrong_thing", 1),
    ]
    assert failed.examples["HTTP 503 from <url>"] == [  # in the claim index's order
        ("html H1", FAILED["H1"]),
        ("page P3", FAILED["P3"]),
    ]
    assert state.messages["skipped"].counts == {"redirect to '…'": 1}

    with store.engine.connect() as conn:
        everything = source_state(conn, store.tables, SYSTEM, NAME, all_types=True)
    assert everything.by_type["page"] == {
        "pending": 1,
        "in_progress": 1,
        "completed": 1,
        "failed": 3,
        "skipped": 1,
    }


def work_items(store: StateStore) -> dict[str, dict[str, object]]:
    wi = store.tables.work_items
    with store.engine.connect() as conn:
        return {row.resource_id: dict(row._mapping) for row in conn.execute(sa.select(wi))}


def test_requeue_by_status_message_and_type_in_batches(store: StateStore) -> None:
    def run(**kwargs: object) -> int:
        return requeue(store.engine, store.tables, SYSTEM, NAME, **kwargs)  # type: ignore[arg-type]

    failed = [Status.FAILED]
    assert run(statuses=failed, error_contains="HTTP 503", dry_run=True) == 3
    assert run(statuses=failed, error_contains="100% wrong_", dry_run=True) == 1
    assert run(statuses=failed, error_contains="10_%", dry_run=True) == 0  # _ and % are literal
    assert work_items(store)["P2"]["status"] == "failed"  # a dry run changes nothing

    assert run(statuses=failed, error_contains="HTTP 503", resource_type="page") == 2
    items = work_items(store)
    for rid in ("P2", "P3"):
        assert items[rid]["status"] == "pending"
        assert (items[rid]["attempt"], items[rid]["error_message"]) == (0, None)
        assert items[rid]["next_retry_at"] is None
    assert items["H1"]["status"] == "failed"
    assert items["P1"]["status"] == "completed"

    # One item a batch: the keyset walks every failed and skipped item once.
    assert run(statuses=[Status.FAILED, Status.SKIPPED], batch_size=1) == 3
    statuses = {rid: row["status"] for rid, row in work_items(store).items()}
    assert statuses == {
        "P1": "completed",
        "P2": "pending",
        "P3": "pending",
        "P4": "pending",
        "H1": "pending",
        "P5": "pending",
        "P6": "in_progress",
        "L1": "in_progress",
        "P7": "pending",
    }
    with pytest.raises(ValueError, match="only failed, skipped items are requeued"):
        run(statuses=[Status.COMPLETED])


def command_output(
    module: object, store: StateStore, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> str:
    """Run a command in this process, as ``scrapy NAME ARGV`` would, on ``store``'s database."""
    url = store.engine.url.render_as_string(hide_password=False)
    settings = Settings({"HOLOCRON_DB_URL": url})
    if store.tables.metadata.schema:
        settings.set("HOLOCRON_DB_SCHEMA", store.tables.metadata.schema)
    command = module.Command()  # type: ignore[attr-defined]
    command.settings = settings
    parser = argparse.ArgumentParser()
    command.add_options(parser)
    opts, args = parser.parse_known_args(argv)
    command.process_options(args, opts)
    command.run(args, opts)
    return capsys.readouterr().out


def test_the_commands(store: StateStore, capsys: pytest.CaptureFixture[str]) -> None:
    out = command_output(ingest_status, store, ["-a", f"source={NAME}"], capsys)
    lines = out.splitlines()
    assert lines[0] == (
        "ingest_status wiki (mediawiki): 9 work items: pending=1, in_progress=2, completed=1, "
        "failed=4, skipped=1"
    )
    assert "  page: in_progress=1, failed=3, skipped=1" in lines
    assert any(line.startswith(f"  {OWNER}: 2 items, expiring ") for line in lines)
    assert any(line.startswith("  ") and " w1 host1 pid 4242: finished" in line for line in lines)
    assert "failed: 4 items, 2 kinds of message:" in lines
    assert "  3 x HTTP 503 from <url>" in lines
    assert f"      e.g. page P2: {FAILED['P2']}" in lines

    argv = ["--source", NAME, "--status", "failed", "--status", "skipped", "--error", "HTTP 503"]
    out = command_output(ingest_requeue, store, [*argv, "--dry-run"], capsys)
    assert out == (
        "ingest_requeue wiki: 3 work items would go back to pending (status failed or "
        "skipped, message containing 'HTTP 503')\n"
    )
    out = command_output(ingest_requeue, store, ["--source", NAME], capsys)
    assert out == "ingest_requeue wiki: 4 work items back to pending (status failed)\n"
    assert {row["status"] for row in work_items(store).values()} == {
        "pending",
        "in_progress",
        "completed",
        "skipped",
    }


@pytest.mark.postgres
def test_the_readme_pending_count_query_counts_the_claimable_items(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    sql = readme.split("an index range:\n\n```sql\n", 1)[1].split("```", 1)[0]
    with open_test_store("postgresql", tmp_path) as store:
        schema = store.tables.metadata.schema
        query = sql.replace("ingest.work_items", f'"{schema}".work_items')
        query = query.replace("'wikipedia'", f"'{NAME}'").rstrip().rstrip(";")
        wi = store.tables.work_items
        store.add_work_items([NewWorkItem(SYSTEM, NAME, "page", f"P{n}") for n in range(5)])
        run = store.start_run(
            source_system=SYSTEM, source_name=NAME, worker_id="w", hostname="h", pid=1
        )
        store.claim(
            source_system=SYSTEM,
            source_name=NAME,
            owner=OWNER,
            run_id=run,
            limit=2,
            lease_seconds=600,
        )
        with store.engine.begin() as conn:
            assert conn.exec_driver_sql(query).scalar() == 3  # 3 pending; 2 under a live lease
            conn.execute(  # one lease expired: claimable again
                sa.update(wi)
                .where(wi.c.resource_id == "P0")
                .values(lease_expires_at=sa.func.now() - sa.text("interval '1 day'"))
            )
            assert conn.exec_driver_sql(query).scalar() == 4


def test_requeue_without_a_database_is_a_usage_error_and_creates_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "local" / "state.db"
    command = ingest_requeue.Command()
    command.settings = Settings({"HOLOCRON_DB_URL": f"sqlite:///{missing}"})
    parser = argparse.ArgumentParser()
    command.add_options(parser)
    opts, args = parser.parse_known_args(["--source", NAME])
    command.process_options(args, opts)
    with pytest.raises(UsageError, match="no SQLite state database at "):
        command.run(args, opts)
    assert not missing.parent.exists()


def test_every_statement_compiles_for_sql_server(tmp_path: Path) -> None:
    """The statements of both commands, captured on SQLite, compiled with the mssql dialect."""
    with open_test_store("sqlite", tmp_path) as store:
        fill(store)
        captured: list[sa.ClauseElement] = []

        def before_execute(_conn: object, element: object, *_args: object) -> None:
            if isinstance(element, sa.ClauseElement):
                captured.append(element)

        sa.event.listen(store.engine, "before_execute", before_execute)
        with store.engine.connect() as conn:
            source_state(conn, store.tables, SYSTEM, NAME, all_types=True)
        requeue(store.engine, store.tables, SYSTEM, NAME, statuses=[Status.FAILED])
        requeue(
            store.engine,
            store.tables,
            SYSTEM,
            NAME,
            statuses=[Status.SKIPPED],
            error_contains="50%",
            resource_type="page",
            dry_run=True,
        )
    compiled = [str(stmt.compile(dialect=mssql.dialect())) for stmt in captured]
    assert len(compiled) >= 8
    assert any("SELECT TOP __[POSTCOMPILE_param_1] work_items.priority" in sql for sql in compiled)
    assert any("LIKE " in sql and " ESCAPE '\\'" in sql for sql in compiled)
    assert any("TOP __[POSTCOMPILE_param_1] runs." in sql for sql in compiled)
