"""Lost transaction conflicts (deadlocks, serialization failures) are run again by the store,
and are never taken for an outage of the database."""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pyodbc
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from holocron_scrapy.model import Applied, NewWorkItem, Outcome
from holocron_scrapy.outage import database_unreachable, transaction_conflict
from holocron_scrapy.store import retry as store_retry
from holocron_scrapy.store.state_store import StateStore
from tests.conftest import PG_URL_ENV, _drop_schema, server_url

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

SYSTEM, NAME = "mediawiki", "wookieepedia"


def new_items(*ids: str) -> list[NewWorkItem]:
    return [NewWorkItem(SYSTEM, NAME, "page", resource_id) for resource_id in ids]


def claim_all(store: StateStore, owner: str = "me") -> list[Any]:
    return store.claim(
        source_system=SYSTEM,
        source_name=NAME,
        owner=owner,
        run_id="run1",
        limit=10,
        lease_seconds=600,
    )


def poll(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def retry_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == store_retry.__name__]


# -- a real deadlock on PostgreSQL --------------------------------------------------------------


@pytest.fixture
def pg_store() -> Iterator[tuple[StateStore, str]]:
    """A store on PostgreSQL whose connections carry an application_name of their own, so a
    test can see them wait for a lock (other tests share the server)."""
    app = f"holocron-conflict-{uuid.uuid4().hex[:8]}"
    url = make_url(server_url(PG_URL_ENV)).update_query_dict({"application_name": app})
    schema = f"t_{uuid.uuid4().hex[:12]}"
    store = StateStore.from_url(url, schema)
    try:
        store.create_tables()
        yield store, app
    finally:
        store.dispose()
        _drop_schema(server_url(PG_URL_ENV), schema, store.tables.metadata)


def deadlocked_finish(store: StateStore, app: str) -> Applied:
    """``finish_items`` of A and B while another connection holds B, then asks for A.

    The store's transaction locks A (``SELECT … FOR UPDATE``, id order), then waits for B;
    the holder then waits for A: a deadlock. The store's wait began first and its
    ``deadlock_timeout`` is PostgreSQL's default (1 s) against the holder's 10 s, so the store's
    check finds the cycle and its transaction is the one aborted (40P01)."""
    store.add_work_items(new_items("A", "B"))
    a, b = claim_all(store)
    wi = store.tables.work_items
    holder_engine = sa.create_engine(server_url(PG_URL_ENV), poolclass=sa.NullPool)
    watch = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = :app "
        "AND wait_event_type = 'Lock'"
    )
    try:
        with holder_engine.connect() as holder, holder_engine.connect() as watcher:
            holder.exec_driver_sql("SET deadlock_timeout = '10s'")
            holder.execute(sa.update(wi).where(wi.c.id == b.id).values(priority=7))
            with ThreadPoolExecutor(1) as pool:
                outcomes = [Outcome.completed(a, "1" * 64), Outcome.completed(b, "2" * 64)]
                future = pool.submit(store.finish_items, outcomes, owner="me")
                poll(lambda: watcher.execute(watch, {"app": app}).scalar_one() == 1)
                # Blocks on A until the store's transaction is aborted as the deadlock victim.
                holder.execute(sa.update(wi).where(wi.c.id == a.id).values(priority=7))
                holder.commit()
                return future.result(timeout=30)
    finally:
        holder_engine.dispose()


@pytest.mark.postgres
def test_a_real_deadlock_on_postgresql_is_run_again_and_succeeds(
    pg_store: tuple[StateStore, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=store_retry.__name__)
    store, app = pg_store
    applied = deadlocked_finish(store, app)
    assert (applied.applied, applied.stale) == (2, [])
    counts = store.counts(source_system=SYSTEM, source_name=NAME)
    assert (counts["completed"], counts["in_progress"]) == (2, 0)
    [line] = retry_logs(caplog)
    assert line.startswith("StateStore.finish_items lost a transaction conflict (DeadlockDetected")
    assert "try 2 of 5" in line


@pytest.mark.postgres
def test_a_real_deadlock_is_a_conflict_not_an_outage(
    pg_store: tuple[StateStore, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one try only, the store raises the driver's real error: it is classified as a lost
    conflict, not as the database being unreachable (the outage path)."""
    monkeypatch.setattr(store_retry, "CONFLICT_TRIES", 1)
    store, app = pg_store
    with pytest.raises(sa.exc.OperationalError) as raised:
        deadlocked_finish(store, app)
    assert getattr(raised.value.orig, "sqlstate", None) == "40P01"
    assert transaction_conflict(raised.value)
    assert not database_unreachable(raised.value)
    # Nothing was applied: the transaction was rolled back, so running it again is safe.
    assert store.counts(source_system=SYSTEM, source_name=NAME)["in_progress"] == 2


# -- SQL Server's errors, as pyodbc raises them -------------------------------------------------

DEADLOCK_VICTIM = (
    "40001",
    "[40001] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Transaction (Process ID 57) "
    "was deadlocked on lock resources with another process and has been chosen as the deadlock "
    "victim. Rerun the transaction. (1205) (SQLExecDirectW)",
)
LOCK_TIMEOUT = (
    "HY000",
    "[HY000] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Lock request time out "
    "period exceeded. (1222) (SQLExecDirectW)",
)
LINK_FAILURE = (
    "08S01",
    "[08S01] [Microsoft][ODBC Driver 18 for SQL Server]Communication link failure (0) "
    "(SQLExecDirectW)",
)
NO_SUCH_TABLE = (
    "42S02",
    "[42S02] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Invalid object name "
    "'ingest.work_items'. (208) (SQLExecDirectW)",
)


def pyodbc_error(cls: type[Exception], args: tuple[str, str]) -> sa.exc.DBAPIError:
    """The error SQLAlchemy raises when pyodbc raises ``cls(*args)`` (as its driver does)."""
    error = sa.exc.DBAPIError.instance(
        "UPDATE ingest.work_items SET ...", (), cls(*args), pyodbc.Error
    )
    assert isinstance(error, sa.exc.DBAPIError)
    return error


@pytest.mark.parametrize(
    ("cls", "args", "conflict", "unreachable"),
    [
        pytest.param(pyodbc.Error, DEADLOCK_VICTIM, True, False, id="1205-deadlock-victim"),
        pytest.param(pyodbc.Error, LOCK_TIMEOUT, True, False, id="1222-lock-timeout"),
        pytest.param(pyodbc.OperationalError, LINK_FAILURE, False, True, id="08S01-link"),
        pytest.param(pyodbc.ProgrammingError, NO_SUCH_TABLE, False, False, id="208-mistake"),
    ],
)
def test_sql_server_errors_are_classified_by_sqlstate_and_native_error(
    cls: type[Exception], args: tuple[str, str], *, conflict: bool, unreachable: bool
) -> None:
    error = pyodbc_error(cls, args)
    assert (transaction_conflict(error), database_unreachable(error)) == (conflict, unreachable)


def test_the_store_runs_a_transaction_again_after_a_deadlock_victim_error(
    sqlite_store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The first UPDATE of the store's transaction fails as SQL Server's deadlock victim does
    (raised where the driver would raise it); the store rolls back and runs it again."""
    caplog.set_level(logging.INFO, logger=store_retry.__name__)
    store = sqlite_store
    store.add_work_items(new_items("A"))
    [a] = claim_all(store)
    failures = [pyodbc_error(pyodbc.Error, DEADLOCK_VICTIM)]

    def fail_once(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if failures and statement.lstrip().upper().startswith("UPDATE"):
            raise failures.pop()

    sa.event.listen(store.engine, "before_cursor_execute", fail_once)
    applied = store.finish_items([Outcome.completed(a, "1" * 64)], owner="me")
    assert (applied.applied, failures) == (1, [])
    assert store.counts(source_system=SYSTEM, source_name=NAME)["completed"] == 1
    [line] = retry_logs(caplog)
    assert "lost a transaction conflict (Error: ('40001'" in line
    assert "chosen as the deadlock victim" in line


def test_a_conflict_that_keeps_coming_back_is_raised_after_the_bounded_tries(
    sqlite_store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_retry, "CONFLICT_BACKOFF_BASE", 0.001)
    store = sqlite_store
    store.add_work_items(new_items("A"))
    [a] = claim_all(store)
    tries: list[str] = []

    def always(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            tries.append(statement)
            raise pyodbc_error(pyodbc.Error, LOCK_TIMEOUT)

    sa.event.listen(store.engine, "before_cursor_execute", always)
    with pytest.raises(sa.exc.DBAPIError, match=r"\(1222\)"):
        store.finish_items([Outcome.completed(a, "1" * 64)], owner="me")
    assert len(tries) == store_retry.CONFLICT_TRIES
    sa.event.remove(store.engine, "before_cursor_execute", always)
    assert store.counts(source_system=SYSTEM, source_name=NAME)["in_progress"] == 1


def test_conflict_back_off_is_jittered_growing_and_capped() -> None:
    import random

    rng = random.Random(9)
    delays = [store_retry.conflict_delay(n, rng) for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        nominal = min(
            store_retry.CONFLICT_BACKOFF_CAP, store_retry.CONFLICT_BACKOFF_BASE * 2 ** (n - 1)
        )
        assert nominal / 2 <= delay <= nominal
    assert len(set(delays)) == len(delays)  # jittered
