"""What a server says, as the crawl repeats it (issue 10, careless inputs): escaped in every
message and log line, and answers of the wrong shape named for what is wrong. End to end (a
hostile wiki, the real ``scrapy crawl``): tests/e2e/test_hostile.py."""

from __future__ import annotations

from typing import Any

import pytest

from holocron_scrapy.mediawiki import api as mwapi
from holocron_scrapy.safe_text import printable


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, ünïcödé ✓", "plain text, ünïcödé ✓"),
        ("a\nb\r\tc", "a\\nb\\r\\tc"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("\x85\x9b", "\\x85\\x9b"),  # C1 controls (NEL, CSI)
        ("abc\u202edef\u2028", "abc\\u202edef\\u2028"),  # right-to-left override, line separator
    ],
)
def test_unprintable_characters_are_escaped(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_long_text_is_cut() -> None:
    assert printable("x" * 5000) == "x" * 1000 + "…"


def test_an_api_error_from_the_server_is_escaped() -> None:
    with pytest.raises(mwapi.ApiError) as caught:
        mwapi.check_envelope({"error": {"code": "a\nb", "info": "line\n[forged]\x1b[2J"}})
    assert str(caught.value) == "MediaWiki API error a\\nb: line\\n[forged]\\x1b[2J"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"query": None}, "the answer's query is null, expected an object"),
        ({"query": {"pages": "x"}}, "the answer's query.pages is str, expected a list of objects"),
        ({"query": {"pages": {"1": {}}}}, "query.pages is dict, expected a list of objects"),
        ({"query": {"pages": [1]}}, "the answer's query.pages[0] is int, expected an object"),
        ({"query": {"pages": [{"links": "x"}]}}, "query.pages[0].links is str, expected a list"),
        ({"query": {"pages": [{"links": [3]}]}}, "query.pages[0].links is list, expected a list"),
        ({"query": {"redirects": [{"from": "A"}]}}, "query.redirects[0].to is null"),
        ({"query": {"allpages": [None]}}, "the answer's query.allpages[0] is null"),
        ({"continue": ["a"]}, "the answer's continue is list, expected an object"),
        ({"continue": {"plcontinue": {}}}, "continue.plcontinue is dict, expected a string"),
        ({"warnings": "x"}, "the answer's warnings is str, expected an object"),
    ],
)
def test_an_answer_of_the_wrong_shape_says_what_is_wrong(data: Any, message: str) -> None:
    with pytest.raises(mwapi.ApiError) as caught:
        mwapi.check_shape(data)
    assert caught.value.code == "badresponse"
    assert message in caught.value.info


def test_answers_of_the_right_shape_pass() -> None:
    data = {
        "continue": {"plcontinue": "1|0|A", "continue": "||"},
        "query": {
            "searchinfo": {"totalhits": 3},
            "normalized": [{"from": "a", "to": "A"}],
            "pages": [{"pageid": 1, "title": "A", "links": [{"ns": 0, "title": "B"}]}],
        },
    }
    assert mwapi.check_shape(data) is data
