"""The settings the frontier shares with other components: the state store and the retry policy.

``holocron_scrapy.frontier.extension`` re-exports these names; ``commands/crawl.py`` validates the
same
store before a crawl starts.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from scrapy.exceptions import NotConfigured

from holocron_scrapy import defaults
from holocron_scrapy.model import RetryPolicy
from holocron_scrapy.store.dburl import resolve_db_url, resolve_schema
from holocron_scrapy.store.state_store import StateStore

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

SQLSERVER_HINT = (
    "to use SQL Server set HOLOCRON_DB_URL=mssql+pyodbc://USER:PASSWORD@HOST:1433/DB"
    "?driver=ODBC+Driver+18+for+SQL+Server (or DB_BACKEND=sqlserver with SQLSERVER_HOST, "
    "SQLSERVER_DATABASE, SQLSERVER_USERNAME, SQLSERVER_PASSWORD)"
)


def state_store_from_settings(settings: BaseSettings) -> StateStore:
    """The state store named by ``HOLOCRON_DB_URL`` / ``HOLOCRON_DB_SCHEMA`` (settings or env)."""
    url = resolve_db_url(settings.get("HOLOCRON_DB_URL", defaults.DB_URL), os.environ)
    schema = resolve_schema(settings.get("HOLOCRON_DB_SCHEMA", defaults.DB_SCHEMA), os.environ, url)
    return StateStore.from_url(url, schema)


def retry_policy_from_settings(settings: BaseSettings) -> RetryPolicy:
    """``HOLOCRON_MAX_ATTEMPTS`` (3), ``HOLOCRON_RETRY_BACKOFF`` (30 s),
    ``HOLOCRON_RETRY_BACKOFF_MAX`` (3600 s); ``NotConfigured`` when out of range."""
    try:
        return RetryPolicy(
            max_attempts=settings.getint("HOLOCRON_MAX_ATTEMPTS", defaults.MAX_ATTEMPTS),
            base_seconds=settings.getfloat("HOLOCRON_RETRY_BACKOFF", defaults.RETRY_BACKOFF),
            cap_seconds=settings.getfloat("HOLOCRON_RETRY_BACKOFF_MAX", defaults.RETRY_BACKOFF_MAX),
        )
    except ValueError as exc:
        raise NotConfigured(f"HOLOCRON_MAX_ATTEMPTS / HOLOCRON_RETRY_BACKOFF: {exc}") from exc
