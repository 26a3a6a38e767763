"""ResourceRecord: the canonical JSON, its hash, the lake document and the IngestRecords row."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import datetime

import pytest

from holocron_scrapy import items as items_module
from holocron_scrapy import model
from holocron_scrapy.items import ResourceRecord, canonical_json
from holocron_scrapy.model import IngestRow, WorkItem
from holocron_scrapy.store import state_store as store
from holocron_scrapy.store.records import ingest_params

FETCHED_AT = datetime(2026, 1, 2, 3, 4, 5)
ITEM = WorkItem(17, "mediawiki", "testwiki", "page", "Ahsoka Tano", 1, -1, 2, None)
PAYLOAD = {
    "title": "Ahsoka Tano",
    "pageid": 42,
    "links": [{"ns": 0, "title": "Anakin Skywalker"}, {"ns": 0, "title": "Bo-Katan Kryze"}],
    "extract": 'Togruta «Jedi» — “Snips” \\ "quoted" \n next line ✓ 🪐',
}


def record(payload: object = PAYLOAD, **changes: object) -> ResourceRecord:
    fields: dict[str, object] = {
        "work_item": ITEM,
        "resource_type": "page",
        "resource_id": "Ahsoka Tano",
        "payload": payload,
        "request_uri": "http://127.0.0.1:8091/api.php?action=query&titles=Ahsoka%20Tano",
        "request_headers": {"User-Agent": "HolocronScrapy/0.1 (tests)"},
        "status_code": 200,
        "response_headers": {"Content-Type": "application/json; charset=utf-8"},
        "fetched_at_utc": FETCHED_AT,
        "duration_ms": 250,
        "run_id": "0123456789abcdef0123456789abcdef",
        **changes,
    }
    return ResourceRecord(**fields)  # type: ignore[arg-type]


def test_canonical_json_sorts_keys_is_compact_and_keeps_unicode() -> None:
    assert canonical_json({"b": 1, "a": {"d": [2, 1], "c": "é ✓ 🪐"}}) == (
        '{"a":{"c":"é ✓ 🪐","d":[2,1]},"b":1}'
    )
    assert canonical_json({"a": 1, "b": 2}) == canonical_json({"b": 2, "a": 1})
    assert canonical_json(None) == "null"
    assert canonical_json('line\nbreak "q"') == '"line\\nbreak \\"q\\""'


def test_one_canonical_json_for_the_lake_the_table_and_the_hash() -> None:
    assert items_module.canonical_json is model.canonical_json
    assert store.canonical_json is model.canonical_json


def test_the_hash_is_sha256_of_the_canonical_payload_whatever_the_key_order() -> None:
    reordered = dict(reversed(list(PAYLOAD.items())))
    expected = hashlib.sha256(canonical_json(PAYLOAD).encode("utf-8")).hexdigest()
    assert record().payload_json == canonical_json(PAYLOAD)
    assert record().hash_sha256 == expected
    assert record(reordered).hash_sha256 == expected
    assert record({**PAYLOAD, "pageid": 43}).hash_sha256 != expected


def test_a_record_is_unchanged_when_its_work_item_holds_its_hash() -> None:
    digest = record().hash_sha256
    assert not record().unchanged  # never ingested
    assert record(work_item=dataclasses.replace(ITEM, content_hash=digest)).unchanged
    assert not record(work_item=dataclasses.replace(ITEM, content_hash="0" * 64)).unchanged


@pytest.mark.parametrize(
    "payload",
    [PAYLOAD, None, [1, "two", {"z": None, "a": 1.5}], "a string }\n{ with braces", 0, {}],
    ids=["page", "null", "list", "string", "zero", "empty"],
)
def test_the_lake_document_is_json_holding_the_payload_as_hashed(payload: object) -> None:
    rec = record(payload)
    data = rec.lake_document()

    document = json.loads(data.decode("utf-8"))
    assert document == {
        "source_system": "mediawiki",
        "source_name": "testwiki",
        "resource_type": "page",
        "resource_id": "Ahsoka Tano",
        "request_uri": "http://127.0.0.1:8091/api.php?action=query&titles=Ahsoka%20Tano",
        "request_method": "GET",
        "status_code": 200,
        "fetched_at_utc": "2026-01-02T03:04:05Z",
        "payload_format": "json",
        "hash_sha256": rec.hash_sha256,
        "run_id": "0123456789abcdef0123456789abcdef",
        "work_item_id": 17,
        "attempt": 2,
        "duration_ms": 250,
        "payload": payload,
    }
    # The payload is embedded byte for byte as hashed, so the file can be audited.
    assert data.endswith(b'"payload": ' + canonical_json(payload).encode("utf-8") + b"\n}\n")
    assert (
        hashlib.sha256(canonical_json(document["payload"]).encode()).hexdigest()
        == (document["hash_sha256"])
    )


def test_the_lake_document_keeps_unicode_unescaped() -> None:
    data = record(resource_id="Bo-Katan «Kryze»").lake_document()
    assert "Bo-Katan «Kryze»".encode() in data
    assert "“Snips”".encode() in data
    assert b"\\u" not in data


def test_ingest_row_takes_the_identity_from_the_work_item() -> None:
    assert record().ingest_row() == IngestRow(
        source_system="mediawiki",
        source_name="testwiki",
        resource_type="page",
        resource_id="Ahsoka Tano",
        request_uri="http://127.0.0.1:8091/api.php?action=query&titles=Ahsoka%20Tano",
        request_method="GET",
        request_headers={"User-Agent": "HolocronScrapy/0.1 (tests)"},
        status_code=200,
        response_headers={"Content-Type": "application/json; charset=utf-8"},
        payload=PAYLOAD,
        fetched_at_utc=FETCHED_AT,
        hash_sha256=record().hash_sha256,
        run_id="0123456789abcdef0123456789abcdef",
        work_item_id=17,
        attempt=2,
        duration_ms=250,
        error_message=None,
        payload_json=canonical_json(PAYLOAD),
    )


def test_a_lone_surrogate_is_stored_as_its_escape() -> None:
    # json.loads('"\\ud800"') gives a str no UTF-8 encoder accepts: written as its escape.
    lone = record({"title": json.loads('"\\ud800 x"')})
    assert lone.payload_json == '{"title":"\\ud800 x"}'
    assert json.loads(lone.payload_json) == lone.payload
    assert json.loads(lone.lake_document())["payload"] == lone.payload
    assert lone.hash_sha256 == hashlib.sha256(b'{"title":"\\ud800 x"}').hexdigest()


def test_a_raw_payload_is_stored_and_hashed_as_it_came() -> None:
    text = '{"n": 1e400, "k": 1, "k": 2}\n'
    raw = record(json.loads(text), raw_payload=text)
    assert raw.payload_json == text
    assert raw.hash_sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert raw.lake_document().endswith(f'"payload": {text}\n}}\n'.encode())
    assert raw.ingest_row().payload_json == text


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (PAYLOAD, None),
        (
            {"big": 2**70, "small": -(2**64)},
            b'{"big":1180591620717411303424,"small":-18446744073709551616}',
        ),
        ({"x": float("nan"), "y": [float("inf"), None]}, b'{"x":NaN,"y":[Infinity,null]}'),
        ({"tiny": 1e-7, "f": 1.5e-5, "e": 1e16}, b'{"e":1e+16,"f":1.5e-05,"tiny":1e-07}'),
        ({2: "b", 10: "a"}, b'{"2":"b","10":"a"}'),
    ],
    ids=["page", "big-ints", "nan-inf", "small-floats", "int-keys"],
)
def test_one_serialization_for_the_hash_the_lake_file_and_the_row(
    payload: object, expected: bytes | None
) -> None:
    """The bytes are the standard library's, also where orjson cannot give them; the hash, the
    lake file and the row all hold those very bytes."""
    rec = record(payload)
    old = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    assert rec.payload_bytes == old == (expected or old)
    assert rec.hash_sha256 == hashlib.sha256(old).hexdigest()
    assert rec.lake_document().endswith(b'"payload": ' + old + b"\n}\n")
    assert rec.ingest_row().payload_json == old.decode()
    assert ingest_params(rec.ingest_row())["payload"] == old.decode()
