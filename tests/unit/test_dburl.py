"""Database URL and schema resolution from the Scrapy setting and the environment."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from holocron_scrapy.store.dburl import (
    DEFAULT_DB_URL,
    DatabaseConfigError,
    masked,
    resolve_db_url,
    resolve_schema,
    validate_schema_name,
)

PG = "postgresql+psycopg://crawler:s3cret@db.example.org:5432/holocron"
SQLSERVER_ENV = {
    "DB_BACKEND": "sqlserver",
    "SQLSERVER_HOST": "sql.example.org",
    "SQLSERVER_DATABASE": "Holocron",
    "SQLSERVER_USERNAME": "ingest_user",
    "SQLSERVER_PASSWORD": "p@ss:w/rd?#%&=+ ;{}",
}


def test_default_is_a_local_sqlite_file() -> None:
    url = resolve_db_url(None, {})
    assert url.render_as_string() == DEFAULT_DB_URL == "sqlite:///local/state.db"
    assert resolve_db_url("", {"DB_BACKEND": "sqlite"}) == url
    assert resolve_db_url("  ", {"HOLOCRON_DB_URL": ""}) == url


def test_setting_beats_environment() -> None:
    environ = {"HOLOCRON_DB_URL": "sqlite:///env.db", **SQLSERVER_ENV}
    assert resolve_db_url(PG, environ).render_as_string(hide_password=False) == PG


def test_environment_url_beats_sqlserver_variables() -> None:
    environ = {"HOLOCRON_DB_URL": PG, **SQLSERVER_ENV}
    assert resolve_db_url(None, environ).render_as_string(hide_password=False) == PG


def test_sqlserver_variables_build_a_pyodbc_url() -> None:
    url = resolve_db_url(None, SQLSERVER_ENV)
    assert url.drivername == "mssql+pyodbc"
    assert (url.host, url.port, url.database) == ("sql.example.org", 1433, "Holocron")
    assert url.username == "ingest_user"
    assert url.password == "p@ss:w/rd?#%&=+ ;{}"
    assert url.query == {
        "driver": "ODBC Driver 18 for SQL Server",
        "TrustServerCertificate": "yes",
    }
    # The password survives a round trip through the URL text.
    again = make_url(url.render_as_string(hide_password=False))
    assert again.password == "p@ss:w/rd?#%&=+ ;{}"
    assert again == url


def test_sqlserver_overrides() -> None:
    environ = {
        **SQLSERVER_ENV,
        "DB_BACKEND": "SQLServer",
        "SQLSERVER_PORT": "14330",
        "SQLSERVER_DRIVER": "ODBC Driver 17 for SQL Server",
        "SQLSERVER_TRUST_SERVER_CERTIFICATE": "no",
    }
    url = resolve_db_url(None, environ)
    assert url.port == 14330
    assert url.query == {"driver": "ODBC Driver 17 for SQL Server", "TrustServerCertificate": "no"}


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("SQLSERVER_HOST", "DB_BACKEND=sqlserver needs SQLSERVER_HOST"),
        ("SQLSERVER_DATABASE", "DB_BACKEND=sqlserver needs SQLSERVER_DATABASE"),
    ],
)
def test_sqlserver_missing_variable_is_named(missing: str, message: str) -> None:
    environ = {k: v for k, v in SQLSERVER_ENV.items() if k != missing}
    with pytest.raises(DatabaseConfigError, match=message):
        resolve_db_url(None, environ)


def test_sqlserver_bad_port() -> None:
    with pytest.raises(DatabaseConfigError, match="SQLSERVER_PORT"):
        resolve_db_url(None, {**SQLSERVER_ENV, "SQLSERVER_PORT": "14x"})


def test_postgresql_backend_needs_a_url() -> None:
    with pytest.raises(DatabaseConfigError, match="DB_BACKEND=postgresql needs HOLOCRON_DB_URL"):
        resolve_db_url(None, {"DB_BACKEND": "postgresql"})
    url = resolve_db_url(None, {"DB_BACKEND": "postgresql", "HOLOCRON_DB_URL": PG})
    assert url.get_backend_name() == "postgresql"


def test_unknown_backend() -> None:
    with pytest.raises(DatabaseConfigError, match="DB_BACKEND='oracle' is not supported"):
        resolve_db_url(None, {"DB_BACKEND": "oracle"})


@pytest.mark.parametrize(
    ("setting", "environ", "origin"),
    [
        ("not a url", {}, "HOLOCRON_DB_URL setting"),
        (None, {"HOLOCRON_DB_URL": "://secret@nowhere"}, "HOLOCRON_DB_URL environment variable"),
    ],
)
def test_unparsable_url(setting: str | None, environ: dict[str, str], origin: str) -> None:
    with pytest.raises(DatabaseConfigError, match=origin) as info:
        resolve_db_url(setting, environ)
    assert "secret" not in str(info.value)


def test_masked_hides_the_password() -> None:
    text = masked(resolve_db_url(None, SQLSERVER_ENV))
    assert "p@ss" not in text
    assert "***" in text
    assert "ingest_user" in text
    assert masked(PG) == "postgresql+psycopg://crawler:***@db.example.org:5432/holocron"
    assert masked("sqlite:///local/state.db") == "sqlite:///local/state.db"
    assert masked("::not a url::") == "<unparsable database URL>"


def test_schema_is_none_on_sqlite() -> None:
    sqlite = make_url("sqlite:///x.db")
    assert resolve_schema("custom", {"DB_BACKEND": "sqlserver"}, sqlite) is None


def test_schema_precedence() -> None:
    pg = make_url(PG)
    mssql = resolve_db_url(None, SQLSERVER_ENV)
    assert resolve_schema(None, {}, pg) == "ingest"
    assert resolve_schema("", {}, pg) == "ingest"
    assert resolve_schema("crawl_state", {}, pg) == "crawl_state"
    environ = {**SQLSERVER_ENV, "SQLSERVER_SCHEMA": "dbo_ingest"}
    assert resolve_schema(None, environ, mssql) == "dbo_ingest"
    assert resolve_schema("mine", environ, mssql) == "mine"
    # SQLSERVER_SCHEMA belongs to the SQL Server variables only.
    assert resolve_schema(None, {"SQLSERVER_SCHEMA": "x"}, pg) == "ingest"


@pytest.mark.parametrize(
    "name", ["ingest", "_x", "Ingest_2", "a", "A" * 128, "t_0123456789ab", "dbo"]
)
def test_valid_schema_names(name: str) -> None:
    assert validate_schema_name(name) == name


BAD_SCHEMA_NAMES = [
    "ingest]; DROP TABLE x--",
    'ingest"; DROP SCHEMA public CASCADE; --',
    "a b",
    '"x"',
    "[x]",
    "",
    "x" * 200,
    "a" * 129,
    "1abc",
    "ingest.work",
    "in-gest",
    "ingest;",
    "ingest\n",
    "ingést",
    "x'--",
    " ingest",
]


@pytest.mark.parametrize("name", BAD_SCHEMA_NAMES)
def test_bad_schema_names_are_rejected(name: str) -> None:
    with pytest.raises(DatabaseConfigError) as info:
        validate_schema_name(name)
    assert repr(name) in str(info.value)


@pytest.mark.parametrize("name", ["ingest]; DROP TABLE x--", "a b", "x" * 200])
def test_bad_schema_from_setting_or_environment(name: str) -> None:
    pg = make_url(PG)
    with pytest.raises(DatabaseConfigError):
        resolve_schema(name, {}, pg)
    with pytest.raises(DatabaseConfigError):
        resolve_schema(None, {**SQLSERVER_ENV, "SQLSERVER_SCHEMA": name}, pg)
