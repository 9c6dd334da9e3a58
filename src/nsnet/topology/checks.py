"""Whole-lab checks, once every namespace is built: addresses, bridge subnets and ports, expectations."""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterator

from nsnet.model import Expectation, Link, Namespace
from nsnet.topology import ipcache
from nsnet.topology.report import Report, suggest
from nsnet.topology.schema import TopologySpec
from nsnet.topology.source import Loc

BRIDGE_PORTS_MAX = 1023
"""BR_MAX_PORTS (1024) less port number 0, which the kernel never gives."""
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _iter_addresses(report: Report, spaces: dict[str, Namespace]) -> Iterator[tuple[Loc, str, str, Link]]:
    for ns, space in spaces.items():
        base = report.base(ns)
        for link in space.links.values():
            group = "bridges" if link.kind == "bridge" else "interfaces"
            for addr in sorted(link.addresses):
                yield (*base, group, link.name, "addresses"), ns, addr, link


def addresses(report: Report, spaces: dict[str, Namespace]) -> None:
    """No address twice in the lab, none with a /0 prefix."""
    seen: dict[str, str] = {}
    for loc, ns, addr, link in _iter_addresses(report, spaces):
        if ipcache.ip_interface(addr).network.prefixlen == 0:
            report.add(loc, f"{addr} has a /0 prefix, which covers every address", "use the subnet's real prefix")
        ip = str(ipcache.ip_interface(addr).ip)
        where = f"{ns}:{link.name}"
        if ip in seen:
            report.add(
                loc, f"address {ip} is used twice ({seen[ip]} and {where})", "give each interface its own address"
            )
        else:
            seen[ip] = where


def bridge_ports(report: Report, spaces: dict[str, Namespace]) -> None:
    """A Linux bridge numbers its ports in 10 bits: it takes at most ``BRIDGE_PORTS_MAX``."""
    for ns, space in spaces.items():
        ports: dict[str, int] = {}
        for link in space.links.values():
            if link.master:
                ports[link.master] = ports.get(link.master, 0) + 1
        for bridge, count in ports.items():
            if count > BRIDGE_PORTS_MAX and bridge in space.links:
                report.add(
                    (*report.base(ns), "bridges", bridge),
                    f"bridge {bridge} has {count} ports; Linux allows at most {BRIDGE_PORTS_MAX} on one bridge",
                    f"spread the ports over several bridges of up to {BRIDGE_PORTS_MAX} ports, each its own subnet",
                )


def bridge_subnets(report: Report, spaces: dict[str, Namespace]) -> None:
    """Subnets seen on different bridges must not overlap where their namespace routes to both (each bridge
    has an address of its own); bridges without one are plain switches, as a Kathará collision domain."""
    segments, routed = _segments(spaces)
    names = sorted(key for key in segments if key in routed)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for na, nb in itertools.product(segments[a], segments[b]):
                if na.version == nb.version and na.overlaps(nb):
                    ns, br = b.split(":", 1)
                    report.add(
                        (*report.base(ns), "bridges", br),
                        f"subnet {nb} on bridge {b} overlaps {na} on bridge {a}",
                        "give each bridge its own subnet",
                    )


def _segments(spaces: dict[str, Namespace]) -> tuple[dict[str, set[Network]], set[str]]:
    """The subnets seen on each bridge ("ns:bridge"; bridges a VXLAN network joins are one), and the bridges
    that have an address (their namespace routes to the segment)."""
    segments: dict[str, set[Network]] = {}
    routed: set[str] = set()
    # Bridges joined by a VXLAN network are one segment, whatever host they are on.
    first: dict[int, str] = {}
    joined = {
        f"{ns}:{link.master}": first.setdefault(link.vxlan.vni, f"{ns}:{link.master}")
        for ns, space in spaces.items()
        for link in space.links.values()
        if link.vxlan and link.master
    }
    for ns, space in spaces.items():
        for link in space.links.values():
            if link.kind == "bridge":
                key = joined.get(f"{ns}:{link.name}", f"{ns}:{link.name}")
                segments.setdefault(key, set()).update(ipcache.ip_interface(a).network for a in link.addresses)
                if link.addresses:
                    routed.add(key)
    for space in spaces.values():
        for link in space.links.values():
            if link.kind != "veth" or link.peer is None:
                continue
            peer = spaces.get(link.peer.ns)
            peer_link = peer.links.get(link.peer.ifname) if peer else None
            if peer_link and peer_link.master:
                key = f"{link.peer.ns}:{peer_link.master}"
                key = joined.get(key, key)
                segments.setdefault(key, set()).update(ipcache.ip_interface(a).network for a in link.addresses)
    return segments, routed


def expectations(report: Report, spec: TopologySpec, spaces: dict[str, Namespace]) -> tuple[Expectation, ...]:
    """``expect:``, each entry naming a namespace of the lab (and a node or an address to reach)."""
    out = []
    for i, e in enumerate(spec.expect):
        loc: Loc = ("expect", i)
        if e.from_ not in spaces:
            report.add(
                (*loc, "from"),
                f"node {e.from_!r} does not exist",
                suggest(e.from_, spaces) or f"nodes are: {', '.join(spaces)}",
            )
            continue
        if e.to not in spaces:
            try:
                ipcache.ip_address(e.to)
            except ValueError:
                report.add(
                    (*loc, "to"),
                    f"{e.to!r} is neither a node nor an address",
                    suggest(e.to, spaces) or f"nodes are: {', '.join(spaces)}",
                )
                continue
        out.append(Expectation(src=e.from_, dst=e.to, proto=e.proto, reach=e.reach))
    return tuple(out)
