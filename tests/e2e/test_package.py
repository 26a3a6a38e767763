"""The package as a user installs it: the wheel, in a fresh virtualenv, crawls from an empty
directory (``holocron crawl …``, and ``scrapy crawl …`` with ``SCRAPY_SETTINGS_MODULE``) into
``local/`` there; the egg scrapyd runs holds the shipped files and the settings entry point."""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from typing import TYPE_CHECKING

import pytest
import yaml
from packaging.requirements import Requirement

from tests.e2e.crawl_helpers import CRAWL_TIMEOUT, CrawlResult, Database, read_lake
from tests.e2e.dist_helpers import build_dists, check_installed, egg_problems, fresh_venv
from tests.e2e.http_servers import WORK_HOST, TestSite, work

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.e2e.dist_helpers import Dists, Venv

USER_AGENT = "HolocronScrapy/0.1 (e2e tests; tests@holocron.invalid)"
WORKS = ("W1", "W2", "W3")


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    return build_dists(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def installed(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    return fresh_venv(tmp_path_factory.mktemp("installed") / "venv", dists.wheel)


@pytest.fixture
def site() -> Iterator[TestSite]:
    server = TestSite().start()
    yield server
    server.stop()


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the test run's holocron and Scrapy variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HOLOCRON_", "SCRAPY_", "SQLSERVER_", "DB_BACKEND"))
    }
    return {**env, **extra}


def works_source(path: Path, site: TestSite) -> Path:
    document = {
        "name": "works",
        "type": "http",
        "base_url": f"{site.url}/api/",
        "user_agent": USER_AGENT,
        "seeds": [f"works/{name}" for name in WORKS],
        "resource_type": "work",
        "resource_id": "id",
        "settings": {"AUTOTHROTTLE_ENABLED": False, "DOWNLOAD_DELAY": 0},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    return path


def run(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> CrawlResult:
    with log.open("wb") as out:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=CRAWL_TIMEOUT,
            check=False,
        )
    return CrawlResult(proc.returncode, log)


def assert_crawled_into(directory: Path) -> None:
    """The works are recorded in ``directory/local``: the default SQLite database and lake."""
    db = Database("sqlite", f"sqlite:///{directory / 'local' / 'state.db'}", None)
    rows = {row["resource_id"]: json.loads(row["payload"]) for row in db.records()}
    assert rows == {f"{WORK_HOST}/{name}": work(name) for name in WORKS}
    lake = read_lake(directory / "local" / "data_lake")
    assert {f.document["resource_id"]: f.payload for f in lake} == rows
    assert {row["status"] for row in db.work_items()} == {"completed"}


#: run with only the zipped egg on sys.path for holocron_scrapy, as scrapyd runs it
_FROM_THE_EGG = """
import sys
from pathlib import Path
import holocron_scrapy
from holocron_scrapy.packaged import shipped_sources_dir, sql_script
from holocron_scrapy.config.sources import load_source
assert ".egg" in holocron_scrapy.__file__, holocron_scrapy.__file__
shipped = shipped_sources_dir()
assert shipped is not None and shipped.is_dir(), shipped
config = load_source("wikipedia", Path("no-sources-here"), contact="ops@holocron.test")
assert config.path == shipped / "wikipedia.yaml", config.path
assert config.user_agent == "HolocronScrapy/0.1 (ops@holocron.test)", config.user_agent
assert "CREATE TABLE" in sql_script("001_ingest_schema.sql")
"""


def test_the_egg_holds_the_shipped_files_and_the_settings_entry_point(
    dists: Dists, tmp_path: Path
) -> None:
    assert egg_problems(dists.egg) == []
    # Imported from the zipped egg, the shipped source files are still found by name.
    venv = fresh_venv(tmp_path / "venv")
    proc = subprocess.run(
        [str(venv.python), "-c", _FROM_THE_EGG],
        cwd=tmp_path,
        env=clean_env(PYTHONPATH=str(dists.egg)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_the_wheel_in_a_fresh_venv_crawls_from_an_empty_directory(
    installed: Venv, site: TestSite, tmp_path: Path
) -> None:
    source = works_source(tmp_path / "elsewhere" / "works.yaml", site)
    first = tmp_path / "first"
    first.mkdir()
    assert check_installed(installed, first) == ["http", "mediawiki"]
    cmd = [str(installed.bin("holocron")), "crawl", "http", "-a", f"source={source}"]
    cmd += ["-s", "TELNETCONSOLE_ENABLED=False"]
    run(cmd, first, clean_env(), tmp_path / "holocron.log").check()
    assert_crawled_into(first)

    # The same with the scrapy command itself, told the settings module.
    second = tmp_path / "second"
    second.mkdir()
    cmd = [str(installed.python), "-m", "scrapy", "crawl", "http", "-a", f"source={source}"]
    cmd += ["-s", "TELNETCONSOLE_ENABLED=False"]
    env = clean_env(SCRAPY_SETTINGS_MODULE="holocron_scrapy.settings")
    run(cmd, second, env, tmp_path / "scrapy.log").check()
    assert_crawled_into(second)
    assert sorted(p.name for p in second.iterdir()) == ["local"]


def test_the_wheel_declares_its_dependencies_with_pyodbc_only_as_an_extra(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as wheel:
        metadata = wheel.read("holocron_scrapy-0.1.0.dist-info/METADATA").decode()
        entry_points = wheel.read("holocron_scrapy-0.1.0.dist-info/entry_points.txt").decode()
    requires = [
        line.split(": ", 1)[1]
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist: ")
    ]
    parsed = [Requirement(r) for r in requires]
    runtime = sorted(r.name.lower() for r in parsed if r.marker is None)
    expected = [
        "itemadapter",
        "orjson",
        "psycopg",
        "pyarrow",
        "pydantic",
        "pyyaml",
        "scrapy",
        "sqlalchemy",
        "warcio",
    ]
    assert runtime == expected
    [pyodbc] = [r for r in parsed if r.name == "pyodbc"]  # once, and only as the extra
    assert str(pyodbc.marker) == 'extra == "mssql"'
    assert "holocron = holocron_scrapy.cli:main" in entry_points
    assert "ingest_status = holocron_scrapy.commands.ingest_status:Command" in entry_points
    assert "lake_export = holocron_scrapy.commands.lake_export:Command" in entry_points
