"""An answer that mixes up identities fails the titles concerned instead of merging two pages
into one record (issue 10 section 2): the page query's callback, offline, fed a recorded real
answer of the test bed wiki (tests/fixtures/cassettes) with its identities tampered with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from scrapy.http import TextResponse

from holocron_scrapy.items import ResourceRecord
from holocron_scrapy.mediawiki import api as mwapi
from holocron_scrapy.model import Outcome, Status
from tests.unit.test_mediawiki_spider import make_spider, work_items
from tests.unit.test_resources import items_of
from tests.unit.test_resources import make_spider as make_resource_spider

if TYPE_CHECKING:
    from collections.abc import Callable

CASSETTES = Path(__file__).resolve().parents[1] / "fixtures" / "cassettes"
TITLES = ("Ezra Bridger", "Anakin Skywalker")


def recorded_answer() -> dict[str, Any]:
    """The test bed's answer to the page query for Anakin|Ezra Bridger: Ezra Bridger (page id
    147) and Anakin Skywalker (185, "Anakin" redirects to it), complete in one response."""
    cassette = yaml.safe_load(
        (CASSETTES / "test_completed_page_queues_its_other_resources.yaml").read_text("utf-8")
    )
    data: dict[str, Any] = json.loads(cassette["interactions"][0]["response"]["body"]["string"])
    assert [(p["pageid"], p["title"]) for p in data["query"]["pages"]] == [
        (147, "Ezra Bridger"),
        (185, "Anakin Skywalker"),
    ]
    assert "continue" not in data
    return data


def answer(tmp_path: Path, tamper: Callable[[dict[str, Any]], None]) -> list[Any]:
    """What the page query of Ezra Bridger and Anakin Skywalker makes of the tampered answer."""
    spider = make_spider(tmp_path)
    [request] = spider.requests_for(work_items(*TITLES))
    data = recorded_answer()
    tamper(data)
    response = TextResponse(
        url=request.url,
        body=json.dumps(data).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
        request=request,
    )
    return list(spider.parse_query(response))


def outcomes(out: list[Any]) -> dict[int, Outcome]:
    return {o.work_item_id: o for o in out if isinstance(o, Outcome)}


def test_the_recorded_answer_untouched_records_both_pages(tmp_path: Path) -> None:
    out = answer(tmp_path, lambda data: None)
    records = {o.resource_id: o.payload["pageid"] for o in out if isinstance(o, ResourceRecord)}
    assert records == {"Ezra Bridger": 147, "Anakin Skywalker": 185}
    assert outcomes(out) == {}


def test_one_page_id_for_two_titles_fails_both_and_merges_nothing(tmp_path: Path) -> None:
    def same_id(data: dict[str, Any]) -> None:
        data["query"]["pages"][1]["pageid"] = 147  # Anakin Skywalker answered as Ezra's page

    out = answer(tmp_path, same_id)

    assert [o for o in out if isinstance(o, ResourceRecord)] == []
    reason = (
        "identity conflict in the API's answer: page id 147 answered for 'Ezra Bridger' and "
        "'Anakin Skywalker'"
    )
    assert {i: (o.status, o.error_message) for i, o in outcomes(out).items()} == {
        1: (Status.FAILED, reason),
        2: (Status.FAILED, reason),
    }
    # No links of either page are queued: the answer about them cannot be trusted.
    assert [o for o in out if not isinstance(o, Outcome)] == []


def test_one_title_with_two_page_ids_fails_that_title(tmp_path: Path) -> None:
    def two_ids(data: dict[str, Any]) -> None:
        pages = data["query"]["pages"]
        pages.append({**pages[1], "pageid": 186})  # Anakin Skywalker twice, as 185 and 186

    out = answer(tmp_path, two_ids)

    records = {o.resource_id for o in out if isinstance(o, ResourceRecord)}
    assert records == {"Ezra Bridger"}
    [failed] = outcomes(out).values()
    assert (failed.work_item_id, failed.status) == (2, Status.FAILED)
    assert failed.error_message == (
        "identity conflict in the API's answer: 'Anakin Skywalker' answered as page id 185 and "
        "page id 186"
    )


def test_a_conflict_in_a_continuation_is_one_too() -> None:
    pages = mwapi.PageSet()
    pages.add({"query": {"pages": [{"pageid": 1, "title": "Alpha", "links": [{"title": "A"}]}]}})
    pages.add(
        {
            "query": {
                "normalized": [{"from": "beta", "to": "Beta"}],
                "pages": [{"pageid": 1, "title": "Beta", "links": [{"title": "B"}]}],
            }
        }
    )
    pages.add({"query": {"normalized": [{"from": "beta", "to": "Gamma"}]}})
    assert pages.page("Alpha") == {"pageid": 1, "title": "Alpha", "links": [{"title": "A"}]}
    assert pages.conflict("Alpha") == pages.conflict("Beta")
    assert pages.conflict("Alpha") == (
        "identity conflict in the API's answer: page id 1 answered for 'Alpha' and 'Beta'"
    )
    assert pages.conflict("beta") == (
        "identity conflict in the API's answer: 'beta' normalized to both 'Beta' and 'Gamma'"
    )
    assert pages.conflict("Delta") is None


def test_an_info_answer_with_one_page_id_for_two_titles_fails_both(tmp_path: Path) -> None:
    cassette = yaml.safe_load(
        (CASSETTES / "test_info_records_per_page_and_skips.yaml").read_text("utf-8")
    )
    data = json.loads(cassette["interactions"][0]["response"]["body"]["string"])
    by_title = {page["title"]: page for page in data["query"]["pages"]}
    assert (by_title["Anakin"]["pageid"], by_title["Ezra Bridger"]["pageid"]) == (141, 147)
    by_title["Anakin"]["pageid"] = 147
    spider = make_resource_spider(tmp_path, ["page", "info"])
    titles = ["Ezra Bridger", "No such page", "Foo[bar]", "Anakin"]
    [request] = spider.requests_for(items_of("info", *titles))
    response = TextResponse(
        url=request.url,
        body=json.dumps(data).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
        request=request,
    )
    out = list(request.callback(response))  # type: ignore[misc]

    assert [o for o in out if isinstance(o, ResourceRecord)] == []
    found = {o.work_item_id: (o.status, o.error_message) for o in out if isinstance(o, Outcome)}
    reason = (
        "identity conflict in the API's answer: page id 147 answered for 'Anakin' and "
        "'Ezra Bridger'"
    )
    assert found[1] == found[4] == (Status.FAILED, reason)
    assert found[2][0] == found[3][0] == Status.SKIPPED  # missing, invalid: as before
