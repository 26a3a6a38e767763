"""One line per bad source file: ``FILE: dotted.key: message``, formatted from the model's errors.

The source files are validated by pydantic (the models of :mod:`holocron_scrapy.config.sources`
and :mod:`holocron_scrapy.config.http`); :func:`validate` turns the first of pydantic's errors,
in the order of the file, into one :class:`SourceConfigError`. The messages come from the error
*type* (a string expected, a key unknown or missing, ...), not from the key, with a "did you mean"
for a mistyped key or value; a constraint of :mod:`holocron_scrapy.config.fields` says what is
wrong in its own words (:func:`fail`).
"""

from __future__ import annotations

import dataclasses
import difflib
import reprlib
import types
import typing
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from pydantic_core import ErrorDetails

T = TypeVar("T")

#: The error type of :func:`fail`: its context holds the message and a key below the field's.
_OWN = "holocron"


class SourceConfigError(Exception):
    """A source file that cannot be used: ``str(e) == f"{path}: {key}: {message}"``.

    ``key`` is the dotted key of the problem (``discovery.max_depth``, ``seeds.titles[2]``), or one
    of ``source`` (the file cannot be found or read), ``<yaml>`` (not valid YAML) and ``<root>``
    (the document is empty or not a mapping).
    """

    def __init__(self, path: Path, key: str, message: str) -> None:
        super().__init__(path, key, message)  # keeps the exception picklable
        self.path = path
        self.key = key
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.key}: {self.message}"


def fail(message: str, at: str | int | None = None) -> NoReturn:
    """Refuse a value in a validator: ``message`` for the value's key, or for its key ``at``
    below it (a mapping key, a list index)."""
    raise PydanticCustomError(_OWN, "{message}", {"message": message, "at": at})


def kind(value: object) -> str:
    """A YAML-ish name for the type of ``value``, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {reprlib.repr(value)}"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def suggest(word: str, choices: Sequence[str]) -> str:
    by_lower = {c.lower(): c for c in choices}
    matches = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[matches[0]]!r}?)" if matches else ""


def keys_of(model: type) -> list[str]:
    """The keys a source file may give for ``model``: its fields, but those marked
    ``Field(exclude=True)`` (filled in by the loader, such as the file's path)."""
    fields = getattr(model, "__pydantic_fields__", {})
    return [
        info.validation_alias if isinstance(info.validation_alias, str) else name
        for name, info in fields.items()
        if not info.exclude
    ]


def validate(model: type[T], document: Mapping[Any, Any], file: Path, **filled: Any) -> T:
    """``model`` validated from ``document`` and the loader's own ``filled`` values; the first
    problem in the file's order is a :class:`SourceConfigError`."""
    for name in document:
        if name in filled:  # not a key of the file: unknown, as any other
            message = _message(model, "unexpected_keyword_argument", name, None, {})
            raise SourceConfigError(file, str(name), message)
    try:
        return TypeAdapter(model).validate_python({**document, **filled})
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        index = min(range(len(errors)), key=lambda i: (_position(document, errors[i]["loc"]), i))
        key, message = _describe(model, errors[index])
        raise SourceConfigError(file, key, message) from None


def _position(document: Any, loc: tuple[int | str, ...]) -> list[tuple[int, int]]:
    """Where ``loc`` is in the file: keys in file order, missing keys after them."""
    position = []
    node = document
    for part in loc:
        if isinstance(node, dict) and part in node:
            position.append((0, list(node).index(part)))
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            position.append((0, part))
            node = node[part]
        else:
            position.append((1, 0))
            node = None
    return position


def _describe(model: type, error: ErrorDetails) -> tuple[str, str]:
    loc = list(error["loc"])
    kind_ = error["type"]
    if loc[-1:] == ["[key]"]:  # a mapping key of the wrong type: the key is the problem
        loc.pop()
        kind_ = "invalid_key"
    ctx = error.get("ctx") or {}
    if kind_ == _OWN and ctx.get("at") is not None:
        loc.append(ctx["at"])
    owner = _model_at(model, loc[:-1])
    message = _message(owner, kind_, loc[-1] if loc else None, error["input"], ctx)
    return _dotted(loc, kind_ == "invalid_key"), message or error["msg"]


def _message(
    owner: type | None, kind_: str, key: object, value: Any, ctx: Mapping[str, Any]
) -> str:
    """The message of one error of pydantic (or of :func:`fail`), by its type."""
    if kind_ == _OWN:
        return str(ctx["message"])
    if kind_ in ("unexpected_keyword_argument", "extra_forbidden"):
        allowed = keys_of(owner) if owner else []
        return f"unknown key{suggest(str(key), allowed)}; allowed keys here: {', '.join(allowed)}"
    if kind_ == "invalid_key":
        return f"keys must be strings, got {kind(value)}"
    if kind_ == "missing":
        info = getattr(owner, "__pydantic_fields__", {}).get(key)
        hint = f" ({info.description})" if info is not None and info.description else ""
        return f"is required{hint}"
    if kind_ == "int_type":
        quoted = isinstance(value, str) and value.strip()
        return f"expected an integer, got {kind(value)}{' (remove the quotes)' if quoted else ''}"
    expected = {
        "string_type": "a string",
        "bool_type": "true or false",
        "tuple_type": "a list",
        "list_type": "a list",
        "dict_type": "a mapping",
        "mapping_type": "a mapping",
        "dataclass_type": "a mapping",
    }.get(kind_)
    return f"expected {expected}, got {kind(value)}" if expected else ""


def _model_at(model: type | None, loc: list[int | str]) -> type | None:
    """The model (a pydantic dataclass) of the mapping at ``loc`` below ``model``."""
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue  # the element type was taken with the field's
        info = getattr(model, "__pydantic_fields__", {}).get(part)
        if info is None:
            return None
        written = [getattr(m.func, "keys_model", None) for m in info.metadata if hasattr(m, "func")]
        model = next((m for m in written if m is not None), None) or _find_model(info.annotation)
    return model


def _find_model(annotation: Any) -> type | None:
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return annotation
    if typing.get_origin(annotation) is typing.Annotated:
        return _find_model(typing.get_args(annotation)[0])
    for arg in typing.get_args(annotation):
        if arg is not Ellipsis and arg is not types.NoneType:
            found = _find_model(arg)
            if found is not None:
                return found
    return None


def _dotted(loc: list[int | str], last_is_key: bool) -> str:
    text = ""
    for number, part in enumerate(loc):
        if isinstance(part, int) and not (last_is_key and number == len(loc) - 1):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
