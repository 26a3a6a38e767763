"""Group commit of lake writes: the files written close together share their directory fsync.

Items queue for a group; a group is what was queued when the previous one ended (at most
``HOLOCRON_LAKE_GROUP_SIZE`` items), so nothing waits for a timer: an item that arrives while
no group is in flight is written at once, alone. A group's files are written concurrently in
the lake threads (each file's data fsynced by its writer, so the file system's journal commits
them together), then each directory whose entries changed (``.pending/``, and any directory made
for it) is fsynced once, then the optional ``after`` step runs (publishing at once when there is
no IngestRecords pipeline), and only then are the group's items released to the next pipeline —
so a row never commits before its file and the file's name are durable. A write that fails
fails its item only, with its error; a directory fsync that fails fails the items whose files
it was to make durable.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeGuard, TypeVar

from holocron_scrapy.lake.atomic import fsync_directories

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Executor
    from pathlib import Path

    from holocron_scrapy.items import ResourceRecord


@dataclass(slots=True)
class Written:
    """What writing one record did: ``written``, ``unchanged`` or ``exists``, and the
    directories whose entries changed (to fsync once per group)."""

    status: str
    directories: list[Path] = field(default_factory=list)


Outcome = Written | BaseException
_A = TypeVar("_A")


def _wrote(outcome: Outcome) -> TypeGuard[Written]:
    """Whether the write made a file (whose directories the group fsyncs)."""
    return isinstance(outcome, Written) and bool(outcome.directories)


class GroupCommit:
    def __init__(
        self,
        write: Callable[[ResourceRecord], Written],
        *,
        size: int,
        fsync: bool,
        after: Callable[[list[ResourceRecord]], object] | None = None,
    ) -> None:
        self.write = write
        self.size = max(1, size)
        self.fsync = fsync
        self.after = after
        self.executor: Executor | None = None  # the lake threads (None: asyncio's default pool)
        self.groups = 0  # groups that wrote files, for the stats
        self._queue: list[tuple[ResourceRecord, asyncio.Future[str]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, record: ResourceRecord) -> str:
        """Write ``record`` in the next group; its status once the group is durable."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._queue.append((record, future))
        if self._drainer is None:
            self._drainer = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                group, self._queue = self._queue[: self.size], self._queue[self.size :]
                try:
                    outcomes = await self._commit([record for record, _ in group])
                except BaseException as exc:  # never leave an item waiting
                    outcomes = [exc] * len(group)
                for (_, future), outcome in zip(group, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome.status)
        finally:
            self._drainer = None

    async def _commit(self, records: list[ResourceRecord]) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        outcomes: list[Outcome] = list(
            await asyncio.gather(
                *(loop.run_in_executor(self.executor, self.write, r) for r in records),
                return_exceptions=True,
            )
        )
        changed = [o for o in outcomes if _wrote(o)]
        if not changed:
            return outcomes
        self.groups += 1
        directories = {d for o in changed for d in o.directories}
        if self.fsync:
            outcomes = await self._then(outcomes, fsync_directories, directories)
        if self.after is not None:
            wrote = [r for r, o in zip(records, outcomes, strict=True) if _wrote(o)]
            outcomes = await self._then(outcomes, self.after, wrote)
        return outcomes

    async def _then(
        self, outcomes: list[Outcome], step: Callable[[_A], object], arg: _A
    ) -> list[Outcome]:
        """Run ``step(arg)`` in a lake thread; if it fails, the items that wrote files fail."""
        try:
            await asyncio.get_running_loop().run_in_executor(self.executor, step, arg)
        except Exception as exc:
            return [exc if _wrote(o) else o for o in outcomes]
        return outcomes
