"""A source's secrets (issue 10): where its headers and params may go, and their values kept out
of everything a crawl stores or logs. Pure functions of the source file; no Scrapy, no I/O.

* The source's ``headers`` and ``params`` are sent only to its own hosts: the host of
  ``base_url`` and of each seed. A request elsewhere (a next link, a redirect, a discovered URL
  on another allowed domain) goes without them.
* The source's params are no part of a resource's identity: they are taken out of every URL the
  crawl keeps (resource ids, cursors, request URIs), whether the crawl or the server put them
  there, and added again when a request is sent to an own host.
* Secret values (headers and params filled from the environment, and those whose name says
  secret: ``api_key``, ``X-Token``, ``Authorization``…; values of 4 characters or more) are
  replaced by ``***`` in payloads, messages and log lines, as they are and percent-encoded.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

from holocron_scrapy.http.api import SENSITIVE_HEADERS

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

MASK = "***"
#: Names of headers and params whose values are secrets wherever they come from.
SECRET_NAME_RE = re.compile(
    r"key|token|secret|passw|auth|signature|session|cookie|credential", re.IGNORECASE
)
#: Shorter values are not redacted (they would mask ordinary text).
MIN_SECRET_LENGTH = 4


@dataclass(frozen=True, slots=True)
class SourceSecrets:
    hosts: frozenset[str]  # lower-case host names that get the source's headers and params
    param_names: frozenset[str]
    values: tuple[str, ...]  # the secret values and their encoded forms, longest first

    @classmethod
    def of(
        cls,
        *,
        urls: Iterable[str],
        headers: Mapping[str, str],
        params: Mapping[str, str],
        secret_headers: Iterable[str] = (),
        secret_params: Iterable[str] = (),
    ) -> SourceSecrets:
        hosts = frozenset((urlsplit(u).hostname or "").lower() for u in urls) - {""}
        named_headers = SENSITIVE_HEADERS | {n.lower() for n in secret_headers}
        named_params = set(secret_params)
        raw = [v for n, v in headers.items() if n.lower() in named_headers or _secret(n)]
        raw += [v for n, v in params.items() if n in named_params or _secret(n)]
        forms = {f for v in raw if len(v) >= MIN_SECRET_LENGTH for f in _forms(v)}
        return cls(hosts, frozenset(params), tuple(sorted(forms, key=len, reverse=True)))

    def own(self, url: str) -> bool:
        """Whether ``url`` is on one of the source's own hosts (which get its secrets)."""
        return (urlsplit(url).hostname or "").lower() in self.hosts

    def strip_params(self, url: str) -> str:
        """``url`` without the source's params (its query otherwise untouched)."""
        parts = urlsplit(url)
        if not self.param_names or not parts.query:
            return url
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if k not in self.param_names]
        if len(kept) == len(pairs):
            return url
        return urlunsplit(parts._replace(query=urlencode(kept, quote_via=quote)))

    def redact(self, text: str) -> str:
        """``text`` with every secret value replaced by :data:`MASK`."""
        for value in self.values:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def redact_json(self, data: Any) -> Any:
        """A JSON document with every secret value in its strings (keys too) masked; the same
        object when there is nothing to mask."""
        if not self.values:
            return data
        if isinstance(data, str):
            return self.redact(data)
        if isinstance(data, list):
            return [self.redact_json(v) for v in data]
        if isinstance(data, dict):
            return {self.redact(str(k)): self.redact_json(v) for k, v in data.items()}
        return data


def _secret(name: str) -> bool:
    return bool(SECRET_NAME_RE.search(name))


def _forms(value: str) -> set[str]:
    """A value as it may appear: as it is, percent-encoded, form-encoded."""
    return {value, quote(value, safe=""), quote_plus(value, safe=""), quote(value)}


class RedactingFilter(logging.Filter):
    """A log filter that masks secret values in every record's message (Scrapy's own lines
    too, which name URLs as they were requested)."""

    def __init__(self, secrets: SourceSecrets) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets.values:
            message = record.getMessage()
            redacted = self.secrets.redact(message)
            if redacted != message:
                record.msg, record.args = redacted, None
        return True
