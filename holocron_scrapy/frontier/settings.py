"""The frontier's settings: the state store and the retry policy (which other components share:
``commands/crawl.py`` validates the same store before a crawl starts), and the Frontier's own
options.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

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


def frontier_options(settings: BaseSettings) -> dict[str, Any]:
    """The :class:`~holocron_scrapy.frontier.extension.Frontier`'s keyword arguments;
    ``NotConfigured`` when a value is out of range."""
    dead_after_leases = settings.getfloat("HOLOCRON_DEAD_AFTER_LEASES", defaults.DEAD_AFTER_LEASES)
    if dead_after_leases < 1:
        raise NotConfigured(
            f"HOLOCRON_DEAD_AFTER_LEASES must be 1 or more, not {dead_after_leases}: "
            "live runs write their heartbeat every third of a lease"
        )
    return {
        "claim_size": settings.getint("HOLOCRON_CLAIM_SIZE", defaults.CLAIM_SIZE),
        "lease_seconds": settings.getfloat("HOLOCRON_LEASE_SECONDS", defaults.LEASE_SECONDS),
        "flush_interval": settings.getfloat("HOLOCRON_FLUSH_INTERVAL", defaults.FLUSH_INTERVAL),
        "flush_size": settings.getint("HOLOCRON_FLUSH_SIZE", defaults.FLUSH_SIZE),
        "worker_id": settings.get("HOLOCRON_WORKER_ID", defaults.WORKER_ID) or socket.gethostname(),
        "discovery_cache_size": settings.getint(
            "HOLOCRON_DISCOVERY_CACHE_SIZE", defaults.DISCOVERY_CACHE_SIZE
        ),
        "retry": retry_policy_from_settings(settings),
        "retry_wait_max": settings.getfloat("HOLOCRON_RETRY_WAIT_MAX", defaults.RETRY_WAIT_MAX),
        "idle_poll": settings.getfloat("HOLOCRON_IDLE_POLL", defaults.IDLE_POLL),
        "outage_max_seconds": settings.getfloat("HOLOCRON_OUTAGE_MAX", defaults.OUTAGE_MAX),
        "dead_after_leases": dead_after_leases,
    }
