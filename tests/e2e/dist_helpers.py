"""Build the package as users get it and install it where the checkout is out of reach.

* :func:`build_dists` copies the files a build needs (``pyproject.toml``, ``setup.py``,
  ``README.md``, ``holocron_scrapy/``, ``sources/``, ``sql/``) to a temporary directory and
  builds the wheel (``pip wheel --no-deps``) and the egg scrapyd runs (``setup.py bdist_egg``,
  as ``scrapyd-deploy`` does), so the checkout gets no ``build/`` directory;
* :func:`fresh_venv` makes a new virtualenv whose only holocron code is the installed wheel: the
  dependencies (Scrapy, SQLAlchemy, …) are those of the test environment, made visible by one
  ``.pth`` line (that directory's own ``.pth`` files, among them the editable install of the
  checkout, are not processed), and the wheel is installed with ``--no-deps``: fast and offline.

``python -m tests.e2e.dist_helpers DIR`` (bin/test's package check) builds both, installs the wheel
in ``DIR/venv`` and checks it from an empty directory: the ``holocron`` command lists the
spiders, the shipped source files and SQL script are found, the egg holds them and the
``scrapy`` settings entry point.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_FILES = ("pyproject.toml", "setup.py", "README.md")
BUILD_DIRS = ("holocron_scrapy", "sources", "sql")
SHIPPED_SOURCES = ("openalex.yaml", "quotes-html.yaml", "wikipedia.yaml", "wookieepedia.yaml")
SQL_SCRIPT = "001_ingest_schema.sql"
TIMEOUT = 120.0


@dataclass(frozen=True)
class Dists:
    wheel: Path
    egg: Path


@dataclass(frozen=True)
class Venv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.root / "bin" / name


def _run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    return proc.stdout


def build_dists(work: Path) -> Dists:
    """The wheel and the egg of the checkout as it is (committed or not), built in ``work``."""
    tree = work / "tree"
    tree.mkdir(parents=True)
    for name in BUILD_FILES:
        shutil.copy2(REPO_ROOT / name, tree / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in BUILD_DIRS:
        shutil.copytree(REPO_ROOT / name, tree / name, ignore=ignore)
    dist = work / "dist"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    _run([*pip_wheel, "-w", str(dist), str(tree)], cwd=work)
    _run([sys.executable, "setup.py", "-q", "bdist_egg", "-d", str(dist)], cwd=tree)
    (wheel,) = dist.glob("holocron_scrapy-*.whl")
    (egg,) = dist.glob("holocron_scrapy-*.egg")
    return Dists(wheel=wheel, egg=egg)


def fresh_venv(root: Path, wheel: Path | None = None) -> Venv:
    """A new virtualenv seeing the test environment's dependencies, with ``wheel`` installed."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(root)], cwd=root.parent)
    venv = Venv(root)
    site = _run(
        [str(venv.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        cwd=root,
    ).strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "test-dependencies.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    if wheel is not None:
        # --ignore-installed: the checkout's editable install is visible through the .pth line;
        # it must be neither used nor uninstalled.
        pip_install = [sys.executable, "-m", "pip", "--python", str(venv.python), "install", "-q"]
        _run([*pip_install, "--no-deps", "--no-index", "--ignore-installed", str(wheel)], root)
    return venv


def egg_problems(egg: Path) -> list[str]:
    """What the egg lacks for scrapyd: the package data and the ``scrapy`` settings entry."""
    with zipfile.ZipFile(egg) as archive:
        names = set(archive.namelist())
        entry_points = archive.read("EGG-INFO/entry_points.txt").decode()
    wanted = [f"holocron_scrapy/source_files/{n}" for n in SHIPPED_SOURCES]
    wanted += [f"holocron_scrapy/sql/{SQL_SCRIPT}", "holocron_scrapy/settings.py"]
    problems = [f"{name} is not in {egg.name}" for name in wanted if name not in names]
    if "[scrapy]\nsettings = holocron_scrapy.settings" not in entry_points:
        problems.append(f"no scrapy settings entry point in {egg.name}: {entry_points!r}")
    return problems


#: run by the fresh venv's interpreter from an empty directory
_CHECK_INSTALLED = f"""
import holocron_scrapy, sys
from pathlib import Path
from holocron_scrapy.packaged import shipped_sources_dir, sql_script
from holocron_scrapy.config.sources import resolve_source_path
home = Path(holocron_scrapy.__file__).resolve().parent
assert Path(sys.prefix).resolve() in home.parents, f"holocron_scrapy imported from {{home}}"
shipped = shipped_sources_dir()
assert shipped is not None and shipped.is_relative_to(home.parent), shipped
found = sorted(p.name for p in shipped.iterdir() if p.suffix == ".yaml")
assert found == {sorted(SHIPPED_SOURCES)!r}, found
assert resolve_source_path("wikipedia", Path("sources")) == shipped / "wikipedia.yaml"
assert "CREATE TABLE" in sql_script({SQL_SCRIPT!r})
print(home)
"""


def check_installed(venv: Venv, empty_dir: Path) -> list[str]:
    """Check the installed wheel from ``empty_dir``; the spiders ``holocron list`` shows."""
    _run([str(venv.python), "-c", _CHECK_INSTALLED], cwd=empty_dir)
    return _run([str(venv.bin("holocron")), "list"], cwd=empty_dir).split()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.e2e.dist_helpers EMPTY_WORK_DIR", file=sys.stderr)
        return 2
    work = Path(argv[0]).absolute()
    dists = build_dists(work)
    problems = egg_problems(dists.egg)
    venv = fresh_venv(work / "venv", dists.wheel)
    empty = work / "empty"
    empty.mkdir()
    spiders = check_installed(venv, empty)
    if spiders != ["http", "mediawiki"]:
        problems.append(f"holocron list shows {spiders}, expected http and mediawiki")
    for problem in problems:
        print(f"package check: {problem}", file=sys.stderr)
    if not problems:
        print(f"package check: OK ({dists.wheel.name}, {dists.egg.name}, installed in {venv.root})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
