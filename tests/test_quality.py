"""The code stays clean: ruff and strict mypy."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.unit


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if not os.access(ROOT, os.W_OK):  # a checkout of another user's: the tools keep their caches elsewhere
        caches = Path(tempfile.gettempdir()) / f"nsnet-caches-{os.getuid()}"
        env.update(RUFF_CACHE_DIR=str(caches / "ruff"), MYPY_CACHE_DIR=str(caches / "mypy"))
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def test_ruff_lint() -> None:
    result = run("ruff", "check", "src", "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = run("ruff", "format", "--check", "src", "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
