"""Planning is pure: desired vs live state -> ordered actions, without the kernel."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nsnet.model import Firewall, Rule, State, bind, link_mark, namespace_mark
from nsnet.plan.diff import plan
from nsnet.plan.firewall import restore_text
from nsnet.topology.loader import load

from conftest import EXAMPLES

pytestmark = pytest.mark.unit


def test_fresh_plan_of_lab2_follows_the_seed_order() -> None:
    desired = bind(load(EXAMPLES / "lab2-bridge-fixed.yaml"))
    steps = plan(desired, State("lab2", {}), None)
    kinds = [type(a).__name__ for a in steps.actions]
    assert kinds == (
        ["CreateNamespace"] * 3
        + ["CreateLink"] * 3
        + ["SetLink"] * 2
        + ["Address"] * 2
        + ["NetnsFile"] * 3
        + ["SetLink"] * 5
        + ["SetSysctl", "ApplyFirewall"]
    )
    assert steps.lines()[:3] == ["create namespace RED", "create namespace BLUE", "create namespace lab2-host (host)"]
    assert steps.actions[-1].commands() == [
        "ip netns exec lab2-host iptables-restore --noflush <<'EOF'\n*filter\n:FORWARD DROP [0:0]\n"
        ":NSNET-FORWARD - [0:0]\n-A NSNET-FORWARD -s 11.11.11.0/24 -j ACCEPT\n"
        '-I FORWARD 1 -m comment --comment "nsnet:lab2" -j NSNET-FORWARD\nCOMMIT\nEOF'
    ]


def test_a_live_state_equal_to_the_desired_one_needs_nothing() -> None:
    desired = bind(load(EXAMPLES / "lab2-bridge.yaml"), "x")
    live = State(
        "x",
        {
            ns: replace(
                space,
                mark=namespace_mark("x", space.label),
                links={n: replace(link, alias=link_mark("x")) for n, link in space.links.items()},
                firewall=replace(space.firewall),
            )
            for ns, space in desired.namespaces.items()
        },
    )
    assert not plan(desired, live, None)


def test_dropping_every_rule_removes_chain_and_jump() -> None:
    live = Firewall(
        rules=(Rule(4, "filter", "FORWARD", "-j ACCEPT"),),
        chains=frozenset({(4, "filter", "FORWARD")}),
        jumps=frozenset({(4, "filter", "FORWARD")}),
    )
    text = restore_text("lab", Firewall(), live, 4, {})
    assert text == (
        "*filter\n:NSNET-FORWARD - [0:0]\n"
        '-D FORWARD -m comment --comment "nsnet:lab" -j NSNET-FORWARD\n-X NSNET-FORWARD\nCOMMIT\n'
    )
    assert restore_text("lab", live, live, 4, {}) == ""


def test_root_host_plans_commands_in_the_root_namespace() -> None:
    from nsnet.statedir import identity
    from nsnet.topology.loader import loads

    topology = loads(
        "name: r\nhost: root\nnodes:\n  A:\n    interfaces:\n      a0: {addresses: [10.9.0.2/24]}\n"
        "links:\n  - [A:a0, host:ra0]\n"
    )
    steps = plan(bind(topology), State("r", {}), None)
    commands = [c for a in steps.actions for c in a.commands()]
    assert "ip netns add A" in commands
    assert "ip link add ra0 type veth peer name a0 netns A" in commands
    assert "ip link set ra0 alias nsnet:r addrgenmode none" in commands
    assert "ip link set ra0 up" in commands
    assert [c for c in commands if "netns add" in c or "lo up" in c] == [
        "ip netns add A",
        f"ip -n A link set lo up alias nsnet:r:A:{identity()}",
    ]


def test_root_host_never_deletes_the_machines_own_routes() -> None:
    from nsnet.engine.journal import Journal
    from nsnet.model import ROOT_NS, Namespace, Route

    machine = Route(to="0.0.0.0/0", via="192.168.1.1", dev="eth0")
    mine = Route(to="10.99.0.0/16", via="10.9.0.1", dev="ra0")
    live = State("r", {ROOT_NS: Namespace(name=ROOT_NS, label="host", role="host", routes=frozenset({machine, mine}))})
    desired = State("r", {ROOT_NS: Namespace(name=ROOT_NS, label="host", role="host")})
    journal = Journal(lab="r", host_mode="root", root_routes=[str(mine)])
    assert plan(desired, live, journal, adopt=True).lines() == [
        "delete route 10.99.0.0/16 via 10.9.0.1 dev ra0 in root"
    ]
    assert plan(desired, live, None, adopt=True).lines() == []


def test_the_phases_of_a_plan_run_in_one_stated_order() -> None:
    from nsnet.plan.phases import Phase

    assert [phase.name for phase in Phase] == [
        "ROUTE_REMOVALS",
        "EARLY_REMOVALS",
        "NAMESPACES",
        "LINKS_ALONE",
        "LINK_PAIRS",
        "LINKS_ON_LOWER",
        "LINK_SETTINGS",
        "ADDRESS_REMOVALS",
        "ADDRESSES",
        "NAMES",
        "ALONE_UP",
        "LINKS_UP",
        "ENTRIES",
        "ROUTES",
        "SHAPING",
        "SYSCTLS",
        "FIREWALL",
        "SERVERS",
        "LINK_REMOVALS",
        "BRIDGE_REMOVALS",
        "NAMESPACE_REMOVALS",
    ]
    assert {p.name for p in Phase if p.last_found_first} == {"ROUTE_REMOVALS", "ADDRESS_REMOVALS", "ALONE_UP"}


def test_every_kind_is_made_in_a_creation_phase() -> None:
    from nsnet.kinds import KINDS
    from nsnet.plan.phases import CREATION, Phase

    assert [CREATION[kind.order] for kind in KINDS.values()]  # no order without its phase
    assert {name: CREATION[kind.order] for name, kind in KINDS.items() if name in ("bridge", "veth", "vxlan")} == {
        "bridge": Phase.LINKS_ALONE,
        "veth": Phase.LINK_PAIRS,
        "vxlan": Phase.LINKS_ON_LOWER,
    }


def test_a_plan_removes_what_clashes_first_and_what_goes_away_last() -> None:
    from nsnet.model import Link, Route

    desired = bind(load(EXAMPLES / "lab2-bridge-fixed.yaml"), "x")
    live = State(
        "x",
        {
            ns: replace(
                space,
                mark=namespace_mark("x", space.label),
                links={n: replace(link, alias=link_mark("x")) for n, link in space.links.items()},
            )
            for ns, space in desired.namespaces.items()
        },
    )
    red, host = live.namespaces["x-RED"], live.namespaces["x-host"]
    live.namespaces["x-RED"] = replace(
        red,
        links={"reth0": replace(red.links["reth0"], addresses=frozenset({"11.11.11.9/24", "11.11.11.8/24"}))},
        routes=frozenset({Route("10.1.0.0/16", "11.11.11.1"), Route("10.2.0.0/16", "11.11.11.1")}),
    )
    links = dict(host.links)
    links["br0"] = replace(links["br0"], up=False)
    links["old0"] = Link(name="old0", kind="bridge", alias=link_mark("x"))
    live.namespaces["x-host"] = replace(host, links=links)
    assert plan(desired, live, None).lines() == [
        "delete route 10.2.0.0/16 via 11.11.11.1 in x-RED",
        "delete route 10.1.0.0/16 via 11.11.11.1 in x-RED",
        "delete address 11.11.11.9/24 from x-RED:reth0",
        "delete address 11.11.11.8/24 from x-RED:reth0",
        "add address 11.11.11.2/24 to x-RED:reth0",
        "set x-host:br0 up",
        "iptables in x-host: re-link nsnet chains",
        "delete link x-host:old0",
    ]
