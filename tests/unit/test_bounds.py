"""The bounds of holocron_scrapy.bounds (issue 10, loops): settings, chains and hop limits.
The crawls that meet them are in tests/e2e/test_hostile.py."""

from __future__ import annotations

import pickle

import pytest
from scrapy.exceptions import UsageError
from scrapy.settings import Settings

from holocron_scrapy.bounds import Bounds, Chain


def test_the_defaults_and_the_settings_that_change_them() -> None:
    assert Bounds.from_settings(Settings()) == Bounds(1000, 64 * 1024 * 1024, 100_000, 10)
    bounds = Bounds.from_settings(
        Settings(
            {
                "HOLOCRON_CHAIN_MAX_PAGES": "7",
                "HOLOCRON_CHAIN_MAX_BYTES": 1000,
                "HOLOCRON_LISTING_MAX_PAGES": 9,
                "HOLOCRON_MAX_REDIRECTS": 0,
            }
        )
    )
    assert bounds == Bounds(7, 1000, 9, 0)
    assert bounds.redirect_refused(0) == (
        "too many redirects: more than 0 (HOLOCRON_MAX_REDIRECTS)"
    )


CAPS = ["HOLOCRON_CHAIN_MAX_PAGES", "HOLOCRON_CHAIN_MAX_BYTES", "HOLOCRON_LISTING_MAX_PAGES"]


@pytest.mark.parametrize("setting", CAPS)
def test_a_limit_below_one_is_a_usage_error(setting: str) -> None:
    with pytest.raises(UsageError, match=f"{setting}: 0 is out of range"):
        Bounds.from_settings(Settings({setting: 0}))
    with pytest.raises(UsageError, match="HOLOCRON_MAX_REDIRECTS: -1"):
        Bounds.from_settings(Settings({"HOLOCRON_MAX_REDIRECTS": -1}))


def test_a_continuation_seen_before_ends_the_chain_even_after_others() -> None:
    chain = Bounds().chain()
    assert chain.step(10, '{"c":"A"}') is None
    assert chain.step(10, '{"c":"B"}') is None
    assert chain.step(10, None) is None  # the end of a chain: nothing to compare
    reason = chain.step(10, '{"c":"A"}')
    assert reason == 'continuation chain: the continuation \'{"c":"A"}\' came a second time'


def test_a_chain_ends_at_its_page_and_byte_caps() -> None:
    pages = Chain(max_pages=3, max_bytes=10**9)
    assert [pages.step(1, str(n)) for n in range(3)] == [
        None,
        None,
        "continuation chain: more than 3 pages (HOLOCRON_CHAIN_MAX_PAGES)",
    ]
    merged = Chain(max_pages=100, max_bytes=250)
    assert [merged.step(100, str(n)) for n in range(3)] == [
        None,
        None,
        "continuation chain: more than 250 bytes merged (HOLOCRON_CHAIN_MAX_BYTES)",
    ]
    listing = Bounds(listing_max_pages=2).listing()
    assert listing.step(10**9, "a") is None  # a listing merges nothing: no byte cap
    assert listing.step(1, "b") == "listing: more than 2 pages (HOLOCRON_LISTING_MAX_PAGES)"


def test_a_page_with_the_body_of_an_earlier_one_ends_the_chain() -> None:
    chain = Bounds().listing()
    assert chain.step(3, "?page=2", b"abc") is None
    assert chain.step(3, "?page=3", b"abd") is None
    assert chain.step(3, "?page=4", b"abc") == "listing: page 3 has the body of an earlier page"


def test_a_long_continuation_is_quoted_short_and_a_chain_pickles() -> None:
    chain = Bounds().chain()
    token = "x" * 10_000
    chain.step(1, token)
    reason = chain.step(1, token)
    assert reason is not None
    assert len(reason) < 300
    assert pickle.loads(pickle.dumps(chain)).seen == chain.seen  # JOBDIR stores request meta
