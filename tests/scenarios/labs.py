"""The base labs scenarios mutate: topology text, the flows that work on them, what each flow crosses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"

TCP_PORT = 8080
UDP_PORT = 5353


@dataclass(frozen=True)
class Flow:
    """A packet kind that gets through on the base lab: from a node to a node (or address), with a protocol."""

    src: str
    dst: str
    """A node label, or an address (then ``addr`` is the same)."""
    addr: str
    """The address real traffic goes to (the one explain picks for a node)."""
    proto: str = "icmp"
    path: tuple[str, ...] = ()
    """``NODE:IFACE`` of every interface the request crosses, in order (bridges included)."""
    forwarders: tuple[str, ...] = ()
    """Nodes that route the request (IP forwarding), in order."""
    bridges: tuple[str, ...] = ()
    """``NODE:BRIDGE`` of the bridges the request crosses."""
    nat: tuple[str, ...] = ()
    """``NODE`` where the request is NATed by the base lab (MASQUERADE or DNAT)."""
    arp: tuple[str, ...] = ()
    """``NODE|IFACE|ADDRESS``: every neighbour resolution of the request (who asks, on which interface, for what)."""

    @property
    def label(self) -> str:
        return f"{self.src}->{self.dst} {self.proto}"

    @property
    def family(self) -> int:
        return 6 if ":" in self.addr else 4


@dataclass(frozen=True)
class BaseLab:
    """One base lab: its topology, its nodes, the ports listeners serve in each node, its flows."""

    key: str
    text: str
    nodes: tuple[str, ...]
    flows: tuple[Flow, ...]
    tcp_ports: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """Node -> TCP ports the scenario listener serves there (besides ``TCP_PORT``)."""
    bridge_nf: bool = False
    """Whether the host has ``bridge-nf-call-iptables`` keys worth toggling."""
    setup: tuple[str, ...] = ()
    """Commands run once after ``up`` (``{NODE}`` is the node's namespace): what the topology cannot say."""


def _example(name: str) -> str:
    return (EXAMPLES / name).read_text()


def _flows(src: str, dst: str, addr: str, protos: tuple[str, ...], **path: Any) -> tuple[Flow, ...]:
    return tuple(Flow(src, dst, addr, proto, **path) for proto in protos)


ALL = ("icmp", f"tcp:{TCP_PORT}", f"udp:{UDP_PORT}")

LAB1 = BaseLab(
    key="lab1",
    text=_example("lab1-veth.yaml"),
    nodes=("RED", "BLUE"),
    flows=(
        *_flows("RED", "BLUE", "11.11.11.3", ALL, path=("RED:veth0", "BLUE:veth1"), arp=("RED|veth0|11.11.11.3",)),
        *_flows(
            "BLUE",
            "RED",
            "11.11.11.2",
            ("icmp", f"tcp:{TCP_PORT}"),
            path=("BLUE:veth1", "RED:veth0"),
            arp=("BLUE|veth1|11.11.11.2",),
        ),
    ),
)

_LAB2_PATH = {
    "path": ("RED:reth0", "host:reth1", "host:br0", "host:beth1", "BLUE:beth0"),
    "bridges": ("host:br0",),
    "arp": ("RED|reth0|11.11.11.3",),
}
_LAB2_BACK = {
    "path": ("BLUE:beth0", "host:beth1", "host:br0", "host:reth1", "RED:reth0"),
    "bridges": ("host:br0",),
    "arp": ("BLUE|beth0|11.11.11.2",),
}

LAB2 = BaseLab(
    key="lab2",
    text=_example("lab2-bridge-fixed.yaml"),
    nodes=("RED", "BLUE", "host"),
    flows=(
        *_flows("RED", "BLUE", "11.11.11.3", ALL, **_LAB2_PATH),
        *_flows("BLUE", "RED", "11.11.11.2", ("icmp", f"udp:{UDP_PORT}"), **_LAB2_BACK),
    ),
    bridge_nf=True,
)

_OUT = ("RED:reth0", "host:reth1", "host:br0", "host:up0", "outside:eth0")
LAB4 = BaseLab(
    key="lab4",
    text=_example("lab4-outside.yaml"),
    nodes=("RED", "BLUE", "host", "outside"),
    flows=(
        *_flows(
            "RED",
            "outside",
            "203.0.113.2",
            ("icmp", "tcp:80"),
            path=_OUT,
            forwarders=("host",),
            bridges=("host:br0",),
            nat=("host",),
            arp=("RED|reth0|11.11.11.1", "host|up0|203.0.113.2"),
        ),
        Flow("RED", "BLUE", "11.11.11.3", "icmp", **_LAB2_PATH),
        Flow(
            "BLUE",
            "11.11.11.1",
            "11.11.11.1",
            "tcp:8080",
            path=("BLUE:beth0", "host:beth1", "host:br0", "host:reth1", "RED:reth0"),
            bridges=("host:br0",),
            forwarders=("host",),
            nat=("host",),
            arp=("BLUE|beth0|11.11.11.1", "host|br0|11.11.11.2"),
        ),
        Flow(
            "outside",
            "203.0.113.1",
            "203.0.113.1",
            "tcp:8080",
            path=("outside:eth0", "host:up0", "host:br0", "host:reth1", "RED:reth0"),
            forwarders=("host",),
            bridges=("host:br0",),
            nat=("host",),
            arp=("outside|eth0|203.0.113.1", "host|br0|11.11.11.2"),
        ),
    ),
    tcp_ports={"RED": (80,)},
    bridge_nf=True,
)

ROUTED_TEXT = """\
# Two bridges in the host, a router node between them: RED on br0, BLUE on br1, ROUTER on both.
name: routed
host:
  bridges:
    br0: {}
    br1: {}
  interfaces:
    reth1: {master: br0}
    rb0: {master: br0}
    rb1: {master: br1}
    beth1: {master: br1}
  sysctls:
    net.bridge.bridge-nf-call-iptables: 1
nodes:
  RED:
    interfaces:
      reth0: {addresses: [10.1.0.2/24]}
    routes:
      - {to: default, via: 10.1.0.1}
  ROUTER:
    interfaces:
      r0: {addresses: [10.1.0.1/24]}
      r1: {addresses: [10.2.0.1/24]}
    sysctls:
      net.ipv4.ip_forward: 1
  BLUE:
    interfaces:
      beth0: {addresses: [10.2.0.2/24]}
    routes:
      - {to: default, via: 10.2.0.1}
links:
  - [RED:reth0, host:reth1]
  - [ROUTER:r0, host:rb0]
  - [ROUTER:r1, host:rb1]
  - [BLUE:beth0, host:beth1]
"""

_R_THERE = (
    "RED:reth0",
    "host:reth1",
    "host:br0",
    "host:rb0",
    "ROUTER:r0",
    "ROUTER:r1",
    "host:rb1",
    "host:br1",
    "host:beth1",
    "BLUE:beth0",
)
ROUTED = BaseLab(
    key="routed",
    text=ROUTED_TEXT,
    nodes=("RED", "ROUTER", "BLUE", "host"),
    flows=(
        *_flows(
            "RED",
            "BLUE",
            "10.2.0.2",
            ALL,
            path=_R_THERE,
            forwarders=("ROUTER",),
            bridges=("host:br0", "host:br1"),
            arp=("RED|reth0|10.1.0.1", "ROUTER|r1|10.2.0.2"),
        ),
        *_flows(
            "BLUE",
            "RED",
            "10.1.0.2",
            ("icmp", f"tcp:{TCP_PORT}"),
            path=tuple(reversed(_R_THERE)),
            forwarders=("ROUTER",),
            bridges=("host:br1", "host:br0"),
            arp=("BLUE|beth0|10.2.0.1", "ROUTER|r0|10.1.0.2"),
        ),
        Flow(
            "RED", "10.2.0.1", "10.2.0.1", "icmp", path=_R_THERE[:5], bridges=("host:br0",), arp=("RED|reth0|10.1.0.1",)
        ),
    ),
    bridge_nf=True,
)

V6_TEXT = """\
# IPv6: RED and BLUE bridged by the host's br0, ROUTER on br0 too, routing to FAR behind a veth pair.
name: v6
host:
  bridges:
    br0: {}
  interfaces:
    reth1: {master: br0}
    beth1: {master: br0}
    rb0: {master: br0}
  sysctls:
    net.bridge.bridge-nf-call-ip6tables: 1
nodes:
  RED:
    interfaces:
      reth0: {addresses: ['fd00:1::2/64']}
    routes:
      - {to: 'fd00:2::/64', via: 'fd00:1::1'}
  BLUE:
    interfaces:
      beth0: {addresses: ['fd00:1::3/64']}
  ROUTER:
    interfaces:
      r0: {addresses: ['fd00:1::1/64']}
      r1: {addresses: ['fd00:2::1/64']}
    sysctls:
      net.ipv6.conf.all.forwarding: 1
  FAR:
    interfaces:
      f0: {addresses: ['fd00:2::2/64']}
    routes:
      - {to: '::/0', via: 'fd00:2::1'}
links:
  - [RED:reth0, host:reth1]
  - [BLUE:beth0, host:beth1]
  - [ROUTER:r0, host:rb0]
  - [ROUTER:r1, FAR:f0]
"""

_V6_FAR = ("RED:reth0", "host:reth1", "host:br0", "host:rb0", "ROUTER:r0", "ROUTER:r1", "FAR:f0")
V6 = BaseLab(
    key="v6",
    text=V6_TEXT,
    nodes=("RED", "BLUE", "ROUTER", "FAR", "host"),
    flows=(
        *_flows(
            "RED",
            "BLUE",
            "fd00:1::3",
            ("icmp", f"tcp:{TCP_PORT}"),
            path=_LAB2_PATH["path"],
            bridges=("host:br0",),
            arp=("RED|reth0|fd00:1::3",),
        ),
        *_flows(
            "RED",
            "FAR",
            "fd00:2::2",
            ALL,
            path=_V6_FAR,
            forwarders=("ROUTER",),
            bridges=("host:br0",),
            arp=("RED|reth0|fd00:1::1", "ROUTER|r1|fd00:2::2"),
        ),
        Flow(
            "FAR",
            "RED",
            "fd00:1::2",
            "icmp",
            path=tuple(reversed(_V6_FAR)),
            forwarders=("ROUTER",),
            bridges=("host:br0",),
            arp=("FAR|f0|fd00:2::1", "ROUTER|r0|fd00:1::2"),
        ),
    ),
    bridge_nf=True,
    # nsnet's links get no link-local address (addrgenmode none), and a router sends the neighbour
    # solicitation for a packet it forwards from its link-local address only: without one it never asks.
    setup=("ip -n {ROUTER} addr add fe80::1/64 dev r0 nodad", "ip -n {ROUTER} addr add fe80::1/64 dev r1 nodad"),
)

BASE_LABS: dict[str, BaseLab] = {lab.key: lab for lab in (LAB1, LAB2, LAB4, ROUTED, V6)}

LAB2_ROOT = BaseLab(
    key="lab2root",
    text=LAB2.text.replace("\nhost:\n", "\nhost:\n  mode: root\n", 1),
    nodes=LAB2.nodes,
    flows=LAB2.flows,
    bridge_nf=True,
)
"""Lab 2 fixed with ``host: root``: run only inside a private world (``tests/scenarios/inworld.py``)."""

ROOT_LABS: dict[str, BaseLab] = {LAB2_ROOT.key: LAB2_ROOT}
ROOT_HANDLE = "scnroot"
"""The name a private world's root namespace gets under /run/netns there, so ``ip -n`` reaches it like a node."""
