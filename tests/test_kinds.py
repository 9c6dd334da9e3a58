"""Link kinds: macvlan, ipvlan and dummy on the real kernel, and the plan's script building what ``up`` builds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from nsnet.engine.observe import observe
from nsnet.engine.seam import LiveKernel
from nsnet.kernel import linkkinds
from nsnet.model import ROOT_NS, Endpoint, State, bind, netns_names
from nsnet.plan.diff import plan
from nsnet.topology.loader import load, loads

from conftest import EXAMPLES, netns_list, nsnet, sh, unique_name

LAB5 = EXAMPLES / "lab5-macvlan.yaml"
LAB6 = EXAMPLES / "lab6-kinds.yaml"


def ping(ns: str, address: str) -> bool:
    argv = ["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", address]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def kernel_state(path: Path, lab: str) -> dict[str, Any]:
    """What observe reads of a lab made from ``path`` under ``lab``, by logical namespace, without MACs,
    ifindexes or the lab's name; with every route of every table as ``ip route`` lists it."""
    topology = load(path)
    names = netns_names(topology, lab)
    label = {ns: logical for logical, ns in names.items()}

    def end(e: Endpoint | None) -> tuple[str, str] | None:
        return (label.get(e.ns, "?"), e.ifname) if e else None

    with LiveKernel() as nl:
        live = observe(nl, lab, bind(topology, lab), None)
    out: dict[str, Any] = {}
    for ns, space in live.namespaces.items():
        links = {
            name: (
                link.kind,
                link.master,
                link.mtu,
                link.up,
                sorted(link.addresses),
                end(link.peer),
                end(link.parent),
                link.mode,
                link.stp,
                link.ageing,
                link.vxlan,
                (link.alias or "").replace(lab, "LAB"),
            )
            for name, link in space.links.items()
        }
        routes = sh("ip", "-n", ns, "route", "show", "table", "all") if ns != ROOT_NS else ""
        out[label[ns]] = {
            "links": links,
            "static": sorted(str(r) for r in space.routes),
            "routes": sorted(routes.splitlines()),
            "sysctls": space.sysctls,
            "policies": space.firewall.policies,
            "rules": sorted(str(r).replace(lab, "LAB") for r in space.firewall.rules),
            "mark": (space.mark or "").replace(lab, "LAB"),
        }
    return out


SCRIPTED = [EXAMPLES / "lab1-veth.yaml", EXAMPLES / "lab2-bridge-fixed.yaml", EXAMPLES / "lab4-outside.yaml", LAB5]


@pytest.mark.parametrize("path", SCRIPTED, ids=lambda p: p.stem)
def test_the_plans_script_builds_what_up_builds(path: Path, lab_name: str) -> None:
    scripted = unique_name()
    result = nsnet("plan", str(path), "--fresh", "--script", "--name", scripted)
    assert result.code == 0, result.text
    # The outside's HTTP server is a process, not kernel state: left out of the script's run.
    script = "\n".join(line for line in result.out.splitlines() if "outside_server" not in line)
    spaces = [ns for ns in netns_names(load(path), scripted).values() if ns != ROOT_NS]
    try:
        run = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False, timeout=120)
        assert run.returncode == 0, run.stderr
        up = nsnet("up", str(path), "--name", lab_name)
        assert up.code == 0, up.text
        assert kernel_state(path, scripted) == kernel_state(path, lab_name)
    finally:
        for ns in spaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    assert not set(spaces) & netns_list()


def test_macvlan_nodes_reach_each_other_and_the_bridge(lab_name: str) -> None:
    first = nsnet("up", str(LAB5), "--name", lab_name)
    assert first.code == 0, first.text
    a, b, red = (f"{lab_name}-{n}" for n in ("A", "B", "RED"))
    assert ping(a, "10.40.0.12") and ping(a, "10.40.0.2") and ping(red, "10.40.0.12")
    link = json.loads(sh("ip", "-n", a, "-d", "-j", "link", "show", "mv0"))[0]
    assert link["linkinfo"]["info_kind"] == "macvlan" and link["linkinfo"]["info_data"]["mode"] == "bridge"

    again = nsnet("up", str(LAB5), "--name", lab_name)
    assert again.code == 0 and "nothing changed" in again.out, again.text
    assert (
        nsnet("plan", str(LAB5), "--name", lab_name)
        .out.strip()
        .endswith("nothing to do, the kernel matches the topology")
    )

    view = json.loads(nsnet("inspect", lab_name, "A", "--json").out)
    mv0 = next(link for space in view["namespaces"] for link in space["links"] if link["name"] == "mv0")
    assert (mv0["kind"], mv0["mode"], mv0["parent"]["node"], mv0["parent"]["name"]) == (
        "macvlan",
        "bridge",
        "host",
        "br0",
    )
    assert "macvlan bridge on host:br0" in nsnet("inspect", lab_name, "A").out
    graph = nsnet("graph", lab_name, "--format", "mermaid").out
    assert graph.count("-.-|macvlan bridge|") == 2 and "(macvlan bridge)" in graph

    # explain agrees with the real pings: across siblings, and out through the parent bridge to a veth node
    for src, dst in (("A", "10.40.0.12"), ("A", "10.40.0.2"), ("RED", "10.40.0.11")):
        out = nsnet("explain", lab_name, src, dst)
        assert f"verdict: {src} reaches {dst} (icmp), and the answer comes back" in out.out, out.text
    assert "out of mv0 -> B:mv0 (macvlan bridge on host:br0)" in nsnet("explain", lab_name, "A", "10.40.0.12").out

    down = nsnet("down", lab_name)
    assert down.code == 0, down.text
    assert not {a, b, red} & netns_list()


def test_macvlan_mode_change_makes_the_link_again(lab_name: str) -> None:
    assert nsnet("up", str(LAB5), "--name", lab_name).code == 0
    private = LAB5.read_text().replace("mode: bridge", "mode: private")
    topology = loads(private, "lab5.yaml")
    desired = bind(topology, lab_name)
    with LiveKernel() as nl:
        live = observe(nl, lab_name, desired, None)
    steps = plan(desired, live, None, adopt=True)
    assert [a.describe() for a in steps.actions][:2] == [
        f"delete link {lab_name}-A:mv0",
        f"create macvlan {lab_name}-A:mv0 on {lab_name}-host:br0 (private)",
    ]


@pytest.mark.parametrize("kind", ["ipvlan", "dummy"])
def test_a_kernel_without_the_kind_is_refused_before_anything_changes(kind: str, lab_name: str) -> None:
    if linkkinds.available(kind):
        pytest.skip(f"this kernel has {kind}")
    result = nsnet("up", str(LAB6), "--name", lab_name)
    assert result.code != 0
    assert f"CONFIG_{kind.upper()}" in result.text and f"module {kind}" in result.text
    assert not {ns for ns in netns_list() if ns.startswith(f"{lab_name}-")}


def test_ipvlan_and_dummy_on_a_kernel_that_has_them(lab_name: str) -> None:
    missing = [k for k in ("ipvlan", "dummy") if not linkkinds.available(k)]
    if missing:
        pytest.skip(f"this kernel lacks {', '.join(missing)} (CONFIG_{', CONFIG_'.join(m.upper() for m in missing)})")
    assert nsnet("up", str(LAB6), "--name", lab_name).code == 0
    a, c = f"{lab_name}-A", f"{lab_name}-C"
    assert ping(c, "10.41.0.12") and ping(a, "10.99.0.1") and ping(a, "10.40.0.12")
    assert "nothing changed" in nsnet("up", str(LAB6), "--name", lab_name).out
    out = nsnet("inspect", lab_name, "C").out
    assert "ipvlan l2 on host:br1" in out
    assert nsnet("reach", lab_name).code == 0


def test_the_script_names_each_kinds_command() -> None:
    steps = plan(bind(load(LAB6), "k"), State("k", {}), None)
    commands = [c for a in steps.actions for c in a.commands()]
    assert "ip -n k-host link add mv0 link br0 netns k-A type macvlan mode bridge" in commands
    assert "ip -n k-host link add iv0 link br1 netns k-D type ipvlan mode l2" in commands
    assert "ip -n k-A link add lo1 type dummy" in commands
    assert "ip -n k-A link set lo1 alias nsnet:k addrgenmode none" in commands
    assert "create dummy k-A:lo1" in steps.lines()


BAD = """name: bad
host:
  bridges:
    br0: {}
  interfaces:
    reth1: {master: br0}
nodes:
  A:
    interfaces:
      m0: {kind: macvlna, parent: br0}
      m1: {kind: macvlan}
      m2: {kind: macvlan, parent: br0, mode: l2}
      m3: {kind: macvlan, parent: br9}
      m4: {kind: macvlan, parent: reth1}
      d0: {kind: dummy, parent: br0}
  RED:
    interfaces:
      reth0: {kind: dummy}
  B:
    interfaces:
      m5: {kind: macvlan, parent: br0}
      i5: {kind: ipvlan, parent: br0}
links:
  - [RED:reth0, host:reth1]
"""


def test_kind_problems_are_reported_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    out = nsnet("validate", str(path)).text
    for line, problem in [
        (10, "nodes.A.interfaces.m0.kind: 'macvlna' is not a kind of interface nsnet makes (did you mean 'macvlan'?)"),
        (11, "nodes.A.interfaces.m1: a macvlan interface needs a parent"),
        (12, "nodes.A.interfaces.m2.mode: 'l2' is not a macvlan mode (use one of bridge, private, vepa, passthru)"),
        (13, "nodes.A.interfaces.m3.parent: interface 'br9' does not exist in host (did you mean 'br0'?)"),
        (14, "nodes.A.interfaces.m4.parent: reth1 is a port of bridge br0"),
        (15, "nodes.A.interfaces.d0.parent: a dummy interface takes no parent"),
        (18, "nodes.RED.interfaces.reth0: this interface is an end of a link under links:, not a dummy"),
        (22, "nodes.B.interfaces.i5.parent: br0 already carries a macvlan"),
    ]:
        assert f"bad.yaml:{line}: {problem}" in out, out
