"""The operator's contact, given once for every source: ``-s HOLOCRON_CONTACT=you@your.domain`` or
the environment variable ``HOLOCRON_CONTACT``, merged into each source file's ``user_agent``.

Wikimedia's User-Agent policy asks every client for a way to reach its operator; the shipped
source files hold a placeholder contact
(``HolocronScrapy/0.1 (https://example.org/CHANGE-ME; CHANGE-ME@example.org)``).
The contact replaces a parenthesized comment of the User-Agent that holds a placeholder, or is
appended as a comment of its own (``HolocronScrapy/0.1 (you@your.domain)``); a User-Agent that
already names it is left as it is.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from holocron_scrapy import defaults

if TYPE_CHECKING:
    from collections.abc import Mapping

    from scrapy.settings import BaseSettings

CONTACT_SETTING = "HOLOCRON_CONTACT"  # a Scrapy setting, or an environment variable
#: what the shipped files and the README show in place of a contact
PLACEHOLDER_RE = re.compile(r"example\.(?:org|com|net)\b|CHANGE[-_ ]?ME|YOUR[-_]", re.IGNORECASE)
HOW_TO_GIVE = (
    f"give yours with -s {CONTACT_SETTING}=you@your.domain (or a URL), or the environment "
    f"variable {CONTACT_SETTING}"
)
#: a User-Agent's placeholder contact, as the shipped source files hold it
PLACEHOLDER_CONTACT_RE = re.compile(r"example\.(?:org|com|net)\b|CHANGE[-_ ]?ME", re.IGNORECASE)
_COMMENT_RE = re.compile(r"\(([^()]*)\)")
_MAX_LENGTH = 200


class ContactError(ValueError):
    """A ``HOLOCRON_CONTACT`` that cannot be used; the message says why and how to give one."""


def validate_contact(contact: str) -> str:
    """``contact`` stripped; ``ContactError`` unless it is an e-mail address or a URL of the
    operator (not a placeholder, no parentheses or control characters)."""
    value = contact.strip()
    name = f"{CONTACT_SETTING}={value!r}"
    if "@" not in value and "://" not in value:
        raise ContactError(f"{name} is neither an e-mail address nor a URL; {HOW_TO_GIVE}")
    if PLACEHOLDER_RE.search(value):
        raise ContactError(f"{name} is a placeholder, not your contact; {HOW_TO_GIVE}")
    if len(value) > _MAX_LENGTH:
        raise ContactError(f"{name[:60]}…: longer than {_MAX_LENGTH} characters")
    if any(c in "()" or not c.isprintable() for c in value):
        raise ContactError(f"{name}: parentheses and control characters are not allowed")
    return value


def resolve_contact(setting: str | None, environ: Mapping[str, str]) -> str | None:
    """The validated contact of the setting, else of the environment; ``None`` when neither
    gives one."""
    for value in (setting, environ.get(CONTACT_SETTING)):
        if value is not None and str(value).strip():
            return validate_contact(str(value))
    return None


def contact_from_settings(settings: BaseSettings) -> str | None:
    """``HOLOCRON_CONTACT`` of the crawl's settings or of the environment (``ContactError``)."""
    return resolve_contact(settings.get("HOLOCRON_CONTACT", defaults.CONTACT), os.environ)


def merge_contact(user_agent: str, contact: str | None) -> str:
    """``user_agent`` with ``contact`` in it (see the module's documentation)."""
    if not contact or contact in user_agent:
        return user_agent
    for match in _COMMENT_RE.finditer(user_agent):
        if PLACEHOLDER_RE.search(match.group(1)):
            return f"{user_agent[: match.start()]}({contact}){user_agent[match.end() :]}"
    return f"{user_agent.rstrip()} ({contact})"


def contact_problem(user_agent: str) -> str | None:
    """Why ``user_agent`` gives no way to reach its operator, or ``None`` when it does."""
    if PLACEHOLDER_CONTACT_RE.search(user_agent):
        return "still holds the shipped placeholder contact"
    if "@" not in user_agent and "://" not in user_agent:
        return "has no contact URL or e-mail address"
    return None
