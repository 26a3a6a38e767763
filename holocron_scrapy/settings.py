"""Scrapy settings of the holocron_scrapy project.

Per-source settings come from the ``settings:`` block of ``sources/NAME.yaml`` and override
these for that crawl. The holocron components are wired by one add-on (``ADDONS``).
"""

BOT_NAME = "holocron_scrapy"
SPIDER_MODULES = ["holocron_scrapy.spiders"]
NEWSPIDER_MODULE = "holocron_scrapy.spiders"

ADDONS = {"holocron_scrapy.addon.HolocronAddon": 0}

# Identify politely; every source file sets its own User-Agent with contact information, into
# which HOLOCRON_CONTACT (-s HOLOCRON_CONTACT=you@your.domain, or the environment) is merged.
USER_AGENT = "HolocronScrapy/0.1 (+https://example.org/holocron-scrapy)"
ROBOTSTXT_OBEY = True  # web pages: yes; the mediawiki spider turns it off for the API itself

# Politeness: few concurrent requests per site, adaptive delays, back-off on errors.
CONCURRENT_REQUESTS = 8
CONCURRENT_REQUESTS_PER_DOMAIN = 2
DOWNLOAD_DELAY = 0.0
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
RETRY_ENABLED = True
RETRY_TIMES = 3
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]
# 429, 503 and the API's maxlag/ratelimited/readonly: wait Retry-After, then retry
# (holocron_scrapy.middlewares.retry_after; README "Politeness and errors").
HOLOCRON_RETRY_AFTER_ENABLED = True
HOLOCRON_RETRY_AFTER_DEFAULT = 5.0  # s, doubled per try when the server gives no Retry-After
HOLOCRON_RETRY_AFTER_MAX = 300.0  # s, the longest wait, even when Retry-After asks for more
HOLOCRON_RETRY_AFTER_TIMES = 10  # then the work items fail ("HTTP 429 from …")
HOLOCRON_RETRY_AFTER_MAXLAG_TIMES = 50  # maxlag waits are not failures: a cap of their own
MEDIAWIKI_MAXLAG = 5  # s, sent with every API request (0: not sent)
DOWNLOAD_TIMEOUT = 60
DOWNLOAD_MAXSIZE = 64 * 1024 * 1024
DOWNLOAD_WARNSIZE = 16 * 1024 * 1024

# The asyncio reactor, which the holocron components need, is set by the add-on.

LOG_LEVEL = "INFO"
FEED_EXPORT_ENCODING = "utf-8"

# holocron (see README.md, "Settings"): where the lake and the state database live.
HOLOCRON_LAKE_DIR = "local/data_lake"
# A failed work item is tried HOLOCRON_MAX_ATTEMPTS times, HOLOCRON_RETRY_BACKOFF s (doubled per
# attempt, jittered) apart; a crawl waits for retries due within HOLOCRON_RETRY_WAIT_MAX.
HOLOCRON_MAX_ATTEMPTS = 3
HOLOCRON_RETRY_BACKOFF = 30.0
HOLOCRON_RETRY_WAIT_MAX = 600.0
# Processes crawling one source share one request budget: one request per HOLOCRON_BUDGET_DELAY
# (unset: the source's DOWNLOAD_DELAY; 0: off).
# HOLOCRON_DB_URL: unset means the environment variable of that name, then the SQL Server
# variables (DB_BACKEND=sqlserver, SQLSERVER_*), then sqlite:///local/state.db.

# `scrapy crawl` validates the source file and the database settings before it starts.
COMMANDS_MODULE = "holocron_scrapy.commands"
