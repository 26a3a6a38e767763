"""The lake's file layer: hostile resource ids make safe, distinct file names; writes are atomic."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
from typing import TYPE_CHECKING

import pytest

from holocron_scrapy.lake.files import (
    LakePathError,
    Pending,
    final_path_of,
    legacy_record_path,
    locate_record,
    pending_path,
    publish,
    record_filename,
    record_path,
    remove_stale_temp_files,
    resource_id_hash,
    safe_component,
    slugify,
    write_json_atomic,
)
from holocron_scrapy.lake.paths import fanout

if TYPE_CHECKING:
    from pathlib import Path

HASH = hashlib.sha256(b"payload").hexdigest()
OTHER_HASH = hashlib.sha256(b"other payload").hexdigest()
FILENAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,59}~[0-9a-f]{20}~[0-9a-f]{16}\.json")

HOSTILE_IDS: list[str] = [
    "Luke Skywalker",
    "Yoda",
    "yoda",
    "YODA",
    "AC/DC",
    "/etc/passwd",
    "../../etc/passwd",
    "..",
    ".",
    "...",
    "a\\b\\c",
    "..\\..\\Windows\\System32",
    "C:\\Windows\\win.ini",
    "Talk:Star Wars",
    "What?",
    "a*b",
    '<script>|"quoted"</script>',
    "nul\x00byte",
    "\x00",
    "tab\there\nnew\rline\x1b[31mred\x7f",
    "é" * 150,  # 300 UTF-8 bytes
    "日本語のタイトル",
    "🚀 Millennium Falcon 🦅",
    "👨‍👩‍👧",
    "CON",
    "con",
    "PRN",
    "AUX",
    "NUL",
    "nul.txt",
    "COM1",
    "LPT1.txt",
    " leading space",
    "trailing space ",
    "trailing dot.",
    ".hidden",
    "-rf",
    "--help",
    "",
    " ",
    "_",
    "~",
    "a~b",
    "Padmé Amidala",
    "Padme Amidala",
    "A\u0301",  # decomposed Á
    "\u00c1",  # precomposed Á
    "ﬁle ligature",
    "x" * 1000,
    "x" * 1001,
    "\u202eRTL override",
    "zero\u200bwidth",
    "\udc80 lone surrogate",
    "%2e%2e%2f",
    "Star_Wars",
    "Star Wars",
    "Star-Wars",
]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "lake"


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob(".tmp-*"))


@pytest.mark.parametrize("resource_id", HOSTILE_IDS, ids=[ascii(i)[:40] for i in HOSTILE_IDS])
def test_hostile_id_is_safe(root: Path, resource_id: str) -> None:
    path = record_path(root, "mediawiki", "wikipedia", "page", resource_id, HASH)
    name = path.name

    fan_out = fanout(resource_id_hash(resource_id))
    assert path.parent == (root / "mediawiki" / "wikipedia" / "page").joinpath(*fan_out)
    assert all(len(d) == 2 and int(d, 16) >= 0 for d in fan_out)
    assert path.resolve().is_relative_to(root.resolve())
    assert name == record_filename(resource_id, HASH)
    assert FILENAME_RE.fullmatch(name), name
    assert "/" not in name
    assert "\\" not in name
    assert "\x00" not in name
    assert not name.startswith((".", "-", " "))
    assert len(name.encode("utf-8")) <= 120

    document = json.dumps({"resource_id": resource_id}).encode("utf-8")
    write_json_atomic(path, document)
    assert path.read_bytes() == document
    assert json.loads(path.read_bytes())["resource_id"] == resource_id
    assert leftovers(root) == []


def test_hostile_table_is_big_enough() -> None:
    assert len(HOSTILE_IDS) >= 20
    assert len(set(HOSTILE_IDS)) == len(HOSTILE_IDS)


def test_distinct_ids_get_distinct_names_even_case_insensitively() -> None:
    names = [record_filename(i, HASH) for i in HOSTILE_IDS]
    assert len(set(names)) == len(HOSTILE_IDS)
    assert len({n.lower() for n in names}) == len(HOSTILE_IDS)  # Yoda/yoda on macOS, Windows


def test_all_hostile_ids_coexist_in_one_type_directory(root: Path) -> None:
    for resource_id in HOSTILE_IDS:
        path = record_path(root, "mediawiki", "wikipedia", "page", resource_id, HASH)
        write_json_atomic(path, json.dumps(resource_id).encode())
    type_dir = root / "mediawiki" / "wikipedia" / "page"
    files = [p for p in type_dir.rglob("*") if p.is_file()]
    assert {len(p.relative_to(type_dir).parts) for p in files} == {3}  # ab/cd/name
    assert len(files) == len(HOSTILE_IDS)
    assert sorted(json.loads(f.read_bytes()) for f in files) == sorted(HOSTILE_IDS)


def test_random_ids_never_collide() -> None:
    rng = random.Random(20240501)
    alphabet = "aAbB_- ./\\:?*<>|\"'~\x00\x01\téÉ日🚀\u0301"
    ids = {"".join(rng.choices(alphabet, k=rng.randint(0, 80))) for _ in range(3000)}
    names = {record_filename(i, HASH) for i in ids}
    assert len(names) == len(ids)
    assert all(FILENAME_RE.fullmatch(n) for n in names)


def test_name_is_deterministic_and_carries_the_content_hash() -> None:
    assert record_filename("Yoda", HASH) == record_filename("Yoda", HASH)
    assert record_filename("Yoda", HASH) != record_filename("Yoda", OTHER_HASH)
    id_hash = hashlib.sha256(b"Yoda").hexdigest()[:20]
    assert record_filename("Yoda", HASH) == f"Yoda~{id_hash}~{HASH[:16]}.json"


@pytest.mark.parametrize(
    ("resource_id", "slug"),
    [
        ("Luke Skywalker", "Luke_Skywalker"),
        ("Padmé Amidala", "Padme_Amidala"),
        ("A\u0301", "A"),
        ("ﬁle", "file"),
        ("../../etc/passwd", "etc_passwd"),
        ("  a  //  b  ", "a_b"),
        ("--help", "help"),
        ("Star-Wars_Episode IV", "Star-Wars_Episode_IV"),
        ("日本語", "_"),
        ("", "_"),
        ("...", "_"),
        ("x" * 1000, "x" * 60),
        ("a" * 59 + " b", "a" * 59),  # cut at 60 leaves a trailing "_", stripped
    ],
)
def test_slug(resource_id: str, slug: str) -> None:
    assert slugify(resource_id) == slug


@pytest.mark.parametrize(
    "content_hash",
    ["", "abc", HASH.upper(), HASH[:63], HASH + "0", "g" * 64, HASH[:-1] + "\n", " " + HASH[1:]],
)
def test_bad_content_hash(content_hash: str) -> None:
    with pytest.raises(LakePathError, match="content_hash"):
        record_filename("Yoda", content_hash)


@pytest.mark.parametrize("good", ["mediawiki", "wikipedia", "page", "0", "a" * 64, "my-wiki_2"])
def test_safe_component_accepts(good: str) -> None:
    assert safe_component(good) == good


BAD_COMPONENTS = ["..", ".", "a/b", "a\\b", "A", "Wiki", "", " ", "-a", "_a", "a b", "a" * 65]
BAD_COMPONENTS += ["a\n", "a\x00", "é", "/", "~", "a.b"]


@pytest.mark.parametrize("bad", BAD_COMPONENTS, ids=ascii)
def test_safe_component_rejects(bad: str) -> None:
    with pytest.raises(LakePathError):
        safe_component(bad)


@pytest.mark.parametrize("position", [1, 2, 3])
@pytest.mark.parametrize("bad", ["..", "a/b", "A", ""])
def test_record_path_rejects_bad_components(root: Path, position: int, bad: str) -> None:
    parts = ["mediawiki", "wikipedia", "page"]
    parts[position - 1] = bad
    with pytest.raises(LakePathError):
        record_path(root, parts[0], parts[1], parts[2], "Yoda", HASH)


def test_lake_error_is_a_value_error() -> None:
    assert issubclass(LakePathError, ValueError)


def test_record_path_refuses_a_symlink_out_of_the_lake(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "mediawiki").symlink_to(outside, target_is_directory=True)
    with pytest.raises(LakePathError, match="escapes the lake root"):
        record_path(root, "mediawiki", "wikipedia", "page", "Yoda", HASH)


def test_record_path_through_a_symlinked_root(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    path = record_path(link, "mediawiki", "wikipedia", "page", "Yoda", HASH)
    assert path.parents[2] == link / "mediawiki" / "wikipedia" / "page"


def test_write_creates_parents_and_overwrites_idempotently(root: Path) -> None:
    path = record_path(root, "mediawiki", "wikipedia", "page", "Yoda", HASH)
    write_json_atomic(path, b'{"v": 1}')
    write_json_atomic(path, b'{"v": 1}')
    assert path.read_bytes() == b'{"v": 1}'
    assert [p.name for p in path.parent.iterdir()] == [path.name]


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_written_file_honours_the_umask(root: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    path = root / "x.json"
    write_json_atomic(path, b"{}")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("failing", ["replace", "fsync", "chmod"])
def test_failed_write_leaves_no_temp_file_and_keeps_the_old_file(
    root: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = record_path(root, "mediawiki", "wikipedia", "page", "Yoda", HASH)
    write_json_atomic(path, b'{"old": true}')

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, boom)
    with pytest.raises(OSError, match="No space left"):
        write_json_atomic(path, b'{"new": true}')
    monkeypatch.undo()

    assert leftovers(root) == []
    assert path.read_bytes() == b'{"old": true}'
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_failed_first_write_leaves_nothing(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = record_path(root, "mediawiki", "wikipedia", "page", "Yoda", HASH)

    def boom(src: object, dst: object) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="I/O error"):
        write_json_atomic(path, b"{}")
    assert not path.exists()
    assert list(path.parent.iterdir()) == []


def test_interrupted_write_cleans_up(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = root / "x.json"

    def interrupt(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(path, b"{}")
    assert leftovers(root) == []
    assert not path.exists()


# -- the fan-out, and the files of the layout before it -----------------------------------------


def test_pending_files_wait_in_the_type_directory_and_publish_into_the_fan_out(
    root: Path,
) -> None:
    final = record_path(root, "mediawiki", "wikipedia", "page", "Yoda", HASH)
    pending = pending_path(final, 7, "abc")
    assert pending.parent == root / "mediawiki" / "wikipedia" / "page" / ".pending"
    assert final_path_of(pending) == final
    write_json_atomic(pending, b"{}")
    assert publish([Pending(pending, final)]) == 1
    assert final.read_bytes() == b"{}"
    assert not pending.exists()
    assert locate_record(final) == final


def test_publish_never_duplicates_a_file_of_the_layout_before_the_fan_out(root: Path) -> None:
    final = record_path(root, "mediawiki", "wikipedia", "page", "Yoda", HASH)
    legacy = legacy_record_path(final)
    assert legacy == root / "mediawiki" / "wikipedia" / "page" / final.name
    write_json_atomic(legacy, b'{"old": 1}')
    pending = pending_path(final, 7, "abc")
    write_json_atomic(pending, b'{"new": 1}')
    assert publish([Pending(pending, final)]) == 0
    assert not final.exists()
    assert not pending.exists()
    assert legacy.read_bytes() == b'{"old": 1}'
    assert locate_record(final) == legacy


def test_the_temp_sweep_lists_only_the_pending_directories(root: Path) -> None:
    final = record_path(root, "mediawiki", "wikipedia", "page", "Yoda", HASH)
    write_json_atomic(final, b"{}")
    in_pending = final.parents[2] / ".pending" / ".tmp-killed.json"
    in_records = final.parent / ".tmp-elsewhere.json"
    for path in (in_pending, in_records):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"{")
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    assert remove_stale_temp_files(root, 60) == 1
    assert not in_pending.exists()
    assert in_records.exists()  # the records' directories are never listed
    assert final.exists()
