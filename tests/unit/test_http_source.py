"""Source files of ``type: http``: good files load, every bad one fails naming file and key."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from holocron_scrapy.config.http import (
    HtmlLinks,
    HttpDiscovery,
    JsonField,
    Pagination,
    load_http_source,
)
from holocron_scrapy.config.sources import SourceConfigError, load_source

SHIPPED_SOURCES = Path(__file__).resolve().parents[2] / "sources"

VALID: dict[str, Any] = {
    "name": "api",
    "type": "http",
    "base_url": "https://api.example.test/v1/",
    "user_agent": "HolocronScrapy-tests/0.1 (https://holocron.test/contact; ops@holocron.test)",
    "params": {"mailto": "ops@holocron.test"},
    "seeds": [
        "works?filter=a:b&per-page=200",
        {"url": "/search", "method": "POST", "json": {"q": "x"}},
        {"url": "https://other.test/form", "method": "post", "form": {"q": "y", "n": 2}},
    ],
    "resource_type": "work",
    "resource_id": "id",
    "pagination": {"json_next": "meta.next_cursor", "param": "cursor", "start": "*"},
    "discovery": {
        "json_fields": ["referenced_works", {"field": "results.id", "url": "works/{last_segment}"}],
        "max_depth": 2,
    },
}


def with_(dotted: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(VALID)
    *parents, last = dotted.split(".")
    node = document
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return document


def without(key: str) -> dict[str, Any]:
    document = copy.deepcopy(VALID)
    del document[key]
    return document


def load(tmp_path: Path, document: dict[str, Any]) -> Any:
    path = tmp_path / "src.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    return load_http_source(str(path))


def test_a_valid_file(tmp_path: Path) -> None:
    config = load(tmp_path, VALID)
    assert config.name == "api"
    assert config.base_url == "https://api.example.test/v1/"
    assert [(s.method, s.url) for s in config.seeds] == [
        ("GET", "https://api.example.test/v1/works?filter=a:b&per-page=200"),
        ("POST", "https://api.example.test/search"),
        ("POST", "https://other.test/form"),
    ]
    assert config.seeds[1].resource_id == 'POST https://api.example.test/search {"q":"x"}'
    assert config.seeds[2].form == {"q": "y", "n": "2"}
    assert config.params == {"mailto": "ops@holocron.test"}
    assert config.pagination == Pagination(
        "json_next", field="meta.next_cursor", param="cursor", start="*"
    )
    assert config.discovery == HttpDiscovery(
        json_fields=(
            JsonField("referenced_works"),
            JsonField("results.id", "works/{last_segment}"),
        ),
        max_depth=2,
    )
    assert config.allowed_domains == ("api.example.test", "other.test")


def test_defaults_and_html_links(tmp_path: Path) -> None:
    document = {k: VALID[k] for k in ("name", "type", "base_url", "user_agent")}
    document["seeds"] = ["/", "/"]
    document["discovery"] = {
        "html_links": {"allow": "/page/", "deny": ["/login"]},
        "allowed_domains": ["Example.TEST"],
    }
    config = load(tmp_path, document)
    assert len(config.seeds) == 1  # the same request once
    assert (config.resource_type, config.resource_id, config.pagination) == (
        "resource",
        "url",
        None,
    )
    assert config.discovery.html_links == HtmlLinks(allow=("/page/",), deny=("/login",))
    assert config.allowed_domains == ("example.test",)


@pytest.mark.parametrize(
    ("document", "key", "message"),
    [
        (with_("base_ulr", "x"), "base_ulr", "unknown key (did you mean 'base_url'?)"),
        (without("base_url"), "base_url", "is required"),
        (without("seeds"), "seeds", "is required"),
        (with_("base_url", "ftp://x.test/"), "base_url", "must be an http:// or https:// URL"),
        (with_("seeds", []), "seeds", "at least one"),
        (with_("seeds", ["a b"]), "seeds[0]", "whitespace"),
        (with_("seeds", ["ftp://x.test/a"]), "seeds[0]", "http:// or https://"),
        (
            with_("seeds", [{"url": "/s", "method": "PUT", "json": {}}]),
            "seeds[0].method",
            "unsupported method",
        ),
        (
            with_("seeds", [{"url": "/s", "method": "POST"}]),
            "seeds[0].json",
            "needs a json or form body",
        ),
        (
            with_("seeds", [{"url": "/s", "json": {"q": 1}}]),
            "seeds[0].method",
            "must be method: POST",
        ),
        (
            with_("seeds", [{"url": "/s", "method": "POST", "json": {}, "form": {}}]),
            "seeds[0].form",
            "not both",
        ),
        (with_("seeds", [{"uri": "/s"}]), "seeds[0].uri", "did you mean 'url'?"),
        (with_("seeds", [{"method": "GET"}]), "seeds[0].url", "is required"),
        (with_("headers", {"User-Agent": "x"}), "headers.User-Agent", "top-level 'user_agent'"),
        (
            with_("headers", {"Bad Header": "x"}),
            "headers.Bad Header",
            "not a valid HTTP header name",
        ),
        (with_("params", {"k": ["a"]}), "params.k", "expected a string, got a list"),
        (with_("params", {"k": "a\nb"}), "params.k", "control characters"),
        (with_("resource_type", "listing"), "resource_type", "not be 'listing'"),
        (with_("resource_type", "Work Items"), "resource_type", "must match"),
        (with_("resource_id", "meta..id"), "resource_id", "dotted JSON path"),
        (with_("pagination", {"json_next": "n", "page_number": "p"}), "pagination", "exactly one"),
        (with_("pagination", {"param": "cursor"}), "pagination", "exactly one"),
        (
            with_("pagination", {"json_nxt": "n"}),
            "pagination.json_nxt",
            "did you mean 'json_next'?",
        ),
        (
            with_("pagination", {"link_header": True, "param": "p"}),
            "pagination.param",
            "does not apply to link_header",
        ),
        (with_("pagination", {"page_number": "page"}), "pagination.until_empty", "is required"),
        (
            with_("pagination", {"page_number": "page", "until_empty": "r", "start": "one"}),
            "pagination.start",
            "page number",
        ),
        (
            with_("pagination", {"page_number": "page", "until_empty": "r", "max_pages": 0}),
            "pagination.max_pages",
            "1 or more",
        ),
        (with_("pagination", {"json_next": "n", "start": "*"}), "pagination.start", "needs param"),
        (
            with_("pagination", {"json_next": "n", "param": "a=b"}),
            "pagination.param",
            "query parameter name",
        ),
        (with_("discovery.max_depth", "2"), "discovery.max_depth", "expected an integer"),
        (with_("discovery.strategy", "bredth"), "discovery.strategy", "did you mean 'breadth'?"),
        (
            with_("discovery.json_fields", [{"url": "x/{value}"}]),
            "discovery.json_fields[0].field",
            "is required",
        ),
        (
            with_("discovery.json_fields", [{"field": "a", "url": "x/"}]),
            "discovery.json_fields[0].url",
            "{value} or {last_segment}",
        ),
        (
            with_("discovery.html_links", {"allow": ["("]}),
            "discovery.html_links.allow[0]",
            "not a regular expression",
        ),
        (
            with_("discovery.html_links", {"alow": []}),
            "discovery.html_links.alow",
            "did you mean 'allow'?",
        ),
        (
            with_("discovery.allowed_domains", ["https://x.test/"]),
            "discovery.allowed_domains[0]",
            "host name",
        ),
        (with_("discovery.namespaces", [0]), "discovery.namespaces", "unknown key"),
        (with_("api_url", "https://x.test/api.php"), "api_url", "unknown key"),
        (with_("settings", {"USER_AGENT": "x"}), "settings.USER_AGENT", "top-level 'user_agent'"),
        (with_("type", "mediawiki"), "type", "run it with `scrapy crawl mediawiki`"),
    ],
)
def test_bad_files_name_the_key(
    tmp_path: Path, document: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(SourceConfigError) as info:
        load(tmp_path, document)
    assert info.value.key == key
    assert message in info.value.message
    assert str(info.value).startswith(f"{tmp_path / 'src.yaml'}: {key}: ")


def test_each_loader_names_the_spider_of_the_other_type(tmp_path: Path) -> None:
    path = tmp_path / "src.yaml"
    path.write_text(
        yaml.safe_dump({"base_url": "https://x.test/", **VALID}, sort_keys=False), "utf-8"
    )
    with pytest.raises(SourceConfigError) as info:
        load_source(str(path))  # the mediawiki spider's loader
    assert (info.value.key, info.value.message) == (
        "type",
        "a 'http' source: run it with `scrapy crawl http`",
    )


@pytest.mark.parametrize("name", ["openalex", "quotes-html"])
def test_shipped_sources_load(name: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        config = load_http_source(name, SHIPPED_SOURCES)
    assert config.name == name
    assert "placeholder contact" in caplog.text  # the user puts their own contact there
    if name == "openalex":
        assert config.params["mailto"]
        assert config.pagination == Pagination(
            "json_next", field="meta.next_cursor", param="cursor", start="*"
        )
        assert config.resource_id == "id"
        assert "per-page=200" in config.seeds[0].url
        assert [f.path for f in config.discovery.json_fields] == ["results.id", "referenced_works"]
    else:
        assert config.discovery.html_links is not None
        assert config.allowed_domains == ("quotes.toscrape.com",)


def test_secrets_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    document = with_("headers", {"Authorization": "Bearer ${HOLOCRON_TEST_TOKEN}", "X-Plain": "a"})
    document["params"] = {"api_key": "${HOLOCRON_TEST_KEY}", "mailto": "ops@holocron.test"}
    monkeypatch.delenv("HOLOCRON_TEST_TOKEN", raising=False)
    monkeypatch.setenv("HOLOCRON_TEST_KEY", "k3y")
    with pytest.raises(SourceConfigError) as info:
        load(tmp_path, document)
    assert (info.value.key, info.value.message) == (
        "headers.Authorization",
        "the environment variable HOLOCRON_TEST_TOKEN is not set",
    )
    monkeypatch.setenv("HOLOCRON_TEST_TOKEN", "t0ken")
    config = load(tmp_path, document)
    assert config.headers == {"Authorization": "Bearer t0ken", "X-Plain": "a"}
    assert config.params == {"api_key": "k3y", "mailto": "ops@holocron.test"}
    assert config.secret_headers == frozenset({"authorization"})
