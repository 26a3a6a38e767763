"""Source files: every bad file fails with one error naming the file and the dotted key."""

from __future__ import annotations

import copy
import logging
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml

from holocron_scrapy.config import sources
from holocron_scrapy.config.sources import (
    Discovery,
    Seeds,
    SourceConfigError,
    default_sources_dir,
    load_source,
    resolve_source_path,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_SOURCES = REPO_ROOT / "sources"

VALID: dict[str, Any] = {
    "name": "testwiki",
    "type": "mediawiki",
    "api_url": "https://wiki.example.org/w/api.php",
    "user_agent": "HolocronScrapy-tests/0.1 (https://holocron.test/contact; ops@holocron.test)",
    "seeds": {"titles": ["Star Wars", "Luke Skywalker"]},
    "discovery": {"links": True, "max_depth": 2, "strategy": "breadth", "namespaces": [0]},
    "settings": {"DOWNLOAD_DELAY": 1.0},
}
VALID_TEXT = yaml.safe_dump(VALID, sort_keys=False)


def with_(dotted: str, value: Any) -> dict[str, Any]:
    """VALID with the value at ``dotted`` replaced (sections are created as needed)."""
    document = copy.deepcopy(VALID)
    *parents, last = dotted.split(".")
    node = document
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return document


def without(dotted: str) -> dict[str, Any]:
    document = copy.deepcopy(VALID)
    *parents, last = dotted.split(".")
    node = document
    for part in parents:
        node = node[part]
    del node[last]
    return document


def write(path: Path, content: str | bytes | dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, dict):
        content = yaml.safe_dump(content, sort_keys=False)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


BAD_FILES: list[Any] = [
    # --- the document itself
    pytest.param("name: [wikipedia\n", "<yaml>", "line 2, column 1", id="broken-yaml"),
    pytest.param("name: x\nseeds:\n\ttitles: [a]\n", "<yaml>", "not tabs", id="tab-indent"),
    pytest.param("name: x\nname: y\n", "<yaml>", "duplicate key 'name'", id="duplicate-key"),
    pytest.param("name: x\n---\nname: y\n", "<yaml>", "single document", id="two-documents"),
    pytest.param(b"name: \xff\xfe\n", "<yaml>", "not UTF-8", id="not-utf8"),
    pytest.param(b"name: a\x00b\n", "<yaml>", "U+0000 at offset 7", id="raw-nul-byte"),
    pytest.param("", "<root>", "empty", id="empty-file"),
    pytest.param("  \n\n", "<root>", "empty", id="blank-file"),
    pytest.param("# nothing here\n", "<root>", "only comments", id="only-comments"),
    pytest.param("- name: x\n- type: y\n", "<root>", "got a list", id="list-at-top"),
    pytest.param("just text\n", "<root>", "got string 'just text'", id="scalar-at-top"),
    # --- unknown keys, at every level
    pytest.param(with_("nmae", "x"), "nmae", "did you mean 'name'?", id="unknown-top"),
    pytest.param(
        with_("seeds.title", ["x"]), "seeds.title", "did you mean 'titles'?", id="unk-seeds"
    ),
    pytest.param(
        with_("discovery.max_dept", 2),
        "discovery.max_dept",
        "did you mean 'max_depth'?",
        id="unknown-discovery",
    ),
    pytest.param(
        with_("discovery.zzz", 2), "discovery.zzz", "allowed keys here: links", id="unknown-no-hint"
    ),
    pytest.param(VALID_TEXT + "1: one\n", "1", "keys must be strings", id="int-key"),
    pytest.param(
        VALID_TEXT.replace("settings:\n", "settings:\n  1: one\n"),
        "settings.1",
        "keys must be strings, got integer 1",
        id="int-setting-name",
    ),
    # --- required keys
    pytest.param(without("name"), "name", "is required", id="missing-name"),
    pytest.param(without("type"), "type", "is required", id="missing-type"),
    pytest.param(without("api_url"), "api_url", "is required", id="missing-api_url"),
    pytest.param(without("user_agent"), "user_agent", "is required", id="missing-user_agent"),
    pytest.param(without("seeds"), "seeds", "is required", id="missing-seeds"),
    pytest.param(with_("seeds", {}), "seeds.titles", "is required", id="missing-seeds.titles"),
    pytest.param(with_("seeds", None), "seeds", "got null", id="seeds-null"),
    pytest.param(with_("seeds.titles", []), "seeds.titles", "at least one title", id="no-titles"),
    # --- name
    pytest.param(with_("name", "../x"), "name", "does not match", id="name-traversal"),
    pytest.param(with_("name", "Wiki Pedia"), "name", "does not match", id="name-space-upper"),
    pytest.param(with_("name", "a" * 65), "name", "at most 64", id="name-too-long"),
    pytest.param(with_("name", "wiki\n"), "name", "does not match", id="name-trailing-newline"),
    pytest.param(with_("name", 42), "name", "expected a string, got integer 42", id="name-int"),
    pytest.param(with_("name", None), "name", "expected a string, got null", id="name-null"),
    # --- type
    pytest.param(with_("type", "wiki"), "type", "allowed types: mediawiki", id="type-unknown"),
    pytest.param(with_("type", "MediaWiki"), "type", "did you mean 'mediawiki'?", id="type-case"),
    # --- api_url
    pytest.param(with_("api_url", "ftp://x"), "api_url", "scheme 'ftp'", id="url-ftp"),
    pytest.param(with_("api_url", "file:///etc/passwd"), "api_url", "scheme 'file'", id="url-file"),
    pytest.param(with_("api_url", "https:///w/api.php"), "api_url", "host name", id="url-no-host"),
    pytest.param(
        with_("api_url", "en.wikipedia.org/w/api.php"), "api_url", "no scheme", id="url-bare"
    ),
    pytest.param(
        with_("api_url", "https://x.org/a pi.php"), "api_url", "whitespace", id="url-space"
    ),
    pytest.param(
        with_("api_url", "https://x.org:99999/"), "api_url", "not a valid URL", id="url-port"
    ),
    pytest.param(with_("api_url", ""), "api_url", "must not be empty", id="url-empty"),
    pytest.param(
        with_("api_url", ["https://x.org"]), "api_url", "expected a string", id="url-list"
    ),
    # --- user_agent
    pytest.param(with_("user_agent", ""), "user_agent", "must not be empty", id="ua-empty"),
    pytest.param(with_("user_agent", "   "), "user_agent", "must not be empty", id="ua-blank"),
    pytest.param(with_("user_agent", "Bot/1\r\nX: y"), "user_agent", "U+000D", id="ua-crlf"),
    # --- seeds.opensearch
    pytest.param(
        with_("seeds.opensearch", "luke"), "seeds.opensearch", "expected a list", id="os-str"
    ),
    pytest.param(with_("seeds.opensearch", []), "seeds.opensearch", "at least one", id="os-none"),
    pytest.param(
        with_("seeds.opensearch", ["luke", " "]), "seeds.opensearch[1]", "empty", id="os-blank"
    ),
    pytest.param(
        with_("seeds.opensearch", [7]), "seeds.opensearch[0]", "got integer 7", id="os-int"
    ),
    pytest.param(with_("seeds.opensearc", ["x"]), "seeds.opensearc", "'opensearch'?", id="os-typo"),
    # --- seeds.titles
    pytest.param(with_("seeds.titles", "Star Wars"), "seeds.titles", "expected a list", id="t-str"),
    pytest.param(
        with_("seeds.titles", ["Yoda", 1977]),
        "seeds.titles[1]",
        "expected a string, got integer 1977",
        id="title-int",
    ),
    pytest.param(with_("seeds.titles", ["Yo\x00da"]), "seeds.titles[0]", "U+0000", id="title-nul"),
    pytest.param(
        with_("seeds.titles", ["é" * 150]), "seeds.titles[0]", "300 UTF-8 bytes", id="title-300b"
    ),
    pytest.param(with_("seeds.titles", [" "]), "seeds.titles[0]", "not be empty", id="title-blank"),
    pytest.param(
        with_("seeds.titles", ["[[Yoda]]"]),
        "seeds.titles[0]",
        "does not allow",
        id="title-brackets",
    ),
    pytest.param(with_("seeds", ["Yoda"]), "seeds", "expected a mapping", id="seeds-list"),
    # --- discovery
    pytest.param(with_("discovery", [1]), "discovery", "expected a mapping", id="discovery-list"),
    pytest.param(
        with_("discovery.links", 1),
        "discovery.links",
        "expected true or false, got integer 1",
        id="int-for-bool",
    ),
    pytest.param(
        with_("discovery.links", "yes"), "discovery.links", "got string 'yes'", id="str-for-bool"
    ),
    pytest.param(
        with_("discovery.max_depth", True),
        "discovery.max_depth",
        "expected an integer, got boolean true",
        id="bool-for-int",
    ),
    pytest.param(
        with_("discovery.max_depth", -1), "discovery.max_depth", "between 0 and 100", id="depth--1"
    ),
    pytest.param(
        with_("discovery.max_depth", 101), "discovery.max_depth", "got 101", id="depth-101"
    ),
    pytest.param(
        with_("discovery.max_depth", "2"),
        "discovery.max_depth",
        "got string '2' (remove the quotes)",
        id="depth-quoted",
    ),
    pytest.param(
        with_("discovery.max_depth", 1.5), "discovery.max_depth", "got number 1.5", id="depth-float"
    ),
    pytest.param(
        with_("discovery.strategy", "random"),
        "discovery.strategy",
        "allowed: breadth, depth",
        id="strategy-random",
    ),
    pytest.param(
        with_("discovery.strategy", "bredth"),
        "discovery.strategy",
        "did you mean 'breadth'?",
        id="strategy-typo",
    ),
    pytest.param(
        with_("discovery.namespaces", []),
        "discovery.namespaces",
        "at least one namespace",
        id="namespaces-empty",
    ),
    pytest.param(
        with_("discovery.namespaces", [0, -1]),
        "discovery.namespaces[1]",
        "must be 0 or more, got -1",
        id="namespace-negative",
    ),
    pytest.param(
        with_("discovery.namespaces", ["0"]),
        "discovery.namespaces[0]",
        "expected an integer",
        id="namespace-str",
    ),
    pytest.param(
        with_("discovery.namespaces", [False]),
        "discovery.namespaces[0]",
        "got boolean false",
        id="namespace-bool",
    ),
    pytest.param(
        with_("discovery.namespaces", 0),
        "discovery.namespaces",
        "expected a list, got integer 0",
        id="namespaces-scalar",
    ),
    # --- settings
    pytest.param(
        with_("settings", ["DOWNLOAD_DELAY", 1]),
        "settings",
        "expected a mapping, got a list",
        id="settings-list",
    ),
    pytest.param(
        with_("settings.download_delay", 2),
        "settings.download_delay",
        "did you mean 'DOWNLOAD_DELAY'?",
        id="setting-lower-case",
    ),
    pytest.param(
        with_("settings.Download-Delay", 2),
        "settings.Download-Delay",
        "not a Scrapy setting name",
        id="setting-bad-name",
    ),
    pytest.param(
        with_("settings.USER_AGENT", "x"),
        "settings.USER_AGENT",
        "top-level 'user_agent'",
        id="setting-user-agent",
    ),
]


@pytest.mark.parametrize(("content", "key", "fragment"), BAD_FILES)
def test_bad_file(
    tmp_path: Path, content: str | bytes | dict[str, Any], key: str, fragment: str
) -> None:
    path = write(tmp_path / "bad.yaml", content)
    with pytest.raises(SourceConfigError) as info:
        load_source(str(path), sources_dir=tmp_path)
    err = info.value
    assert err.key == key
    assert fragment in err.message
    assert err.path == path
    assert str(err).startswith(f"{path}: ")
    assert str(err) == f"{path}: {key}: {err.message}"


def test_bad_file_table_is_big_enough() -> None:
    assert len(BAD_FILES) >= 25


def test_first_problem_in_file_order_is_reported(tmp_path: Path) -> None:
    text = "name: Bad Name\ntype: nope\n" + VALID_TEXT.split("\n", 2)[2]
    path = write(tmp_path / "two.yaml", text)
    with pytest.raises(SourceConfigError) as info:
        load_source(str(path))
    assert info.value.key == "name"


def test_first_problem_in_file_order_across_sections(tmp_path: Path) -> None:
    document = with_("discovery.max_depth", -1)  # discovery comes after seeds in the file
    document["seeds"]["titles"] = ["Yoda", 7]
    with pytest.raises(SourceConfigError) as info:
        load_source(str(write(tmp_path / "two.yaml", document)))
    assert (info.value.key, info.value.message) == (
        "seeds.titles[1]",
        "expected a string, got integer 7",
    )
    document.pop("seeds")  # a missing key comes after the keys that are there
    with pytest.raises(SourceConfigError) as info:
        load_source(str(write(tmp_path / "two.yaml", document)))
    assert info.value.key == "discovery.max_depth"


def test_missing_file_lists_available_sources(tmp_path: Path) -> None:
    write(tmp_path / "alpha.yaml", VALID)
    write(tmp_path / "beta.yml", VALID)
    (tmp_path / "notes.txt").write_text("not a source")
    with pytest.raises(SourceConfigError) as info:
        load_source("gamma", sources_dir=tmp_path)
    err = info.value
    assert err.key == "source"
    assert err.path == tmp_path / "gamma.yaml"
    assert "available sources" in err.message
    shipped = "openalex, quotes-html, wikipedia, wookieepedia"
    assert err.message.endswith(f": alpha, beta; shipped with holocron-scrapy: {shipped}")
    assert str(err).startswith(f"{tmp_path / 'gamma.yaml'}: source: ")


def test_missing_file_in_empty_sources_dir(tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError) as info:
        load_source(str(tmp_path / "nope.yaml"), sources_dir=tmp_path / "absent")
    assert info.value.key == "source"
    assert f"in {tmp_path / 'absent'}: none; shipped with" in info.value.message


def test_directory_is_not_a_source(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(SourceConfigError) as info:
        load_source(str(tmp_path / "dir.yaml"))
    assert info.value.key == "source"
    assert "is a directory" in info.value.message


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "secret.yaml", VALID)

    def deny(self: Path, *args: object) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", deny)  # (tests run as root: a chmod would not deny)
    with pytest.raises(SourceConfigError) as info:
        load_source(str(path))
    assert info.value.key == "source"
    assert info.value.message == "cannot read the file: Permission denied"


def test_error_is_picklable(tmp_path: Path) -> None:
    err = SourceConfigError(tmp_path / "x.yaml", "name", "bad")
    copy_ = pickle.loads(pickle.dumps(err))
    assert (copy_.path, copy_.key, copy_.message, str(copy_)) == (
        err.path,
        err.key,
        err.message,
        str(err),
    )


# --- good files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "api_url"),
    [
        ("wikipedia", "https://en.wikipedia.org/w/api.php"),
        ("wookieepedia", "https://starwars.fandom.com/api.php"),
    ],
)
def test_shipped_sources_load_and_follow_the_etiquette(
    name: str, api_url: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    shipped = SHIPPED_SOURCES / f"{name}.yaml"
    text = shipped.read_text("utf-8")
    if api_url.startswith("https://en.wikipedia.org/"):
        # Refused as shipped (Wikimedia's User-Agent policy): load it as a user edits it.
        text = text.replace("example.org/CHANGE-ME", "holocron.test/contact").replace(
            "CHANGE-ME@example.org", "ops@holocron.test"
        )
        shipped = write(tmp_path / f"{name}.yaml", text)
    with caplog.at_level(logging.WARNING, logger=sources.__name__):
        config = load_source(str(shipped))
    assert config.path == shipped
    assert config.name == name
    assert config.type == "mediawiki"
    assert config.api_url == api_url
    assert "@" in config.user_agent
    assert len(config.seeds.titles) >= 3
    assert config.discovery == Discovery(links=True, max_depth=1, namespaces=(0,))
    assert config.settings["CONCURRENT_REQUESTS_PER_DOMAIN"] == 1
    assert config.settings["AUTOTHROTTLE_ENABLED"] is True
    assert config.settings["AUTOTHROTTLE_TARGET_CONCURRENCY"] == 1.0
    assert config.settings["DOWNLOAD_DELAY"] >= 1.0
    # The contact is a placeholder the user must edit: loading says so (Wikimedia: refused).
    warned = any("placeholder contact" in r.getMessage() for r in caplog.records)
    assert warned == (shipped.parent == SHIPPED_SOURCES)


def test_shipped_wikipedia_source_is_refused_until_its_contact_is_edited() -> None:
    with pytest.raises(SourceConfigError) as info:
        load_source("wikipedia", sources_dir=SHIPPED_SOURCES)
    assert info.value.key == "user_agent"
    assert "placeholder" in info.value.message
    assert "https://meta.wikimedia.org/wiki/User-Agent_policy" in info.value.message


def test_shipped_sources_found_from_the_project_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT / "holocron_scrapy")  # scrapy.cfg is one level up
    assert default_sources_dir() == SHIPPED_SOURCES
    assert load_source("wookieepedia").path == SHIPPED_SOURCES / "wookieepedia.yaml"
    with pytest.raises(SourceConfigError) as info:  # found, and refused (placeholder contact)
        load_source("wikipedia")
    assert info.value.path == SHIPPED_SOURCES / "wikipedia.yaml"


def test_default_sources_dir_without_scrapy_cfg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "closest_scrapy_cfg", lambda: "")
    monkeypatch.chdir(tmp_path)
    assert default_sources_dir() == tmp_path / "sources"


def test_default_sources_dir_next_to_scrapy_cfg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "scrapy.cfg").write_text("[settings]\n")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "deep" / "er")
    assert default_sources_dir() == tmp_path.resolve() / "sources"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("testwiki", "SRC/testwiki.yaml"),
        ("my-wiki_2", "SRC/my-wiki_2.yaml"),
        ("other.yaml", "other.yaml"),
        ("other.YML", "other.YML"),
        ("conf/other", "conf/other"),
        ("./wikipedia", "wikipedia"),
        ("/abs/path/x.yaml", "/abs/path/x.yaml"),
    ],
)
def test_resolve_source_path(tmp_path: Path, ref: str, expected: str) -> None:
    src = tmp_path / "src"
    want = src / expected[4:] if expected.startswith("SRC/") else Path(expected)
    assert resolve_source_path(ref, src) == want


def test_resolve_prefers_yaml_then_yml(tmp_path: Path) -> None:
    write(tmp_path / "only.yml", VALID)
    write(tmp_path / "both.yaml", VALID)
    write(tmp_path / "both.yml", VALID)
    assert resolve_source_path("only", tmp_path) == tmp_path / "only.yml"
    assert resolve_source_path("both", tmp_path) == tmp_path / "both.yaml"


def test_resolve_expands_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_source_path("~/x.yaml", Path("unused")) == tmp_path / "x.yaml"


def test_name_resolves_in_sources_dir(tmp_path: Path) -> None:
    path = write(tmp_path / "src" / "testwiki.yaml", VALID)
    config = load_source("testwiki", sources_dir=tmp_path / "src")
    assert config.path == path
    assert config.name == "testwiki"


def test_relative_and_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "conf" / "mine.yaml", VALID)
    monkeypatch.chdir(tmp_path)
    unused = tmp_path / "nowhere"
    assert load_source("conf/mine.yaml", sources_dir=unused).path == path
    assert load_source(str(path), sources_dir=unused).path == path
    monkeypatch.chdir(tmp_path / "conf")
    assert load_source("mine.yaml", sources_dir=unused).path == path  # suffix → a path


def test_full_file(tmp_path: Path) -> None:
    path = write(tmp_path / "full.yaml", VALID)
    config = load_source(str(path))
    assert config.name == "testwiki"
    assert config.type == "mediawiki"
    assert config.api_url == VALID["api_url"]
    assert config.user_agent == VALID["user_agent"]
    assert config.seeds == Seeds(titles=("Star Wars", "Luke Skywalker"))
    assert config.discovery == Discovery(max_depth=2)
    assert dict(config.settings) == {"DOWNLOAD_DELAY": 1.0}


def test_defaults_apply(tmp_path: Path) -> None:
    minimal = without("discovery")
    del minimal["settings"]
    config = load_source(str(write(tmp_path / "min.yaml", minimal)))
    assert config.discovery == Discovery()
    assert config.discovery == Discovery(
        links=True, max_depth=1, strategy="breadth", namespaces=(0,)
    )
    assert dict(config.settings) == {}


def test_null_sections_mean_defaults(tmp_path: Path) -> None:
    text = VALID_TEXT.split("discovery:")[0] + "discovery:\nsettings:\n  # DOWNLOAD_DELAY: 3\n"
    config = load_source(str(write(tmp_path / "nulls.yaml", text)))
    assert config.discovery == Discovery()
    assert dict(config.settings) == {}


def test_partial_discovery_keeps_other_defaults(tmp_path: Path) -> None:
    document = with_("discovery", {"strategy": "depth"})
    config = load_source(str(write(tmp_path / "d.yaml", document)))
    assert config.discovery == Discovery(strategy="depth")


def test_duplicates_removed_in_order(tmp_path: Path) -> None:
    document = with_("seeds.titles", ["Yoda", "Han Solo", "Yoda", "yoda", "Han Solo"])
    document["discovery"]["namespaces"] = [0, 14, 0, 4, 14]
    config = load_source(str(write(tmp_path / "dups.yaml", document)))
    assert config.seeds.titles == ("Yoda", "Han Solo", "yoda")
    assert config.discovery.namespaces == (0, 14, 4)


def test_unicode_titles_and_255_bytes_accepted(tmp_path: Path) -> None:
    titles = ["Padmé Amidala", "ヨーダ", "a" * 255, "é" * 127]
    config = load_source(str(write(tmp_path / "u.yaml", with_("seeds.titles", titles))))
    assert config.seeds.titles == tuple(titles)


def test_settings_values_and_read_only(tmp_path: Path) -> None:
    document = with_(
        "settings",
        {
            "DOWNLOAD_DELAY": 0.5,
            "RETRY_HTTP_CODES": [429, 503],
            "DEFAULT_REQUEST_HEADERS": {"Accept": "application/json"},
            "HTTPCACHE_ENABLED": False,
            "LOG_FILE": None,
        },
    )
    config = load_source(str(write(tmp_path / "s.yaml", document)))
    assert config.settings["RETRY_HTTP_CODES"] == [429, 503]
    assert config.settings["DEFAULT_REQUEST_HEADERS"] == {"Accept": "application/json"}
    assert config.settings["LOG_FILE"] is None
    with pytest.raises(TypeError):
        config.settings["DOWNLOAD_DELAY"] = 3  # type: ignore[index]


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_source(str(write(tmp_path / "f.yaml", VALID)))
    with pytest.raises(AttributeError):
        config.name = "other"  # type: ignore[misc]


def test_http_url_and_depth_bounds_accepted(tmp_path: Path) -> None:
    document = with_("api_url", "http://localhost:8080/w/api.php")
    document["discovery"]["max_depth"] = 0
    config = load_source(str(write(tmp_path / "b.yaml", document)))
    assert config.api_url == "http://localhost:8080/w/api.php"
    assert config.discovery.max_depth == 0
    document["discovery"]["max_depth"] = 100
    assert load_source(str(write(tmp_path / "b.yaml", document))).discovery.max_depth == 100


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.yaml", b"\xef\xbb\xbf" + VALID_TEXT.encode())
    assert load_source(str(path)).name == "testwiki"


def test_user_agent_without_contact_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "ua.yaml", with_("user_agent", "HolocronScrapy/0.1"))
    with caplog.at_level(logging.WARNING, logger=sources.__name__):
        load_source(str(path))
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "no contact URL or e-mail" in caplog.records[0].getMessage()


def test_good_user_agent_does_not_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=sources.__name__):
        load_source(str(write(tmp_path / "ok.yaml", VALID)))
    assert caplog.records == []


@pytest.mark.parametrize(
    ("api_url", "user_agent", "fragment"),
    [
        ("https://en.wikipedia.org/w/api.php", "HolocronScrapy/0.1", "no contact URL or e-mail"),
        (
            "https://commons.wikimedia.org/w/api.php",
            "HolocronScrapy/0.1 (https://example.org/CHANGE-ME; CHANGE-ME@example.org)",
            "placeholder",
        ),
        ("https://www.wikidata.org/w/api.php", "Bot/1 (ops@example.com)", "placeholder"),
        ("https://fr.wiktionary.org/w/api.php", "Bot/1 (change-me)", "placeholder"),
        ("https://www.mediawiki.org/w/api.php", "Bot/1", "no contact"),
        ("https://EN.WIKIVOYAGE.ORG./w/api.php", "Bot/1", "no contact"),
    ],
)
def test_wikimedia_source_without_a_real_contact_is_refused(
    tmp_path: Path, api_url: str, user_agent: str, fragment: str
) -> None:
    document = with_("api_url", api_url)
    document["user_agent"] = user_agent
    path = write(tmp_path / "wm.yaml", document)
    with pytest.raises(SourceConfigError) as info:
        load_source(str(path))
    assert info.value.key == "user_agent"
    assert fragment in info.value.message
    assert "User-Agent policy (https://meta.wikimedia.org/wiki/User-Agent_policy)" in str(
        info.value
    )
    assert "Put your own URL or e-mail address in it" in info.value.message


@pytest.mark.parametrize(
    "api_url",
    [
        "https://en.wikipedia.org/w/api.php",
        "https://species.wikimedia.org/w/api.php",
        "https://en.wikisource.org/w/api.php",
    ],
)
def test_wikimedia_source_with_a_contact_loads(
    tmp_path: Path, api_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=sources.__name__):
        config = load_source(str(write(tmp_path / "wm.yaml", with_("api_url", api_url))))
    assert config.api_url == api_url
    assert caplog.records == []


@pytest.mark.parametrize(
    "api_url",
    [
        "https://starwars.fandom.com/api.php",
        "https://wikipedia.org.evil.test/w/api.php",
        "https://notwikipedia.org/w/api.php",
    ],
)
def test_other_hosts_only_warn_about_the_user_agent(
    tmp_path: Path, api_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    document = with_("api_url", api_url)
    document["user_agent"] = "HolocronScrapy/0.1"
    with caplog.at_level(logging.WARNING, logger=sources.__name__):
        load_source(str(write(tmp_path / "other.yaml", document)))
    assert ["no contact URL or e-mail" in r.getMessage() for r in caplog.records] == [True]


def test_opensearch_seeds_load(tmp_path: Path) -> None:
    document = with_("seeds", {"opensearch": ["luke", "Darth", "luke"]})
    config = load_source(str(write(tmp_path / "o.yaml", document)))
    assert config.seeds == Seeds(opensearch=("luke", "Darth"))
