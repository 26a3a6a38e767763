"""The add-on that wires the components, and ``scrapy crawl``'s checks before a crawl starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from scrapy.core.downloader.middleware import DownloaderMiddlewareManager
from scrapy.core.spidermw import SpiderMiddlewareManager
from scrapy.pipelines import ItemPipelineManager
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler

from holocron_scrapy.addon import HolocronAddon
from holocron_scrapy.extensions.progress import CrawlProgress
from holocron_scrapy.frontier.extension import Frontier
from holocron_scrapy.middlewares.claims import ClaimCheckMiddleware
from holocron_scrapy.middlewares.state import StateMiddleware
from holocron_scrapy.pipelines.ingest import IngestRecordsPipeline
from holocron_scrapy.pipelines.lake import LakePipeline
from holocron_scrapy.store.state_store import StateStore
from tests.unit.conftest import SOURCE_NAME, write_source

if TYPE_CHECKING:
    from collections.abc import Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
PG_URL = "postgresql+psycopg://nobody:s3cret@127.0.0.1:5432/test"

# -- the add-on ---------------------------------------------------------------------------------


def test_the_addon_enables_every_component_at_its_priority() -> None:
    settings = Settings()
    HolocronAddon().update_settings(settings)
    assert settings.getdict("EXTENSIONS") == {
        "holocron_scrapy.frontier.extension.Frontier": 100,
        "holocron_scrapy.extensions.progress.CrawlProgress": 500,
        "holocron_scrapy.extensions.manifest.RunManifest": 600,
    }
    assert settings.getdict("SPIDER_MIDDLEWARES") == {
        "holocron_scrapy.middlewares.state.StateMiddleware": 950,
    }
    assert settings.getdict("DOWNLOADER_MIDDLEWARES") == {
        "holocron_scrapy.middlewares.claims.ClaimCheckMiddleware": 50,
        "holocron_scrapy.middlewares.body_budget.BodyBudgetMiddleware": 55,
        "holocron_scrapy.middlewares.budget.SharedBudgetMiddleware": 60,
        "holocron_scrapy.middlewares.retry_after.RetryAfterMiddleware": 560,
        "holocron_scrapy.middlewares.warc.WarcMiddleware": 950,
    }
    assert settings.getdict("ITEM_PIPELINES") == {
        "holocron_scrapy.pipelines.lake.LakePipeline": 300,
        "holocron_scrapy.pipelines.ingest.IngestRecordsPipeline": 400,
    }


def test_the_project_settings_use_the_addon() -> None:
    from holocron_scrapy import settings

    assert settings.ADDONS == {"holocron_scrapy.addon.HolocronAddon": 0}


def test_a_crawler_with_the_addon_builds_every_component(tmp_path: Path) -> None:
    crawler = get_crawler(
        settings_dict={
            "ADDONS": {HolocronAddon: 0},
            "HOLOCRON_DB_URL": f"sqlite:///{tmp_path / 'state' / 's.db'}",
            "HOLOCRON_LAKE_DIR": str(tmp_path / "lake"),
        }
    )
    frontier = crawler.get_extension(Frontier)
    assert isinstance(frontier, Frontier)
    assert isinstance(crawler.get_extension(CrawlProgress), CrawlProgress)
    try:
        spider_mws = SpiderMiddlewareManager.from_crawler(crawler).middlewares
        downloader_mws = DownloaderMiddlewareManager.from_crawler(crawler).middlewares
        pipelines = ItemPipelineManager.from_crawler(crawler).middlewares
        [state] = [mw for mw in spider_mws if isinstance(mw, StateMiddleware)]
        [claims] = [mw for mw in downloader_mws if isinstance(mw, ClaimCheckMiddleware)]
        assert state.frontier is frontier
        assert claims.frontier is frontier
        # The claim check runs before every built-in downloader middleware but offsite (also 50).
        assert [type(mw).__name__ for mw in downloader_mws[:2]] == [
            "OffsiteMiddleware",
            "ClaimCheckMiddleware",
        ]
        assert [type(p) for p in pipelines] == [LakePipeline, IngestRecordsPipeline]
        assert all(p.frontier is frontier for p in pipelines)  # type: ignore[attr-defined]
        assert pipelines[0].root == tmp_path / "lake"  # type: ignore[attr-defined]
        # Nothing connects before the spider opens.
        assert not (tmp_path / "state" / "s.db").exists()
        pipelines[0].close_spider()  # type: ignore[attr-defined]
    finally:
        frontier.store.dispose()


# -- scrapy crawl -------------------------------------------------------------------------------


def scrapy_crawl(args: Sequence[str], db_url: str) -> subprocess.CompletedProcess[str]:
    """``scrapy crawl mediawiki ARGS`` in the project, with the state database ``db_url``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HOLOCRON_", "SQLSERVER_")) and k != "DB_BACKEND"
    }
    env["HOLOCRON_DB_URL"] = db_url
    # The console script, as users run it (``python -m scrapy`` names itself __main__.py).
    scrapy = Path(sys.executable).with_name("scrapy")
    return subprocess.run(
        [str(scrapy), "crawl", "mediawiki", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("scrapy: error:")]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param(
            "max_depth: -1",
            "discovery.max_depth: must be between 0 and 100 (seeds are 0), got -1",
            id="invalid-value",
        ),
        pytest.param("max_depth: [1", "<yaml>: ", id="invalid-yaml"),
        pytest.param(
            "max_depth: 2026-02-30",
            "discovery.max_depth: line ",
            id="yaml-pyyaml-cannot-construct",
        ),
    ],
)
def test_a_broken_source_file_is_one_error_line_and_touches_nothing(
    tmp_path: Path, text: str, error: str
) -> None:
    source = write_source(tmp_path)
    source.write_text(
        source.read_text(encoding="utf-8").replace("max_depth: 2", text), encoding="utf-8"
    )
    result = scrapy_crawl(
        ["-a", f"source={source}", "-s", f"HOLOCRON_LAKE_DIR={tmp_path / 'lake'}"],
        f"sqlite:///{tmp_path / 'state' / 's.db'}",
    )
    assert result.returncode == 2, result.stderr
    [line] = error_lines(result)
    assert line.startswith(f"scrapy: error: {source}: {error}"), line
    assert not (tmp_path / "state").exists()
    assert not (tmp_path / "lake").exists()


def test_a_fifo_as_source_file_is_one_error_line_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    result = scrapy_crawl(["-a", f"source={fifo}"], f"sqlite:///{tmp_path / 'state' / 's.db'}")
    assert result.returncode == 2, result.stderr
    assert error_lines(result) == [f"scrapy: error: {fifo}: source: is a FIFO, not a YAML file"]


def test_a_source_name_crawled_from_another_url_is_refused(tmp_path: Path) -> None:
    """Two source files of one name and different ``api_url`` on one database: the second is
    refused before anything starts (its state would merge into the first's)."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = StateStore.from_url(url)
    try:
        store.create_tables()
        first = store.source_url(
            source_system="mediawiki", source_name=SOURCE_NAME, url="https://a.example.org/api.php"
        )
    finally:
        store.dispose()
    assert first == "https://a.example.org/api.php"
    source = write_source(tmp_path)  # its api_url is http://127.0.0.1:8091/api.php
    result = scrapy_crawl(["-a", f"source={source}"], url)
    assert result.returncode == 2, result.stderr
    assert error_lines(result) == [
        f"scrapy: error: {source}: name: {SOURCE_NAME!r} was crawled from "
        f"https://a.example.org/api.php into this database (sqlite:///{tmp_path / 's.db'}), "
        "not from http://127.0.0.1:8091/api.php: give this source another name, or use another "
        "database"
    ]


def test_an_unreachable_database_is_reported_with_the_password_masked(tmp_path: Path) -> None:
    source = write_source(tmp_path)
    result = scrapy_crawl(
        ["-a", f"source={source}", "-s", f"HOLOCRON_LAKE_DIR={tmp_path / 'lake'}"], PG_URL
    )
    assert result.returncode == 2, result.stderr
    [line] = error_lines(result)
    assert line.startswith(
        "scrapy: error: cannot use the state database "
        "postgresql+psycopg://nobody:***@127.0.0.1:5432/test: OperationalError: "
    ), line
    assert "s3cret" not in result.stderr + result.stdout
    assert not (tmp_path / "lake").exists()


def test_an_invalid_schema_name_is_refused_before_connecting(tmp_path: Path) -> None:
    source = write_source(tmp_path)
    result = scrapy_crawl(["-a", f"source={source}", "-s", "HOLOCRON_DB_SCHEMA=x;drop"], PG_URL)
    assert result.returncode == 2, result.stderr
    assert error_lines(result) == [
        "scrapy: error: Invalid database schema name 'x;drop': use 1-128 letters, digits or "
        "underscores, not starting with a digit"
    ]
    assert "s3cret" not in result.stderr + result.stdout
