"""The default of every holocron setting, in one place (as scrapy-redis's ``defaults.py``).

A constant here is the setting's name without its ``HOLOCRON_`` prefix (the ``MEDIAWIKI_*``
settings keep theirs); a component reads its settings in ``from_crawler`` with the constant as
the default, ``settings.getint("HOLOCRON_CLAIM_SIZE", defaults.CLAIM_SIZE)``, so that the add-on
works in any project, whose settings need not name them. ``None`` means unset: what then applies
is said in the comment. :data:`SETTINGS` maps each setting's name to its default; the README's
"Settings" tables list exactly these (``tests/unit/test_defaults.py``).

The Scrapy settings this project chooses (politeness, retries, sizes) are not defaults of the
components but the project's choice: they stay in ``holocron_scrapy/settings.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

# -- the frontier (frontier/) ----------------------------------------------------------------
ENABLED = True  # the SQL frontier; off: a plain Scrapy crawl, nothing queued or recorded
CLAIM_SIZE = 500  # work items per claim (10 API requests of 50 titles)
LEASE_SECONDS = 600.0  # lease of a claim; an expired lease can be claimed again
DEAD_AFTER_LEASES = 2.0  # lease periods without a heartbeat after which a run is dead (>= 1)
FLUSH_INTERVAL = 1.0  # s between two writes of the buffered discoveries and outcomes
FLUSH_SIZE = 500  # buffered discoveries and outcomes that are written at once, before the interval
WORKER_ID = None  # this machine's identity in claims and runs; None: the host name
DISCOVERY_CACHE_SIZE = 200_000  # keys this run already queued, answered without a round trip
RETRY_WAIT_MAX = 600.0  # s: a crawl waits for the retries due within this, later ones are left
IDLE_POLL = 2.0  # s between two claims of a worker waiting for others' live leases
OUTAGE_MAX = 3600.0  # s a crawl waits for an unreachable database or lake before giving up

# -- the state database (store/) -------------------------------------------------------------
DB_URL = None  # None: the environment's HOLOCRON_DB_URL, then SQLSERVER_*, then local/state.db
DB_SCHEMA = None  # None: the environment's HOLOCRON_DB_SCHEMA, then ingest (not on SQLite)

# -- retries of failed work items (model.RetryPolicy) ----------------------------------------
MAX_ATTEMPTS = 3  # tries of a work item before it is failed for good (1: no retry)
RETRY_BACKOFF = 30.0  # s before the first retry, doubled per attempt (equal jitter)
RETRY_BACKOFF_MAX = 3600.0  # s, the cap of the retry delay

# -- the source files (config/) --------------------------------------------------------------
SOURCES_DIR = None  # where -a source=NAME looks first; None: sources/ next to scrapy.cfg
CONTACT = None  # merged into every User-Agent; None: the environment's HOLOCRON_CONTACT

# -- the lake (pipelines/lake.py, lake/) -----------------------------------------------------
LAKE_ENABLED = True  # the lake pipeline (and the run manifests, which describe the lake)
LAKE_DIR = "local/data_lake"  # the lake's root, relative to the working directory
LAKE_THREADS = 4  # threads for lake writes (separate from the database's)
LAKE_FSYNC = True  # fsync each lake file and its directory (off: atomic, not power-safe)
LAKE_GROUP_SIZE = 64  # lake files at most per group commit (one directory fsync per group)
LAKE_TEMP_MAX_AGE = 60.0  # s: at start, the .tmp-* files older than this are removed

# -- IngestRecords (pipelines/ingest.py) -----------------------------------------------------
INGEST_ENABLED = True  # the IngestRecords pipeline; off: lake files are published at once
INGEST_BATCH_SIZE = 50  # rows per IngestRecords batch
INGEST_MAX_DELAY = 0.5  # s an item waits at most for its batch

# -- the shared request budget (middlewares/budget.py) ---------------------------------------
BUDGET_ENABLED = True  # one request budget per source, shared by all processes
BUDGET_DELAY = None  # s between two requests to the source; None: DOWNLOAD_DELAY; 0: off

# -- the memory budget of response bodies (middlewares/body_budget.py) -----------------------
BODY_BUDGET = 256 * 1024 * 1024  # bytes of bodies held before a new request waits; 0: off
BODY_BUDGET_MAX_WAIT = 60.0  # s a request waits for the body budget at most

# -- Retry-After (middlewares/retry_after.py) ------------------------------------------------
RETRY_AFTER_ENABLED = True  # wait Retry-After on 429, 503 and maxlag/ratelimited/readonly
RETRY_AFTER_DEFAULT = 5.0  # s, doubled per try, when the server gives no Retry-After
RETRY_AFTER_MAX = 300.0  # s, the longest wait, even when Retry-After asks for more
RETRY_AFTER_TIMES = 10  # waits of a request, then its work items fail ("HTTP 429 from …")
RETRY_AFTER_MAXLAG_TIMES = 50  # maxlag waits are not failures: a cap of their own

# -- bounds of one claim in memory (bounds.py) -----------------------------------------------
CHAIN_MAX_PAGES = 1000  # responses of one continuation chain
CHAIN_MAX_BYTES = 64 * 1024 * 1024  # bytes a chain merges in memory (DOWNLOAD_MAXSIZE's size)
LISTING_MAX_PAGES = 100_000  # pages of a listing per claim
MAX_REDIRECTS = 10  # hops of redirects and moves; an item reached through more fails

# -- extensions (extensions/) ----------------------------------------------------------------
PROGRESS_INTERVAL = 30.0  # s between two progress lines (0: off)
MANIFEST_ENABLED = True  # a manifest per run in LAKE/_runs/

# -- WARC capture (middlewares/warc.py, lake/warc.py) ----------------------------------------
WARC_DIR = None  # the WARC files' directory; None: no capture
WARC_MAX_BYTES = 1024**3  # bytes of a WARC file, then the next one
WARC_PREFIX = "holocron"  # the WARC files' name prefix

# -- the MediaWiki spider (spiders/mediawiki.py) ---------------------------------------------
MEDIAWIKI_MAXLAG = 5  # s, sent with every API request (0 or less: not sent)
MEDIAWIKI_LIST_LIMIT = "max"  # the batch size of listings (the API's limit parameters)
MEDIAWIKI_REVISIONS_CONTENT = False  # the revisions resource also stores each revision's text
MEDIAWIKI_TITLES_PER_REQUEST = 50  # titles per API query (the API's limit, 50, is the cap)

_PREFIX = "HOLOCRON_"

#: Every setting's name and default.
SETTINGS: dict[str, object] = {
    (name if name.startswith("MEDIAWIKI_") else _PREFIX + name): value
    for name, value in dict(globals()).items()
    if name.isupper() and not name.startswith("_") and name != "TYPE_CHECKING"
}


def lake_dir(settings: BaseSettings) -> Path:
    """``HOLOCRON_LAKE_DIR``, absolute (the pipelines, the extensions and the commands)."""
    return Path(settings.get("HOLOCRON_LAKE_DIR", LAKE_DIR)).absolute()


def sources_dir(settings: BaseSettings) -> Path | None:
    """``HOLOCRON_SOURCES_DIR``; ``None`` when unset or empty (the spiders and the commands)."""
    directory = settings.get("HOLOCRON_SOURCES_DIR", SOURCES_DIR)
    return Path(directory) if directory else None
