"""A PostgreSQL cluster of a test's own, which it may stop and start (never the shared server).

``initdb`` and ``pg_ctl`` of Debian's PostgreSQL 15 (``/usr/lib/postgresql/15/bin``) make a
cluster in a new directory under the system temp dir, listening on 127.0.0.1 on a free port,
with trust authentication. PostgreSQL refuses to run as root, so as root the commands run as the
``postgres`` user (``runuser -u postgres --``), which then owns the directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from collections.abc import Sequence

PG_BIN = Path(os.environ.get("HOLOCRON_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
RUN_AS = "postgres"


def missing_requirements() -> list[str]:
    """Why a private cluster cannot be made here (empty: it can)."""
    problems = [
        f"no {PG_BIN / tool}" for tool in ("initdb", "pg_ctl") if not (PG_BIN / tool).exists()
    ]
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        problems.append("running as root without runuser")
    return problems


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivatePostgres:
    """One cluster: :meth:`start`, :meth:`stop` (fast: connections are cut, as in a crash of
    the server or a restart by an operator), :meth:`destroy`; :attr:`url` for SQLAlchemy."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.data = root / "data"
        self.log = root / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def create(cls) -> PrivatePostgres:
        root = Path(tempfile.mkdtemp(prefix="holocron-pg-"))
        root.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(root, RUN_AS, RUN_AS)
        cluster = cls(root, free_port())
        cluster._run(
            [str(PG_BIN / "initdb"), "-D", str(cluster.data), "-U", "postgres", "--auth=trust"],
            "-E",
            "UTF8",
            "--no-sync",
        )
        return cluster

    def _run(self, cmd: Sequence[str], *extra: str, timeout: float = 120.0) -> None:
        prefix = ["runuser", "-u", RUN_AS, "--"] if os.geteuid() == 0 else []
        proc = subprocess.run(
            [*prefix, *cmd, *extra],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.root,
        )
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n{log}"
            )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._run(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options],
            "-w",
            "start",
        )
        self.wait_ready()

    def stop(self) -> None:
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data)], "-m", "fast", "-w", "stop")

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            engine = sa.create_engine(self.url, poolclass=sa.NullPool)
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
                return
            except sa.exc.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
            finally:
                engine.dispose()

    def destroy(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data)], "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
