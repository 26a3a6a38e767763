"""Fixtures of the end-to-end tests: a real MediaWiki on 127.0.0.1.

Every test under tests/e2e gets the ``e2e`` marker. Without MediaWiki/PHP the
tests are skipped (locally) or fail (when the ``CI`` environment variable is
set): install them with ``tests/e2e/install-mediawiki.sh``.

``HOLOCRON_E2E_WIKI_DIR=/some/dir`` keeps the wiki between sessions (created
and imported once, then only started); by default it lives in pytest's tmp dir.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from tests.e2e.crawl_helpers import Database
from tests.e2e.wiki import INSTALL_SCRIPT, MediaWiki, missing_requirements

if TYPE_CHECKING:
    from collections.abc import Iterator

E2E_DIR = Path(__file__).resolve().parent
E2E_PAGES = 300
E2E_SEED = 1

_started: list[MediaWiki] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def mediawiki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaWiki]:
    """A started MediaWiki with the generated 300-page wiki (seed 1)."""
    problems = missing_requirements()
    if problems:
        reason = (
            f"MediaWiki test bed not available ({'; '.join(problems)}): "
            f"run {INSTALL_SCRIPT} as root"
        )
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    keep = os.environ.get("HOLOCRON_E2E_WIKI_DIR")
    root = Path(keep) if keep else tmp_path_factory.mktemp("mediawiki")
    wiki = MediaWiki(root)
    try:
        wiki = MediaWiki.create(root, pages=E2E_PAGES, seed=E2E_SEED)
        wiki.start()
        _started.append(wiki)
        yield wiki
    finally:
        wiki.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for wiki in _started:
        spent = ", ".join(f"{step} {sec:.1f} s" for step, sec in wiki.timings.items())
        terminalreporter.write_line(f"e2e MediaWiki ({E2E_PAGES} pages) in {wiki.root}: {spent}")


# =================================================================================================
# Crawl state databases of the end-to-end crawl tests (tests/e2e/test_crawl.py).
#
#   crawl_db   a crawl_helpers.Database: SQLite in tmp_path (default), or, parametrized
#              indirectly with "postgresql", a random schema e2e_<hex> on HOLOCRON_TEST_PG_URL,
#              dropped afterwards (unset URL: skipped, or failed when CI is set).
# =================================================================================================

E2E_PG_URL_ENV = "HOLOCRON_TEST_PG_URL"


@pytest.fixture
def crawl_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        yield Database("sqlite", f"sqlite:///{tmp_path / 'state.db'}", None)
        return
    assert backend == "postgresql", backend
    url = os.environ.get(E2E_PG_URL_ENV, "").strip()
    if not url:
        reason = f"{E2E_PG_URL_ENV} is not set"
        if _in_ci():
            pytest.fail(f"{reason}: PostgreSQL tests must not be skipped in CI", pytrace=False)
        pytest.skip(reason)
    schema = f"e2e_{uuid.uuid4().hex[:12]}"
    try:
        yield Database("postgresql", url, schema)
    finally:
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            engine.dispose()


# ================================= end of crawl state databases =================================


# =================================================================================================
# The large wiki of the crash harness (tests/e2e/test_killproof.py; see tests/e2e/bigwiki.py).
#
#   big_mediawiki   a started MediaWiki of bigwiki.BIG_PAGES generated pages, built once per
#                   session (after the ``mediawiki`` fixture, which checks the requirements).
# =================================================================================================


@pytest.fixture(scope="session")
def big_mediawiki(
    mediawiki: MediaWiki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MediaWiki]:
    from tests.e2e.bigwiki import create_big_wiki

    wiki = create_big_wiki(tmp_path_factory)
    try:
        yield wiki
    finally:
        wiki.stop()


# ===================================== end of the large wiki ====================================
