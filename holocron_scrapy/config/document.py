"""Finding a source file and reading its YAML document: the file a ``source`` argument names,
the names of the files of a directory, and the document (a mapping) of a file, every problem
one :class:`SourceConfigError` (``source``, ``<yaml>``, ``<root>``) naming the file.

The file-level checks of :mod:`holocron_scrapy.config.reading` apply (size, regular file, alias
expansion, values PyYAML cannot construct); duplicate keys are refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from holocron_scrapy.config.errors import SourceConfigError, kind
from holocron_scrapy.config.reading import SourceReadError, load_yaml, read_bounded
from holocron_scrapy.packaged import shipped_sources_dir

YAML_SUFFIXES: tuple[str, ...] = (".yaml", ".yml")


def resolve_source_path(ref: str, sources_dir: Path) -> Path:
    """The file a ``source`` argument names.

    A reference holding a path separator or ending in ``.yaml``/``.yml`` is a path (``~`` is
    expanded, relative paths are relative to the working directory). Anything else is a source
    name: ``sources_dir/NAME.yaml``, or ``sources_dir/NAME.yml`` when only that one exists.
    The file is not required to exist.

    A name not found in ``sources_dir`` is looked up among the source files shipped with the
    package (:func:`holocron_scrapy.packaged.shipped_sources_dir`): the user's own directory
    comes first.
    """
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    if any(sep in ref for sep in separators) or ref.lower().endswith(YAML_SUFFIXES):
        return Path(ref).expanduser()
    shipped = shipped_sources_dir()
    for directory in (sources_dir, shipped):
        if directory is None:
            continue
        for suffix in YAML_SUFFIXES:
            candidate = directory / f"{ref}{suffix}"
            if candidate.exists():
                return candidate
    return sources_dir / f"{ref}.yaml"


def available_sources(sources_dir: Path | None) -> list[str]:
    """The source names (file stems) of the YAML files in ``sources_dir``, sorted."""
    if sources_dir is None:
        return []
    try:
        entries = list(sources_dir.iterdir())
    except OSError:
        return []
    return sorted(
        {p.stem for p in entries if p.suffix.lower() in YAML_SUFFIXES and p.is_file()},
    )


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys instead of keeping the last one."""


def _construct_mapping_without_duplicates(
    loader: yaml.SafeLoader, node: yaml.MappingNode
) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue  # merge keys (<<) may be overridden; complex keys fail later anyway
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # unhashable; construct_mapping reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping_without_duplicates,
)


def read_document(path: Path, sources_dir: Path) -> dict[Any, Any]:
    try:
        raw = read_bounded(path)  # a regular file of a bounded size (not /dev/zero, a FIFO)
    except SourceReadError as exc:
        raise SourceConfigError(path, exc.key or "source", exc.message) from exc
    except FileNotFoundError as exc:
        names = available_sources(sources_dir)
        listing = ", ".join(names) if names else "none"
        shipped = available_sources(shipped_sources_dir())
        if shipped:
            listing += f"; shipped with holocron-scrapy: {', '.join(shipped)}"
        raise SourceConfigError(
            path, "source", f"no such source file; available sources in {sources_dir}: {listing}"
        ) from exc
    except IsADirectoryError as exc:
        raise SourceConfigError(path, "source", "is a directory, not a YAML file") from exc
    except OSError as exc:
        raise SourceConfigError(
            path, "source", f"cannot read the file: {exc.strerror or exc}"
        ) from exc

    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceConfigError(
            path, "<yaml>", f"the file is not UTF-8 text (bad byte at offset {exc.start})"
        ) from exc
    if not text.strip():
        raise SourceConfigError(path, "<root>", "the file is empty")

    try:
        # A SafeLoader subclass (no tags run code); aliases bounded, unconstructable values named.
        document = load_yaml(text, _StrictLoader)
    except SourceReadError as exc:
        raise SourceConfigError(path, exc.key or "<yaml>", exc.message) from exc
    except yaml.MarkedYAMLError as exc:
        raise SourceConfigError(path, "<yaml>", _describe_yaml_error(exc)) from exc
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow in a document
        character = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise SourceConfigError(
            path,
            "<yaml>",
            f"character U+{ord(character):04X} at offset {exc.position} is not allowed in YAML "
            f"({exc.reason})",
        ) from exc
    except yaml.YAMLError as exc:
        raise SourceConfigError(path, "<yaml>", " ".join(str(exc).split())) from exc

    if document is None:
        raise SourceConfigError(path, "<root>", "the file has no content, only comments")
    if not isinstance(document, dict):
        raise SourceConfigError(
            path, "<root>", f"expected a mapping of keys at the top level, got {kind(document)}"
        )
    return document


def _describe_yaml_error(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = exc.problem or exc.context or "invalid YAML"
    message = f"{where}{problem}"
    if exc.context and exc.problem:
        message += f" ({exc.context})"
    if "'\\t'" in problem:
        message += "; YAML indentation must use spaces, not tabs"
    return message
