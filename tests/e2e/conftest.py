"""Fixtures of the end-to-end tests: a real MediaWiki on 127.0.0.1.

Every test under tests/e2e gets the ``e2e`` marker. Without MediaWiki/PHP the
tests are skipped (locally) or fail (when the ``CI`` environment variable is
set): install them with ``tests/e2e/install-mediawiki.sh``.

``HOLOCRON_E2E_WIKI_DIR=/some/dir`` keeps the wiki between sessions (created
and imported once, then only started); by default it lives in pytest's tmp dir.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

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
