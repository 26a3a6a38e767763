"""Text a server sent, made safe for one log line or message (issue 10): control characters
(newlines, ANSI escapes, C1 controls) and the invisible characters that reorder or split a line
are written as escapes, so a server cannot forge log lines or hide text; long text is cut."""

from __future__ import annotations

import re

_UNPRINTABLE_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
#: The longest text kept from a server in one message.
MAX_SHOWN = 1000


def printable(text: object, limit: int = MAX_SHOWN) -> str:
    """``text`` with every unprintable character as its escape (``\\n``, ``\\x1b``,
    ``\\u202e``), cut at ``limit`` characters."""
    shown = _UNPRINTABLE_RE.sub(
        lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text)
    )
    return shown if len(shown) <= limit else f"{shown[:limit]}…"
