"""The frontier's parts on their own: the claims in flight, the claim loop's phase, and the
import graph (no part imports the Frontier that owns it)."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from holocron_scrapy.frontier.claiming import Phase
from holocron_scrapy.frontier.claims import Claims
from holocron_scrapy.model import Outcome, Status, WorkItem
from tests.unit.conftest import RecordingEngine

if TYPE_CHECKING:
    from tests.unit.conftest import Crawl

FRONTIER = Path(__file__).parents[2] / "holocron_scrapy" / "frontier"
#: The two halves of the Frontier: the modules that may import the parts, never the reverse.
OWNERS = {"holocron_scrapy.frontier.extension", "holocron_scrapy.frontier.api"}


def item(work_item_id: int, attempt: int) -> WorkItem:
    return WorkItem(work_item_id, "mediawiki", "w", "page", f"P{work_item_id}", 0, 0, attempt)


def test_an_outcome_ends_only_the_claim_it_names() -> None:
    claims = Claims()
    claims.hold([item(1, 1), item(2, 1)])
    claims.hold([item(1, 2)])  # claimed again: attempt 2 holds it now
    assert claims.is_claimed(item(1, 2))
    assert not claims.is_claimed(item(1, 1))
    claims.ended(Outcome(1, Status.FAILED, "late", attempt=1))  # the earlier claim's
    assert claims.in_flight == {1, 2}
    claims.ended(Outcome(1, Status.COMPLETED, attempt=2))
    claims.ended(Outcome(2, Status.COMPLETED))  # naming no claim: ends the one held
    assert claims.in_flight == set()
    claims.hold([])
    assert claims.attempts == {}  # what is no longer in flight is forgotten


def test_the_claim_loop_phase_follows_claims_writes_and_close(crawl: Crawl) -> None:
    frontier, spider = crawl.frontier, crawl.spider
    crawl.crawler.engine = RecordingEngine()  # type: ignore[assignment]
    loop = frontier.loop

    async def run() -> None:
        await frontier.start_run(spider)
        loop.spider = frontier.spider = spider
        assert loop.phase is Phase.READY
        items = await frontier.claim_batch()
        assert len(items) == 3
        assert loop.phase is Phase.READY  # found work: claim again when asked
        frontier.fail(items, "boom", final=True)
        assert await frontier.claim_batch() == []  # writes the failures first, then claims
        assert loop.phase is Phase.EXHAUSTED
        assert frontier.done()
        frontier.discover(spider.new_work_item("Chopper", 1, items[0]))
        assert not frontier.done()  # buffered
        assert await frontier.flush()
        assert loop.phase is Phase.READY  # written: the queue may hold something new
        loop.close_down()
        loop.written()
        assert loop.phase is Phase.CLOSING  # never left
        loop.maybe_claim()
        assert not loop.claiming

    asyncio.run(run())
    assert crawl.stat("holocron/frontier/claimed") == 3


def test_no_frontier_part_imports_its_owner() -> None:
    for path in sorted(FRONTIER.glob("*.py")):
        module = f"holocron_scrapy.frontier.{path.stem}"
        if module in OWNERS:
            continue
        imported = {
            node.module
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.ImportFrom) and node.module
        }
        assert not imported & OWNERS, module
