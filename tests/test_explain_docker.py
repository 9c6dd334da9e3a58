"""explain on a Docker host, pure: a snapshot taken on a real one, and Docker 20.10's own rules.

``data/lab2-docker-root-snapshot.json`` is lab 2 with ``host: root`` brought up
in a private world (tests/world.py) where Debian's dockerd 20.10 runs
(tests/dockerd.py) with one container publishing port 8080 (``docker run -d
-p 8080:80 nsnet-busybox:test httpd -f -p 80``), read by
:func:`nsnet.explain.snapshot.snapshot` and saved with ``to_json``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from nsnet.explain import Walker
from nsnet.explain.fixes import firewall_fix
from nsnet.explain.netfilter import Context, Decision, Packet, address_type, evaluate, rule_matches
from nsnet.explain.snapshot import from_json
from nsnet.explain.verdict import Snapshot
from nsnet.views import ChainView, RuleView, TableView

pytestmark = pytest.mark.unit

SAVED = json.loads((Path(__file__).parent / "data" / "lab2-docker-root-snapshot.json").read_text())
HOST_LOCAL = frozenset({"127.0.0.1", "172.17.0.1", "::1"})


def docker_host() -> Snapshot:
    return from_json(SAVED)


def host_tables(snap: Snapshot) -> list[TableView]:
    return snap.spaces["host"].view.firewall or []


def with_rule(snap: Snapshot, table: str, chain: str, rule: str) -> Snapshot:
    """``snap`` with ``rule`` inserted first in ``table``/``chain`` of the host."""
    tables = []
    for t in host_tables(snap):
        chains = [
            replace(c, rules=[RuleView(rule, 0, 0, False), *c.rules]) if t.table == table and c.name == chain else c
            for c in t.chains
        ]
        tables.append(replace(t, chains=chains))
    host = snap.spaces["host"]
    spaces = dict(snap.spaces, host=replace(host, view=replace(host.view, firewall=tables)))
    return replace(snap, spaces=spaces)


def test_the_snapshot_is_a_docker_host_in_the_root_namespace() -> None:
    snap = docker_host()
    assert snap.spaces["host"].view.netns == ""
    rules = [r.rule for t in host_tables(snap) for c in t.chains for r in c.rules]
    assert "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER" in rules
    assert "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80" in rules


def test_dockers_forward_policy_is_named_and_the_fix_goes_to_docker_user() -> None:
    e = Walker(docker_host()).explain("RED", "BLUE")
    assert not e.reachable
    assert e.verdict.endswith("policy DROP of FORWARD in host's filter table drops it")
    texts = [s.text for s in e.legs[0].steps]
    assert "netfilter PREROUTING: nat/PREROUTING -> ACCEPT by policy ACCEPT of PREROUTING" in texts
    assert e.fix is not None
    assert e.fix.command == "iptables -I DOCKER-USER -s 11.11.11.0/24 -j ACCEPT"
    assert "Docker's documentation tells users to put their own rules in DOCKER-USER" in e.fix.summary
    assert "a rule appended to FORWARD may end up after Docker's chains when dockerd restarts" in e.fix.summary
    assert e.fix.topology is not None and "{chain: FORWARD, source: 11.11.11.0/24, action: ACCEPT}" in e.fix.topology


def test_the_docker_user_fix_makes_it_reachable() -> None:
    snap = with_rule(docker_host(), "filter", "DOCKER-USER", "-A DOCKER-USER -s 11.11.11.0/24 -j ACCEPT")
    e = Walker(snap).explain("RED", "BLUE")
    assert e.reachable, e.verdict
    assert all("DOCKER-USER" in s.text for s in e.legs[1].steps if s.text.startswith("netfilter FORWARD"))


V4 = 4


@pytest.mark.parametrize(
    ("hook", "pkt", "ctx", "verdict", "nat", "by"),
    [
        # A published port on a host address: Docker's nat DOCKER chain, reached through addrtype LOCAL.
        ("PREROUTING", Packet(V4, "11.11.11.2", "172.17.0.1", "tcp", 40000, 8080), Context(in_iface="br0"),
         "ACCEPT", "DNAT 172.17.0.2:80", "DNAT"),
        ("PREROUTING", Packet(V4, "11.11.11.2", "172.17.0.1", "tcp", 40000, 8081), Context(in_iface="br0"),
         "ACCEPT", None, "rule 1 of PREROUTING: -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER"),
        # Not a local address: the DOCKER chain is not jumped to.
        ("PREROUTING", Packet(V4, "11.11.11.2", "11.11.11.3", "tcp", 40000, 8080), Context(in_iface="br0"),
         "ACCEPT", None, "policy ACCEPT of PREROUTING"),
        # From docker0 itself: RETURN in DOCKER, no DNAT.
        ("PREROUTING", Packet(V4, "172.17.0.3", "172.17.0.1", "tcp", 40000, 8080), Context(in_iface="docker0"),
         "ACCEPT", None, "rule 1 of DOCKER: -A DOCKER -i docker0 -j RETURN"),
        # The host's own connections: OUTPUT's `! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL`.
        ("OUTPUT", Packet(V4, "127.0.0.1", "127.0.0.1", "tcp", 40000, 8080), Context(out_iface="lo"),
         "ACCEPT", None, "policy ACCEPT of OUTPUT"),
        ("OUTPUT", Packet(V4, "172.17.0.1", "172.17.0.1", "tcp", 40000, 8080), Context(out_iface="lo"),
         "ACCEPT", "DNAT 172.17.0.2:80", "DNAT"),
        # Forwarded to the published container, its replies, and the container's way out.
        ("FORWARD", Packet(V4, "11.11.11.2", "172.17.0.2", "tcp", 40000, 80), Context("br0", "docker0"),
         "ACCEPT", None, "rule 1 of DOCKER"),
        ("FORWARD", Packet(V4, "11.11.11.2", "172.17.0.2", "tcp", 40000, 81), Context("br0", "docker0"),
         "DROP", None, "policy DROP of FORWARD"),
        ("FORWARD", Packet(V4, "172.17.0.2", "11.11.11.2", "tcp", 80, 40000, ctstate="ESTABLISHED"),
         Context("docker0", "br0"), "ACCEPT", None, "rule 5 of FORWARD"),
        ("FORWARD", Packet(V4, "11.11.11.2", "172.17.0.2", "tcp", 40000, 80, ctstate="ESTABLISHED"),
         Context("br0", "docker0"), "ACCEPT", None, "rule 3 of FORWARD"),
        ("POSTROUTING", Packet(V4, "172.17.0.2", "192.0.2.1", "udp", 40000, 53), Context("docker0", "eth0"),
         "ACCEPT", "MASQUERADE", "MASQUERADE"),
        # Hairpin: the container reaching its own published port through the host.
        ("POSTROUTING", Packet(V4, "172.17.0.2", "172.17.0.2", "tcp", 40000, 80), Context("docker0", "docker0"),
         "ACCEPT", "MASQUERADE", "rule 2 of POSTROUTING"),
    ],
)  # fmt: skip
def test_every_rule_docker_writes_is_evaluated(
    hook: str, pkt: Packet, ctx: Context, verdict: str, nat: str | None, by: str
) -> None:
    decision = evaluate(host_tables(docker_host()), hook, pkt, replace(ctx, local=HOST_LOCAL))
    assert decision.verdict == verdict, decision
    # The NAT as KIND and where to (however Decision words it).
    assert (decision.nat is None) == (nat is None), decision
    if nat is not None:
        kind, _, to = nat.partition(" ")
        assert str(decision.nat).startswith(kind) and to in str(decision.nat), decision
    assert by in decision.by or any(by in rule for rule in decision.trail), decision


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("172.17.0.1", "LOCAL"),
        ("127.0.0.53", "LOCAL"),
        ("::1", "LOCAL"),
        ("11.11.11.3", "UNICAST"),
        ("255.255.255.255", "BROADCAST"),
        ("0.0.0.0", "BROADCAST"),
        ("224.0.0.251", "MULTICAST"),
        ("ff02::1", "MULTICAST"),
        ("::", "UNSPEC"),
        ("fd00::1", "UNICAST"),
    ],
)
def test_address_types_as_the_kernel_gives_them(address: str, kind: str) -> None:
    assert address_type(address, HOST_LOCAL) == kind


def test_addrtype_options() -> None:
    pkt = Packet(V4, "172.17.0.1", "11.11.11.3", "icmp")
    ctx = Context(local=HOST_LOCAL)
    assert rule_matches("-A X -m addrtype --src-type LOCAL -j ACCEPT", pkt, ctx) == (True, "ACCEPT")
    assert rule_matches("-A X -m addrtype --dst-type LOCAL -j ACCEPT", pkt, ctx) == (False, None)
    assert rule_matches("-A X -m addrtype ! --dst-type LOCAL -j ACCEPT", pkt, ctx) == (True, "ACCEPT")
    assert rule_matches("-A X -m addrtype --dst-type MULTICAST,UNICAST -j ACCEPT", pkt, ctx) == (True, "ACCEPT")
    pkt = replace(pkt, dst="172.17.0.1")
    for rule, why in (
        ("-A X -m addrtype --dst-type LOCAL --limit-iface-in -j ACCEPT", "--limit-iface-in"),
        ("-A X -m addrtype --dst-type BLACKHOLE -j ACCEPT", "BLACKHOLE"),
        ("-A X -m addrtype --dst-type NOSUCH -j ACCEPT", "NOSUCH"),
    ):
        table = TableView(4, "filter", [ChainView("FORWARD", "ACCEPT", 0, 0, False, [RuleView(rule, 0, 0, False)])])
        decision = evaluate([table], "FORWARD", pkt, ctx)
        assert decision.verdict == "UNKNOWN" and why in decision.by, decision


def test_a_drop_in_dockers_chains_is_overruled_from_docker_user_and_a_users_own_rule_removed() -> None:
    space = docker_host().spaces["host"]
    pkt = Packet(V4, "172.17.0.2", "10.0.0.2", "icmp")
    isolation = Decision(
        "DROP", "filter", "FORWARD", "rule 1 of DOCKER-ISOLATION-STAGE-2: -A DOCKER-ISOLATION-STAGE-2 -o br-1 -j DROP"
    )
    fix = firewall_fix(space, "host", "FORWARD", isolation, pkt, "172.17.0.0/16")
    assert fix.command == "iptables -I DOCKER-USER -s 172.17.0.0/16 -j ACCEPT"
    assert "Docker's chain DOCKER-ISOLATION-STAGE-2 drops it" in fix.summary and fix.topology is None
    own = Decision("DROP", "filter", "FORWARD", "rule 1 of DOCKER-USER: -A DOCKER-USER -s 172.17.0.0/16 -j DROP")
    fix = firewall_fix(space, "host", "FORWARD", own, pkt, "172.17.0.0/16")
    assert fix.command == "iptables -t filter -D DOCKER-USER -s 172.17.0.0/16 -j DROP"
