"""The canonical JSON of payloads and headers, and the decoder of API bodies: orjson where it
gives the standard library's result, the standard library where it may not.

:func:`canonical_bytes` is, byte for byte, ``json.dumps(obj, ensure_ascii=False,
sort_keys=True, separators=(",", ":"))`` encoded in UTF-8, with lone surrogates kept as JSON
escapes (see :func:`canonical_json`): the hashes of records written before orjson stay valid.
orjson (``OPT_SORT_KEYS``) writes the same bytes, its key order included (UTF-8 byte order is
code point order), except where it refuses the value or writes it otherwise, and there the
standard library encodes instead:

- it refuses integers outside [-2**63, 2**64 - 1], keys that are not ``str``, strings with lone
  surrogates, nesting deeper than 254, and (by the pass-through options) subclasses of ``str``,
  ``int``, ``dict`` and ``list``, dataclasses and datetimes (which the standard library encodes
  as their base type, or refuses);
- it writes NaN and the infinities as ``null`` (the standard library: ``NaN``, ``Infinity``),
  and floats below 1e-4 in magnitude in other notations (``0.00001`` for ``1e-05``, ``1e-7``
  for ``1e-07``): an output holding ``null``, ``.0000`` or an exponent of one digit, in a
  number or by chance in a string, is encoded again with the standard library. Floats
  otherwise agree with ``repr`` (``1e+16``, ``0.1``, ``-0.0``, ``5e-324``).

Left as they are: an ``Enum`` that is neither ``int`` nor ``str``, or a ``UUID``, which orjson
encodes and the standard library refuses (decoded JSON holds neither).

:func:`loads` is ``json.loads`` of bytes: orjson's result where it agrees, which it does unless
it fails (NaN, infinities, lone surrogate escapes, a byte order mark, not UTF-8: then the
standard library decides) or the body holds a run of 19 digits or more (orjson reads integers
beyond 64 bits as floats).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)
# Every digit as "0", "e", "-" as they are, any other byte a space: the checks below are then
# plain searches, which cost a fraction of a regular expression's scan.
_DIGITS = bytes(48 if 48 <= b <= 57 else b if b in b"e-" else 32 for b in range(256))
_LONG_DIGITS = b"0" * 19
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def stdlib_canonical_json(obj: Any) -> str:
    """The standard library's canonical JSON (the definition :func:`canonical_bytes` keeps):
    sorted keys, compact, UTF-8 text kept as is, except a lone surrogate (a JSON ``"\\ud800"``
    that pairs with nothing): it stays a JSON escape, which no encoder refuses and which reads
    back as the same value."""
    text = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    # isascii() is O(1); the search costs about a sixth of the dumps, on text that is not.
    if not text.isascii() and _LONE_SURROGATE.search(text):  # only in strings
        text = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text


def canonical_bytes(obj: Any) -> bytes:
    """The canonical JSON of ``obj`` in UTF-8 (what is hashed, stored and written)."""
    try:
        data = orjson.dumps(obj, option=_OPTIONS)
    except (TypeError, ValueError):  # JSONEncodeError is a TypeError; lone surrogates
        return stdlib_canonical_json(obj).encode("utf-8")
    if _maybe_otherwise(data):
        return stdlib_canonical_json(obj).encode("utf-8")
    return data


def _maybe_otherwise(data: bytes) -> bool:
    """Whether orjson's ``data`` may differ from the standard library's: it holds ``null`` (a
    NaN or an infinity?), ``.0000`` (a float in [1e-5, 1e-4)?) or a one-digit negative
    exponent (``1e-7``, where ``repr`` writes ``1e-07``) - in a number or by chance in a
    string."""
    if b"null" in data or b".0000" in data:
        return True
    if b"e-" not in data:
        return False
    digits = data.translate(_DIGITS)
    # An occurrence of "0e-0" not followed by a digit: fewer "0e-00" than "0e-0".
    return digits.count(b"0e-0") > digits.count(b"0e-00")


def canonical_json(obj: Any) -> str:
    """:func:`canonical_bytes` as text."""
    return canonical_bytes(obj).decode("utf-8")


def loads(body: bytes) -> Any:
    """``json.loads(body)``, faster (see the module docstring); raises what it raises."""
    if _LONG_DIGITS not in body.translate(_DIGITS):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)
