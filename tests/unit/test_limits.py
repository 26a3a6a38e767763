"""holocron_scrapy.store.limits: values fitted to their columns, with the lengths of the schema."""

from __future__ import annotations

import hashlib
import json

import pytest
import sqlalchemy as sa

from holocron_scrapy.http.api import discovered_url, resource_key
from holocron_scrapy.model import NewWorkItem, Outcome, Status, canonical_json
from holocron_scrapy.store import limits
from holocron_scrapy.store.schema import build_tables
from holocron_scrapy.store.split_writes import refusal_reason, refused_by_database


def test_lengths_are_read_from_the_schema() -> None:
    tables = build_tables("ingest")
    assert limits.column_length("work_items", "version") == tables.work_items.c.version.type.length
    assert limits.resource_id_length() == tables.work_items.c.resource_id.type.length == 2000
    with pytest.raises(TypeError, match="cursor has no length"):
        limits.column_length("work_items", "cursor")


def test_an_identity_that_fits_is_kept_as_it_is() -> None:
    value = "Ünïcödé " + "x" * 1992  # exactly 2,000
    assert limits.fit_resource_id(value) == value
    item = NewWorkItem("http", "api", "resource", value)
    assert limits.fit_work_item(item) is item
    assert not limits.is_shortened(value)


def test_a_long_identity_is_shortened_stably_to_the_column_length() -> None:
    url = "https://api.example.org/items?q=" + "a" * 4968  # 5,000 characters
    fitted = limits.fit_resource_id(url)
    assert len(fitted) == 2000
    assert fitted == url[:1928] + "…sha256:" + hashlib.sha256(url.encode()).hexdigest()
    assert limits.fit_resource_id(url) == fitted  # the same key every time: dedupe holds
    assert limits.fit_resource_id(url + "b") != fitted
    assert limits.fit_resource_id(fitted) == fitted  # fitting twice changes nothing
    assert limits.is_shortened(fitted)
    item = limits.fit_work_item(NewWorkItem("http", "api", "resource", url, depth=2))
    assert (item.resource_id, item.depth) == (fitted, 2)


def test_lengths_count_utf16_code_units_as_sql_server_does() -> None:
    emoji = "😀" * 1001  # 1,001 characters, 2,002 UTF-16 code units
    fitted = limits.fit_resource_id(emoji)
    assert limits.utf16_units(fitted) == 2000
    assert fitted.startswith("😀" * 964)
    assert limits.is_shortened(fitted)


def test_nul_and_lone_surrogates_are_escaped() -> None:
    assert limits.clean_text("a\x00b\ud800c\udfffd") == "a\\x00b\\ud800c\\udfffd"
    assert limits.clean_text("Ünïcödé 😀") == "Ünïcödé 😀"
    title = "Nul\x00 and lone \udc00"
    item = limits.fit_work_item(NewWorkItem("mediawiki", "w", "page", title))
    assert item.resource_id == "Nul\\x00 and lone \\udc00"
    item.dedupe_key.encode("utf-8")  # encodable


def test_a_long_version_is_replaced_by_its_digest() -> None:
    etag = "etag:" + '"' + "e" * 193 + '"'  # a 200-character ETag
    digest = hashlib.sha256(etag.encode()).hexdigest()
    assert limits.fit_version(etag) == f"sha256:{digest[:57]}"
    assert limits.fit_version("etag:short") == "etag:short"
    assert limits.fit_version(None) is None
    outcome = Outcome(7, Status.COMPLETED, content_hash="a" * 64, version=etag)
    fitted = limits.fit_outcome(outcome)
    assert (fitted.version, fitted.content_hash) == (f"sha256:{digest[:57]}", "a" * 64)
    plain = Outcome(7, Status.FAILED, "HTTP 503")
    assert limits.fit_outcome(plain) is plain
    assert limits.fit_outcome(Outcome(7, Status.FAILED, "x\x00")).error_message == "x\\x00"


def test_canonical_json_keeps_lone_surrogates_as_json_escapes() -> None:
    payload = {"title": "lone \ud800", "k\udfff": ["\x00"]}
    text = canonical_json(payload)
    assert text == '{"k\\udfff":["\\u0000"],"title":"lone \\ud800"}'
    assert json.loads(text) == payload
    text.encode("utf-8")  # what the lake and the hash need
    assert canonical_json({"t": "😀 ü"}) == '{"t":"😀 ü"}'


def test_a_discovered_url_with_a_lone_surrogate_becomes_a_request_key() -> None:
    # JSON can carry "\ud800"; as it is, no URL encoding (nor the queue) takes it.
    url = discovered_url("/api/a\ud800b?q=\x00", None, "https://api.example.org/")
    assert url == "https://api.example.org/api/a\\ud800b?q=\\x00"
    # (a backslash in a path reads as "/", as browsers read it)
    assert resource_key(url) == "https://api.example.org/api/a/ud800b?q=%5Cx00"


def test_what_counts_as_a_refusal_and_how_it_is_told() -> None:
    def wrapped(kind: type[sa.exc.DBAPIError], message: str) -> sa.exc.DBAPIError:
        return kind("INSERT INTO t VALUES (%(p)s)", {"p": "s3cret"}, ValueError(message))

    refused = wrapped(sa.exc.DataError, "bad \x1b[31mvalue\t\ud800\nDETAIL: Key (p)=(s3cret)")
    assert refused_by_database(refused)
    assert refused_by_database(wrapped(sa.exc.IntegrityError, "duplicate key"))
    assert refused_by_database(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates"))
    assert not refused_by_database(wrapped(sa.exc.OperationalError, "server closed"))
    assert not refused_by_database(wrapped(sa.exc.ProgrammingError, "no such table"))
    # One line, no SQL, no parameters, control characters escaped, at most 500 characters.
    assert refusal_reason(refused) == "ValueError: bad \\x1b[31mvalue\\t\\ud800"
    assert len(refusal_reason(ValueError("x" * 600))) == 500
