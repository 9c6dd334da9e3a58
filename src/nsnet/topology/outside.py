"""The outside world, as Docker does it for ``docker0``: the rules nsnet writes for it (pure).

From a validated topology this derives, for the lab's host:
- forwarding (``net.ipv4.ip_forward=1``) where the host must route;
- per bridge with ``masquerade``: outbound NAT for its subnets leaving
  through another interface, and FORWARD accepts for that traffic and its
  replies;
- per bridge with ``forward``: same-bridge traffic accepted in FORWARD;
- published ports: DNAT from every host address (PREROUTING for traffic
  from elsewhere, OUTPUT for the host itself), a FORWARD accept, and a
  MASQUERADE so that a node reaching another through the host's address
  (hairpin) gets its answers back through the host;
- isolation: traffic between two bridges is dropped unless the pair is
  allowed.
All of it lands in nsnet's own chains (``NSNET-FORWARD``, ``NSNET-PREROUTING``
...) like any rule of the topology, after the topology's own rules.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from nsnet.model import Link, Namespace, Rule

ESTABLISHED = "-m conntrack --ctstate RELATED,ESTABLISHED"


@dataclass(frozen=True)
class Published:
    """A published port, resolved: the node's address behind bridge ``bridge``."""

    host_port: int
    node: str
    address: str
    port: int
    proto: str
    bridge: str


def _v4(link: Link) -> list[ipaddress.IPv4Interface]:
    return [i for i in map(ipaddress.ip_interface, sorted(link.addresses)) if isinstance(i, ipaddress.IPv4Interface)]


def bridge_of(spaces: dict[str, Namespace], node: str, ifname: str) -> Link | None:
    """The host bridge that the other end of ``node:ifname`` is a port of, if any."""
    link = spaces[node].links.get(ifname)
    host = spaces.get(link.peer.ns) if link is not None and link.peer is not None else None
    if link is None or link.peer is None or host is None or host.role != "host":
        return None
    end = host.links.get(link.peer.ifname)
    if end is None or end.master is None:
        return None
    return host.links.get(end.master)


def node_behind_bridge(spaces: dict[str, Namespace], node: str) -> tuple[str, Link] | None:
    """(IPv4 address, bridge) of the first interface of ``node`` attached to a host bridge."""
    for ifname, link in spaces[node].links.items():
        bridge = bridge_of(spaces, node, ifname)
        if bridge is not None and _v4(link):
            return str(_v4(link)[0].ip), bridge
    return None


def host_addresses(host: Namespace) -> list[str]:
    return sorted({str(i.ip) for link in host.links.values() for i in _v4(link)})


def firewall_rules(host: Namespace, published: list[Published], allowed: set[frozenset[str]]) -> list[Rule]:
    """The rules the host needs for NAT, published ports and isolation, in order."""
    bridges = [link for link in host.links.values() if link.kind == "bridge"]
    forward: list[str] = []
    nat_pre: list[str] = []
    nat_out: list[str] = []
    nat_post: list[str] = []
    names = sorted(b.name for b in bridges)
    for a in names:
        for b in names:
            if a != b and frozenset((a, b)) not in allowed:
                forward.append(f"-i {a} -o {b} -j DROP")
    masquerading = [b for b in sorted(bridges, key=lambda b: b.name) if b.masquerade]
    if masquerading or published:
        forward.append(f"{ESTABLISHED} -j ACCEPT")
    for p in published:
        forward.append(f"-d {p.address}/32 -o {p.bridge} -p {p.proto} -m {p.proto} --dport {p.port} -j ACCEPT")
        for address in host_addresses(host):
            dnat = f"-d {address}/32 -p {p.proto} -m {p.proto} --dport {p.host_port} -j DNAT --to-destination"
            nat_pre.append(f"{dnat} {p.address}:{p.port}")
            nat_out.append(f"{dnat} {p.address}:{p.port}")
    for bridge in sorted(bridges, key=lambda b: b.name):
        if bridge.forward:
            forward.append(f"-i {bridge.name} -o {bridge.name} -j ACCEPT")
    for bridge in masquerading:
        forward.append(f"-i {bridge.name} ! -o {bridge.name} -j ACCEPT")
        for net in sorted({str(i.network) for i in _v4(bridge)}):
            nat_post.append(f"-s {net} ! -o {bridge.name} -j MASQUERADE")
    for p in published:
        bridge = next(b for b in bridges if b.name == p.bridge)
        for net in sorted({str(i.network) for i in _v4(bridge)}):
            nat_post.append(
                f"-s {net} -d {p.address}/32 -o {p.bridge} -p {p.proto} -m {p.proto} --dport {p.port} -j MASQUERADE"
            )
    return (
        [Rule(4, "filter", "FORWARD", a) for a in forward]
        + [Rule(4, "nat", "PREROUTING", a) for a in nat_pre]
        + [Rule(4, "nat", "OUTPUT", a) for a in nat_out]
        + [Rule(4, "nat", "POSTROUTING", a) for a in nat_post]
    )


def needs_forwarding(host: Namespace, published: list[Published], gateways: bool, outside: bool) -> bool:
    """Whether the host must route: NAT, published ports, an outside, or nodes using it as gateway."""
    return (
        bool(published)
        or gateways
        or outside
        or any(link.masquerade for link in host.links.values() if link.kind == "bridge")
    )
