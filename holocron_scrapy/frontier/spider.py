"""What a spider offers the frontier, and the work items a request serves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scrapy import Request

    from holocron_scrapy.model import NewWorkItem, WorkItem


@runtime_checkable
class FrontierSpider(Protocol):
    """What a spider offers the frontier."""

    source_system: str
    source_name: str
    recrawl: str | None

    def seed_work_items(self) -> list[NewWorkItem]: ...

    def requests_for(self, items: Sequence[WorkItem]) -> list[Request]: ...


def work_items_of(request: Request) -> list[WorkItem]:
    """The work items a request serves (documented meta key ``holocron_work_items``)."""
    return list(request.meta.get("holocron_work_items", ()))
