"""The pytest plugin (entry point ``pytest11``, loaded by installing nsnet): labs for tests.

- ``@pytest.mark.nsnet_topology(TOPOLOGY)`` and the ``lab`` fixture: the
  topology (a file path, relative to the test file, or a
  :class:`~nsnet.model.Topology`) brought up for the test;
- ``nsnet_lab``: a factory fixture, ``nsnet_lab(TOPOLOGY) -> Lab``, for
  tests that need several labs or build their topology in code.

Every lab gets a name of its own (``<prefix><pid>x<n>``, prefix ``nsn`` unless
``--nsnet-prefix`` or the ``nsnet_prefix`` ini option says otherwise:
pytest-xdist workers never collide), runs in its own sandbox host, and is
brought down when the test ends, whatever happened; the test errors if any
of its namespaces is left. When a test fails, its report gets a section with
``nsnet inspect`` of each of its labs (as wide as the terminal, sections no
namespace has left out) and one with the last packets its captures saw.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from nsnet.engine import directory
from nsnet.engine.journal import check_lab_name
from nsnet.errors import NsnetError
from nsnet.kernel import netns
from nsnet.lab import Lab, TopologySource
from nsnet.model import Topology
from nsnet.topology.loader import load

MARKER = "nsnet_topology"
PREFIX = "nsn"
LABS = pytest.StashKey[list[Lab]]()
PACKETS_SHOWN = 50
_counter = itertools.count()
_prefix = PREFIX

LabFactory = Callable[[TopologySource], Lab]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nsnet")
    help_text = f"lab names start with this, then <pid>x<n> (default {PREFIX!r})"
    group.addoption("--nsnet-prefix", dest="nsnet_prefix", default=None, help=help_text)
    parser.addini("nsnet_prefix", help_text, default=PREFIX)


def pytest_configure(config: pytest.Config) -> None:
    global _prefix
    prefix = config.getoption("nsnet_prefix") or config.getini("nsnet_prefix") or PREFIX
    try:
        check_lab_name(f"{prefix}1x1")
    except NsnetError:
        raise pytest.UsageError(
            f"nsnet_prefix {prefix!r} cannot start a lab name: use letters, digits, _ . - (starting with one "
            "of the first two)"
        ) from None
    _prefix = prefix
    config.addinivalue_line(
        "markers",
        f"{MARKER}(topology): bring TOPOLOGY (a file path relative to the test file, or a Topology) "
        "up for the `lab` fixture, under a unique name; brought down after the test",
    )


def unique_lab_name() -> str:
    """A lab name no lab and no namespace on this machine uses: ``<prefix><pid>x<n>``."""
    taken = {info.name for info in directory.labs()}
    spaces = netns.names()
    while True:
        name = f"{_prefix}{os.getpid()}x{next(_counter)}"
        if name not in taken and not any(ns.startswith(f"{name}-") for ns in spaces):
            return name


def _topology(source: TopologySource, test_file: Path) -> Topology:
    if isinstance(source, Topology):
        return source
    path = Path(source)
    return load(path if path.is_absolute() else test_file.parent / path)


@pytest.fixture
def nsnet_lab(request: pytest.FixtureRequest) -> Iterator[LabFactory]:
    """``nsnet_lab(topology) -> Lab``: bring a topology (file or object) up for this test, under a unique name."""
    mine: list[Lab] = []
    labs = request.node.stash.setdefault(LABS, [])

    def factory(source: TopologySource) -> Lab:
        topology = _topology(source, request.path)
        if topology.host_mode == "root":
            pytest.fail(
                f"lab {topology.name!r} has `host: root`: the nsnet plugin only runs sandboxed labs "
                "(tests in parallel must not share the machine's own namespace)",
                pytrace=False,
            )
        lab = Lab(topology, unique_lab_name())
        lab.__enter__()
        mine.append(lab)
        labs.append(lab)
        return lab

    yield factory
    problems: list[str] = []
    for lab in reversed(mine):
        try:
            lab.__exit__(None, None, None)
        except NsnetError as exc:
            problems.append(f"lab {lab.name}: down failed: {exc}")
        left = [ns for ns in netns.names() if ns.startswith(f"{lab.name}-")]
        if left:
            problems.append(f"lab {lab.name}: namespaces left behind: {', '.join(left)}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def lab(request: pytest.FixtureRequest, nsnet_lab: LabFactory) -> Lab:
    """The lab of the test's ``@pytest.mark.nsnet_topology(...)`` (or of ``indirect`` parametrization), up."""
    source: Any = getattr(request, "param", None)
    if source is None:
        marker = request.node.get_closest_marker(MARKER)
        if marker is None or len(marker.args) != 1:
            pytest.fail(
                f"the `lab` fixture needs a topology: @pytest.mark.{MARKER}('file.yaml') on the test, "
                "or the nsnet_lab(topology) fixture",
                pytrace=False,
            )
        source = marker.args[0]
    return nsnet_lab(source)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and call.when in ("setup", "call"):
        for used in item.stash.get(LABS, []):
            if used.is_up:
                width = item.config.get_terminal_writer().fullwidth
                report.sections.append((f"nsnet inspect {used.name}", inspect_text(used, width)))
            if used.captured:
                shown = used.captured[-PACKETS_SHOWN:]
                report.sections.append(
                    (f"nsnet last {len(shown)} packets {used.name}", "\n".join(map(str, shown)) + "\n")
                )
    return report


def inspect_text(lab: Lab, width: int = 200) -> str:
    """``nsnet inspect`` of ``lab`` as text, as the CLI prints it ``width`` columns wide."""
    from rich.console import Console

    from nsnet.cli.inspect import print_sections
    from nsnet.inspect import SECTIONS

    try:
        view = lab.inspect()
    except NsnetError as exc:
        return f"inspect failed: {exc}\n"
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False, highlight=False)
    print_sections(console, view, SECTIONS, width)
    return buffer.getvalue()
