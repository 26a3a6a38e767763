"""Every holocron setting has one default, in ``holocron_scrapy/defaults.py``: the code reads it
from there (no literal default at a read site, no setting missing from it), and the README's
settings tables list exactly its settings with the same defaults."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

from holocron_scrapy import defaults

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "holocron_scrapy"
#: The settings' prefixes (``HOLOCRON_TEST_*`` and the like are environment variables).
PREFIXES = ("HOLOCRON_", "MEDIAWIKI_")
READERS = {"get", "getint", "getfloat", "getbool", "getlist", "getdict", "getdictorlist"}


def constant_of(setting: str) -> str:
    """The name of ``setting``'s default in ``defaults.py``."""
    return setting if setting.startswith("MEDIAWIKI_") else setting.removeprefix("HOLOCRON_")


def settings_reads(tree: ast.AST) -> list[tuple[int, str, ast.expr | None]]:
    """``(line, setting, default argument)`` of each ``settings.get*("HOLOCRON_…", …)``; a
    setting named by an f-string is reported as such (the scan could not check it)."""
    reads = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and isinstance(node.slice, ast.Constant)
            and str(node.slice.value).startswith(PREFIXES)
            and not ast.unparse(node.value).endswith("environ")
        ):
            # settings["HOLOCRON_…"]: no default at all
            reads.append((node.lineno, str(node.slice.value), None))
            continue
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in READERS
            and node.args
        ):
            continue
        receiver = ast.unparse(node.func.value)
        if receiver.endswith("environ"):
            continue
        key = node.args[0]
        default = node.args[1] if len(node.args) > 1 else None
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            if key.value.startswith(PREFIXES):
                reads.append((node.lineno, key.value, default))
        elif isinstance(key, ast.JoinedStr) and any(p in ast.unparse(key) for p in PREFIXES):
            reads.append((node.lineno, ast.unparse(key), default))
    return reads


@functools.cache
def package_modules() -> dict[Path, ast.Module]:
    """Every module of the package, parsed (once for the tests of this file)."""
    return {m: ast.parse(m.read_text(), str(m)) for m in sorted(PACKAGE.rglob("*.py"))}


def problems_of(path: Path, tree: ast.Module, root: Path = ROOT) -> list[str]:
    """What is wrong with the settings reads of one module (paths shown relative to ``root``)."""
    found = []
    in_defaults = path.name == "defaults.py"
    for line, key, default in settings_reads(tree):
        where = f"{path.relative_to(root)}:{line}: {key}"
        if key not in defaults.SETTINGS:
            found.append(f"{where} is not in holocron_scrapy/defaults.py")
            continue
        name = constant_of(key)
        wanted = name if in_defaults else f"defaults.{name}"
        if default is None or ast.unparse(default) != wanted:
            shown = "none" if default is None else ast.unparse(default)
            found.append(f"{where}: default {shown}, not {wanted}")
    return found


def test_every_settings_read_takes_its_default_from_defaults_py() -> None:
    modules = package_modules()
    assert len(modules) > 50
    reads = [r for tree in modules.values() for r in settings_reads(tree)]
    # The scan finds the reads (if it found none, it would pass for nothing).
    assert {"HOLOCRON_CLAIM_SIZE", "HOLOCRON_LAKE_DIR", "MEDIAWIKI_MAXLAG"} <= {
        k for _, k, _ in reads
    }
    assert [p for m, tree in modules.items() for p in problems_of(m, tree)] == []


def test_every_default_is_read_somewhere() -> None:
    read = {k for tree in package_modules().values() for _, k, _ in settings_reads(tree)}
    assert sorted(set(defaults.SETTINGS) - read) == []


def test_the_scan_catches_a_literal_default_an_unknown_setting_and_a_computed_name(
    tmp_path: Path,
) -> None:
    source = (
        'a = settings.getint("HOLOCRON_CLAIM_SIZE", 500)\n'
        'b = settings.get("HOLOCRON_NO_SUCH_SETTING", defaults.NO_SUCH_SETTING)\n'
        'c = settings.getint(f"HOLOCRON_{name}", 3)\n'
        'd = settings.get("HOLOCRON_WORKER_ID")\n'
        'g = settings["HOLOCRON_LAKE_DIR"]\n'
        'e = crawler.settings.getfloat("MEDIAWIKI_MAXLAG", defaults.MEDIAWIKI_MAXLAG)\n'
        'f = os.environ.get("HOLOCRON_TEST_PG_URL")\n'
    )
    path = tmp_path / "holocron_scrapy" / "scanned.py"
    path.parent.mkdir()
    path.write_text(source)
    found = [p.split(": ", 1)[1] for p in problems_of(path, ast.parse(source), tmp_path)]
    assert found == [
        "HOLOCRON_CLAIM_SIZE: default 500, not defaults.CLAIM_SIZE",
        "HOLOCRON_NO_SUCH_SETTING is not in holocron_scrapy/defaults.py",
        "f'HOLOCRON_{name}' is not in holocron_scrapy/defaults.py",
        "HOLOCRON_WORKER_ID: default none, not defaults.WORKER_ID",
        "HOLOCRON_LAKE_DIR: default none, not defaults.LAKE_DIR",
    ]


# -- the README ---------------------------------------------------------------------------------


def readme_value(value: object) -> str:
    """How the README writes a default: a Python literal, strings in double quotes, digits of
    large numbers grouped by ``_``."""
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10_000:
        return f"`{value:_}`"
    return f"`{value!r}`"


def readme_settings() -> list[tuple[str, str]]:
    """``(setting, default cell)`` of each row of the README's tables headed
    ``| setting | default |``."""
    rows = []
    in_table = False
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = (
            [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        )
        if cells[:2] == ["setting", "default"]:
            in_table = True
        elif not cells:
            in_table = False
        elif in_table and not set(cells[0]) <= {"-", " "}:
            match = re.fullmatch(r"`([A-Z0-9_]+)`", cells[0])
            assert match, f"one setting per row, in backticks: {line}"
            rows.append((match.group(1), cells[1]))
    return rows


def test_the_readme_lists_every_setting_once_with_its_default() -> None:
    rows = readme_settings()
    names = [name for name, _ in rows]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
    expected = {name: readme_value(value) for name, value in defaults.SETTINGS.items()}
    listed = dict(rows)
    # A wrong or missing row is shown as the row that should be there.
    assert sorted(f"| `{n}` | {v} |" for n, v in expected.items() if listed.get(n) != v) == []
    assert sorted(set(listed) - set(expected)) == []


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (30.0, "`30.0`"),
        (500, "`500`"),
        (200_000, "`200_000`"),
        (None, "`None`"),
        ("max", '`"max"`'),
    ],
)
def test_readme_values_are_python_literals(value: object, cell: str) -> None:
    assert readme_value(value) == cell
    assert ast.literal_eval(cell.strip("`")) == value


#: The units the README's prose gives a default in: ``(600 s)``, ``(1 h)``, ``(1 GB)``.
UNITS = {"": 1, "s": 1, "h": 3600, "GB": 1024**3, "MiB": 1024**2}
PROSE_DEFAULT = re.compile(
    r"`(?P<name>(?:HOLOCRON|MEDIAWIKI)_[A-Z0-9_]+)` \("
    r"(?:(?:default )?(?P<number>\d+(?:\.\d+)?)(?: (?P<unit>s|h|GB|MiB))?"
    r"|default `(?P<text>[^`]+)`)\)"
)


def test_the_readme_prose_quotes_the_defaults_of_defaults_py() -> None:
    """``HOLOCRON_IDLE_POLL`` (2 s) in a sentence is the same 2 s as in ``defaults.py``."""
    quoted = list(PROSE_DEFAULT.finditer((ROOT / "README.md").read_text()))
    assert len(quoted) >= 5
    wrong = []
    for match in quoted:
        value = defaults.SETTINGS.get(match["name"])
        if match["text"] is not None:
            said: object = match["text"]
        else:
            said = float(match["number"]) * UNITS[match["unit"] or ""]
        if said != value:
            wrong.append(f"{match[0]}: defaults.py has {value!r}")
    assert wrong == []
