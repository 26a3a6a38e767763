"""``scrapy ingest_verify`` run as a user runs it: a subprocess in the repository root, its
output captured (shared by the unit and end-to-end tests of the command)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

REPO_ROOT = Path(__file__).resolve().parents[2]


def ingest_verify(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """``scrapy ingest_verify ARGS`` (``env`` added to this process's environment)."""
    return subprocess.run(
        [sys.executable, "-m", "scrapy", "ingest_verify", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
