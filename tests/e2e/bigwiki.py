"""The large test bed of the crash harness: a generated wiki of more than 2,000 recordable pages,
and its ground truth.

The same generator and import as the 300-page wiki (``tests/e2e/testbed``), at
:data:`BIG_PAGES` pages. A crawl seeded with ``allpages`` over every namespace the wiki has
(links not followed) must record exactly the wiki's non-redirect pages: :func:`all_pages` reads
them from the wiki's own ``page`` table. Building it takes ~35 s on a 2-core machine (the
``create`` timing printed at the end of the session); ``HOLOCRON_E2E_WIKI_DIR`` keeps it between
sessions next to the small one (``<dir>-big``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from tests.e2e.wiki import MediaWiki

if TYPE_CHECKING:
    import pytest

BIG_PAGES = 2300  # ~2,120 of them are not redirects
BIG_SEED = 7
MIN_RECORDED_PAGES = 2000


def create_big_wiki(tmp_path_factory: pytest.TempPathFactory) -> MediaWiki:
    keep = os.environ.get("HOLOCRON_E2E_WIKI_DIR")
    root = Path(f"{keep}-big") if keep else tmp_path_factory.mktemp("mediawiki-big")
    wiki = MediaWiki.create(root, pages=BIG_PAGES, seed=BIG_SEED)
    wiki.start()
    return wiki


def all_pages(wiki: MediaWiki) -> tuple[list[int], set[str]]:
    """The namespaces of the wiki, and the titles of all its pages that are not redirects."""
    rows = wiki.sql("SELECT page_namespace, page_title, page_is_redirect FROM page")
    namespaces = sorted({ns for ns, _, _ in rows})
    titles = {wiki.title(ns, key) for ns, key, redirect in rows if not redirect}
    return namespaces, titles
