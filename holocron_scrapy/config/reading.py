"""Reading a source file as a careless user may hand it over (issue 10): bounded in size, a
regular file only, YAML whose aliases may not expand beyond a bound, and values PyYAML cannot
construct (a 5,000-digit integer, ``2026-02-30``) reported with the key that holds them.

:func:`read_bounded` and :func:`load_yaml` raise :class:`SourceReadError` (a key, or ``None``
for the file itself, and a message); :mod:`holocron_scrapy.config.sources` turns it into its
one-line
``FILE: KEY: message`` error.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from pathlib import Path

#: The largest source file read (a real one is a few kilobytes).
MAX_SOURCE_BYTES = 1024 * 1024
#: The most nodes a document may have once its aliases are expanded (an alias bomb has 10^9).
MAX_EXPANDED_NODES = 100_000

_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class SourceReadError(Exception):
    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def read_bounded(path: Path, limit: int = MAX_SOURCE_BYTES) -> bytes:
    """The bytes of ``path``: a regular file (after symlinks) of at most ``limit`` bytes.
    ``OSError`` (missing, a directory, unreadable) is left to the caller."""
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(path)
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
        raise SourceReadError(None, f"is {kind}, not a YAML file")
    with path.open("rb") as file:
        raw = file.read(limit + 1)
    if len(raw) > limit:
        raise SourceReadError(None, f"is larger than {limit} bytes: not a source file")
    return raw


def load_yaml(text: str, loader_class: type[yaml.SafeLoader]) -> Any:
    """The document of ``text``, composed first and refused when its aliases expand beyond
    :data:`MAX_EXPANDED_NODES` nodes or refer to themselves; a value PyYAML cannot construct
    is a :class:`SourceReadError` naming its key. YAML syntax errors propagate."""
    loader = loader_class(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        _check_expansion(root)
        try:
            return loader.construct_document(root)
        except (ValueError, OverflowError) as exc:
            node = _failing_node(loader, root)
            key = _key_of(root, node) if node is not None else None
            where = f"line {node.start_mark.line + 1}: " if node is not None else ""
            value = f"{_short(node.value)}: " if isinstance(node, yaml.ScalarNode) else ""
            raise SourceReadError(key or "<yaml>", f"{where}{value}cannot be read ({exc})") from exc
    except RecursionError as exc:
        raise SourceReadError("<yaml>", "the document is nested too deeply") from exc
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node) -> None:
    """Count the nodes of ``root`` with every alias expanded, without expanding anything."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if id(node) in open_nodes:
            raise SourceReadError("<yaml>", "an alias refers to the node that holds it")
        open_nodes.add(id(node))
        total = 1
        for child in _children(node):
            total += size(child)
            if total > MAX_EXPANDED_NODES:
                raise SourceReadError(
                    "<yaml>",
                    f"its aliases expand to more than {MAX_EXPANDED_NODES} values "
                    "(a YAML alias bomb?)",
                )
        open_nodes.discard(id(node))
        sizes[id(node)] = total
        return total

    size(root)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _failing_node(loader: yaml.SafeLoader, root: yaml.Node) -> yaml.Node | None:
    """The first scalar that cannot be constructed on its own (the constructor does not say)."""
    # What the failed construction left behind would answer every probe.
    loader.constructed_objects = {}
    loader.recursive_objects = {}
    loader.state_generators = []
    stack = [root]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            try:
                loader.construct_object(node, deep=True)
            except (ValueError, OverflowError):
                return node
            except yaml.YAMLError:
                continue
        stack.extend(reversed(_children(node)))
    return None


def _key_of(root: yaml.Node, target: yaml.Node) -> str | None:
    """The dotted key (``settings.X``, ``seeds.pageids[2]``) of ``target`` in ``root``."""

    def walk(node: yaml.Node, path: str) -> str | None:
        if node is target:
            return path or None
        if isinstance(node, yaml.SequenceNode):
            for index, child in enumerate(node.value):
                found = walk(child, f"{path}[{index}]")
                if found:
                    return found
        elif isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                dotted = f"{path}.{name}" if path else str(name)
                if key_node is target:
                    return dotted
                found = walk(value_node, dotted)
                if found:
                    return found
        return None

    return walk(root, "")


def _short(value: str, limit: int = 40) -> str:
    """``value`` quoted, its middle left out when it is long."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[: limit // 2]!r}…{value[-limit // 4 :]!r} ({len(value)} characters)"
