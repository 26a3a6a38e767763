"""The add-on in another Scrapy project: a minimal project made in a temporary directory, whose
settings only name its spiders and the add-on, with its own spider written against the
documented spider protocol (README "The add-on in your own Scrapy project"), crawls the local
JSON API of tests/e2e/http_servers.py into its lake and state database with the real
``scrapy crawl``: seeds, discoveries, a failure, and a second run that fetches nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.crawl_helpers import CRAWL_TIMEOUT, CrawlResult, Database, read_lake
from tests.e2e.http_servers import TestSite

if TYPE_CHECKING:
    from collections.abc import Iterator

SETTINGS = """\
BOT_NAME = "myproject"
SPIDER_MODULES = ["myproject.spiders"]
ADDONS = {"holocron_scrapy.addon.HolocronAddon": 0}
"""

SPIDER = '''\
"""A spider of the user's own, for the holocron frontier: seeds, requests for claimed work items,
records and discoveries."""

from datetime import UTC, datetime

import scrapy

from holocron_scrapy.frontier.extension import work_items_of
from holocron_scrapy.items import ResourceRecord
from holocron_scrapy.model import NewWorkItem, Outcome, Status

MAX_DEPTH = 1


class WorksSpider(scrapy.Spider):
    name = "works"
    source_system = "myapi"
    source_name = "works"
    recrawl = None

    def __init__(self, api: str, seeds: str, **kwargs):
        super().__init__(**kwargs)
        self.api = api
        self.seeds = seeds.split(",")

    async def start(self):
        return  # the frontier schedules everything
        yield

    def seed_work_items(self):
        return [self.work_item(name, 0) for name in self.seeds]

    def work_item(self, name, depth, parent=None):
        return NewWorkItem(
            self.source_system, self.source_name, "work", name, depth=depth,
            discovered_from=parent,
        )

    def requests_for(self, items):
        return [
            scrapy.Request(
                f"{self.api}/works/{item.resource_id}",
                callback=self.parse_work,
                errback=self.failed,
                meta={"holocron_work_items": [item]},
            )
            for item in items
        ]

    def parse_work(self, response):
        [item] = work_items_of(response.request)
        data = response.json()  # invalid JSON raises: the state middleware fails the item
        if item.depth < MAX_DEPTH:
            for ref in data["referenced_works"]:
                yield self.work_item(ref.rsplit("/", 1)[1], item.depth + 1, item.id)
        yield ResourceRecord(
            work_item=item,
            resource_type="work",
            resource_id=item.resource_id,
            payload=data,
            request_uri=response.url,
            status_code=response.status,
            fetched_at_utc=datetime.now(UTC).replace(tzinfo=None),
        )

    def failed(self, failure):
        for item in work_items_of(failure.request):
            yield Outcome(item.id, Status.FAILED, repr(failure.value))
'''


@pytest.fixture
def site() -> Iterator[TestSite]:
    server = TestSite().start()
    yield server
    server.stop()


def make_project(root: Path) -> Path:
    package = root / "myproject"
    (package / "spiders").mkdir(parents=True)
    (root / "scrapy.cfg").write_text("[settings]\ndefault = myproject.settings\n")
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(SETTINGS)
    (package / "spiders" / "__init__.py").write_text("")
    (package / "spiders" / "works.py").write_text(SPIDER)
    return root


def crawl(project: Path, site: TestSite, log: Path) -> CrawlResult:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOLOCRON_", "SCRAPY_"))}
    scrapy = Path(sys.executable).with_name("scrapy")
    cmd = [str(scrapy), "crawl", "works", "-a", f"api={site.url}/api", "-a", "seeds=W1,W3"]
    cmd += ["-s", "HOLOCRON_MAX_ATTEMPTS=1", "-s", "TELNETCONSOLE_ENABLED=False"]
    with log.open("wb") as out:
        proc = subprocess.run(
            cmd,
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=CRAWL_TIMEOUT,
            check=False,
        )
    return CrawlResult(proc.returncode, log)


def test_a_project_of_its_own_with_the_addon_crawls_into_the_lake(
    site: TestSite, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "project")
    first = crawl(project, site, tmp_path / "first.log").check()
    assert "Spider works does not use the SQL frontier" not in first.log

    db = Database("sqlite", f"sqlite:///{project / 'local' / 'state.db'}", None)
    status = {row["resource_id"]: row["status"] for row in db.work_items()}
    # W1 references W2 and W13, W3 references BAD (invalid JSON); max depth 1.
    assert status == {
        "W1": "completed",
        "W3": "completed",
        "W2": "completed",
        "W13": "completed",
        "BAD": "failed",
    }
    [bad] = [row for row in db.work_items() if row["resource_id"] == "BAD"]
    assert bad["error_message"].startswith("JSONDecodeError: ")
    rows = {row["resource_id"]: json.loads(row["payload"]) for row in db.records()}
    assert set(rows) == {"W1", "W2", "W3", "W13"}
    lake = read_lake(project / "local" / "data_lake")
    assert {f.document["resource_id"]: f.payload for f in lake} == rows
    assert {f.path.relative_to(project / "local" / "data_lake").parts[:3] for f in lake} == {
        ("myapi", "works", "work")
    }

    hits = sum(site.hits.values())
    crawl(project, site, tmp_path / "second.log").check()
    assert sum(site.hits.values()) == hits  # a finished crawl, run again, fetches nothing
