"""The code stays clean: ruff, strict mypy, modules of at most 500 lines, functions of cyclomatic complexity
at most 25 (measured by radon, as ``radon cc -s -n D src/nsnet`` does)."""

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


LINES_MAX = 500
COMPLEXITY_MAX = 25


def _modules() -> list[tuple[str, str]]:
    """(path under src/nsnet, text) of every module: all are held to the limits."""
    package = ROOT / "src" / "nsnet"
    return [(path.relative_to(package).as_posix(), path.read_text()) for path in sorted(package.rglob("*.py"))]


def test_no_module_is_longer_than_500_lines() -> None:
    long = [
        f"{name}: {len(text.splitlines())} lines" for name, text in _modules() if len(text.splitlines()) > LINES_MAX
    ]
    assert long == [], "split these modules:\n" + "\n".join(long)


def test_no_function_is_more_complex_than_25() -> None:
    from radon.complexity import cc_visit
    from radon.visitors import Function

    complex_ = [
        f"{name}:{block.lineno} {block.fullname}: cyclomatic complexity {block.complexity}"
        for name, text in _modules()
        for block in cc_visit(text)
        if isinstance(block, Function) and block.complexity > COMPLEXITY_MAX
    ]
    assert complex_ == [], "split these functions:\n" + "\n".join(complex_)
