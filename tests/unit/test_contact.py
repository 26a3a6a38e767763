"""The operator's contact from ``-s HOLOCRON_CONTACT=…`` or the environment, merged into the
source's User-Agent; the README's first command with its placeholder says how to give it."""

from __future__ import annotations

from pathlib import Path

import pytest
from scrapy.crawler import Crawler
from scrapy.exceptions import UsageError
from scrapy.settings import Settings

from holocron_scrapy.config.contact import ContactError, merge_contact, resolve_contact
from holocron_scrapy.config.sources import SourceConfigError, load_source
from holocron_scrapy.spiders.http import HttpSpider
from holocron_scrapy.spiders.mediawiki import MediaWikiSpider
from tests.unit.conftest import base_settings
from tests.unit.test_addon_and_command import error_lines, scrapy_crawl

REPO_ROOT = Path(__file__).resolve().parents[2]
HOW = "-s HOLOCRON_CONTACT=you@your.domain (or a URL), or the environment variable"


@pytest.mark.parametrize(
    ("user_agent", "contact", "merged"),
    [
        pytest.param(
            "HolocronScrapy/0.1 (https://example.org/CHANGE-ME; CHANGE-ME@example.org)",
            "ops@holocron.test",
            "HolocronScrapy/0.1 (ops@holocron.test)",
            id="replaces-the-placeholder-comment",
        ),
        pytest.param(
            "Bot/2 (+https://bot.test) (CHANGE-ME) libfoo/1",
            "https://holocron.test/contact",
            "Bot/2 (+https://bot.test) (https://holocron.test/contact) libfoo/1",
            id="only-the-placeholder-comment",
        ),
        pytest.param("Bot/1", "ops@holocron.test", "Bot/1 (ops@holocron.test)", id="appended"),
        pytest.param("Bot/1 (ops@holocron.test)", "ops@holocron.test", "Bot/1 (ops@holocron.test)"),
        pytest.param("Bot/1 (me@mine.test)", None, "Bot/1 (me@mine.test)", id="no-contact"),
    ],
)
def test_the_contact_is_merged_into_the_user_agent(
    user_agent: str, contact: str | None, merged: str
) -> None:
    assert merge_contact(user_agent, contact) == merged


@pytest.mark.parametrize(
    ("contact", "problem"),
    [
        ("YOUR-EMAIL@example.org", "is a placeholder, not your contact"),
        ("you@example.org", "is a placeholder, not your contact"),
        ("nobody", "is neither an e-mail address nor a URL"),
        ("a(b)@holocron.test", "parentheses and control characters are not allowed"),
        ("ops@holocron.test\r\nX-Evil: 1", "parentheses and control characters are not allowed"),
    ],
)
def test_a_contact_that_reaches_nobody_is_refused(contact: str, problem: str) -> None:
    with pytest.raises(ContactError, match=problem.replace("(", r"\(")):
        resolve_contact(contact, {})


def test_the_setting_comes_before_the_environment() -> None:
    env = {"HOLOCRON_CONTACT": " env@holocron.test "}
    assert resolve_contact(None, env) == "env@holocron.test"
    assert resolve_contact("cli@holocron.test", env) == "cli@holocron.test"
    assert resolve_contact(None, {}) is None
    assert resolve_contact("  ", {"HOLOCRON_CONTACT": ""}) is None


def test_the_shipped_wikipedia_source_needs_a_contact_and_says_how_to_give_it() -> None:
    with pytest.raises(SourceConfigError) as info:
        load_source("wikipedia")
    assert info.value.key == "user_agent"
    assert HOW in info.value.message
    config = load_source("wikipedia", contact="ops@holocron.test")
    assert config.user_agent == "HolocronScrapy/0.1 (ops@holocron.test)"


@pytest.mark.parametrize("spider", [MediaWikiSpider, HttpSpider])
@pytest.mark.parametrize("where", ["setting", "environment"])
def test_the_crawl_sends_the_contact_in_its_user_agent(
    spider: type[MediaWikiSpider | HttpSpider],
    where: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = "wikipedia" if spider is MediaWikiSpider else "quotes-html"
    settings = base_settings(tmp_path)
    if where == "setting":
        settings["HOLOCRON_CONTACT"] = "ops@holocron.test"
    else:
        monkeypatch.setenv("HOLOCRON_CONTACT", "ops@holocron.test")
    crawler = Crawler(spider, Settings(settings))
    spider.from_crawler(crawler, source=source)  # as Crawler.crawl() builds it
    crawler._apply_settings()
    assert crawler.settings["USER_AGENT"] == "HolocronScrapy/0.1 (ops@holocron.test)"


def test_a_placeholder_contact_is_a_usage_error_for_the_spider(tmp_path: Path) -> None:
    settings = {**base_settings(tmp_path), "HOLOCRON_CONTACT": "you@example.org"}
    crawler = Crawler(MediaWikiSpider, Settings(settings))
    with pytest.raises(UsageError, match="is a placeholder, not your contact"):
        MediaWikiSpider.from_crawler(crawler, source="wikipedia")


def test_the_readme_first_command_with_its_placeholder_says_how_to_give_the_contact(
    tmp_path: Path,
) -> None:
    readme = (REPO_ROOT / "README.md").read_text("utf-8")
    command = (
        "scrapy crawl mediawiki -a source=wikipedia -s HOLOCRON_CONTACT=YOUR-EMAIL@example.org"
    )
    assert command in readme.split("## What a crawl does")[0]
    state = tmp_path / "state"
    result = scrapy_crawl(command.split()[3:], f"sqlite:///{state / 's.db'}")
    assert result.returncode == 2, result.stderr
    [line] = error_lines(result)
    assert line.startswith(
        "scrapy: error: HOLOCRON_CONTACT='YOUR-EMAIL@example.org' is a placeholder, not your "
        f"contact; give yours with {HOW} HOLOCRON_CONTACT"
    ), line
    assert not state.exists()
    # Without any contact, the shipped file is refused naming the same two ways.
    result = scrapy_crawl(command.split()[3:5], f"sqlite:///{state / 's.db'}")
    assert result.returncode == 2, result.stderr
    [line] = error_lines(result)
    assert "wikipedia.yaml: user_agent: " in line
    assert HOW in line
