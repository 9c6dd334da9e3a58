"""explain against the real kernel, for every decision on the path that is not netfilter's: route types and
policy rules, forwarding, rp_filter, ARP/NDP and neighbour entries, ICMP sysctls, bridge port flags and
removed addresses.

Each scenario brings up a small lab, mutates it with the raw ``ip``/``sysctl``/``bridge`` command a user would
type, and checks that explain's verdict is what real ping does, that the failing step names what was changed,
and that the fix, run exactly as printed, makes the real ping pass.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import explain_json, nsnet

BRIDGE = """name: kbridge
host:
  bridges:
    br0: {}
  interfaces:
    reth1: {master: br0}
    beth1: {master: br0}
nodes:
  RED:
    interfaces:
      reth0: {addresses: [11.11.11.2/24]}
  BLUE:
    interfaces:
      beth0: {addresses: [11.11.11.3/24]}
links:
  - [RED:reth0, host:reth1]
  - [BLUE:beth0, host:beth1]
"""

ROUTED = """name: krouted
nodes:
  RED:
    interfaces:
      reth0: {addresses: [10.1.0.2/24, "fd01::2/64"]}
      reth1: {addresses: [10.3.0.2/24]}
    routes:
      - {to: default, via: 10.1.0.1}
      - {to: "fd02::/64", via: "fd01::1"}
  R:
    interfaces:
      r1: {addresses: [10.1.0.1/24, "fd01::1/64"]}
      r2: {addresses: [10.2.0.1/24, "fd02::1/64"]}
      r3: {addresses: [10.3.0.1/24]}
    sysctls:
      net.ipv4.ip_forward: 1
      net.ipv6.conf.all.forwarding: 1
  BLUE:
    interfaces:
      beth0: {addresses: [10.2.0.2/24, "fd02::2/64"]}
    routes:
      - {to: default, via: 10.2.0.1}
      - {to: "fd01::/64", via: "fd02::1"}
links:
  - [RED:reth0, R:r1]
  - [RED:reth1, R:r3]
  - [BLUE:beth0, R:r2]
"""

LINK_LOCAL = (
    "ip -n {R} addr add fe80::1/64 dev r1 nodad; ip -n {R} addr add fe80::1/64 dev r2 nodad; "
    "ip -n {RED} addr add fe80::2/64 dev reth0 nodad; ip -n {BLUE} addr add fe80::2/64 dev beth0 nodad"
)
"""nsnet gives interfaces no link-local addresses; a router needs them to ask for a forwarded packet's next hop."""


ARP_ANNOUNCE = (
    "ip -n {RED} addr add 10.9.9.2/32 dev lo; ip -n {RED} route replace 11.11.11.0/24 dev reth0 src 10.9.9.2; "
    "ip -n {BLUE} route add 10.9.9.0/24 via 11.11.11.2; "
    "ip netns exec {BLUE} sysctl -qw net.ipv4.conf.beth0.arp_ignore=2"
)


@dataclass(frozen=True)
class Case:
    name: str
    lab: str
    mutation: str
    reachable: bool
    names: str = ""
    """Words the failing step or the reason must contain: the object the mutation changed."""
    dst: str = "BLUE"
    src: str = "RED"


CASES = [
    # route types and policy rules
    Case("prohibit-route", ROUTED, "ip -n {R} route add prohibit 10.2.0.2", False, "prohibit"),
    Case("unreachable-default", ROUTED, "ip -n {RED} route replace unreachable default", False, "unreachable"),
    Case("blackhole-route", ROUTED, "ip -n {R} route add blackhole 10.2.0.0/25", False, "blackhole 10.2.0.0/25"),
    Case("prohibit-rule", ROUTED, "ip -n {R} rule add to 10.2.0.2 prohibit pref 50", False, "rule 50"),
    Case(
        "rule-to-blackhole-table",
        ROUTED,
        "ip -n {R} route add blackhole default table 100; ip -n {R} rule add from 10.1.0.0/24 lookup 100 pref 100",
        False,
        "blackhole default table 100",
    ),
    Case(
        "throw-back-to-main",
        ROUTED,
        "ip -n {R} route add blackhole default table 100; ip -n {R} route add throw 10.2.0.0/24 table 100; "
        "ip -n {R} rule add from 10.1.0.0/24 lookup 100 pref 100",
        True,
    ),
    Case("unrelated-rule", ROUTED, "ip -n {R} rule add from 192.0.2.0/24 blackhole pref 10", True),
    Case("no-default-route", ROUTED, "ip -n {RED} route del default", False, "no route to 10.2.0.2"),
    # forwarding
    Case("ip-forward-off", ROUTED, "ip netns exec {R} sysctl -qw net.ipv4.ip_forward=0", False, "ip_forward"),
    Case("forwarding-off-in", ROUTED, "ip netns exec {R} sysctl -qw net.ipv4.conf.r1.forwarding=0", False, "r1"),
    Case("forwarding-off-reply", ROUTED, "ip netns exec {R} sysctl -qw net.ipv4.conf.r2.forwarding=0", False, "r2"),
    Case(
        "forwarding-per-interface-only",
        ROUTED,
        "ip netns exec {R} sysctl -qw net.ipv4.conf.all.forwarding=0 net.ipv4.conf.r1.forwarding=1 "
        "net.ipv4.conf.r2.forwarding=1",
        True,
    ),
    Case("ipv6-no-link-local", ROUTED, "true", False, "link-local", dst="fd02::2"),
    Case(
        "ipv6-forwarding-off",
        ROUTED,
        LINK_LOCAL + "; ip netns exec {R} sysctl -qw net.ipv6.conf.all.forwarding=0",
        False,
        "forwarding",
        dst="fd02::2",
    ),
    Case(
        "ipv6-interface-forwarding-is-not-used",
        ROUTED,
        LINK_LOCAL + "; ip netns exec {R} sysctl -qw net.ipv6.conf.r1.forwarding=0",
        True,
        dst="fd02::2",
    ),
    # reverse path filter: RED sends from 10.1.0.2 out of reth1, R's way back to it is r1
    Case(
        "rp-filter-strict",
        ROUTED,
        "ip -n {RED} route replace 10.2.0.0/24 via 10.3.0.1 src 10.1.0.2; "
        "ip netns exec {R} sysctl -qw net.ipv4.conf.all.rp_filter=1",
        False,
        "rp_filter",
    ),
    Case(
        "rp-filter-loose",
        ROUTED,
        "ip -n {RED} route replace 10.2.0.0/24 via 10.3.0.1 src 10.1.0.2; "
        "ip netns exec {R} sysctl -qw net.ipv4.conf.r3.rp_filter=2",
        True,
    ),
    Case("rp-filter-symmetric", ROUTED, "ip netns exec {R} sysctl -qw net.ipv4.conf.all.rp_filter=1", True),
    # ARP and neighbour entries
    Case(
        "arp-ignore-8", BRIDGE, "ip netns exec {BLUE} sysctl -qw net.ipv4.conf.beth0.arp_ignore=8", False, "arp_ignore"
    ),
    Case(
        "address-on-lo-arp-ignore-0",
        BRIDGE,
        "ip -n {BLUE} addr del 11.11.11.3/24 dev beth0; ip -n {BLUE} addr add 11.11.11.3/32 dev lo; "
        "ip -n {BLUE} route add 11.11.11.0/24 dev beth0",
        True,
        dst="11.11.11.3",
    ),
    Case(
        "address-on-lo-arp-ignore-1",
        BRIDGE,
        "ip -n {BLUE} addr del 11.11.11.3/24 dev beth0; ip -n {BLUE} addr add 11.11.11.3/32 dev lo; "
        "ip -n {BLUE} route add 11.11.11.0/24 dev beth0; "
        "ip netns exec {BLUE} sysctl -qw net.ipv4.conf.all.arp_ignore=1",
        False,
        "arp_ignore=1",
        dst="11.11.11.3",
    ),
    # RED sends from 10.9.9.2 (on lo); BLUE answers ARP only for askers in its subnet (arp_ignore=2)
    Case(
        "arp-ignore-2-asker-outside-the-subnet",
        BRIDGE,
        ARP_ANNOUNCE,
        False,
        "arp_ignore=2",
    ),
    Case(
        "arp-announce-2-asks-from-the-subnet",
        BRIDGE,
        ARP_ANNOUNCE + "; ip netns exec {RED} sysctl -qw net.ipv4.conf.reth0.arp_announce=2",
        True,
    ),
    Case(
        "permanent-wrong-mac",
        BRIDGE,
        "ip -n {RED} neigh replace 11.11.11.3 dev reth0 lladdr 02:00:00:00:00:99 nud permanent",
        False,
        "02:00:00:00:00:99",
    ),
    Case(
        "noarp-wrong-mac",
        BRIDGE,
        "ip -n {RED} neigh replace 11.11.11.3 dev reth0 lladdr 02:00:00:00:00:98 nud noarp",
        False,
        "02:00:00:00:00:98",
    ),
    Case("failed-entry-is-asked-again", BRIDGE, "ip -n {RED} neigh replace 11.11.11.3 dev reth0 nud failed", True),
    Case(
        "router-wrong-mac",
        ROUTED,
        "ip -n {RED} neigh replace 10.1.0.1 dev reth0 lladdr 02:00:00:00:00:97 nud permanent",
        False,
        "02:00:00:00:00:97",
    ),
    Case(
        "proxy-arp-answers",
        ROUTED,
        "ip -n {RED} route replace default dev reth0; ip netns exec {R} sysctl -qw net.ipv4.conf.r1.proxy_arp=1",
        True,
    ),
    # ICMP
    Case("echo-ignore-all", BRIDGE, "ip netns exec {BLUE} sysctl -qw net.ipv4.icmp_echo_ignore_all=1", False, "echo"),
    Case(
        "ipv6-echo-ignore-all",
        ROUTED,
        LINK_LOCAL + "; ip netns exec {BLUE} sysctl -qw net.ipv6.icmp.echo_ignore_all=1",
        False,
        "echo_ignore_all",
        dst="fd02::2",
    ),
    # bridge ports
    Case(
        "learning-and-flood-off",
        BRIDGE,
        "ip -n {host} link set beth1 type bridge_slave learning off flood off fdb_flush",
        False,
        "beth1",
    ),
    Case("learning-off-flooded", BRIDGE, "ip -n {host} link set beth1 type bridge_slave learning off fdb_flush", True),
    Case("flood-off-learned", BRIDGE, "ip -n {host} link set beth1 type bridge_slave flood off fdb_flush", True),
    Case(
        "both-isolated",
        BRIDGE,
        "bridge -n {host} link set dev reth1 isolated on; bridge -n {host} link set dev beth1 isolated on",
        False,
        "isolated",
    ),
    Case("one-isolated", BRIDGE, "bridge -n {host} link set dev beth1 isolated on", True),
    Case("port-disabled", BRIDGE, "bridge -n {host} link set dev reth1 state 0", False, "reth1"),
    # without STP the bridge puts a blocking port straight back to forwarding
    Case("port-blocking-without-stp", BRIDGE, "bridge -n {host} link set dev beth1 state 4", True),
    Case("bcast-flood-off", BRIDGE, "bridge -n {host} link set dev beth1 bcast_flood off", False, "bcast_flood"),
    # removed addresses
    Case("destination-address-removed", BRIDGE, "ip -n {BLUE} addr del 11.11.11.3/24 dev beth0", False, "11.11.11.3"),
    Case(
        "destination-address-removed-after-traffic",
        BRIDGE,
        "ip netns exec {RED} ping -c1 -W1 11.11.11.3 >/dev/null; ip -n {BLUE} addr del 11.11.11.3/24 dev beth0",
        False,
        "11.11.11.3",
    ),
    Case(
        "gateway-address-removed",
        ROUTED,
        "ip -n {R} addr del 10.1.0.1/24 dev r1; ip -n {RED} neigh flush dev reth0",
        False,
        "10.1.0.1",
    ),
    Case("source-address-removed", BRIDGE, "ip -n {RED} addr del 11.11.11.2/24 dev reth0", False, "11.11.11.2"),
    Case(
        "source-address-removed-with-its-gateway-route",
        ROUTED,
        "ip -n {RED} addr del 10.1.0.2/24 dev reth0",
        False,
        "10.1.0.2",
    ),
    Case("to-itself", BRIDGE, "true", True, dst="RED"),
]


def _fill(command: str, lab: str) -> str:
    return command.format(**{node: f"{lab}-{node}" for node in ("RED", "BLUE", "R", "host")})


def pings(ns: str, address: str, tries: int = 1) -> bool:
    """Real traffic: an echo request from namespace ``ns`` answered within a second (``tries`` attempts)."""
    for attempt in range(tries):
        if attempt:
            time.sleep(0.5)
        proc = subprocess.run(
            ["ip", "netns", "exec", ns, "ping", "-c1", "-W1", "-n", address], capture_output=True, check=False
        )
        if proc.returncode == 0:
            return True
    return False


def failing_text(data: dict[str, Any]) -> str:
    steps = [s["text"] for leg in data["legs"] for s in leg["steps"] if not s["ok"]]
    return " | ".join(steps + [leg["reason"] for leg in data["legs"] if leg["reason"]])


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_explain_agrees_with_the_kernel(lab_name: str, tmp_path: Path, case: Case) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(case.lab)
    up = nsnet("up", str(path), "--name", lab_name, "-q")
    assert up.code == 0, up.text
    mutation = _fill(case.mutation, lab_name)
    done = subprocess.run(["sh", "-ec", mutation], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    address = "11.11.11.2" if case.dst == "RED" else case.dst
    if case.dst == "BLUE":
        address = "11.11.11.3" if case.lab is BRIDGE else "10.2.0.2"
    src_ns = f"{lab_name}-{case.src}"

    data = explain_json(lab_name, case.src, case.dst, probe=False)
    real = pings(src_ns, address)
    assert data["reachable"] == real == case.reachable, (real, data["verdict"])
    if case.reachable:
        return
    text = failing_text(data)
    assert case.names in text, text
    fix = data["fix"]
    assert fix and fix["command"], data["verdict"]
    applied = subprocess.run(["sh", "-ec", fix["command"]], capture_output=True, text=True, check=False)
    assert applied.returncode == 0, (fix["command"], applied.stderr)
    assert pings(src_ns, address, tries=6), f"the fix {fix['command']!r} does not make the ping pass"
    after = explain_json(lab_name, case.src, case.dst, probe=False)
    assert after["reachable"], after["verdict"]


def test_prohibit_route_agrees_with_the_probe(lab_name: str, tmp_path: Path) -> None:
    """The probe sees the ICMP error the prohibit route answers with: explain says "rejected", never a traceback."""
    path = tmp_path / "lab.yaml"
    path.write_text(BRIDGE)
    assert nsnet("up", str(path), "--name", lab_name, "-q").code == 0
    subprocess.run(["ip", "-n", f"{lab_name}-RED", "route", "add", "prohibit", "11.11.11.3"], check=True)
    data = explain_json(lab_name, "RED", "BLUE", probe=True)
    assert data["legs"][0]["outcome"] == "rejected"
    assert "prohibit route" in data["verdict"]


def test_inspect_shows_rules_port_flags_and_interface_sysctls(lab_name: str, tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(BRIDGE)
    assert nsnet("up", str(path), "--name", lab_name, "-q").code == 0
    subprocess.run(["bridge", "-n", f"{lab_name}-host", "link", "set", "dev", "beth1", "learning", "off"], check=True)
    subprocess.run(["ip", "-n", f"{lab_name}-RED", "rule", "add", "from", "192.0.2.0/24", "table", "7"], check=True)
    subprocess.run(
        ["ip", "netns", "exec", f"{lab_name}-BLUE", "sysctl", "-qw", "net.ipv4.conf.beth0.arp_ignore=2"], check=True
    )
    shown = nsnet("inspect", lab_name, "--what", "links,route,sysctl")
    assert shown.code == 0, shown.text
    assert "learning off" in shown.out
    assert "from 192.0.2.0/24 lookup 7" in shown.out
    assert "net.ipv4.conf.beth0.arp_ignore" in shown.out
