"""The pages of a batch query merged across its continuation responses, and title resolution
(normalization, redirects) with its identity checks: a pure data structure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_MAX_REDIRECT_HOPS = 10


@dataclass
class PageSet:
    """The pages of one batch query, merged across its continuation responses.

    With several props in one query, each continues on its own (``"continue":
    "||revisions|info"`` while links go on): later responses carry more ``links`` and no
    ``revisions``. Pages are merged by page id (by title for missing and invalid ones): list
    values are concatenated in response order, other keys keep their first value.

    An answer must never mix two pages: one page id given for two titles, one title given two
    page ids, or one title normalized or redirected to two targets is an identity conflict.
    Nothing is merged across it; :meth:`conflict` names it for each title concerned.
    """

    pages: dict[str, dict[str, Any]] = field(default_factory=dict)
    normalized: dict[str, str] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    interwiki: set[str] = field(default_factory=set)
    conflicts: dict[str, str] = field(default_factory=dict)  # title -> the conflict
    _keys: dict[str, str] = field(default_factory=dict)  # title -> its page's key

    def add(self, data: dict[str, Any]) -> None:
        query = data.get("query") or {}
        for entry in query.get("normalized", []):
            self._map(self.normalized, "normalized", entry["from"], entry["to"])
        for entry in query.get("redirects", []):
            self._map(self.redirects, "redirected", entry["from"], entry["to"])
        for entry in query.get("interwiki", []):
            self.interwiki.add(entry["title"])
        for page in query.get("pages", []):
            title = page.get("title")
            key = f"id:{page['pageid']}" if "pageid" in page else f"title:{title}"
            known = self._keys.setdefault(str(title), key)
            if known != key:
                self._conflict(f"{title!r} answered as {_named(known)} and {_named(key)}", title)
            merged = self.pages.get(key)
            if merged is None:
                self.pages[key] = dict(page)
                continue
            if merged.get("title") != title:
                first = merged.get("title")
                self._conflict(f"{_named(key)} answered for {first!r} and {title!r}", first, title)
                continue  # never merged into the other title's page
            for name, value in page.items():
                if isinstance(value, list) and isinstance(merged.get(name), list):
                    merged[name] = merged[name] + value
                else:
                    merged.setdefault(name, value)

    def _map(self, mapping: dict[str, str], how: str, source: str, target: str) -> None:
        known = mapping.setdefault(source, target)
        if known != target:
            self._conflict(f"{source!r} {how} to both {known!r} and {target!r}", source)

    def _conflict(self, why: str, *titles: Any) -> None:
        for title in titles:
            self.conflicts.setdefault(str(title), why)

    def conflict(self, *titles: str) -> str | None:
        """The identity conflict of the answer about the first of ``titles`` that has one."""
        for title in titles:
            if title in self.conflicts:
                return f"identity conflict in the API's answer: {self.conflicts[title]}"
        return None

    def resolve(self, title: str) -> str:
        """The title that ``title`` stands for after normalization and redirects."""
        title = self.normalized.get(title, title)
        for _ in range(_MAX_REDIRECT_HOPS):
            target = self.redirects.get(title)
            if target is None:
                break
            title = target
        return title

    def page(self, title: str) -> dict[str, Any] | None:
        for page in self.pages.values():
            if page.get("title") == title:
                return page
        return None


def _named(key: str) -> str:
    kind, _, value = key.partition(":")
    return f"page id {value}" if kind == "id" else "a page without id"
