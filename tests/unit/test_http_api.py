"""The generic HTTP spider's pure logic (holocron_scrapy.http.api): URLs, ids, JSON paths,
pagination steps and payloads."""

from __future__ import annotations

import base64
import json

import pytest

from holocron_scrapy.config.http import Pagination
from holocron_scrapy.http import api as http_api


@pytest.mark.parametrize(
    ("url", "params", "expected"),
    [
        ("https://a.test/w", {"mailto": "me@x.test"}, "https://a.test/w?mailto=me%40x.test"),
        (
            "https://a.test/w?filter=topics.id:T1&per-page=200",
            {"mailto": "me@x.test"},
            "https://a.test/w?filter=topics.id:T1&per-page=200&mailto=me%40x.test",
        ),
        # the URL's own value wins; the others are appended
        (
            "https://a.test/w?mailto=a@b.test",
            {"mailto": "x", "k": "1"},
            "https://a.test/w?mailto=a@b.test&k=1",
        ),
        ("https://a.test/w?q=1#frag", {}, "https://a.test/w?q=1#frag"),
        ("https://a.test/w?x=1", {"a b": "c&d"}, "https://a.test/w?x=1&a+b=c%26d"),
    ],
)
def test_with_params_merges_into_an_existing_query(
    url: str, params: dict[str, str], expected: str
) -> None:
    assert http_api.with_params(url, params) == expected


def test_resource_keys_are_canonical_and_posts_carry_their_body() -> None:
    assert http_api.resource_key("http://a.test/p?b=2&a=1#x") == "http://a.test/p?a=1&b=2"
    assert http_api.post_key("http://a.test/s", {"q": "x", "a": [1]}) == (
        'POST http://a.test/s {"a":[1],"q":"x"}'
    )
    assert http_api.post_key("http://a.test/s", form={"z": "1", "a": "b c"}) == (
        "POST http://a.test/s a=b+c&z=1"
    )
    assert (
        http_api.absolute_url("https://api.test/v1/", "works?x=1")
        == "https://api.test/v1/works?x=1"
    )
    assert http_api.absolute_url("https://api.test/v1/", "/top") == "https://api.test/top"


def test_json_paths_walk_lists() -> None:
    data = {
        "meta": {"next_cursor": "abc", "count": 2},
        "results": [{"id": "W1", "refs": ["W3"]}, {"id": "W2", "refs": ["W4", None]}, {"x": 1}],
    }
    assert http_api.json_values(data, "results.id") == ["W1", "W2"]
    assert http_api.json_values(data, "results.refs") == ["W3", "W4"]
    assert http_api.json_values(data, "meta.next_cursor") == ["abc"]
    assert http_api.json_values(data, "nothing.here") == []
    assert http_api.json_value(data, "meta.next_cursor") == "abc"
    assert http_api.json_value(data, "results.id") is None  # no list walking for one value
    assert http_api.record_resource_id({"id": 42}, "id", "u") == "42"
    assert http_api.record_resource_id({"id": ""}, "id", "u") is None
    assert http_api.record_resource_id({"id": {"a": 1}}, "id", "u") is None
    assert http_api.record_resource_id([1, 2], "id", "u") is None
    assert http_api.record_resource_id({"id": 42}, "url", "http://k.test/") == "http://k.test/"


@pytest.mark.parametrize(
    ("value", "template", "expected"),
    [
        ("https://openalex.org/W42", "works/{last_segment}", "https://api.test/v1/works/W42"),
        ("W42", "/works/{value}", "https://api.test/works/W42"),
        ("https://other.test/x", None, "https://other.test/x"),
        ("relative/page", None, "https://api.test/v1/relative/page"),
        (7, "items/{value}", "https://api.test/v1/items/7"),
        ("", None, None),
        (True, None, None),
        ({"id": 1}, None, None),
        ("https://openalex.org/", "works/{last_segment}", None),
    ],
)
def test_discovered_urls_from_json_values(
    value: object, template: str | None, expected: str | None
) -> None:
    assert http_api.discovered_url(value, template, "https://api.test/v1/") == expected


def test_host_allowed() -> None:
    domains = ["example.test", "127.0.0.1"]
    assert http_api.host_allowed("https://example.test/x", domains)
    assert http_api.host_allowed("https://www.Example.test./x", domains)
    assert http_api.host_allowed("http://127.0.0.1:8080/x", domains)
    assert not http_api.host_allowed("https://badexample.test/x", domains)
    assert not http_api.host_allowed("ftp://example.test/x", domains)
    assert not http_api.host_allowed("mailto:me@example.test", domains)


@pytest.mark.parametrize(
    ("links", "expected"),
    [
        (
            ['<https://a.test/p?page=2>; rel="next", <https://a.test/p?page=9>; rel="last"'],
            "https://a.test/p?page=2",
        ),
        (['<https://a.test/p?page=1>; rel="prev"', "</p?page=3>; rel=next"], "/p?page=3"),
        (['<https://a.test/x>; rel="prefetch next"'], "https://a.test/x"),
        (['<https://a.test/p?page=9>; rel="last"'], None),
        ([], None),
    ],
)
def test_link_header_next(links: list[str], expected: str | None) -> None:
    assert http_api.link_next(links) == expected


def test_json_next_cursor_and_url() -> None:
    url = "https://api.test/works?filter=a:b&cursor=%2A"
    step = http_api.next_json(
        {"meta": {"next_cursor": "IlsxNi"}}, url, "meta.next_cursor", "cursor"
    )
    assert step.next_url == "https://api.test/works?filter=a%3Ab&cursor=IlsxNi"
    end = http_api.next_json({"meta": {"next_cursor": None}}, url, "meta.next_cursor", "cursor")
    assert end == http_api.PageStep(None, "no meta.next_cursor")
    assert http_api.next_json({"meta": {}}, url, "meta.next_cursor", "cursor").next_url is None
    as_url = http_api.next_json({"next": "/works?page=2"}, url, "next", None)
    assert as_url.next_url == "https://api.test/works?page=2"


def test_page_numbers_stop_at_an_empty_page_or_max_pages() -> None:
    page = Pagination("page_number", param="page", start="1", until_empty="items")
    full = {"items": [1, 2]}
    assert http_api.next_step(page, "https://a.test/l", full, [], "").next_url == (
        "https://a.test/l?page=2"
    )
    assert http_api.next_step(page, "https://a.test/l?page=7", full, [], "").next_url == (
        "https://a.test/l?page=8"
    )
    assert (
        http_api.next_step(page, "https://a.test/l?page=8", {"items": []}, [], "").next_url is None
    )
    capped = Pagination("page_number", param="p", start="0", until_empty="items", max_pages=3)
    assert http_api.next_step(capped, "https://a.test/l?p=1", full, [], "").next_url is not None
    assert http_api.next_step(capped, "https://a.test/l?p=2", full, [], "").reason == "max_pages 3"
    links = Pagination("link_header")
    step = http_api.next_step(links, "u", None, ["</l?page=2>; rel=next"], "https://a.test/l")
    assert step.next_url == "https://a.test/l?page=2"
    assert (
        http_api.next_step(Pagination("json_next", field="n"), "u", None, [], "u").next_url is None
    )


def test_payloads_json_text_and_binary() -> None:
    payload, form = http_api.encode_payload(
        b'{"id": "W1"}', "application/json; charset=utf-8", "utf-8"
    )
    assert (payload, form) == ({"id": "W1"}, "json")
    assert http_api.encode_payload(b"[1]", "application/ld+json", None) == ([1], "json")
    with pytest.raises(
        http_api.PayloadError, match=r"not JSON .*application/json.*body starts '\{\"id\": '"
    ):
        http_api.encode_payload(b'{"id": ', "application/json", None)
    text = "<p>Ahsoka \u2013 Tano \u20ac</p>"
    payload, form = http_api.encode_payload(
        text.encode("cp1252"), "text/html; charset=windows-1252", "cp1252"
    )
    assert form == "text"
    assert payload == {
        "content_type": "text/html; charset=windows-1252",
        "encoding": "cp1252",
        "text": text,
    }
    png = b"\x89PNG\r\n\x1a\n\x00\x00"
    payload, form = http_api.encode_payload(png, "image/png", None)
    assert form == "base64"
    assert base64.b64decode(payload["base64"]) == png
    assert payload["encoding"] == "base64"
    # text that does not decode as declared is kept byte for byte
    payload, form = http_api.encode_payload(b"\xff\xfe\xfa", "text/plain; charset=utf-8", "utf-8")
    assert form == "base64"
    json.dumps(payload)  # every payload is JSON


def test_versions_and_conditional_headers() -> None:
    assert http_api.version_of('W/"x"', "Sat, 21 Nov 2026 10:00:00 GMT") == 'etag:W/"x"'
    assert http_api.version_of(None, "Sat, 21 Nov 2026 10:00:00 GMT") == (
        "last-modified:Sat, 21 Nov 2026 10:00:00 GMT"
    )
    assert http_api.version_of("", None) is None
    assert http_api.conditional_headers('etag:W/"x"') == {"If-None-Match": 'W/"x"'}
    assert http_api.conditional_headers("last-modified:Sat, 21 Nov 2026 10:00:00 GMT") == {
        "If-Modified-Since": "Sat, 21 Nov 2026 10:00:00 GMT"
    }
    assert http_api.conditional_headers(None) == {}
    assert http_api.conditional_headers("12345") == {}  # not a version of this module


def test_a_json_body_is_validated_and_its_text_kept_exactly() -> None:
    body = b'{"n": 12345678901234567890.12345, "big": 1e400, "k": 1, "k": 2, "s": "\\ud800"}'
    payload, form = http_api.encode_payload(body, "application/json", None)
    assert (form, payload["k"]) == ("json", 2)  # parsed for discovery and the resource_id only
    assert http_api.json_text(body).encode("utf-8") == body
    assert http_api.json_text(b"\xef\xbb\xbf[1]") == "[1]"  # a byte order mark is not JSON


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"x": NaN}', "NaN is not a JSON value"),
        (b"[-Infinity]", "-Infinity is not a JSON value"),
        (b'{"x": "caf\xe9"}', "'utf-8' codec can't decode byte 0xe9"),
    ],
)
def test_a_json_body_that_is_not_json_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(http_api.PayloadError, match=f"^not JSON \\({reason}"):
        http_api.encode_payload(body, "application/json", None)
