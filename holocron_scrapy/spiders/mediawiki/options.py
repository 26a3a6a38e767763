"""How the mediawiki spider asks a wiki's API: the settings its parts build requests with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ApiOptions:
    api_url: str
    maxlag: float
    url_limit: int  # URLLENGTH_LIMIT: longer queries are POSTed (mediawiki.api_request)
    list_limit: str
    titles_per_request: int
    revisions_content: bool
