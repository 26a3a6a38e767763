"""Helpers of the end-to-end crawl tests (tests/e2e/test_crawl.py).

* :func:`write_source` writes a per-test source YAML file;
* :func:`crawl_command` / :func:`run_crawl` run ``scrapy crawl mediawiki`` in a subprocess
  (cwd = the repository root, output in a log file, always with a timeout);
* :class:`Database` reads the crawl state (``work_items``, ``IngestRecords``, ``runs``) with
  SQLAlchemy, read-only;
* :func:`read_lake` reads the lake's JSON files;
* :func:`expect_crawl` models, from the wiki's own SQL tables, the work items a crawl must end
  with (title -> status, message, depth) and checks the model against
  :meth:`MediaWiki.reachable`;
* :func:`assert_work_items_match` and :func:`assert_records_match` compare the state and the
  lake with that model.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import yaml

from holocron_scrapy.store.schema import build_tables
from tests.e2e.wiki import MAX_REDIRECT_HOPS

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from holocron_scrapy.store.schema import Tables
    from tests.e2e.wiki import GroundTruth, MediaWiki

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE_NAME = "e2ewiki"
SOURCE_SYSTEM = "mediawiki"
RESOURCE_TYPE = "page"
USER_AGENT = "HolocronScrapy/0.1 (e2e tests; tests@holocron.invalid)"
FAST_SETTINGS: dict[str, Any] = {
    "AUTOTHROTTLE_ENABLED": False,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 4,
    "DOWNLOAD_DELAY": 0,
}
CRAWL_TIMEOUT = 120.0  # seconds; a ~200-page crawl takes a few
LOG_TAIL_CHARS = 6000


# ------------------------------------------------------------------------------ source files


def write_source(
    path: Path,
    api_url: str,
    seeds: Sequence[str],
    *,
    max_depth: int = 2,
    strategy: str = "breadth",
    namespaces: Sequence[int] = (0,),
    settings: Mapping[str, Any] | None = None,
    drop: Sequence[str] = (),
    discovery_extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a source file; ``drop`` leaves top-level keys out, ``discovery_extra`` adds keys."""
    document: dict[str, Any] = {
        "name": SOURCE_NAME,
        "type": "mediawiki",
        "api_url": api_url,
        "user_agent": USER_AGENT,
        "seeds": {"titles": list(seeds)},
        "discovery": {
            "links": True,
            "max_depth": max_depth,
            "strategy": strategy,
            "namespaces": list(namespaces),
            **(discovery_extra or {}),
        },
        "settings": dict(FAST_SETTINGS if settings is None else settings),
    }
    for key in drop:
        del document[key]
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), "utf-8")
    return path


# ---------------------------------------------------------------------------------- databases


@dataclass
class Database:
    """Where a test crawl keeps its state: a SQLAlchemy URL and a schema (None on SQLite)."""

    backend: str
    url: str
    schema: str | None
    tables: Tables = field(init=False)

    def __post_init__(self) -> None:
        self.tables = build_tables(self.schema)

    def settings_args(self) -> list[str]:
        args = ["-s", f"HOLOCRON_DB_URL={self.url}"]
        if self.schema is not None:
            args += ["-s", f"HOLOCRON_DB_SCHEMA={self.schema}"]
        return args

    @property
    def read_only_url(self) -> str:
        """SQLite opened with ``mode=ro``: reading never creates nor changes the file."""
        if self.backend != "sqlite":
            return self.url
        return "sqlite:///file:" + self.url.removeprefix("sqlite:///") + "?mode=ro&uri=true"

    def select(self, stmt: sa.Select[Any]) -> list[dict[str, Any]]:
        """Rows of a read-only query, as dicts (a new engine each time: nothing stays open)."""
        engine = sa.create_engine(self.read_only_url, poolclass=sa.NullPool)
        try:
            with engine.connect() as conn:
                return [dict(row._mapping) for row in conn.execute(stmt)]
        finally:
            engine.dispose()

    def work_items(self) -> list[dict[str, Any]]:
        wi = self.tables.work_items
        return self.select(sa.select(wi).order_by(wi.c.id))

    def records(self) -> list[dict[str, Any]]:
        ir = self.tables.ingest_records
        return self.select(sa.select(ir).order_by(ir.c.ingest_id))

    def runs(self) -> list[dict[str, Any]]:
        runs = self.tables.runs
        return self.select(sa.select(runs).order_by(runs.c.started_at))

    def count(self, table: sa.Table) -> int:
        return int(self.select(sa.select(sa.func.count().label("n")).select_from(table))[0]["n"])


# ------------------------------------------------------------------------------------ crawls


@dataclass
class CrawlResult:
    returncode: int
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")

    def tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        return self.log[-chars:]

    def check(self, expected: int = 0) -> CrawlResult:
        assert self.returncode == expected, (
            f"scrapy crawl exited {self.returncode}, expected {expected}; log {self.log_path}:\n"
            f"{self.tail()}"
        )
        return self

    def stat(self, key: str) -> int:
        """An integer from the final stats dump (0 when the key is not there)."""
        return log_stat(self.log, key)

    def progress_pages(self) -> int:
        """The page count of the last ``Progress:`` line."""
        lines = re.findall(r"Progress: ([\d,]+) pages", self.log)
        assert lines, f"no Progress line in {self.log_path}:\n{self.tail()}"
        return int(lines[-1].replace(",", ""))


def log_stat(log: str, key: str) -> int:
    dumps = log.split("Dumping Scrapy stats:")
    assert len(dumps) >= 2, f"no stats dump in the log:\n{log[-LOG_TAIL_CHARS:]}"
    match = re.search(rf"'{re.escape(key)}': (\d+)[,}}]", dumps[-1])
    return int(match.group(1)) if match else 0


def crawl_command(
    source: Path, lake: Path, db: Database, *, args: Iterable[str] = (), log_level: str = "INFO"
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "scrapy",
        "crawl",
        "mediawiki",
        "-a",
        f"source={source}",
        "-s",
        f"HOLOCRON_LAKE_DIR={lake}",
        *db.settings_args(),
        "-s",
        f"LOG_LEVEL={log_level}",
        "-s",
        "TELNETCONSOLE_ENABLED=False",
        # One attempt per item: these tests assert how a failure ends; tests/e2e/test_retries.py
        # proves the retries (a later -s in args wins).
        "-s",
        "HOLOCRON_MAX_ATTEMPTS=1",
        *args,
    ]


def run_crawl(
    source: Path,
    lake: Path,
    db: Database,
    log_path: Path,
    *,
    args: Iterable[str] = (),
    timeout: float = CRAWL_TIMEOUT,
) -> CrawlResult:
    """Run one crawl to its end; the output (stdout and stderr) goes to ``log_path``."""
    cmd = crawl_command(source, lake, db, args=args)
    with log_path.open("wb") as out:
        try:
            proc = subprocess.run(
                cmd,
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            out.flush()
            tail = log_path.read_text("utf-8", errors="replace")[-LOG_TAIL_CHARS:]
            raise AssertionError(f"scrapy crawl did not end within {timeout} s:\n{tail}") from None
    return CrawlResult(proc.returncode, log_path)


# -------------------------------------------------------------------------------------- lake


@dataclass
class LakeFile:
    path: Path
    document: dict[str, Any]
    raw: str

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = self.document["payload"]
        return payload

    @property
    def type_dir(self) -> Path:
        """The file's ``{resource_type}/`` directory, above the two fan-out levels."""
        return self.path.parents[2]


def record_files(lake: Path) -> list[Path]:
    """Every record file of the lake (not the run manifests in ``_runs/``)."""
    if not lake.exists():
        return []
    return sorted(
        p for p in lake.rglob("*") if p.is_file() and p.relative_to(lake).parts[0] != "_runs"
    )


def read_lake(lake: Path) -> list[LakeFile]:
    """Every record file under the lake directory (all must be JSON lake documents)."""
    files = []
    for path in record_files(lake):
        raw = path.read_text("utf-8")
        files.append(LakeFile(path, json.loads(raw), raw))
    return files


def lake_snapshot(lake: Path) -> dict[Path, int]:
    """path -> mtime (ns) of every record file of the lake."""
    return {p: p.stat().st_mtime_ns for p in record_files(lake)}


# ---------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class ExpectedItem:
    status: str  # completed | skipped
    message: str | None  # a fragment of error_message (None for completed)
    depth: int
    page_id: int | None = None  # for completed items


@dataclass
class Expectation:
    truth: GroundTruth
    titles: dict[int, str]  # page id -> title, for every page of the truth
    items: dict[str, ExpectedItem]  # work item title -> how it must end
    redirect_titles: dict[int, str]  # page id -> title, for the redirects of the truth
    linked_from: dict[str, set[str]]  # work item title -> titles of the pages that link it

    def by_status(self, status: str) -> set[str]:
        return {t for t, item in self.items.items() if item.status == status}


def expect_crawl(
    wiki: MediaWiki, seeds: Sequence[str], max_depth: int, namespaces: Sequence[int] = (0,)
) -> Expectation:
    """The work items a crawl from ``seeds`` must end with, from the wiki's SQL tables.

    Work items are the seeds (as written) and every link target (in ``namespaces``) of every
    page whose minimal depth is below ``max_depth``, plus the page title that a redirect or a
    non-canonical title stands for. A title ends as the spider documents it: ``missing`` (also a
    redirect to a missing page), ``redirect to 'T'``, ``normalized to 'T'`` or completed (a
    page). The model must agree with :meth:`MediaWiki.reachable` (checked here).
    """
    truth = wiki.reachable(list(seeds), max_depth, list(namespaces))
    pages = {
        (ns, key): (pid, bool(redirect))
        for pid, ns, key, redirect in wiki.sql(
            "SELECT page_id, page_namespace, page_title, page_is_redirect FROM page"
        )
    }
    targets = {
        pid: (ns, key, iw)
        for pid, ns, key, iw in wiki.sql(
            "SELECT rd_from, rd_namespace, rd_title, rd_interwiki FROM redirect"
        )
    }

    # title as linked or seeded -> smallest depth
    direct: dict[str, int] = {}
    linked_from: dict[str, set[str]] = {}
    page_titles = wiki.page_titles(truth.pages)
    for seed in seeds:
        direct.setdefault(seed, 0)
    for pid, depth in truth.pages.items():
        if depth >= max_depth:
            continue
        for ns, key in wiki.sql(
            "SELECT pl_namespace, pl_title FROM pagelinks WHERE pl_from = ?", pid
        ):
            if ns in namespaces:
                title = wiki.title(ns, key)
                direct[title] = min(direct.get(title, depth + 1), depth + 1)
                linked_from.setdefault(title, set()).add(page_titles[pid])

    items: dict[str, ExpectedItem] = {}
    redirects_seen: set[int] = set()
    missing_seen: set[str] = set()
    page_depth: dict[str, int] = {}
    titles: dict[int, str] = {}
    for title, depth in direct.items():
        ns, key = wiki.normalize(title)
        hops = 0
        while True:
            page = pages.get((ns, key))
            if page is None or not page[1]:
                break
            redirects_seen.add(page[0])
            target = targets[page[0]]
            assert not target[2], f"the model does not handle interwiki redirects ({title!r})"
            ns, key = target[0], target[1]
            hops += 1
            assert hops <= MAX_REDIRECT_HOPS, f"the model does not handle loops ({title!r})"
        final = wiki.title(ns, key)
        if page is None:
            missing_seen.add(final)
            items[title] = ExpectedItem("skipped", "missing", depth)
            continue
        titles[page[0]] = final
        page_depth[final] = min(page_depth.get(final, depth), depth)
        if final != title:
            how = "redirect" if hops else "normalized"
            items[title] = ExpectedItem("skipped", f"{how} to {final!r}", depth)
    for final, depth in page_depth.items():
        pid = pages[wiki.normalize(final)][0]
        items[final] = ExpectedItem("completed", None, depth, pid)

    # The model and the ground truth of wiki.py must agree.
    assert {item.page_id: item.depth for item in items.values() if item.page_id} == truth.pages
    assert missing_seen == truth.missing
    assert redirects_seen == truth.redirects
    return Expectation(truth, titles, items, wiki.page_titles(truth.redirects), linked_from)


# ------------------------------------------------------------------------------- assertions


def _describe(values: Iterable[Any], limit: int = 10) -> str:
    shown = sorted(values, key=str)
    more = f" ... (+{len(shown) - limit})" if len(shown) > limit else ""
    return f"{shown[:limit]}{more}"


def assert_same_set(actual: Iterable[Any], expected: Iterable[Any], what: str) -> None:
    actual_set, expected_set = set(actual), set(expected)
    assert actual_set == expected_set, (
        f"{what}: unexpected {_describe(actual_set - expected_set)}, "
        f"missing {_describe(expected_set - actual_set)}"
    )


def assert_records_match(expected: Expectation, db: Database, lake: Path) -> None:
    """One lake file and one IngestRecords row per page of the truth, nothing else."""
    page_ids = set(expected.truth.pages)
    files = read_lake(lake)
    file_ids = [f.payload["pageid"] for f in files]
    assert_same_set(file_ids, page_ids, "page ids in the lake")
    assert len(file_ids) == len(page_ids), "pages with several lake files: " + _describe(
        {pid for pid in file_ids if file_ids.count(pid) > 1}
    )
    rows = db.records()
    row_ids = [json.loads(row["payload"])["pageid"] for row in rows]
    assert_same_set(row_ids, page_ids, "page ids in IngestRecords")
    assert len(row_ids) == len(page_ids), "pages with several IngestRecords rows: " + _describe(
        {pid for pid in row_ids if row_ids.count(pid) > 1}
    )
    assert {row["resource_id"] for row in rows} == {expected.titles[pid] for pid in page_ids}


def assert_work_items_match(expected: Expectation, db: Database) -> dict[str, dict[str, Any]]:
    """``work_items`` holds exactly the expected titles, each ended as expected."""
    rows = db.work_items()
    by_title = {row["resource_id"]: row for row in rows}
    assert len(by_title) == len(rows), "duplicate work items"
    statuses: dict[str, set[str]] = {}
    for row in rows:
        statuses.setdefault(row["status"], set()).add(row["resource_id"])
    unfinished = {
        status: _describe(titles)
        for status, titles in statuses.items()
        if status not in ("completed", "skipped")
    }
    assert not unfinished, f"work items left unfinished by a finished crawl: {unfinished}"
    not_queued = set(expected.items) - set(by_title)
    assert not not_queued, "work items never queued (title <- linking pages: status, depth): " + (
        "; ".join(
            f"{title!r} <- "
            + ", ".join(
                f"{page!r}: {by_title[page]['status']}, {by_title[page]['depth']}"
                if page in by_title
                else f"{page!r}: not queued"
                for page in sorted(expected.linked_from.get(title, ()))
            )
            for title in sorted(not_queued)[:8]
        )
    )
    assert_same_set(by_title, expected.items, "work item titles")
    wrong = {
        title: (row["status"], row["error_message"], row["depth"])
        for title, row in by_title.items()
        if (item := expected.items[title]).status != row["status"]
        or row["depth"] != item.depth
        or (item.message is None and row["error_message"] is not None)
        or (item.message is not None and item.message not in (row["error_message"] or ""))
    }
    assert not wrong, "work items that did not end as expected (status, message, depth): " + (
        "; ".join(
            f"{title!r}: got {got!r}, expected {expected.items[title]!r}"
            for title, got in sorted(wrong.items())[:10]
        )
    )
    # The ground truth's own words: every missing title and every redirect met is a skipped
    # work item, or, for a page only reached through a redirect, not a work item at all (a
    # broken redirect is skipped as missing under the redirect's own title).
    skipped = {t: by_title[t]["error_message"] or "" for t in statuses.get("skipped", ())}
    for title in expected.truth.missing:
        assert title in skipped or title not in by_title, f"missing page {title!r} not skipped"
        if title in skipped:
            assert skipped[title].startswith("missing"), (title, skipped[title])
    for title in set(expected.redirect_titles.values()) & set(by_title):
        assert title in skipped, (title, by_title[title]["status"])
        assert skipped[title].startswith(("redirect to", "missing")), (title, skipped[title])
    return by_title
