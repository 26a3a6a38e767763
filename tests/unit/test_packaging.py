"""Package data: the shipped source files and SQL script are found through importlib.resources,
after the user's own sources directory."""

from __future__ import annotations

import tomllib
from pathlib import Path

from holocron_scrapy.config.sources import load_source, resolve_source_path
from holocron_scrapy.packaged import shipped_sources_dir, sql_script
from holocron_scrapy.store.ddl import SQL_FILE

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_a_name_is_looked_up_in_the_users_directory_first_then_among_the_shipped_files(
    tmp_path: Path,
) -> None:
    shipped = shipped_sources_dir()
    assert shipped is not None
    own = tmp_path / "wookieepedia.yml"
    own.write_text((shipped / "wookieepedia.yaml").read_text().replace("Yoda", "Grogu"))
    assert resolve_source_path("wookieepedia", tmp_path) == own
    assert "Grogu" in load_source("wookieepedia", tmp_path).seeds.titles
    assert resolve_source_path("quotes-html", tmp_path) == shipped / "quotes-html.yaml"
    # (wikipedia with a contact: the shipped placeholders' one-time warnings stay for other tests)
    loaded = load_source("wikipedia", tmp_path / "absent", contact="ops@holocron.test")
    assert loaded.path == shipped / "wikipedia.yaml"
    assert resolve_source_path("nosuch", tmp_path) == tmp_path / "nosuch.yaml"


def test_the_shipped_sql_script_is_the_committed_one() -> None:
    assert sql_script("001_ingest_schema.sql") == (REPO_ROOT / SQL_FILE).read_text("utf-8")


def test_every_subpackage_is_listed_in_pyproject() -> None:
    """pyproject.toml lists the packages (two of them map sources/ and sql/): a new subpackage
    of holocron_scrapy must be added there, or the wheel and the egg would lack it."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]
    on_disk = {
        ".".join(init.parent.relative_to(REPO_ROOT).parts)
        for init in (REPO_ROOT / "holocron_scrapy").rglob("__init__.py")
    }
    mapped = set(config["package-dir"])
    assert set(config["packages"]) == on_disk | mapped
    assert {config["package-dir"][name] for name in mapped} == {"sources", "sql"}
