"""Load a topology file: YAML -> validated :class:`~nsnet.model.Topology`.

Every problem is collected before anything is returned, each with the file,
line, field path, what is wrong and how to fix it. The loader is a short
compiler whose passes each live in a module of their own and run in this order
(see :func:`_compile`):

0. :mod:`~nsnet.topology.source`: the YAML, with the line of every value;
1. :mod:`~nsnet.topology.shape`: its shape against the schema (pydantic);
2. :mod:`~nsnet.topology.underlay` and :func:`nsnet.topology.world.add_outside`:
   desugaring of ``hosts:`` (an underlay) and of ``outside:`` (a node);
3. :mod:`~nsnet.topology.namespaces`, :mod:`~nsnet.topology.links` and
   :mod:`~nsnet.topology.firewall`: the namespaces, their veth links,
   interfaces (with :mod:`nsnet.kinds.checks` for those of another ``kind:``),
   routes, sysctls and firewall rules;
4. :func:`nsnet.overlay.build.build`: VXLAN devices and entries of an overlay;
   then :func:`nsnet.kinds.checks.lab_problems`: the parents of macvlans and ipvlans;
5. :mod:`~nsnet.topology.checks`: whole-lab checks (addresses, bridge subnets
   and ports);
6. :func:`nsnet.topology.world.connect`: gateways, NAT, published ports and
   isolation on the host; then :mod:`~nsnet.topology.hostnames`: each
   namespace's ``hosts`` file (every name of the lab) and ``resolv.conf``;
7. :func:`nsnet.topology.checks.expectations`: ``expect:``.

Every pass writes its problems to one :class:`~nsnet.topology.report.Report`;
a pass that cannot go on (no YAML, a wrong shape) raises at once, the others
let later passes find more.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from nsnet.errors import Problem, TopologyError
from nsnet.kinds import checks as kind_checks
from nsnet.model import Topology
from nsnet.overlay.build import build as build_overlay
from nsnet.topology import checks, hostnames, inventory, links, namespaces, shape, source, underlay, world
from nsnet.topology.checks import BRIDGE_PORTS_MAX as BRIDGE_PORTS_MAX
from nsnet.topology.links import LINK_NAME_RE as LINK_NAME_RE
from nsnet.topology.namespaces import NODE_NAME_MAX as NODE_NAME_MAX
from nsnet.topology.report import Report
from nsnet.topology.schema import NAME_RE, TopologySpec
from nsnet.topology.source import MAX_DEPTH as MAX_DEPTH
from nsnet.topology.source import MAX_NODES as MAX_NODES
from nsnet.topology.source import Loc as Loc

LAB_NAME_MAX = 32


def load(path: str | Path) -> Topology:
    """Read and validate a topology file. Raises :class:`TopologyError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TopologyError([Problem(str(path), None, "", f"cannot read the file: {exc.strerror}")]) from None
    topology = loads(text, str(path))
    return replace(topology, source=str(path.resolve()))


def loads(text: str, filename: str = "<string>") -> Topology:
    """Validate a topology given as YAML text."""
    with _gc_paused():
        data, lines = source.parse(text, filename)
        return _validate(Report(filename, lines), data)


def from_dict(data: dict[str, Any], filename: str = "<dict>") -> Topology:
    """Validate a topology given as plain Python data (same shape as the file)."""
    with _gc_paused():
        return _validate(Report(filename, {}), data)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a file is read: it makes no cycles, and every
    collection would walk all it has made so far (10,000 nodes: 3 s instead of 1.3 s)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _validate(report: Report, data: Any) -> Topology:
    topology = _compile(report, shape.check(report, data))
    if report.problems:
        raise TopologyError(report.problems)
    return topology


def _compile(report: Report, spec: TopologySpec) -> Topology:
    """The passes after the schema's, in order; each adds what it finds to ``report``."""
    _lab_name(report, spec)
    spec, overlay = underlay.desugar(report, spec)
    spec = world.add_outside(report, spec)
    specs = namespaces.declared(report, spec, overlay)
    ends = links.endpoints(report, spec, specs)
    spaces = {name: namespaces.build(report, name, space, ends.get(name, {})) for name, space in specs.items()}
    if overlay is not None:
        spaces, problems = build_overlay(spaces, overlay, {n: report.base(n) for n in spaces})
        for loc, message, hint in problems:
            report.add(loc, message, hint)
    for ns, ifname, (sub, message, hint) in kind_checks.lab_problems(spaces):
        report.add((*report.base(ns), "interfaces", ifname, *sub), message, hint)
    checks.addresses(report, spaces)
    checks.bridge_subnets(report, spaces)
    checks.bridge_ports(report, spaces)
    spaces = world.connect(report, spec, spaces)
    spaces = hostnames.add(report, spec, spaces)
    expectations = checks.expectations(report, spec, spaces)
    return Topology(
        name=spec.name,
        host_mode=spec.host.mode,
        namespaces=spaces,
        expectations=expectations,
        overlay=overlay,
        machines=inventory.machines(spec.machines, spec.hosts, report.add),
    )


def _lab_name(report: Report, spec: TopologySpec) -> None:
    if not NAME_RE.match(spec.name) or ".." in spec.name or len(spec.name) > LAB_NAME_MAX:
        report.add(
            ("name",),
            f"lab name {spec.name!r} is not allowed",
            f"use up to {LAB_NAME_MAX} letters, digits, _ . - (no '/' or '..'), starting with a letter or digit",
        )
