"""``holocron_scrapy.audit.verify`` and ``scrapy ingest_verify`` on real lake + database states.

Each state is built the way a crawl builds it: work items through the real ``StateStore``
(claim, ``commit_records``), lake files through ``ResourceRecord.lake_document`` and
``lake.write_json_atomic`` at ``lake.record_path`` — on SQLite and on the real PostgreSQL. Then one
kind of damage is done to it (a file deleted, corrupted or added, a row duplicated or altered,
a lease left to expire...) and the audit must report exactly that.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from holocron_scrapy.audit import lake_files, paging
from holocron_scrapy.audit.lake_files import Expected, ExpectedFiles
from holocron_scrapy.audit.verify import (
    PROBLEMS,
    Report,
    load_ground_truth,
    read_only_engine,
    verify,
)
from holocron_scrapy.items import ResourceRecord
from holocron_scrapy.lake.files import legacy_record_path, record_path, write_json_atomic
from holocron_scrapy.model import NewWorkItem, Outcome, Status
from tests.conftest import open_test_store
from tests.e2e.audit import ingest_verify

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Iterator

    from holocron_scrapy.model import WorkItem
    from holocron_scrapy.store.state_store import StateStore

REPO_ROOT = Path(__file__).resolve().parents[2]
SYSTEM = "mediawiki"
SOURCE = "auditwiki"
OWNER = "worker-1:4242:run"
TITLES = ("Yoda", "yoda", "../etc/passwd", "CON", "Ahsoka Tano/Archive")
LISTING = "allpages?apnamespace=0"


@dataclass
class State:
    store: StateStore
    lake: Path
    items: dict[str, WorkItem]
    records: dict[str, ResourceRecord]

    def path(self, title: str) -> Path:
        record = self.records[title]
        return record_path(
            self.lake, SYSTEM, SOURCE, "page", record.resource_id, record.hash_sha256
        )

    def audit(self, **kwargs: Any) -> Report:
        return verify(self.store.engine, self.store.tables, self.lake, SOURCE, **kwargs)

    def execute(self, stmt: Any) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(stmt)


def new_item(resource_id: str, resource_type: str = "page") -> NewWorkItem:
    return NewWorkItem(SYSTEM, SOURCE, resource_type, resource_id)


def ingest(state: State, item: WorkItem, payload: Any) -> ResourceRecord:
    """What the two pipelines do for one record: the lake file, then row + completion."""
    record = ResourceRecord(
        work_item=item,
        resource_type="page",
        resource_id=item.resource_id,
        payload=payload,
        request_uri=f"http://wiki.invalid/api.php?titles={item.resource_id}",
        fetched_at_utc=datetime(2026, 11, 22, 8, 0, 0),
        run_id="run",
    )
    path = record_path(state.lake, SYSTEM, SOURCE, "page", item.resource_id, record.hash_sha256)
    write_json_atomic(path, record.lake_document())
    state.store.commit_records([record.ingest_row()], [Outcome.completed(item, record.hash_sha256)])
    return record


def build_state(store: StateStore, lake: Path) -> State:
    """A clean state: five pages completed with their records and files, a completed listing,
    a pending item."""
    store.add_work_items([new_item(t) for t in TITLES] + [new_item(LISTING, "listing")])
    claimed = store.claim(
        source_system=SYSTEM,
        source_name=SOURCE,
        owner=OWNER,
        run_id="run",
        limit=100,
        lease_seconds=600,
    )
    items = {item.resource_id: item for item in claimed}
    built = State(store, lake, items, {})
    for n, title in enumerate(TITLES):
        built.records[title] = ingest(built, items[title], {"title": title, "n": n})
    store.finish_items([Outcome(items[LISTING].id, Status.COMPLETED, depth=0)])
    store.add_work_items([new_item("Pending page")])
    return built


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[State]:
    with open_test_store(request.param, tmp_path) as store:
        yield build_state(store, tmp_path / "lake")


def only(report: Report, name: str, count: int = 1) -> list[str]:
    """``name`` is the only problem class found, ``count`` times; its examples."""
    found = {k: f.count for k, f in report.findings.items() if f.count}
    assert found == {name: count}, report.lines()
    assert not report.ok
    return report.findings[name].examples


def test_a_clean_state_passes(state: State) -> None:
    report = state.audit(ground_truth=set(TITLES))
    assert report.ok, report.lines()
    assert report.totals["records"] == report.totals["lake_files"] == len(TITLES)
    assert report.totals["completed"] == len(TITLES) + 1
    assert report.totals["pending"] == 1
    lines = report.lines()
    assert len(lines) == len(PROBLEMS) + 1
    assert lines[-1].startswith(f"ingest_verify {SOURCE}: OK (")


def test_a_deleted_file(state: State) -> None:
    state.path("CON").unlink()
    [example] = only(state.audit(), "row_without_file")
    assert "'CON'" in example


def test_a_corrupted_file(state: State) -> None:
    path = state.path("yoda")
    path.write_bytes(path.read_bytes().replace(b'"n":1', b'"n":7'))
    [example] = only(state.audit(), "file_hash_mismatch")
    assert "payload hashes to" in example


def test_a_file_cut_short(state: State) -> None:
    path = state.path("Yoda")
    path.write_bytes(path.read_bytes()[:-5])
    [example] = only(state.audit(), "file_hash_mismatch")
    assert "not a lake document" in example


def test_a_file_whose_metadata_names_another_resource(state: State) -> None:
    path = state.path("Yoda")
    path.write_bytes(path.read_bytes().replace(b'"resource_id": "Yoda"', b'"resource_id": "X"'))
    [example] = only(state.audit(), "file_hash_mismatch")
    assert "metadata" in example


def test_an_extra_file(state: State) -> None:
    source = state.path("Yoda")
    (source.parent / "Stray~0000~0000.json").write_bytes(source.read_bytes())
    (state.lake / SYSTEM / SOURCE / "html").mkdir()
    (state.lake / SYSTEM / SOURCE / "html" / "junk.txt").write_text("x")
    examples = only(state.audit(), "file_without_row", 2)
    assert any("Stray" in e for e in examples)
    assert any("junk.txt" in e for e in examples)


def test_another_source_is_not_audited(state: State) -> None:
    other = state.lake / SYSTEM / "otherwiki" / "page"
    other.mkdir(parents=True)
    (other / "x.json").write_text("{}")
    assert state.audit().ok


def test_a_duplicate_row(state: State) -> None:
    record = state.records["../etc/passwd"]
    state.store.commit_records([record.ingest_row()], [])
    [example] = only(state.audit(), "duplicate_rows")
    assert "'../etc/passwd'" in example


def test_a_row_whose_payload_was_altered(state: State) -> None:
    ir = state.store.tables.ingest_records
    state.execute(
        sa.update(ir).where(ir.c.resource_id == "Yoda").values(payload='{"title":"Yoda"}')
    )
    only(state.audit(), "row_hash_mismatch")


def test_a_row_deleted_leaves_its_file_and_its_item(state: State) -> None:
    ir = state.store.tables.ingest_records
    state.execute(sa.delete(ir).where(ir.c.resource_id == "Ahsoka Tano/Archive"))
    report = state.audit()
    assert report.findings["file_without_row"].count == 1
    assert report.findings["completed_without_record"].count == 1
    assert report.problems == 2


def test_a_completed_item_whose_hash_is_not_its_latest_row(state: State) -> None:
    wi = state.store.tables.work_items
    state.execute(sa.update(wi).where(wi.c.resource_id == "CON").values(content_hash="0" * 64))
    [example] = only(state.audit(), "completed_without_record")
    assert "latest row" in example


def test_a_newer_row_is_the_one_that_counts(state: State) -> None:
    """A changed page: a second row and file; the item holds the newer hash."""
    store = state.store
    store.requeue_ids([state.items["Yoda"].id])
    [again] = store.claim(
        source_system=SYSTEM,
        source_name=SOURCE,
        owner=OWNER,
        run_id="run2",
        limit=1,
        lease_seconds=600,
    )
    assert again.resource_id == "Yoda"
    ingest(state, again, {"title": "Yoda", "n": "changed"})
    report = state.audit()
    assert report.ok, report.lines()
    assert report.totals["records"] == report.totals["lake_files"] == len(TITLES) + 1


def test_a_stuck_item(state: State) -> None:
    store = state.store
    [claimed] = store.claim(
        source_system=SYSTEM,
        source_name=SOURCE,
        owner="dead-worker:1:run",
        run_id="run",
        limit=1,
        lease_seconds=600,
    )
    assert state.audit().ok  # a live lease: a crawl is working on it
    later = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)
    [example] = only(state.audit(now=later), "stuck_in_progress")
    assert "'Pending page'" in example
    assert "expired" in example
    assert claimed.resource_id == "Pending page"


def test_an_item_left_in_progress_by_a_run_that_ended(state: State) -> None:
    """A finished crawl that did not release a claim: the lease has not expired, but no
    process is working on it any more."""
    store = state.store
    run_id = store.start_run(
        source_system=SYSTEM, source_name=SOURCE, worker_id="w", hostname="h", pid=1
    )
    store.claim(
        source_system=SYSTEM,
        source_name=SOURCE,
        owner=f"w:1:{run_id}",
        run_id=run_id,
        limit=1,
        lease_seconds=600,
    )
    assert state.audit().ok  # the run is under way: a live lease
    store.finish_run(run_id, status="finished", reason="finished", counts={})
    [example] = only(state.audit(), "stuck_in_progress")
    assert f"its run {run_id} ended (finished)" in example


def test_an_in_progress_item_without_an_owner(state: State) -> None:
    wi = state.store.tables.work_items
    state.execute(
        sa.update(wi).where(wi.c.resource_id == "Pending page").values(status="in_progress")
    )
    [example] = only(state.audit(), "stuck_in_progress")
    assert "no lease" in example


def test_ground_truth_differences(state: State) -> None:
    report = state.audit(ground_truth={"Yoda", "CON", "Mace Windu"}, examples=1)
    assert report.findings["ground_truth_missing"].examples == ["'Mace Windu'"]
    assert report.findings["ground_truth_unexpected"].count == 3
    assert len(report.findings["ground_truth_unexpected"].examples) == 1
    assert report.problems == 4
    listings = state.audit(ground_truth={LISTING}, resource_type="listing")
    assert listings.ok, listings.lines()


def test_leftover_temp_files_are_a_warning(state: State) -> None:
    (state.path("Yoda").parent / ".tmp-abc.json").write_text("{")
    report = state.audit()
    assert report.ok
    assert report.temp_files.count == 1
    assert report.lines()[-2].startswith("warning: 1 leftover temporary files")


def test_files_of_the_layout_before_the_fan_out_are_still_verified(state: State) -> None:
    for title in TITLES:
        path = state.path(title)
        path.rename(legacy_record_path(path))
    report = state.audit(ground_truth=set(TITLES))
    assert report.ok, report.lines()
    assert report.totals["lake_files"] == len(TITLES)

    legacy = legacy_record_path(state.path("Yoda"))
    shutil.copyfile(legacy, state.path("Yoda"))  # the same record in both layouts: one too many
    assert only(state.audit(), "file_without_row") == [str(legacy.relative_to(state.lake))]
    state.path("Yoda").unlink()
    legacy.write_bytes(legacy.read_bytes().replace(b"Yoda", b"Yodb"))
    only(state.audit(), "file_hash_mismatch")


def test_a_big_audit_reads_in_pages_and_sorts_on_disk(
    state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paging, "PAGE_ROWS", 2)
    monkeypatch.setattr(lake_files, "CHUNK_ROWS", 2)
    report = state.audit(ground_truth=set(TITLES))
    assert report.ok, report.lines()
    assert report.totals["records"] == report.totals["lake_files"] == len(TITLES)
    assert report.totals["work_items"] == len(TITLES) + 2
    state.path("CON").unlink()
    (state.path("Yoda").parent / "Stray~0000~0000.json").write_text("{}")
    report = state.audit()
    assert {k: f.count for k, f in report.findings.items() if f.count} == {
        "row_without_file": 1,
        "file_without_row": 1,
    }


def test_expected_files_come_back_sorted_from_runs_on_disk() -> None:
    rng = random.Random(13)
    entries = [
        Expected("\0".join(rng.choices("ab/~-_c", k=8)), "row", f"id \ud800{n}", "h")
        for n in range(300)
    ]
    files = ExpectedFiles(chunk_rows=64)
    for entry in entries:
        files.add(entry)
    assert files.spilled == 4
    assert list(files.sorted()) == sorted(entries)
    files.close()


def test_load_ground_truth(tmp_path: Path) -> None:
    lines = tmp_path / "ids.txt"
    lines.write_text("Yoda\n\nCON\n", "utf-8")
    assert load_ground_truth(lines) == {"Yoda", "CON"}
    listed = tmp_path / "ids.json"
    listed.write_text(json.dumps(["a", "b"]), "utf-8")
    assert load_ground_truth(listed) == {"a", "b"}
    listed.write_text(json.dumps({"a": 1}), "utf-8")
    with pytest.raises(ValueError, match="list of strings"):
        load_ground_truth(listed)


# -- the command ---------------------------------------------------------------------------------


def run_command(state_db: str, lake: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return ingest_verify(
        *("-s", f"HOLOCRON_DB_URL={state_db}", "-s", f"HOLOCRON_LAKE_DIR={lake}"), *args
    )


@pytest.fixture
def sqlite_state(tmp_path: Path) -> Iterator[tuple[State, str]]:
    """A clean state on SQLite, and its database URL."""
    with open_test_store("sqlite", tmp_path) as store:
        yield build_state(store, tmp_path / "lake"), str(store.engine.url)


def test_command_clean_then_damaged(sqlite_state: tuple[State, str], tmp_path: Path) -> None:
    state, url = sqlite_state
    truth = tmp_path / "truth.txt"
    truth.write_text("\n".join(TITLES) + "\n", "utf-8")
    clean = run_command(url, state.lake, "-a", f"source={SOURCE}", "--ground-truth", str(truth))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    lines = clean.stdout.splitlines()
    assert lines[-1].startswith(f"ingest_verify {SOURCE}: OK (records=5, ")
    assert "ground_truth_missing: OK" in clean.stdout

    state.path("Yoda").unlink()
    damaged = run_command(url, state.lake, "--source", SOURCE, "--examples", "1")
    assert damaged.returncode == 1, damaged.stdout + damaged.stderr
    assert "row_without_file: 1 PROBLEMS" in damaged.stdout
    assert "'Yoda'" in damaged.stdout
    assert damaged.stdout.splitlines()[-1].startswith(f"ingest_verify {SOURCE}: 1 problems")


def test_command_prints_progress_on_stderr(sqlite_state: tuple[State, str]) -> None:
    state, url = sqlite_state
    done = run_command(url, state.lake, "--source", SOURCE, "--progress-seconds", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("ingest_verify")]
    assert progress, done.stderr
    assert progress[-1].startswith(f"ingest_verify {SOURCE}: 5 rows, 7 work items, ")
    assert "ingest_verify" not in done.stdout.splitlines()[0]


def test_command_reads_the_name_from_a_source_file(
    sqlite_state: tuple[State, str], tmp_path: Path
) -> None:
    state, url = sqlite_state
    source = tmp_path / "anything.yaml"
    source.write_text(
        f"name: {SOURCE}\ntype: mediawiki\napi_url: http://127.0.0.1:9/api.php\n"
        'user_agent: "t (tests@holocron.invalid)"\nseeds: {titles: [Yoda]}\n',
        "utf-8",
    )
    result = run_command(url, state.lake, "-a", f"source={source}")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param([], "which source?", id="no-source"),
        pytest.param(["--source", "Bad Name"], "neither a source name", id="bad-name"),
        pytest.param(["--source", "x.yaml"], "x.yaml: source:", id="missing-file"),
        pytest.param(
            ["--source", SOURCE, "--ground-truth", "/nonexistent/ids"],
            "cannot read the ground truth",
            id="no-ground-truth",
        ),
        pytest.param(["--source", SOURCE, "--examples", "-1"], "--examples", id="bad-examples"),
        pytest.param(["--source", SOURCE, "-a", "novalue"], "Invalid -a value", id="bad-a"),
    ],
)
def test_command_usage_errors(
    sqlite_state: tuple[State, str], args: list[str], message: str
) -> None:
    state, url = sqlite_state
    result = run_command(url, state.lake, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_command_without_a_database_is_a_usage_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    result = run_command(url, tmp_path / "lake", "--source", SOURCE)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no SQLite state database" in result.stderr
    assert not (tmp_path / "none.db").exists(), "the audit created a database"


def test_command_with_a_schema_that_has_no_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    sa.create_engine(url).connect().close()  # an empty SQLite file
    result = run_command(url, tmp_path / "lake", "--source", SOURCE)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot read the state database" in result.stderr


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_the_audit_engine_cannot_write(backend: str, tmp_path: Path) -> None:
    with open_test_store(backend, tmp_path) as store:
        engine = read_only_engine(store.engine.url)
        wi = store.tables.work_items
        try:
            with engine.connect() as conn:
                assert conn.scalar(sa.select(sa.func.count()).select_from(wi)) == 0
            with pytest.raises(sa.exc.DBAPIError, match=r"read.?only"), engine.begin() as conn:
                conn.execute(sa.delete(wi))
        finally:
            engine.dispose()
