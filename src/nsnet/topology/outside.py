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
when a bridge has an IPv6 subnet, for ip6tables too.
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
    """A published port (or range), resolved: the node's address behind bridge ``bridge``."""

    host_port: int
    node: str
    address: str
    port: int
    proto: str
    bridge: str
    host_end: int | None = None
    """The last host port of a range (the node's range is as long)."""
    host_ip: str | None = None
    """Only traffic to this host address is forwarded (None: every IPv4 address of the host)."""

    @property
    def family(self) -> int:
        return 6 if ":" in self.address else 4

    @property
    def length(self) -> int:
        return (self.host_end or self.host_port) - self.host_port

    def dports(self, node: bool = False) -> str:
        """The ``--dport`` of the host's ports (or the node's): ``8080`` or ``8000:8010``."""
        first = self.port if node else self.host_port
        return f"{first}:{first + self.length}" if self.length else str(first)

    def target(self) -> str:
        """The ``--to-destination``: ``11.11.11.2:80``, ``[fd00::2]:80``; a range, ``11.11.11.2:9000-9010/8000``:
        port by port (the host's 8000 to 9000, 8001 to 9001 ...: ``/8000`` is the base the offset counts from)."""
        address = f"[{self.address}]" if self.family == 6 else self.address
        return f"{address}:{self.port}" + (f"-{self.port + self.length}/{self.host_port}" if self.length else "")

    @property
    def loopback(self) -> bool:
        return self.host_ip is not None and ipaddress.ip_address(self.host_ip).is_loopback

    def match(self, node: bool = False) -> str:
        return f"-p {self.proto} -m {self.proto} --dport {self.dports(node)}"


def _v4(link: Link) -> list[ipaddress.IPv4Interface]:
    return _ips(link, 4)  # type: ignore[return-value]


def _ips(link: Link, family: int) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    return [i for i in map(ipaddress.ip_interface, sorted(link.addresses)) if i.version == family]


def has_ipv6(host: Namespace) -> bool:
    """Whether a bridge of the host has an IPv6 subnet: then the host routes and filters IPv6 too."""
    return any(_ips(link, 6) for link in host.links.values() if link.kind == "bridge")


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


def node_behind_bridge(spaces: dict[str, Namespace], node: str, family: int = 4) -> tuple[str, Link] | None:
    """(address, bridge) of the first interface of ``node`` attached to a host bridge, with an address of
    IP version ``family``."""
    for ifname, link in spaces[node].links.items():
        bridge = bridge_of(spaces, node, ifname)
        ips = [i for i in _ips(link, family) if not i.is_link_local]
        if bridge is not None and ips:
            return str(ips[0].ip), bridge
    return None


def host_addresses(host: Namespace) -> list[str]:
    return sorted({str(i.ip) for link in host.links.values() for i in _v4(link)})


def firewall_rules(host: Namespace, published: list[Published], allowed: set[frozenset[str]]) -> list[Rule]:
    """The rules the host needs for NAT, published ports and isolation, in order."""
    bridges = sorted((link for link in host.links.values() if link.kind == "bridge"), key=lambda b: b.name)
    masquerading = [b for b in bridges if b.masquerade]
    v4 = [p for p in published if p.family == 4]
    v6 = [p for p in published if p.family == 6]
    forward = _isolation(bridges, allowed)
    if masquerading or v4:
        forward.append(f"{ESTABLISHED} -j ACCEPT")
    forward += [_accept(p) for p in v4]
    dnat = _dnat(host, v4)
    same = [f"-i {b.name} -o {b.name} -j ACCEPT" for b in bridges if b.forward]
    same += [f"-i {b.name} ! -o {b.name} -j ACCEPT" for b in masquerading]
    forward += same
    return (
        [Rule(4, "filter", "FORWARD", a) for a in forward]
        + [Rule(4, "nat", "PREROUTING", a) for a in dnat]
        + [Rule(4, "nat", "OUTPUT", a) for a in dnat]
        + [Rule(4, "nat", "POSTROUTING", a) for a in _masquerade(masquerading, bridges, v4)]
        + _ipv6(host, bridges, allowed, same, v6)
    )


def _accept(p: Published) -> str:
    prefix = 128 if p.family == 6 else 32
    return f"-d {p.address}/{prefix} -o {p.bridge} {p.match(node=True)} -j ACCEPT"


def _ipv6(
    host: Namespace, bridges: list[Link], allowed: set[frozenset[str]], same: list[str], published: list[Published]
) -> list[Rule]:
    """The ip6tables twins: isolation, same-bridge and outbound accepts and MASQUERADE for the bridges' IPv6
    subnets (when a bridge has one), and the rules of published ports bound to an IPv6 host address."""
    subnets = has_ipv6(host)
    if not published and not subnets:
        return []
    masquerading = [b for b in bridges if b.masquerade] if subnets else []
    forward = _isolation(bridges, allowed) if subnets else []
    if masquerading or published:
        forward.append(f"{ESTABLISHED} -j ACCEPT")
    forward += [_accept(p) for p in published]
    forward += same if subnets else []
    dnat = _dnat(host, published)
    outbound = [
        f"-s {net} ! -o {b.name} -j MASQUERADE"
        for b in masquerading
        for net in sorted({str(i.network) for i in _ips(b, 6)})
    ]
    return (
        [Rule(6, "filter", "FORWARD", a) for a in forward]
        + [Rule(6, "nat", "PREROUTING", a) for a in dnat]
        + [Rule(6, "nat", "OUTPUT", a) for a in dnat]
        + [Rule(6, "nat", "POSTROUTING", a) for a in outbound + _masquerade([], bridges, published)]
    )


def _isolation(bridges: list[Link], allowed: set[frozenset[str]]) -> list[str]:
    """Traffic between two bridges is dropped unless the pair is allowed."""
    names = [b.name for b in bridges]
    return [f"-i {a} -o {b} -j DROP" for a in names for b in names if a != b and frozenset((a, b)) not in allowed]


def _dnat(host: Namespace, published: list[Published]) -> list[str]:
    """A published port, from its host address (default: every IPv4 address of the host), to its node."""
    out = []
    for p in published:
        prefix = 128 if p.family == 6 else 32
        for address in [p.host_ip] if p.host_ip else host_addresses(host):
            out.append(f"-d {address}/{prefix} {p.match()} -j DNAT --to-destination {p.target()}")
    return out


def _masquerade(masquerading: list[Link], bridges: list[Link], published: list[Published]) -> list[str]:
    """Outbound NAT of masquerading bridges' subnets, and hairpin NAT to published ports."""
    out = []
    for bridge in masquerading:
        for net in sorted({str(i.network) for i in _v4(bridge)}):
            out.append(f"-s {net} ! -o {bridge.name} -j MASQUERADE")
    for p in published:
        bridge = next(b for b in bridges if b.name == p.bridge)
        prefix = 128 if p.family == 6 else 32
        sources = sorted({str(i.network) for i in _ips(bridge, p.family)})
        if p.loopback:  # the host itself through 127.0.0.1: answers must come back to a routable address
            sources.append("127.0.0.0/8")
        for net in sources:
            out.append(f"-s {net} -d {p.address}/{prefix} -o {p.bridge} {p.match(node=True)} -j MASQUERADE")
    return out


def needs_forwarding(host: Namespace, published: list[Published], gateways: bool, outside: bool) -> bool:
    """Whether the host must route: NAT, published ports, an outside, or nodes using it as gateway."""
    return (
        bool(published)
        or gateways
        or outside
        or any(link.masquerade for link in host.links.values() if link.kind == "bridge")
    )
