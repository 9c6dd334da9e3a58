"""The outside world, as Docker does it for ``docker0``: the rules nsnet writes for it (pure).

From a validated topology this derives, for the lab's host:
- forwarding (``net.ipv4.ip_forward=1``, and ``net.ipv6.conf.all.forwarding=1``
  when a bridge has an IPv6 subnet) where the host must route;
- per bridge with ``masquerade``: outbound NAT for its subnets leaving
  through another interface (ip6tables' MASQUERADE for IPv6 subnets, as
  Docker does when ``ip6tables`` is on), and FORWARD accepts for that
  traffic and its replies;
- per bridge with ``forward``: same-bridge traffic accepted in FORWARD;
- published ports: DNAT from every host address (PREROUTING for traffic
  from elsewhere, OUTPUT for the host itself), a FORWARD accept, and a
  MASQUERADE so that a node reaching another through the host's address
  (hairpin) gets its answers back through the host;
- isolation: traffic between two bridges is dropped unless the pair is
  allowed.
Forwarding, isolation and same-bridge accepts are written for iptables and,
when a bridge has an IPv6 subnet, for ip6tables too; published ports for IPv4.
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


def _v6(link: Link) -> list[ipaddress.IPv6Interface]:
    return [i for i in map(ipaddress.ip_interface, sorted(link.addresses)) if isinstance(i, ipaddress.IPv6Interface)]


def has_ipv6(host: Namespace) -> bool:
    """Whether a bridge of the host has an IPv6 subnet: then the host routes and filters IPv6 too."""
    return any(_v6(link) for link in host.links.values() if link.kind == "bridge")


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
    bridges = sorted((link for link in host.links.values() if link.kind == "bridge"), key=lambda b: b.name)
    masquerading = [b for b in bridges if b.masquerade]
    forward = _isolation(bridges, allowed)
    if masquerading or published:
        forward.append(f"{ESTABLISHED} -j ACCEPT")
    forward += [
        f"-d {p.address}/32 -o {p.bridge} -p {p.proto} -m {p.proto} --dport {p.port} -j ACCEPT" for p in published
    ]
    dnat = _dnat(host, published)
    same = [f"-i {b.name} -o {b.name} -j ACCEPT" for b in bridges if b.forward]
    same += [f"-i {b.name} ! -o {b.name} -j ACCEPT" for b in masquerading]
    forward += same
    rules = (
        [Rule(4, "filter", "FORWARD", a) for a in forward]
        + [Rule(4, "nat", "PREROUTING", a) for a in dnat]
        + [Rule(4, "nat", "OUTPUT", a) for a in dnat]
        + [Rule(4, "nat", "POSTROUTING", a) for a in _masquerade(masquerading, bridges, published)]
    )
    if has_ipv6(host):
        forward6 = _isolation(bridges, allowed) + ([f"{ESTABLISHED} -j ACCEPT"] if masquerading else []) + same
        masquerade6 = [
            f"-s {net} ! -o {b.name} -j MASQUERADE"
            for b in masquerading
            for net in sorted({str(i.network) for i in _v6(b)})
        ]
        rules += [Rule(6, "filter", "FORWARD", a) for a in forward6]
        rules += [Rule(6, "nat", "POSTROUTING", a) for a in masquerade6]
    return rules


def _isolation(bridges: list[Link], allowed: set[frozenset[str]]) -> list[str]:
    """Traffic between two bridges is dropped unless the pair is allowed."""
    names = [b.name for b in bridges]
    return [f"-i {a} -o {b} -j DROP" for a in names for b in names if a != b and frozenset((a, b)) not in allowed]


def _dnat(host: Namespace, published: list[Published]) -> list[str]:
    """A published port, from every address of the host, to its node."""
    out = []
    for p in published:
        for address in host_addresses(host):
            dnat = f"-d {address}/32 -p {p.proto} -m {p.proto} --dport {p.host_port} -j DNAT --to-destination"
            out.append(f"{dnat} {p.address}:{p.port}")
    return out


def _masquerade(masquerading: list[Link], bridges: list[Link], published: list[Published]) -> list[str]:
    """Outbound NAT of masquerading bridges' subnets, and hairpin NAT to published ports."""
    out = []
    for bridge in masquerading:
        for net in sorted({str(i.network) for i in _v4(bridge)}):
            out.append(f"-s {net} ! -o {bridge.name} -j MASQUERADE")
    for p in published:
        bridge = next(b for b in bridges if b.name == p.bridge)
        for net in sorted({str(i.network) for i in _v4(bridge)}):
            out.append(
                f"-s {net} -d {p.address}/32 -o {p.bridge} -p {p.proto} -m {p.proto} --dport {p.port} -j MASQUERADE"
            )
    return out


def needs_forwarding(host: Namespace, published: list[Published], gateways: bool, outside: bool) -> bool:
    """Whether the host must route: NAT, published ports, an outside, or nodes using it as gateway."""
    return (
        bool(published)
        or gateways
        or outside
        or any(link.masquerade for link in host.links.values() if link.kind == "bridge")
    )
