"""End to end: the project deployed with ``scrapyd-deploy`` to two real scrapyd daemons (two
"machines" on two loopback ports, each in its own directory), two jobs scheduled on each with
``schedule.json`` (``-a source=…`` and ``setting=`` overrides), all four on one PostgreSQL frontier
(a random schema), against the real MediaWiki test bed.

The daemons run in a fresh virtualenv that sees the test environment's dependencies but not the
checkout: the jobs import holocron_scrapy from the deployed egg only. Every request each job made
is read from its DEBUG log: the union of the titles fetched is the ground truth, none is fetched
twice, every job ends ``finished`` when the frontier is exhausted (no job left while another
still had work in flight)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.crawl_helpers import (
    FAST_SETTINGS,
    REPO_ROOT,
    SOURCE_NAME,
    assert_records_match,
    assert_work_items_match,
    expect_crawl,
    log_stat,
    write_source,
)
from tests.e2e.dist_helpers import BUILD_DIRS, BUILD_FILES, fresh_venv
from tests.e2e.test_workers import fetched_titles

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.e2e.crawl_helpers import Database
    from tests.e2e.dist_helpers import Venv
    from tests.e2e.wiki import MediaWiki

PROJECT = "holocron_scrapy"
VERSION = "r1"
MACHINES = ("machine-a", "machine-b")
JOBS_PER_MACHINE = 2
SEED = "Darth Vader"
MAX_DEPTH = 1  # 50 pages: enough to share among 4 jobs, small enough for a loaded machine
TIMEOUT = 120.0
# Two titles a request, one request per 0.1 s between all the jobs (the shared budget): the crawl
# lasts longer than the jobs take to start, so that they all get work.
SETTINGS = {**FAST_SETTINGS, "MEDIAWIKI_TITLES_PER_REQUEST": 2, "DOWNLOAD_DELAY": 0.1}
SCRAPYD_CONF = """\
[scrapyd]
bind_address = 127.0.0.1
http_port = {port}
poll_interval = 0.2
max_proc = 4
eggs_dir = eggs
logs_dir = logs
dbs_dir = dbs
items_dir =
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def api(port: int, endpoint: str, data: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    url = f"http://127.0.0.1:{port}/{endpoint}"
    # Generous: scrapyd answers some calls only after running `scrapy list` in a subprocess.
    with urllib.request.urlopen(url, data=body, timeout=60) as response:
        answer: dict[str, Any] = json.load(response)
    assert answer.get("status") == "ok", answer
    return answer


class Scrapyd:
    """One scrapyd daemon in ``root`` on a free port, run by ``venv``'s interpreter."""

    def __init__(self, root: Path, venv: Venv, env: dict[str, str]) -> None:
        self.root = root
        self.port = free_port()
        root.mkdir(parents=True)
        (root / "scrapyd.conf").write_text(SCRAPYD_CONF.format(port=self.port))
        self.log = root / "scrapyd.out"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(venv.python), "-m", "scrapyd"],
                cwd=root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text(errors="replace")
            try:
                api(self.port, "daemonstatus.json")
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"scrapyd did not answer: {self.log.read_text(errors='replace')}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def job_log(self, job: str) -> str:
        return (self.root / "logs" / PROJECT / "mediawiki" / f"{job}.log").read_text("utf-8")


@pytest.fixture
def daemons(tmp_path: Path, crawl_db: Database) -> Iterator[dict[str, Scrapyd]]:
    venv = fresh_venv(tmp_path / "venv")
    probe = subprocess.run(
        [str(venv.python), "-c", "import holocron_scrapy"],
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    assert probe.returncode != 0, "the daemons' environment must not see the checkout"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOLOCRON_", "SCRAPY_"))}
    # Secrets and the shared database from the environment, as on real machines.
    env["HOLOCRON_DB_URL"] = crawl_db.url
    assert crawl_db.schema is not None
    env["HOLOCRON_DB_SCHEMA"] = crawl_db.schema
    with ExitStack() as stack:
        started = {}
        for machine in MACHINES:
            daemon = Scrapyd(tmp_path / machine, venv, env)
            stack.callback(daemon.stop)
            started[machine] = daemon
        for daemon in started.values():
            daemon.wait_ready()
        yield started


def deploy(project: Path, daemons: dict[str, Scrapyd]) -> str:
    """``scrapyd-deploy``: build the egg of a copy of the checkout (``--build-egg``), upload it
    to every target of its ``scrapy.cfg`` (``-a --egg``)."""
    project.mkdir()
    for name in BUILD_FILES:
        shutil.copy2(REPO_ROOT / name, project / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in BUILD_DIRS:
        shutil.copytree(REPO_ROOT / name, project / name, ignore=ignore)
    targets = "".join(
        f"\n[deploy:{machine}]\nurl = http://127.0.0.1:{daemon.port}/\nproject = {PROJECT}\n"
        for machine, daemon in daemons.items()
    )
    (project / "scrapy.cfg").write_text(f"[settings]\ndefault = {PROJECT}.settings\n{targets}")
    deploy_cmd = str(Path(sys.executable).with_name("scrapyd-deploy"))
    egg = project / "project.egg"
    output = ""
    # One egg for both machines (as -a alone would build it once per target), then deployed.
    for cmd in ([deploy_cmd, "--build-egg", str(egg)], [deploy_cmd, "-a", "--egg", str(egg)]):
        proc = subprocess.run(
            [*cmd, "--version", VERSION],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        output += proc.stdout + proc.stderr
        assert proc.returncode == 0, output
    return output


@pytest.mark.parametrize("crawl_db", ["postgresql"], indirect=True)
def test_two_scrapyd_machines_two_jobs_each_share_one_frontier(
    mediawiki: MediaWiki, tmp_path: Path, crawl_db: Database, daemons: dict[str, Scrapyd]
) -> None:
    source = write_source(
        tmp_path / f"{SOURCE_NAME}.yaml",
        mediawiki.api_url,
        [SEED],
        max_depth=MAX_DEPTH,
        settings=SETTINGS,
    )
    lake = tmp_path / "lake"
    started = time.monotonic()
    output = deploy(tmp_path / "project", daemons)
    deployed = time.monotonic()
    # Each daemon listed the egg's spiders (http, mediawiki) when it took the version.
    assert output.count('"spiders": 2') == len(daemons), output

    jobs: list[tuple[Scrapyd, str]] = []
    for machine, daemon in daemons.items():
        for _ in range(JOBS_PER_MACHINE):
            answer = api(
                daemon.port,
                "schedule.json",
                [
                    ("project", PROJECT),
                    ("_version", VERSION),  # the one deployed: its spiders are known
                    ("spider", "mediawiki"),
                    ("source", str(source)),
                    ("setting", f"HOLOCRON_WORKER_ID={machine}"),
                    ("setting", f"HOLOCRON_LAKE_DIR={lake}"),
                    ("setting", "HOLOCRON_CLAIM_SIZE=5"),
                    ("setting", "HOLOCRON_IDLE_POLL=0.5"),
                    ("setting", "HOLOCRON_MAX_ATTEMPTS=1"),
                    ("setting", "LOG_LEVEL=DEBUG"),
                    ("setting", "TELNETCONSOLE_ENABLED=False"),
                ],
            )
            jobs.append((daemon, answer["jobid"]))

    deadline = time.monotonic() + TIMEOUT
    while True:
        finished = {
            job["id"]
            for daemon in daemons.values()
            for job in api(daemon.port, f"listjobs.json?project={PROJECT}")["finished"]
        }
        if all(job in finished for _, job in jobs):
            break
        assert time.monotonic() < deadline, f"jobs not finished in {TIMEOUT} s: {jobs}"
        time.sleep(0.3)

    ended = time.monotonic()
    logs = [daemon.job_log(job) for daemon, job in jobs]
    for log in logs:
        assert "'finish_reason': 'finished'" in log, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
    per_job = [fetched_titles(log) for log in logs]
    counts = Counter(title for titles in per_job for title in titles)
    twice = {title: n for title, n in counts.items() if n > 1}
    print(
        f"deployed to {len(daemons)} daemons in {deployed - started:.1f} s; {len(jobs)} jobs in "
        f"{ended - deployed:.1f} s; titles fetched per job {[len(t) for t in per_job]}"
    )
    expected = expect_crawl(mediawiki, [SEED], MAX_DEPTH)
    assert not twice, f"titles fetched more than once: {twice}"
    assert set(counts) == set(expected.items), "the union of the fetches is not the ground truth"
    assert sum(bool(titles) for titles in per_job) >= 2, "the work was not shared"
    assert_work_items_match(expected, crawl_db)
    assert_records_match(expected, crawl_db, lake)
    assert sum(log_stat(log, "holocron/outcomes/stale_lease") for log in logs) == 0

    runs = crawl_db.runs()
    assert sorted(run["worker_id"] for run in runs) == sorted(
        machine for machine in MACHINES for _ in range(JOBS_PER_MACHINE)
    )
    assert {run["status"] for run in runs} == {"finished"}
    last = max(crawl_db.work_items(), key=lambda item: item["finished_at"])
    early = [
        (run["worker_id"], run["run_id"], run["finished_at"])
        for run in runs
        if run["finished_at"] < last["finished_at"]
    ]
    assert not early, f"jobs ended before the last item {last} finished: {early}"
