"""Values fitted to the columns that store them, where they enter the crawl state.

A value the database cannot store must not reach it: one such row used to fail its batch again
and again. So the frontier fits what it is handed (discoveries, seeds, outcomes) and a record
fits its row, with these rules:

* **Text** (every value below, and URLs and error messages): a NUL and a lone surrogate are
  written as the backslash escapes Python shows for them (``\\x00``, ``\\ud800``):
  PostgreSQL refuses NUL in text, and no driver can encode a lone surrogate (SQLite's and
  psycopg raise ``UnicodeEncodeError``). JSON text needs nothing of this: NUL is escaped by
  JSON, and :func:`~holocron_scrapy.model.canonical_json` escapes lone surrogates as JSON does
  (``\\ud800``), which reads back as the same value.
* **Identities** (``resource_id``, and so the dedupe key): one longer than its column is kept
  as a prefix and ``…sha256:`` with the hex digest of the whole value, exactly the column's
  length: the same value always gives the same key, so deduplication still holds. A work item
  so shortened cannot be fetched by its id: a spider that requests its id fails it, for good
  (:func:`is_shortened`). A record keeps the whole value in its payload.
* **Versions** (``work_items.version``: a page's revision, ``etag:…``): one that does not fit is
  replaced by ``sha256:`` and as many hex digits of its digest as fit. It still tells a change
  from no change, but it can no longer be sent back as a validator (``If-None-Match``): a
  ``recrawl=changed`` then fetches the resource again, and an unchanged payload writes no row.

Lengths come from :mod:`holocron_scrapy.store.schema` (each column's ``String(length)``), counted
in UTF-16 code units: SQL Server's ``NVARCHAR(n)`` counts those, PostgreSQL counts characters,
which are never more.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from functools import cache
from typing import TYPE_CHECKING

from holocron_scrapy.store.schema import build_tables

if TYPE_CHECKING:
    from holocron_scrapy.model import IngestRow, NewWorkItem, Outcome

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_HASH_MARK = "…sha256:"
_SHORTENED = re.compile(re.escape(_HASH_MARK) + r"[0-9a-f]{64}\Z")


@cache
def column_length(table: str, column: str) -> int:
    """The length of a ``String(length)`` column of the state tables (``table`` as
    :class:`~holocron_scrapy.store.schema.Tables` names it: ``work_items``, ``ingest_records``)."""
    length = getattr(getattr(build_tables(None), table).c[column].type, "length", None)
    if not isinstance(length, int):
        raise TypeError(f"{table}.{column} has no length")
    return length


def resource_id_length() -> int:
    """The longest ``resource_id`` both tables store."""
    return min(
        column_length("work_items", "resource_id"), column_length("ingest_records", "resource_id")
    )


def utf16_units(value: str) -> int:
    """The length of ``value`` as SQL Server counts it (a character beyond U+FFFF is two)."""
    return len(value) + sum(1 for char in value if ord(char) > 0xFFFF)


def clean_text(value: str) -> str:
    """``value`` with NUL and lone surrogates written as backslash escapes."""
    if "\x00" not in value and (value.isascii() or not _UNSTORABLE.search(value)):
        return value
    return _UNSTORABLE.sub(lambda m: repr(m.group())[1:-1], value)


def _cut(value: str, units: int) -> str:
    """The longest prefix of ``value`` of at most ``units`` UTF-16 code units."""
    used = 0
    for index, char in enumerate(value):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > units:
            return value[:index]
    return value


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def fit_identity(value: str, length: int) -> str:
    """``value`` cleaned, and if longer than ``length`` its stable shortened form."""
    value = clean_text(value)
    if len(value) <= length // 2 or utf16_units(value) <= length:
        return value
    tail = f"{_HASH_MARK}{_digest(value)}"
    return _cut(value, length - len(tail)) + tail


def fit_resource_id(value: str) -> str:
    return fit_identity(value, resource_id_length())


def is_shortened(resource_id: str) -> bool:
    """Whether ``resource_id`` is the shortened form of a longer one (see :func:`fit_identity`)."""
    return bool(_SHORTENED.search(resource_id))


def fit_version(version: str | None) -> str | None:
    """``version`` cleaned, or its digest when it does not fit ``work_items.version``."""
    if version is None:
        return None
    version = clean_text(version)
    length = column_length("work_items", "version")
    if utf16_units(version) <= length:
        return version
    return f"sha256:{_digest(version)}"[:length]


def fit_work_item(item: NewWorkItem) -> NewWorkItem:
    """``item`` with a storable ``resource_id`` (the same object when it was one)."""
    resource_id = fit_resource_id(item.resource_id)
    if resource_id == item.resource_id:
        return item
    return dataclasses.replace(item, resource_id=resource_id)


def fit_outcome(outcome: Outcome) -> Outcome:
    """``outcome`` with a storable version and error message (the same object when it had
    them; the store truncates long messages)."""
    version = fit_version(outcome.version)
    message = None if outcome.error_message is None else clean_text(outcome.error_message)
    if version == outcome.version and message == outcome.error_message:
        return outcome
    return dataclasses.replace(outcome, version=version, error_message=message)


def fit_row(row: IngestRow) -> IngestRow:
    """``row`` with a storable ``resource_id``, request URI and error message (in place)."""
    row.resource_id = fit_resource_id(row.resource_id)
    row.request_uri = clean_text(row.request_uri)
    if row.error_message is not None:
        row.error_message = clean_text(row.error_message)
    return row
