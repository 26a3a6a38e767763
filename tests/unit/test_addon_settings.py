"""What the add-on sets by itself, for projects other than this one: the asyncio reactor at
add-on priority (a project's own choice wins, and one the components cannot run on is refused)."""

from __future__ import annotations

import pytest
from scrapy.settings import SETTINGS_PRIORITIES, Settings

from holocron_scrapy import settings as project_settings
from holocron_scrapy.addon import ASYNCIO_REACTOR, HolocronAddon, HolocronAddonError


def test_the_addon_sets_the_asyncio_reactor_at_addon_priority() -> None:
    settings = Settings()
    HolocronAddon().update_settings(settings)
    assert settings["TWISTED_REACTOR"] == ASYNCIO_REACTOR
    assert settings.getpriority("TWISTED_REACTOR") == SETTINGS_PRIORITIES["addon"]
    # This project's settings.py does not set it: the add-on is what the crawls rely on.
    assert not hasattr(project_settings, "TWISTED_REACTOR")


def test_a_project_setting_the_asyncio_reactor_itself_is_accepted() -> None:
    settings = Settings({"TWISTED_REACTOR": ASYNCIO_REACTOR}, priority="project")
    HolocronAddon().update_settings(settings)
    assert settings.getpriority("TWISTED_REACTOR") == SETTINGS_PRIORITIES["project"]


@pytest.mark.parametrize(
    "reactor", [None, "twisted.internet.epollreactor.EPollReactor"], ids=["none", "epoll"]
)
def test_a_project_with_another_reactor_is_refused(reactor: str | None) -> None:
    settings = Settings({"TWISTED_REACTOR": reactor}, priority="project")
    with pytest.raises(HolocronAddonError, match=r"the holocron add-on needs 'twisted\.internet"):
        HolocronAddon().update_settings(settings)
