"""Shared pytest fixtures. Keep each component's fixtures in its own clearly marked section."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from holocron_scrapy.store.state_store import StateStore

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


# =================================================================================================
# State store (holocron_scrapy.store.state_store): a fresh, empty StateStore per test on every
# backend.
#
#   store         parametrized: sqlite, sqlite-not-exists (the SQL Server insert path run on
#                 SQLite), postgresql (HOLOCRON_TEST_PG_URL), mssql (HOLOCRON_TEST_MSSQL_URL)
#   sqlite_store  SQLite only
#
# SQLite lives in tmp_path (never :memory:). On a server every test gets its own random schema,
# dropped afterwards. Unset server URLs skip their params, except that PostgreSQL must run in CI.
# =================================================================================================

PG_URL_ENV = "HOLOCRON_TEST_PG_URL"
MSSQL_URL_ENV = "HOLOCRON_TEST_MSSQL_URL"

STORE_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("sqlite-not-exists", id="sqlite-not-exists"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("mssql", id="mssql", marks=pytest.mark.mssql),
]


def server_url(env_var: str) -> str:
    """The test server URL from ``env_var``; skip (or, for PostgreSQL in CI, fail) when unset."""
    url = os.environ.get(env_var, "").strip()
    if url:
        return url
    if env_var == PG_URL_ENV and os.environ.get("CI"):
        pytest.fail(f"{PG_URL_ENV} is not set: PostgreSQL tests must not be skipped in CI")
    pytest.skip(f"{env_var} is not set")


def _drop_schema(url: str, schema: str, tables: sa.MetaData) -> None:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            else:  # SQL Server has no DROP SCHEMA ... CASCADE
                tables.drop_all(conn, checkfirst=True)
                conn.exec_driver_sql(
                    f"IF SCHEMA_ID(N'{schema}') IS NOT NULL DROP SCHEMA [{schema}]"
                )
    finally:
        engine.dispose()


@contextmanager
def open_test_store(backend: str, tmp_path: Path) -> Iterator[StateStore]:
    """A new store with its tables created; disposed (and its schema dropped) afterwards."""
    if backend.startswith("sqlite"):
        store = StateStore.from_url(f"sqlite:///{tmp_path / 'state' / 'state.db'}")
        if backend == "sqlite-not-exists":
            store.insert_style = "not_exists"
        try:
            store.create_tables()
            yield store
        finally:
            store.dispose()
        return
    url = server_url(PG_URL_ENV if backend == "postgresql" else MSSQL_URL_ENV)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    store = StateStore.from_url(url, schema)
    try:
        store.create_tables()
        yield store
    finally:
        store.dispose()
        _drop_schema(url, schema, store.tables.metadata)


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    with open_test_store(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[StateStore]:
    with open_test_store("sqlite", tmp_path) as opened:
        yield opened


# ===================================== end of state store =======================================
