"""``holocron``: the ``scrapy`` command with this package's settings, from any directory.

``holocron crawl mediawiki -a source=wikipedia -s HOLOCRON_CONTACT=you@your.domain`` is
``scrapy crawl …`` run with ``SCRAPY_SETTINGS_MODULE=holocron_scrapy.settings`` (unless that
variable names another module already), so an installed package crawls without a checkout or a
``scrapy.cfg``; the lake and the SQLite database go to ``local/`` under the working directory.
"""

from __future__ import annotations

import os

SETTINGS_MODULE = "holocron_scrapy.settings"


def main() -> None:
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", SETTINGS_MODULE)
    from scrapy.cmdline import execute

    execute()
