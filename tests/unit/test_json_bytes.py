"""holocron_scrapy.json_bytes: orjson gives the bytes (and values) the standard library gave,
over recorded MediaWiki answers and a table of edge cases, so that record hashes never change."""

from __future__ import annotations

import json
import math
import random
import struct
from pathlib import Path
from typing import Any

import pytest
import yaml

from holocron_scrapy import json_bytes
from holocron_scrapy.model import canonical_json

CASSETTES = Path(__file__).resolve().parent.parent / "fixtures" / "cassettes"


def old_canonical(obj: Any) -> bytes:
    """canonical_json as it was before orjson (commit 25000a0), kept here verbatim."""
    import re

    text = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    if not text.isascii() and re.search("[\ud800-\udfff]", text):
        text = re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", text)
    return text.encode("utf-8")


def cassette_bodies() -> list[tuple[str, bytes]]:
    bodies = []
    for path in sorted(CASSETTES.glob("*.yaml")):
        for i, interaction in enumerate(yaml.safe_load(path.read_text("utf-8"))["interactions"]):
            body = interaction["response"]["body"]["string"]
            data = body.encode("utf-8") if isinstance(body, str) else body
            if data.lstrip().startswith((b"{", b"[")):
                bodies.append((f"{path.stem}#{i}", data))
    return bodies


BODIES = cassette_bodies()


def test_cassettes_hold_json_answers() -> None:
    assert len(BODIES) >= 8


@pytest.mark.parametrize(("name", "body"), BODIES, ids=[n for n, _ in BODIES])
def test_recorded_answers_decode_and_encode_as_before(name: str, body: bytes) -> None:
    decoded = json_bytes.loads(body)
    assert decoded == json.loads(body)
    assert json_bytes.canonical_bytes(decoded) == old_canonical(json.loads(body))
    # The records are built from the answer's pages, one payload each.
    pages = (decoded.get("query") or {}).get("pages") or []
    for page in pages if isinstance(pages, list) else pages.values():
        assert json_bytes.canonical_bytes(page) == old_canonical(page)
        assert canonical_json(page) == old_canonical(page).decode("utf-8")


EDGE_CASES: list[Any] = [
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**63),
    -(2**63) - 1,
    10**40,
    {"n": -(10**30), "m": [2**70, 1]},
    1e16,
    1e15,
    0.1,
    -0.0,
    0.0,
    5e-324,
    1e-5,
    1.5e-5,
    9.99e-5,
    1e-4,
    1e-7,
    -3.2e-9,
    1e-10,
    1e22,
    1.7976931348623157e308,
    123456789.123,
    float("nan"),
    float("inf"),
    -float("inf"),
    {"x": float("nan"), "y": None},
    [None, True, False],
    {"é": 1, "z": 2, "\uffff": 3, "😀": 4, "\ue000": 5, "Z": 6, "": 7},
    {"b": {"é": [1, {"😀": "🎉"}], "a": None}, "a": []},
    '\x00\x01\x1f\x7f\b\f\n\r\t"\\/',
    "\u2028\u2029\ufeff",
    "😀 emoji and ünïcödé",
    "\ud800",
    "a\udfffb",
    "\ud83d\ude00",  # a pair of surrogates as two code points
    {"\ud800": 1, "a": 2},
    {"k": ["x\udc80y", 1.0]},
    {1: "int key", 2: "x"},
    {True: 1},
    ("a", "tuple"),
    {"text": "null .0000 e-5, in a string"},
    [[[[[[[[[[[]]]]]]]]]]],
    json.loads("[" * 300 + "]" * 300),  # deeper than orjson goes
]


@pytest.mark.parametrize("obj", EDGE_CASES, ids=[ascii(o)[:40] for o in EDGE_CASES])
def test_edge_cases_encode_as_before(obj: Any) -> None:
    assert json_bytes.canonical_bytes(obj) == old_canonical(obj)


def test_subclasses_encode_as_their_base_type() -> None:
    class Text(str):
        pass

    class Number(int):
        def __repr__(self) -> str:
            return "not a number"

    obj = {Text("k"): [Text("v"), Number(3)]}
    assert json_bytes.canonical_bytes(obj) == old_canonical(obj) == b'{"k":["v",3]}'


def test_values_the_standard_library_refuses_are_refused() -> None:
    import datetime

    with pytest.raises(TypeError):
        json_bytes.canonical_bytes({"at": datetime.datetime(2026, 1, 1)})
    with pytest.raises(TypeError):
        json_bytes.canonical_bytes({"k": object()})


def test_random_floats_encode_as_before() -> None:
    rng = random.Random(14)
    floats = [
        struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(3000)
    ]
    floats += [rng.random() * 10.0 ** rng.randint(-12, 20) for _ in range(3000)]
    floats = [f for f in floats if not math.isnan(f)]
    assert json_bytes.canonical_bytes(floats) == old_canonical(floats)
    for f in floats[:500]:
        assert json_bytes.canonical_bytes({"f": f}) == old_canonical({"f": f})


DECODE_CASES = [
    b'{"a":1,"a":2}',
    b"[18446744073709551615, 18446744073709551616, -9223372036854775809]",
    b"[12345678901234567890123]",
    b"[0.12345678901234567890123]",
    b"NaN",
    b"[Infinity, -Infinity, 1e400]",
    b'"\\ud800"',
    b'"\\udead\\ud800"',
    b'"\\ud83d\\ude00"',
    b'"\\u0000\\/"',
    b"\xef\xbb\xbf[1]",
    b" [1.0, -0, -0.0, 1E5] ",
    '{"é":"😀"}'.encode(),
    '["é"]'.encode("utf-16"),
]


@pytest.mark.parametrize("body", DECODE_CASES, ids=[ascii(b)[:30] for b in DECODE_CASES])
def test_decoding_gives_the_standard_librarys_values(body: bytes) -> None:
    expected = json.loads(body)
    got = json_bytes.loads(body)
    assert json.dumps(got) == json.dumps(expected)  # NaN-safe, and types (int vs float) count
    assert type(got) is type(expected)


@pytest.mark.parametrize("body", [b"", b"{", b"[1,]", b"\xff", b"<html>"])
def test_decoding_refuses_what_the_standard_library_refuses(body: bytes) -> None:
    with pytest.raises((json.JSONDecodeError, UnicodeDecodeError)) as expected:
        json.loads(body)
    with pytest.raises(type(expected.value)):  # the standard library's error, as before
        json_bytes.loads(body)
