"""The bad-input table (issue 5), offline part: per-source files, titles and ids in the lake,
schema names. The responses part, which needs a crawl, is tests/e2e/test_bad_inputs.py.

Every row goes through the code a user's input goes through: ``load_source`` on a file written
to ``tmp_path``; ``record_path`` + ``write_json_atomic`` + ``verify`` on a real SQLite store for
titles; ``resolve_schema`` and ``StateStore.from_url`` for schema names, and the
``scrapy ingest_verify`` command for one of them. Each row names the clear error it expects
(file and key, or the exact refusal) or, for titles, the file it must produce.
"""

from __future__ import annotations

import json
import os
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from holocron_scrapy.audit.verify import verify
from holocron_scrapy.config.sources import SourceConfigError, load_source
from holocron_scrapy.items import ResourceRecord
from holocron_scrapy.lake.files import MAX_FILENAME_BYTES, record_path, write_json_atomic
from holocron_scrapy.model import NewWorkItem, Outcome, WorkItem
from holocron_scrapy.store.dburl import DatabaseConfigError, resolve_schema
from holocron_scrapy.store.limits import fit_resource_id
from holocron_scrapy.store.state_store import StateStore
from tests.conftest import open_test_store
from tests.e2e.audit import ingest_verify

REPO_ROOT = Path(__file__).resolve().parents[2]
GOOD: dict[str, Any] = {
    "name": "badinputs",
    "type": "mediawiki",
    "api_url": "https://wiki.example.org/w/api.php",
    "user_agent": "HolocronScrapy-tests/0.1 (https://holocron.test/contact; ops@holocron.test)",
    "seeds": {"titles": ["Yoda"]},
}

# -- per-source files ----------------------------------------------------------------------------


def doc(**changes: Any) -> str:
    """GOOD with top-level keys changed (None: removed), as YAML."""
    document = {**GOOD, **changes}
    return yaml.safe_dump({k: v for k, v in document.items() if v is not None}, sort_keys=False)


SOURCE_FILES = [
    # (id, file text, the key the error names, a fragment of its message)
    ("broken-yaml", "name: badinputs\nseeds: {titles: [Yoda\n", "<yaml>", ""),
    ("tab-indented-yaml", "name: x\n\tseeds: 1\n", "<yaml>", ""),
    ("empty-file", "", "<root>", ""),
    ("a-list-not-a-mapping", "- name: x\n", "<root>", ""),
    ("duplicate-key", doc() + "name: other\n", "<yaml>", "duplicate key 'name'"),
    ("not-utf8", b"name: caf\xe9\n", "<yaml>", "not UTF-8"),
    ("unknown-top-level-key", doc(seed={"titles": ["Yoda"]}), "seed", "did you mean"),
    (
        "unknown-discovery-key",
        doc(discovery={"max_dept": 2}),
        "discovery.max_dept",
        "did you mean",
    ),
    ("missing-api-url", doc(api_url=None), "api_url", "api.php"),
    ("missing-seeds", doc(seeds=None), "seeds", ""),
    ("ftp-api-url", doc(api_url="ftp://wiki.example.org/api.php"), "api_url", "http"),
    ("file-api-url", doc(api_url="file:///etc/passwd"), "api_url", "http"),
    ("javascript-api-url", doc(api_url="javascript:alert(1)"), "api_url", "http"),
    ("api-url-without-host", doc(api_url="http:///api.php"), "api_url", "host"),
    ("api-url-with-space", doc(api_url="https://wiki.example.org/w/api .php"), "api_url", ""),
    ("api-url-bad-port", doc(api_url="https://wiki.example.org:99999/api.php"), "api_url", ""),
    ("api-url-a-number", doc(api_url=42), "api_url", "expected"),
    ("max-depth-a-string", doc(discovery={"max_depth": "two"}), "discovery.max_depth", ""),
    ("max-depth-negative", doc(discovery={"max_depth": -1}), "discovery.max_depth", ""),
    ("links-a-string", doc(discovery={"links": "yes please"}), "discovery.links", "true or"),
    ("titles-a-string", doc(seeds={"titles": "Yoda"}), "seeds.titles", "list"),
    ("titles-empty", doc(seeds={"titles": []}), "seeds.titles", "at least one"),
    ("title-with-nul", doc(seeds={"titles": ["Yo\0da"]}), "seeds.titles[0]", "control"),
    ("title-300-bytes", doc(seeds={"titles": ["é" * 150]}), "seeds.titles[0]", "255"),
    ("title-with-brackets", doc(seeds={"titles": ["[[Yoda]]"]}), "seeds.titles[0]", "allow"),
    ("pageid-negative", doc(seeds={"pageids": [-4]}), "seeds.pageids[0]", "page id"),
    ("name-with-dots", doc(name="../etc"), "name", "does not match"),
    ("name-upper-case", doc(name="Wookieepedia"), "name", "does not match"),
    ("unsupported-type", doc(type="mediawikii"), "type", "unsupported"),
    ("strategy-unknown", doc(discovery={"strategy": "random"}), "discovery.strategy", ""),
    ("setting-lower-case", doc(settings={"download_delay": 1}), "settings.download_delay", ""),
    ("resources-without-page", doc(resources=["html"]), "resources", "page"),
    (
        "placeholder-user-agent-on-wikipedia",
        doc(
            api_url="https://en.wikipedia.org/w/api.php",
            user_agent="HolocronScrapy/0.1 (CHANGE-ME@example.org)",
        ),
        "user_agent",
        "placeholder",
    ),
    ("user-agent-with-newline", doc(user_agent="a\nX-Evil: 1"), "user_agent", "control"),
    # issue 10, careless inputs: YAML PyYAML cannot construct, alias bombs, the crawl's store
    (
        "integer-of-5000-digits",
        doc(seeds={"titles": ["Yoda"], "pageids": [1, 2]}).replace("- 2", "- " + "9" * 5000),
        "seeds.pageids[1]",
        "exceeds the limit",
    ),
    (
        "february-30",
        doc(seeds={"titles": ["Yoda"], "recentchanges": {"since": "X"}}).replace("X", "2026-02-30"),
        "seeds.recentchanges.since",
        "'2026-02-30': cannot be read (day is out of range for month)",
    ),
    (
        "alias-bomb-in-a-setting",
        doc()
        + "settings:\n  X0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        + "".join(f"  X{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)),
        "<yaml>",
        "aliases expand to more than 100000 values",
    ),
    ("alias-to-itself", doc() + "settings: &s {X: *s}\n", "<yaml>", "refers to the node"),
    ("nested-too-deeply", doc() + "settings: " + "[" * 5000 + "]" * 5000, "<yaml>", "nested"),
    (
        "db-url-in-settings",
        doc(settings={"HOLOCRON_DB_URL": "sqlite:///other.db"}),
        "settings.HOLOCRON_DB_URL",
        "on the command line",
    ),
    (
        "lake-dir-in-settings",
        doc(settings={"HOLOCRON_LAKE_DIR": "/tmp/elsewhere"}),
        "settings.HOLOCRON_LAKE_DIR",
        "where the crawl keeps its state",
    ),
]


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [pytest.param(text, key, fragment, id=name) for name, text, key, fragment in SOURCE_FILES],
)
def test_bad_source_file(tmp_path: Path, text: str | bytes, key: str, fragment: str) -> None:
    path = tmp_path / "badinputs.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, "utf-8")
    with pytest.raises(SourceConfigError) as caught:
        load_source(str(path), tmp_path)
    error = caught.value
    assert (error.path, error.key) == (path.absolute(), key), str(error)
    assert fragment.lower() in error.message.lower(), str(error)
    assert str(error).startswith(f"{path.absolute()}: {key}: ")


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "too-large"])
def test_a_source_that_is_no_regular_file_or_too_large_is_refused(
    tmp_path: Path, kind: str
) -> None:
    """Nothing unbounded is read: ``/dev/zero`` and a FIFO (which would block for ever) are
    refused before reading, a regular file after its first megabyte."""
    if kind == "fifo":
        path = tmp_path / "badinputs.yaml"
        os.mkfifo(path)
        expected = "is a FIFO, not a YAML file"
    elif kind == "dev-zero":
        path = Path("/dev/zero")
        expected = "is a character device, not a YAML file"
    else:
        path = tmp_path / "badinputs.yaml"
        path.write_text(doc() + "# " + "x" * 2 * 1024 * 1024 + "\n", "utf-8")
        expected = "is larger than 1048576 bytes"
    with pytest.raises(SourceConfigError) as caught:
        load_source(str(path), tmp_path)
    assert str(caught.value) == f"{path.absolute()}: source: {expected}" + (
        ": not a source file" if kind == "too-large" else ""
    )


def test_a_good_source_file_loads(tmp_path: Path) -> None:
    """The table's base document is valid: every row above fails for its own reason."""
    path = tmp_path / "badinputs.yaml"
    path.write_text(doc(), "utf-8")
    assert load_source(str(path), tmp_path).name == "badinputs"


def test_a_source_file_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError) as caught:
        load_source("nowhere", tmp_path)
    assert caught.value.key == "source"


# -- titles and ids in the lake ------------------------------------------------------------------

HOSTILE_IDS = [
    ("parent-dir", "../../../../etc/passwd"),
    ("dot-dot", ".."),
    ("slash", "/"),
    ("absolute", "/tmp/x"),
    ("backslash", "..\\..\\windows\\system32"),
    ("nul", "Yo\0da"),
    ("300-bytes-unicode", "ダース・ベイダー" * 13),  # 13 x 24 bytes = 312 bytes
    ("case-upper", "Yoda"),
    ("case-lower", "yoda"),
    ("case-all-caps", "YODA"),
    ("windows-con", "CON"),
    ("windows-nul-txt", "NUL.txt"),
    ("windows-com1", "com1"),
    ("trailing-dot-space", "Yoda. "),
    ("colon-question", "Talk:What?*|<>"),
    ("emoji-only", "🌌🚀"),
    ("combining-accents", "Pade\u0301"),
    ("precomposed-accents", "Padé"),
    ("empty", ""),
]
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {
    f"{p}{n}" for p in ("COM", "LPT") for n in "123456789"
}


def lake_record(item_id: int, resource_id: str) -> ResourceRecord:
    item = WorkItem(item_id, "mediawiki", "badinputs", "page", resource_id, 0, 0, 1)
    return ResourceRecord(
        work_item=item,
        resource_type="page",
        resource_id=resource_id,
        payload={"title": resource_id.encode("utf-8", "surrogatepass").hex()},
        request_uri="http://wiki.invalid/api.php",
        fetched_at_utc=datetime(2026, 11, 22),
        run_id="run",
    )


@pytest.mark.parametrize("resource_id", [pytest.param(v, id=k) for k, v in HOSTILE_IDS])
def test_hostile_id_stays_in_the_lake(tmp_path: Path, resource_id: str) -> None:
    lake = tmp_path / "lake"
    record = lake_record(1, resource_id)
    path = record_path(lake, "mediawiki", "badinputs", "page", resource_id, record.hash_sha256)
    write_json_atomic(path, record.lake_document())
    assert path.parents[2] == lake / "mediawiki" / "badinputs" / "page"  # below the fan-out
    assert path.resolve().is_relative_to(lake.resolve())
    assert [p for p in lake.rglob("*") if p.is_file()] == [path]
    name = path.name
    assert len(name.encode()) <= MAX_FILENAME_BYTES
    assert name.isascii()
    assert not name.startswith(("-", "."))
    # Windows reserves CON, NUL.txt...: the part before the first dot is never one of them.
    assert name.split(".")[0].upper() not in WINDOWS_RESERVED
    assert name.endswith(".json")


def test_hostile_ids_never_share_a_file_even_case_insensitively(tmp_path: Path) -> None:
    """All ids of the table, through the real store and lake: one file each, names distinct
    when case is ignored (Windows, macOS), and the audit finds everything in order."""
    lake = tmp_path / "lake"
    with open_test_store("sqlite", tmp_path) as store:
        # As the frontier hands them to the store (a NUL escaped: see holocron_scrapy.store.limits).
        ids = [fit_resource_id(v) for _, v in HOSTILE_IDS]
        store.add_work_items([NewWorkItem("mediawiki", "badinputs", "page", v) for v in ids])
        claimed = store.claim(
            source_system="mediawiki",
            source_name="badinputs",
            owner="w:1:r",
            run_id="r",
            limit=100,
            lease_seconds=600,
        )
        assert sorted(i.resource_id for i in claimed) == sorted(ids)
        for item in claimed:
            record = lake_record(item.id, item.resource_id)
            record.work_item = item
            path = record_path(
                lake, "mediawiki", "badinputs", "page", item.resource_id, record.hash_sha256
            )
            write_json_atomic(path, record.lake_document())
            store.commit_records(
                [record.ingest_row()], [Outcome.completed(item, record.hash_sha256)]
            )
        report = verify(store.engine, store.tables, lake, "badinputs", ground_truth=set(ids))
    assert report.ok, report.lines()
    names = [p.name for p in lake.rglob("*.json")]
    assert len(names) == len(ids)
    assert len({n.lower() for n in names}) == len(ids)
    nfc = {unicodedata.normalize("NFC", v) for v in ids}
    assert len(nfc) == len(ids) - 1  # "Pade\u0301" and "Padé" are one text to a human...
    # ...but two ids to the wiki and to the lake: two files (checked above).


def test_an_id_with_a_lone_surrogate_is_stored_escaped(tmp_path: Path) -> None:
    """JSON can carry "\\udcff" (not MediaWiki, but a generic HTTP source): no encoder takes it,
    so the record holds it escaped (``a\\udcffb``, see holocron_scrapy.store.limits): the lake path
    is
    safe and the document is UTF-8."""
    record = lake_record(1, "a\udcffb")
    assert record.resource_id == "a\\udcffb"
    path = record_path(
        tmp_path / "lake", "mediawiki", "badinputs", "page", record.resource_id, record.hash_sha256
    )
    assert path.resolve().is_relative_to((tmp_path / "lake").resolve())
    assert path.name.startswith("a_udcffb~")
    document = json.loads(record.lake_document())
    assert document["resource_id"] == "a\\udcffb"


# -- schema names --------------------------------------------------------------------------------

SCHEMA_NAMES = [
    ("semicolon-drop", "ingest; DROP TABLE work_items; --"),
    ("quote", 'ingest"; DROP SCHEMA public CASCADE; --'),
    ("brackets", "[ingest]"),
    ("comment", "ingest--"),
    ("space", "my schema"),
    ("dot", "public.ingest"),
    ("leading-digit", "1ingest"),
    ("too-long", "s" * 129),
    ("non-ascii", "ïngest"),
    ("newline", "ingest\nDROP"),
]
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.mark.parametrize("schema", [pytest.param(v, id=k) for k, v in SCHEMA_NAMES])
def test_schema_name_injection_is_refused(schema: str) -> None:
    with pytest.raises(DatabaseConfigError, match="Invalid database schema name"):
        resolve_schema(None, {"HOLOCRON_DB_SCHEMA": schema}, make_url(PG_URL))
    # The store refuses it too, before any connection is made.
    with pytest.raises(DatabaseConfigError, match="Invalid database schema name"):
        StateStore.from_url(PG_URL, schema)


def test_schema_name_injection_through_the_environment_stops_the_command(tmp_path: Path) -> None:
    env = {"HOLOCRON_DB_URL": PG_URL, "HOLOCRON_DB_SCHEMA": "x; DROP TABLE y"}
    result = ingest_verify("--source", "badinputs", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Invalid database schema name 'x; DROP TABLE y'" in result.stderr
