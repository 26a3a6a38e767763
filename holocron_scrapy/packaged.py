"""The files shipped with the package: the example source files (``sources/*.yaml``, installed as
``holocron_scrapy.source_files``) and the SQL Server scripts (``sql/*.sql``, installed as
``holocron_scrapy.sql``).

They are read through :mod:`importlib.resources`, so they are found wherever the package is: a
checkout installed with ``pip install -e .``, an installed wheel, or a zipped egg that scrapyd
runs. A checkout used without installing has no such packages: then nothing is shipped (its
``sources/`` directory is found next to ``scrapy.cfg`` anyway).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from importlib import resources
from pathlib import Path

SOURCES_PACKAGE = "holocron_scrapy.source_files"
SQL_PACKAGE = "holocron_scrapy.sql"
_SOURCE_SUFFIXES = (".yaml", ".yml")


@cache
def shipped_sources_dir() -> Path | None:
    """The directory of the shipped source files, or ``None`` when the package has none.

    Inside a zipped egg the files are not on disk: they are copied once into a temporary
    directory (removed at exit), so that callers see ordinary paths.
    """
    try:
        root = resources.files(SOURCES_PACKAGE)
    except ModuleNotFoundError:
        return None
    if isinstance(root, Path):
        return root
    copy = Path(tempfile.mkdtemp(prefix="holocron-sources-"))
    atexit.register(shutil.rmtree, copy, ignore_errors=True)
    for entry in root.iterdir():
        if entry.is_file() and entry.name.lower().endswith(_SOURCE_SUFFIXES):
            (copy / entry.name).write_bytes(entry.read_bytes())
    return copy


def sql_script(name: str) -> str:
    """The text of a shipped SQL script (``001_ingest_schema.sql``)."""
    return resources.files(SQL_PACKAGE).joinpath(name).read_text(encoding="utf-8")
