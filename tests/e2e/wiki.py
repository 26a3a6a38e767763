"""A real MediaWiki 1.39 for the end-to-end tests, and the crawl's ground truth.

:class:`MediaWiki` drives the scripts in ``tests/e2e/testbed/`` (Debian's
``mediawiki`` package used in place, SQLite, PHP's built-in server bound to
127.0.0.1): it creates an instance in a directory of its own, fills it with a
generated wiki (``gen_dump.py``), serves it on a free port and stops it.

:meth:`MediaWiki.reachable` computes, from the wiki's own SQLite tables only
(``page``, ``pagelinks``, ``redirect``; opened read-only), which pages a crawl
from some seed titles must record, at which depth, and which links are red.

Standard library only.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

TESTBED = Path(__file__).resolve().parent / "testbed"
INSTALL_SCRIPT = "tests/e2e/install-mediawiki.sh"
MEDIAWIKI_DIR = Path("/usr/share/mediawiki")
PHP_EXTENSIONS = ("pdo_sqlite", "mbstring", "xml", "intl", "apcu")
MAX_REDIRECT_HOPS = 5
USER_AGENT = "holocron-scrapy-e2e/0.1 (test bed)"

# Canonical namespace names of MediaWiki 1.39 (English); 4 and 5 are named
# after the wiki ($wgMetaNamespace), filled in per instance.
_NAMESPACES: dict[int, str] = {
    0: "",
    1: "Talk",
    2: "User",
    3: "User talk",
    4: "Project",
    5: "Project talk",
    6: "File",
    7: "File talk",
    8: "MediaWiki",
    9: "MediaWiki talk",
    10: "Template",
    11: "Template talk",
    12: "Help",
    13: "Help talk",
    14: "Category",
    15: "Category talk",
}
_NAMESPACE_ALIASES: dict[str, int] = {"image": 6, "image talk": 7, "project": 4, "project talk": 5}


class MediaWikiError(RuntimeError):
    """The test bed could not do what was asked (a script failed, an API error...)."""


def missing_requirements() -> list[str]:
    """What keeps the test bed from running on this machine (empty: nothing)."""
    problems: list[str] = []
    if not (MEDIAWIKI_DIR / "maintenance" / "install.php").is_file():
        problems.append(f"{MEDIAWIKI_DIR}/maintenance/install.php is missing")
    php = shutil.which("php")
    if php is None:
        problems.append("php is not on PATH")
    else:
        code = "foreach (array_slice($argv, 1) as $m) if (!extension_loaded($m)) echo $m, ' ';"
        out = subprocess.run(
            [php, "-r", code, *PHP_EXTENSIONS], capture_output=True, text=True, check=False
        )
        if out.returncode != 0:
            problems.append(f"php does not run: {out.stderr.strip()[:200]}")
        elif out.stdout.strip():
            problems.append(f"php extensions missing: {out.stdout.strip()}")
    for tool in ("bash", "setsid", "pgrep", "sha1sum"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} is not on PATH")
    return problems


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _encode_param(value: object) -> str:
    if isinstance(value, bool):
        return "1"
    if isinstance(value, list | tuple | set | frozenset):
        return "|".join(str(v) for v in value)
    return str(value)


@dataclass
class GroundTruth:
    """What a crawl from some seeds must produce (see :meth:`MediaWiki.reachable`)."""

    pages: dict[int, int] = field(default_factory=dict)
    """page_id -> minimal depth, for every non-redirect page that gets a record."""
    missing: set[str] = field(default_factory=set)
    """Titles (as the API prints them) of linked or seeded pages that do not exist."""
    redirects: set[int] = field(default_factory=set)
    """page ids of the redirects met on the way (not recorded as pages)."""


@dataclass
class MediaWiki:
    """One wiki instance: everything it owns lives in ``root``."""

    root: Path
    port: int | None = None
    timings: dict[str, float] = field(default_factory=dict, compare=False)
    """Seconds taken by the last create (``create``) and start (``start``)."""

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, root: Path, pages: int, seed: int = 1) -> MediaWiki:
        """An instance in ``root`` holding exactly the generated wiki (pages, seed).

        Idempotent: an instance that already holds this dump is kept as it is
        (it may even be running); one that holds another dump, or an unfinished
        import, is rebuilt from scratch.
        """
        t0 = time.monotonic()
        root.mkdir(parents=True, exist_ok=True)
        wiki = cls(root.resolve())
        dump = wiki.root / f"dump-{pages}-seed{seed}.xml"
        partial = dump.with_suffix(".xml.partial")
        wiki._run(
            [
                sys.executable,
                str(TESTBED / "gen_dump.py"),
                str(pages),
                "--seed",
                str(seed),
                "-o",
                str(partial),
            ],
        )
        partial.replace(dump)
        digest = hashlib.sha1(dump.read_bytes()).hexdigest()
        imported = wiki.root / "imported.sha1"
        done = imported.read_text().split() if imported.is_file() else []
        if wiki.is_running():  # serving already: fine if it serves this very wiki
            if done == [digest]:
                wiki.timings["create"] = time.monotonic() - t0
                return wiki
            msg = f"a server is running for {wiki.root}: stop it before importing another wiki"
            raise MediaWikiError(msg)
        env = {"SKIP_APT": "1", "PYTHON": sys.executable}
        if done != [digest] and (wiki.root / "LocalSettings.php").exists():
            # another dump (or a partial import) is in there: start from an empty wiki
            env["FORCE"] = "1"
        wiki._run(["bash", str(TESTBED / "setup.sh"), str(wiki.root)], env)
        wiki._run(["bash", str(TESTBED / "import.sh"), str(wiki.root), str(dump)], env)
        wiki.timings["create"] = time.monotonic() - t0
        return wiki

    def start(self, port: int | None = None) -> None:
        """Serve the wiki on 127.0.0.1 (a free port when ``port`` is None).

        Returns once the API answers. Already running: a no-op (same port).
        """
        if self.is_running():
            if port is None or port == self.port:
                return
            msg = f"{self.root} is already served on port {self.port}"
            raise MediaWikiError(msg)
        t0 = time.monotonic()
        attempts = 1 if port is not None else 5
        error: MediaWikiError | None = None
        for _ in range(attempts):
            chosen = port if port is not None else free_port()
            try:
                self._run(["bash", str(TESTBED / "start.sh"), str(chosen), str(self.root)])
            except MediaWikiError as exc:
                if port is not None or "in use" not in str(exc):
                    raise
                error = exc  # the free port was taken in between: try another one
                continue
            self.port = chosen
            atexit.register(self.stop)
            break
        else:
            assert error is not None
            raise error
        try:
            info = self.api(meta="siteinfo")
            if "query" not in info:
                msg = f"the API does not answer as expected: {info!r}"
                raise MediaWikiError(msg)
        except BaseException:
            self.stop()
            raise
        self.timings["start"] = time.monotonic() - t0

    def stop(self) -> None:
        """Stop the server (its whole process group). Safe to call at any time."""
        atexit.unregister(self.stop)
        pidfile = self.root / "server.pid"
        if pidfile.exists():
            subprocess.run(
                ["bash", str(TESTBED / "stop.sh"), str(self.root)],
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
        pid = self._server_pid()
        if pid is not None:  # stop.sh did not manage: kill the group ourselves
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            pidfile.unlink(missing_ok=True)
        self.port = None

    def is_running(self) -> bool:
        pid = self._server_pid()
        if pid is not None and self.port is None:
            with contextlib.suppress(OSError, ValueError):
                self.port = int((self.root / "server.port").read_text().strip())
        return pid is not None

    def _server_pid(self) -> int | None:
        """The pid in server.pid if it is a live ``php -S 127.0.0.1:`` process."""
        try:
            pid = int((self.root / "server.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError):
            return None
        return pid if b" -S 127.0.0.1:" in cmdline else None

    def _run(self, cmd: list[str], env: dict[str, str] | None = None) -> str:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            check=False,
            timeout=1800,
            env={**os.environ, **(env or {})},
        )
        if proc.returncode != 0:
            msg = (
                f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
            raise MediaWikiError(msg)
        return proc.stdout

    # ------------------------------------------------------------------ API
    @property
    def api_url(self) -> str:
        if self.port is None:
            msg = "the wiki is not started"
            raise MediaWikiError(msg)
        return f"http://127.0.0.1:{self.port}/api.php"

    def api(self, **params: Any) -> dict[str, Any]:
        """GET api.php (action=query unless given) with format=json&formatversion=2.

        Lists/tuples are joined with ``|``; True is sent as ``1``; None and
        False are left out (MediaWiki booleans are true when present). The JSON
        is returned as it is, API errors (``{"error": ...}``) included.
        """
        query: dict[str, str] = {"action": "query"}
        for key, value in params.items():
            if value is None or value is False:
                continue
            query[key] = _encode_param(value)
        query["format"] = "json"
        query["formatversion"] = "2"
        url = f"{self.api_url}?{urllib.parse.urlencode(query)}"
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(request, timeout=60) as response:
            data: dict[str, Any] = json.loads(response.read().decode("utf-8"))
        return data

    def query_all(self, **params: Any) -> list[dict[str, Any]]:
        """Every response of a query, following ``continue`` (sent back whole).

        Raises :class:`MediaWikiError` on an API error.
        """
        responses: list[dict[str, Any]] = []
        cont: dict[str, Any] = {}
        while True:
            data = self.api(**{**params, **cont})
            if "error" in data:
                msg = f"API error for {params!r}: {data['error']!r}"
                raise MediaWikiError(msg)
            responses.append(data)
            if "continue" not in data:
                return responses
            cont = data["continue"]

    # ----------------------------------------------------------------- SQL
    @property
    def db_path(self) -> Path:
        return self.root / "data" / "my_wiki.sqlite"

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        uri = f"file:{urllib.parse.quote(str(self.db_path))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=30)
        try:
            yield conn
        finally:
            conn.close()

    def sql(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        """Run a read-only query on the wiki's database."""
        with self._db() as conn:
            rows: list[tuple[Any, ...]] = conn.execute(query, params).fetchall()
        return [tuple(_text(v) if isinstance(v, bytes) else v for v in row) for row in rows]

    def _namespace_names(self) -> dict[int, str]:
        names = dict(_NAMESPACES)
        settings = (self.root / "LocalSettings.php").read_text(encoding="utf-8")
        meta = re.search(r'^\$wgMetaNamespace\s*=\s*"([^"]+)"', settings, re.M) or re.search(
            r'^\$wgSitename\s*=\s*"([^"]+)"', settings, re.M
        )
        if meta:
            project = meta.group(1).replace("_", " ")
            names[4], names[5] = project, f"{project} talk"
        return names

    def title(self, namespace: int, dbkey: str) -> str:
        """The title as the API prints it (namespace prefix, spaces)."""
        prefix = self._namespace_names().get(namespace, "")
        text = dbkey.replace("_", " ")
        return f"{prefix}:{text}" if prefix else text

    def normalize(self, title: str) -> tuple[int, str]:
        """(namespace, db key) of a title, normalized as MediaWiki does on this wiki."""
        text = re.sub(r"[ _]+", " ", title).strip()
        namespace = 0
        if ":" in text:
            prefix, rest = text.split(":", 1)
            key = prefix.strip().lower()
            lookup = {name.lower(): ns for ns, name in self._namespace_names().items() if name}
            lookup.update(_NAMESPACE_ALIASES)
            if key in lookup:
                namespace, text = lookup[key], rest.strip()
        if text:
            first = text[0].upper()
            text = (first if len(first) == 1 else text[0]) + text[1:]
        return namespace, text.replace(" ", "_")

    def page_titles(self, page_ids: list[int] | set[int]) -> dict[int, str]:
        """page_id -> title (as the API prints it) for the given ids that exist."""
        names = self._namespace_names()
        out: dict[int, str] = {}
        rows = self.sql("SELECT page_id, page_namespace, page_title FROM page")
        wanted = set(page_ids)
        for pid, ns, key in rows:
            if pid in wanted:
                prefix = names.get(ns, "")
                text = key.replace("_", " ")
                out[pid] = f"{prefix}:{text}" if prefix else text
        return out

    def largest_page(self) -> tuple[str, int]:
        """(title, number of links) of the page with the most ``pagelinks`` rows."""
        rows = self.sql(
            "SELECT p.page_namespace, p.page_title, COUNT(*) AS n FROM pagelinks pl"
            " JOIN page p ON p.page_id = pl.pl_from"
            " GROUP BY pl.pl_from ORDER BY n DESC, pl.pl_from LIMIT 1"
        )
        if not rows:
            msg = "the wiki has no links"
            raise MediaWikiError(msg)
        ns, key, count = rows[0]
        return self.title(ns, key), int(count)

    def reachable(self, seeds: list[str], max_depth: int, namespaces: list[int]) -> GroundTruth:
        """The pages a crawl from ``seeds`` must record, from SQLite only.

        1. Seeds are normalized (``_`` -> space, first letter upper-cased, a
           known namespace prefix sets the namespace, else ns 0).
        2. A title resolves to a page: missing -> ``missing``; a redirect is
           followed through the ``redirect`` table (chains, at most
           MAX_REDIRECT_HOPS hops; a broken end is ``missing``; a loop, a longer
           chain or an interwiki target resolves to nothing). The redirect pages
           go to ``redirects``; the final page gets the record, at the depth of
           the link (redirect hops add no depth), whatever its namespace.
        3. Seeds have depth 0. A page at depth d < max_depth has each of its
           ``pagelinks`` targets whose namespace is in ``namespaces`` resolved
           as in 2, at depth d + 1 (BFS: the minimal depth wins).
        """
        truth = GroundTruth()
        wanted_ns = set(namespaces)
        names = self._namespace_names()

        def title(ns: int, key: str) -> str:
            prefix = names.get(ns, "")
            text = key.replace("_", " ")
            return f"{prefix}:{text}" if prefix else text

        with self._db() as conn:
            pages: dict[tuple[int, str], tuple[int, bool]] = {
                (ns, _text(key)): (pid, bool(redir))
                for pid, ns, key, redir in conn.execute(
                    "SELECT page_id, page_namespace, page_title, page_is_redirect FROM page"
                )
            }
            targets: dict[int, tuple[int, str, str]] = {
                pid: (ns, _text(key), _text(iw or ""))
                for pid, ns, key, iw in conn.execute(
                    "SELECT rd_from, rd_namespace, rd_title, rd_interwiki FROM redirect"
                )
            }

            def resolve(ns: int, key: str) -> int | None:
                seen: set[tuple[int, str]] = set()
                for hops in range(MAX_REDIRECT_HOPS + 1):
                    page = pages.get((ns, key))
                    if page is None:
                        truth.missing.add(title(ns, key))
                        return None
                    pid, is_redirect = page
                    if not is_redirect:
                        return pid
                    truth.redirects.add(pid)
                    seen.add((ns, key))
                    target = targets.get(pid)
                    if hops == MAX_REDIRECT_HOPS or target is None or target[2]:
                        return None
                    ns, key = target[0], target[1]
                    if (ns, key) in seen:
                        return None
                return None

            queue: deque[int] = deque()
            for seed in seeds:
                pid = resolve(*self.normalize(seed))
                if pid is not None and pid not in truth.pages:
                    truth.pages[pid] = 0
                    queue.append(pid)
            while queue:
                pid = queue.popleft()
                depth = truth.pages[pid]
                if depth >= max_depth:
                    continue
                links = conn.execute(
                    "SELECT pl_namespace, pl_title FROM pagelinks WHERE pl_from = ?"
                    " ORDER BY pl_namespace, pl_title",
                    (pid,),
                ).fetchall()
                for ns, key in links:
                    if ns not in wanted_ns:
                        continue
                    found = resolve(ns, _text(key))
                    if found is not None and found not in truth.pages:
                        truth.pages[found] = depth + 1
                        queue.append(found)
        return truth
