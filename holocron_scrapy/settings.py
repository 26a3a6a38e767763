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
# 429, 503 and the API's maxlag/ratelimited/readonly wait Retry-After, then retry
# (HOLOCRON_RETRY_AFTER_*, holocron_scrapy.middlewares.retry_after; README "Politeness and
# errors"); every API request sends maxlag=MEDIAWIKI_MAXLAG.
DOWNLOAD_TIMEOUT = 60
DOWNLOAD_MAXSIZE = 64 * 1024 * 1024
DOWNLOAD_WARNSIZE = 16 * 1024 * 1024

# The asyncio reactor, which the holocron components need, is set by the add-on.

LOG_LEVEL = "INFO"
FEED_EXPORT_ENCODING = "utf-8"

# The holocron settings (HOLOCRON_*, MEDIAWIKI_*): their defaults are in
# holocron_scrapy/defaults.py, one place for this project and any other that uses the add-on
# (README.md, "Settings"); set one here, in a source file's settings: block, or with -s.

# `scrapy crawl` validates the source file and the database settings before it starts.
COMMANDS_MODULE = "holocron_scrapy.commands"
