"""Style and types are part of the test command: ruff over the tree, mypy --strict over src/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff() -> None:
    _run("ruff", "check", "src", "tests", "bench", "examples")


def test_mypy_strict() -> None:
    _run("mypy", "--strict", "src")
