"""Shared fixtures: unique lab names, running the CLI, leak checks, and which tests need root.

Every lab a test brings up gets a unique name (so tests run in parallel
under pytest-xdist) and is brought down at the end of the test, even when
the test fails; the test then fails if any namespace of that lab is left.

A test is a *kernel* test (marker ``kernel``: it needs root and builds real
namespaces) unless its module is marked ``unit`` and it uses none of
:data:`KERNEL_FIXTURES` (directly or through another fixture). Without root,
kernel tests are skipped; ``pytest -m "not kernel"`` runs only the unit tests.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
_counter = itertools.count()


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def nsnet(*args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
    """Run the nsnet CLI of this checkout in a child process."""
    proc = subprocess.run(
        [sys.executable, "-m", "nsnet", *args],
        input=input,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def explain_json(lab: str, *args: str, probe: bool = True) -> dict[str, Any]:
    """``nsnet explain LAB ARGS --json`` (with ``--probe`` unless told not): its exit code must match its verdict,
    and with ``--probe`` the kernel must agree with the prediction."""
    shown = nsnet("explain", lab, *args, *(["--probe"] if probe else []), "--json")
    assert shown.code in (0, 1), shown.text
    data: dict[str, Any] = json.loads(shown.out)
    assert shown.code == (0 if data["reachable"] else 1)
    if probe:
        assert data["observed"]["agrees"], data["observed"]
    return data


def sh(*argv: str) -> str:
    """Run a command, fail the test if it fails, return its output."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{' '.join(argv)} failed: {proc.stderr}"
    return proc.stdout


def netns_list() -> set[str]:
    try:
        return set(os.listdir("/run/netns"))
    except FileNotFoundError:
        return set()


def root_links() -> str:
    """The root namespace's link names (for 'unchanged' checks; read only)."""
    return "\n".join(sorted(line.split(":")[1].strip() for line in sh("ip", "-o", "link", "show").splitlines()))


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}{os.getpid() % 100000}x{next(_counter)}"


def _root_state() -> tuple[str, str]:
    """The root namespace's links and iptables rules (read only)."""
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
    return root_links(), "\n".join(line for line in rules.splitlines() if line.startswith("-A "))


KERNEL_FIXTURES = frozenset({"lab_name", "new_lab_name"})
"""Fixtures that bring labs up: a test that uses one is a kernel test wherever it is."""
IS_ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        pure = item.get_closest_marker("unit") is not None and not KERNEL_FIXTURES & set(
            getattr(item, "fixturenames", ())
        )
        if not pure and item.get_closest_marker("kernel") is None:
            item.add_marker(pytest.mark.kernel)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if not IS_ROOT and item.get_closest_marker("kernel") is not None:
        pytest.skip("kernel test: needs root (it builds real network namespaces); run the suite as root")


@pytest.fixture(scope="session", autouse=True)
def _leave_nothing() -> Iterator[None]:
    """The session leaves no namespace and changes nothing in the root namespace (checked as root)."""
    if not IS_ROOT:
        yield
        return
    before = _root_state()
    yield
    mine = tuple(f"{p}{os.getpid() % 100000}x" for p in ("t", "keep", "none"))
    leaked = sorted(ns for ns in netns_list() if ns.startswith(mine))
    assert not leaked, f"namespaces left behind by this test session: {leaked}"
    assert _root_state() == before, "the tests changed the root namespace's links or iptables rules"


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private nsnet state directory (journals, locks) for the test, as ``NSNET_STATE_DIR`` would give."""
    from nsnet import statedir

    path, old = tmp_path / "state", statedir.STATE_DIR
    monkeypatch.setenv("NSNET_STATE_DIR", str(path))
    for module in [m for name, m in sys.modules.items() if name.startswith("nsnet")]:
        for key, value in vars(module).items():  # STATE_DIR and the paths under it, read at import
            if key.isupper() and isinstance(value, Path) and value.is_relative_to(old):
                monkeypatch.setattr(module, key, path / value.relative_to(old))
    return path


@pytest.fixture
def lab_name() -> Iterator[str]:
    """A fresh lab name; whatever lab of that name is left at the end is brought down and checked."""
    name = unique_name()
    yield name
    _teardown(name)


def _teardown(name: str) -> None:
    if Path(f"/run/nsnet/labs/{name}.json").exists():
        result = nsnet("down", name, "-q")
        assert result.code == 0, f"down {name} failed: {result.text}"
    leaked = sorted(ns for ns in netns_list() if ns.startswith(f"{name}-"))
    for ns in leaked:  # clean up so one failure does not cascade, then fail
        subprocess.run(["ip", "netns", "del", ns], check=False)
    files = sorted(str(d) for d in Path("/etc/netns").glob(f"{name}-*")) if Path("/etc/netns").is_dir() else []
    for folder in files:
        shutil.rmtree(folder, ignore_errors=True)
    assert not leaked, f"namespaces left behind by lab {name}: {leaked}"
    assert not files, f"/etc/netns files left behind by lab {name}: {files}"


@pytest.fixture
def new_lab_name() -> Iterator[list[str]]:
    """Several lab names for one test: call ``names.append(unique_name())``."""
    names: list[str] = []
    yield names
    for name in names:
        _teardown(name)
