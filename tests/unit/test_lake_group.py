"""Group commit of lake writes (:mod:`holocron_scrapy.pipelines.lake_group`) through the real
lake pipeline and file system, with a real SQLite frontier. ``os.fsync``/``os.fdatasync`` are
wrapped (still called) only to observe the order of operations."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

import pytest
from scrapy.exceptions import DropItem
from scrapy.utils.misc import build_from_crawler

from holocron_scrapy.lake.pending import write_pending
from holocron_scrapy.pipelines.lake import LakePipeline
from tests.unit.test_pipelines import claim, record_for

if TYPE_CHECKING:
    from pathlib import Path

    from tests.unit.conftest import Crawl


def recorded_syncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Each fsync/fdatasync as (call, what it synced: a file's name or 'dir:<name>')."""
    calls: list[tuple[str, str]] = []
    for name in ("fsync", "fdatasync"):
        real = getattr(os, name)

        def wrapped(fd: int, real: Any = real, name: str = name) -> None:
            target = os.readlink(f"/proc/self/fd/{fd}")
            kind = "dir:" if os.path.isdir(target) else ""
            calls.append((name, kind + os.path.basename(target)))
            real(fd)

        monkeypatch.setattr(os, name, wrapped)
    return calls


@pytest.mark.parametrize("size", [64, 2])
def test_a_group_fsyncs_each_file_then_its_directory_once_then_releases(
    crawl: Crawl, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    pipeline = build_from_crawler(LakePipeline, crawl.crawler)
    pipeline.group.size = size
    items = claim(crawl)
    records = [record_for(item) for item in items]
    calls = recorded_syncs(monkeypatch)
    released: list[int] = []

    async def run() -> None:
        async def one(record: Any) -> None:
            await pipeline.process_item(record)
            released.append(len(calls))  # what had been synced when the item went on

        await asyncio.gather(*(one(r) for r in records))

    asyncio.run(run())
    pipeline.close_spider()

    files = [c for c in calls if not c[1].startswith("dir:")]
    dirs = [c for c in calls if c[1].startswith("dir:")]
    pending = sorted(r.lake_pending.path.name for r in records if r.lake_pending)
    assert sorted(name for _, name in files) == pending  # each file's data, once
    assert {call for call, _ in files} == {"fdatasync"}
    # The items queued together share groups of at most ``size``: one fsync of .pending/ (and
    # of the directories made for it, the first time) per group.
    groups = -(-len(records) // size)
    assert [name for _, name in dirs].count("dir:.pending") == groups
    assert [name for _, name in dirs].count("dir:page") == 1
    assert crawl.stat("holocron/lake/groups") == groups
    last_dir = max(i for i, c in enumerate(calls) if c == ("fsync", "dir:.pending"))
    assert all(i < last_dir for i, c in enumerate(calls) if c in files[1:])
    assert min(released) >= 1 + calls.index(("fsync", "dir:.pending"))
    assert released[-1] == len(calls)  # the last item went on after the last directory fsync


def test_a_failed_write_fails_only_its_item_with_the_reason(
    crawl: Crawl, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = build_from_crawler(LakePipeline, crawl.crawler)
    items = claim(crawl)
    records = [record_for(item) for item in items]
    bad = records[1]
    bad.payload = {"not json": {1, 2}}  # lake_document() raises for this one only

    async def run() -> list[Any]:
        return await asyncio.gather(
            *(pipeline.process_item(r) for r in records), return_exceptions=True
        )

    results = asyncio.run(run())
    pipeline.close_spider()
    assert isinstance(results[1], DropItem)
    assert str(results[1]).startswith("lake write failed: TypeError")
    assert all(r is rec for r, rec in zip(results, records, strict=True) if r is not results[1])
    assert not crawl.frontier.is_claimed(bad.work_item)
    assert all(crawl.frontier.is_claimed(r.work_item) for r in records if r is not bad)
    assert crawl.stat("holocron/lake/written") == len(records) - 1


def test_a_pending_name_written_again_is_replaced_atomically_never_truncated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t" / ".pending" / "x~1~ab.json"
    assert write_pending(path, b'{"v": 1}') == [tmp_path, tmp_path / "t", path.parent]
    inode = path.stat().st_ino

    def no_replace(*_: Any) -> None:
        raise OSError("the rename failed")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(OSError, match="the rename failed"):
        write_pending(path, b'{"v": 2}')
    assert path.read_bytes() == b'{"v": 1}'  # the first file, whole
    monkeypatch.undo()
    assert write_pending(path, b'{"v": 2}') == [path.parent]
    assert path.read_bytes() == b'{"v": 2}'
    assert path.stat().st_ino != inode
    assert sorted(p.name for p in path.parent.iterdir()) == ["x~1~ab.json"]  # no temp left
