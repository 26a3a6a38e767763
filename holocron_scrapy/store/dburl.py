"""Where the crawl state lives: resolve the database URL and schema from settings and environment.

Precedence for the URL: the Scrapy setting ``HOLOCRON_DB_URL`` > the environment variable
``HOLOCRON_DB_URL`` > the seed project's ``SQLSERVER_*`` variables when ``DB_BACKEND=sqlserver``
> :data:`DEFAULT_DB_URL` (a SQLite file under ``local/``).

Nothing here connects to a database or imports a DBAPI driver.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_DB_URL = "sqlite:///local/state.db"
DEFAULT_SCHEMA = "ingest"
DEFAULT_SQLSERVER_PORT = 1433
DEFAULT_SQLSERVER_DRIVER = "ODBC Driver 18 for SQL Server"
DEFAULT_SQLSERVER_TRUST_SERVER_CERTIFICATE = "yes"

DB_BACKENDS = ("sqlite", "postgresql", "sqlserver")

_SCHEMA_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class DatabaseConfigError(ValueError):
    """The database URL or schema cannot be resolved from the settings and environment."""


def _parse_url(value: str, origin: str) -> URL:
    try:
        return make_url(value)
    except (ArgumentError, ValueError) as exc:
        # The raw value is not echoed: it may hold a password.
        raise DatabaseConfigError(
            f"{origin} is not a valid database URL (expected e.g. {DEFAULT_DB_URL!r} or "
            "'postgresql+psycopg://user:password@host:5432/dbname')"
        ) from exc


def _env(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def _db_backend(environ: Mapping[str, str]) -> str:
    backend = _env(environ, "DB_BACKEND").lower()
    if backend and backend not in DB_BACKENDS:
        raise DatabaseConfigError(
            f"DB_BACKEND={backend!r} is not supported; use one of {', '.join(DB_BACKENDS)}"
        )
    return backend


def _sqlserver_url(environ: Mapping[str, str]) -> URL:
    host = _env(environ, "SQLSERVER_HOST")
    if not host:
        raise DatabaseConfigError("DB_BACKEND=sqlserver needs SQLSERVER_HOST")
    database = _env(environ, "SQLSERVER_DATABASE")
    if not database:
        raise DatabaseConfigError("DB_BACKEND=sqlserver needs SQLSERVER_DATABASE")
    port_text = _env(environ, "SQLSERVER_PORT") or str(DEFAULT_SQLSERVER_PORT)
    try:
        port = int(port_text)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise DatabaseConfigError(f"SQLSERVER_PORT must be a TCP port number, not {port_text!r}")
    return URL.create(
        "mssql+pyodbc",
        # Passwords are used verbatim (surrounding spaces may be meaningful).
        username=_env(environ, "SQLSERVER_USERNAME") or None,
        password=environ.get("SQLSERVER_PASSWORD") or None,
        host=host,
        port=port,
        database=database,
        query={
            "driver": _env(environ, "SQLSERVER_DRIVER") or DEFAULT_SQLSERVER_DRIVER,
            "TrustServerCertificate": _env(environ, "SQLSERVER_TRUST_SERVER_CERTIFICATE")
            or DEFAULT_SQLSERVER_TRUST_SERVER_CERTIFICATE,
        },
    )


def resolve_db_url(setting: str | None, environ: Mapping[str, str]) -> URL:
    """The state database URL (see the module docstring for the precedence)."""
    if setting and setting.strip():
        return _parse_url(setting.strip(), "The HOLOCRON_DB_URL setting")
    env_url = _env(environ, "HOLOCRON_DB_URL")
    if env_url:
        return _parse_url(env_url, "The HOLOCRON_DB_URL environment variable")
    backend = _db_backend(environ)
    if backend == "sqlserver":
        return _sqlserver_url(environ)
    if backend == "postgresql":
        raise DatabaseConfigError(
            "DB_BACKEND=postgresql needs HOLOCRON_DB_URL "
            "(e.g. postgresql+psycopg://user:password@host:5432/dbname)"
        )
    return make_url(DEFAULT_DB_URL)


def validate_schema_name(name: str) -> str:
    """Return ``name`` if it is a plain SQL identifier usable as a schema name, else raise."""
    if not _SCHEMA_NAME_RE.fullmatch(name):
        raise DatabaseConfigError(
            f"Invalid database schema name {name!r}: use 1-128 letters, digits or underscores, "
            "not starting with a digit"
        )
    return name


def resolve_schema(setting: str | None, environ: Mapping[str, str], url: URL) -> str | None:
    """The schema holding the state tables: ``None`` on SQLite (no schemas there).

    Else the setting ``HOLOCRON_DB_SCHEMA`` > the environment variable of that name >
    ``SQLSERVER_SCHEMA`` (when ``DB_BACKEND=sqlserver``) > ``"ingest"``.
    """
    if url.get_backend_name() == "sqlite":
        return None
    if setting is not None and setting.strip():
        return validate_schema_name(setting.strip())
    if _env(environ, "HOLOCRON_DB_SCHEMA"):
        return validate_schema_name(_env(environ, "HOLOCRON_DB_SCHEMA"))
    if _db_backend(environ) == "sqlserver" and _env(environ, "SQLSERVER_SCHEMA"):
        return validate_schema_name(_env(environ, "SQLSERVER_SCHEMA"))
    return DEFAULT_SCHEMA


def masked(url: URL | str) -> str:
    """``url`` as text with the password hidden, for logs and messages."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except (ArgumentError, ValueError):
            return "<unparsable database URL>"
    return url.render_as_string(hide_password=True)
