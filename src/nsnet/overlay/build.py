"""What a multi-host lab adds to its namespaces (pure): VXLAN settings, overlay MTUs and MACs, static entries.

The overlay loses 50 bytes to encapsulation (outer Ethernet 14, IPv4 20, UDP
8, VXLAN 8), so every interface on a bridge that carries a VXLAN device, and
its other end in the node, gets the underlay's MTU less 50 unless the
topology says otherwise (never more). A node interface there without a MAC
gets Docker's, derived from its IPv4 address, so that every host can know it
in advance. In static mode each VXLAN device gets a forwarding entry (MAC ->
remote VTEP) and a neighbour entry (IP -> MAC, which its ARP proxy answers
from) for every node behind the other hosts.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from nsnet.model import Link, Namespace, Overlay
from nsnet.overlay.endpoints import derived_mac, endpoints, vxlan_bridges

VXLAN_OVERHEAD = 50
UNDERLAY_IFACE = "eth0"

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str, str]


def build(
    spaces: dict[str, Namespace], overlay: Overlay, locs: dict[str, Loc]
) -> tuple[dict[str, Namespace], list[Problem]]:
    """``spaces`` with the overlay's settings filled in, and the problems found (``locs``: where each space is)."""
    mtu = _Mtu(overlay)
    spaces = _vxlan_devices(dict(spaces), overlay, locs, mtu)
    for host, bridge in vxlan_bridges(spaces, point_to_point=True):
        _overlay_bridge(spaces, host, bridge, locs, mtu)
    if overlay.mode == "static":
        _static_entries(spaces, overlay)
    return spaces, mtu.problems


class _Mtu:
    """The MTU of a link on the overlay: its own, at most what the overlay carries (else a problem), or that."""

    def __init__(self, overlay: Overlay) -> None:
        self.overlay = overlay
        self.limit = overlay.mtu - VXLAN_OVERHEAD
        self.problems: list[Problem] = []

    def __call__(self, where: Loc, link: Link) -> int:
        if link.mtu is not None and link.mtu > self.limit:
            self.problems.append(
                (
                    (*where, "mtu"),
                    f"mtu {link.mtu} is more than the overlay carries (underlay {self.overlay.mtu}, less 50 for VXLAN)",
                    f"use at most {self.limit}, or raise underlay.mtu",
                )
            )
        return link.mtu if link.mtu is not None else self.limit


def _vxlan_devices(
    spaces: dict[str, Namespace], overlay: Overlay, locs: dict[str, Loc], mtu: _Mtu
) -> dict[str, Namespace]:
    """Each host's VXLAN devices on its VTEP address, over the underlay interface."""
    for host in overlay.vteps:
        space = spaces[host]
        links = dict(space.links)
        for name, link in space.links.items():
            if link.kind != "vxlan" or link.vxlan is None:
                continue
            point = link.vxlan.remote is None
            vx = replace(
                link.vxlan,
                local=overlay.vteps[host],
                dev=UNDERLAY_IFACE,
                proxy=point,
                l2miss=point and overlay.mode == "dynamic",
                l3miss=point and overlay.mode == "dynamic",
            )
            links[name] = replace(link, vxlan=vx, mtu=mtu((*locs[host], "vxlans", name), link))
        spaces[host] = replace(space, links=links)
    return spaces


def _overlay_bridge(spaces: dict[str, Namespace], host: str, bridge: str, locs: dict[str, Loc], mtu: _Mtu) -> None:
    """A bridge with a VXLAN port, its ports and the interfaces behind them: the overlay's MTU, and a MAC
    every host can know."""
    space = spaces[host]
    links = dict(space.links)
    links[bridge] = replace(links[bridge], mtu=mtu((*locs[host], "bridges", bridge), links[bridge]))
    for name, port in space.links.items():
        if port.kind != "veth" or port.master != bridge or port.peer is None:
            continue
        links[name] = replace(port, mtu=mtu((*locs[host], "interfaces", name), port))
        node = spaces[port.peer.ns]
        end = node.links[port.peer.ifname]
        where = (*locs[port.peer.ns], "interfaces", end.name)
        mac = end.mac
        if mac is None:
            v4 = [a for a in sorted(end.addresses) if ipaddress.ip_interface(a).version == 4]
            if v4:
                mac = derived_mac(str(ipaddress.ip_interface(v4[0]).ip))
            else:
                mtu.problems.append(
                    (
                        where,
                        "an interface on the overlay needs a MAC every host can know",
                        "give it an IPv4 address or a mac:",
                    )
                )
        node_links = dict(node.links)
        node_links[end.name] = replace(end, mtu=mtu(where, end), mac=mac)
        spaces[port.peer.ns] = replace(node, links=node_links)
    spaces[host] = replace(spaces[host], links=links)


def _static_entries(spaces: dict[str, Namespace], overlay: Overlay) -> None:
    """A static overlay: each VXLAN device's forwarding and neighbour entries for the other hosts' endpoints."""
    known = endpoints(spaces, overlay.vteps)
    for host in overlay.vteps:
        space = spaces[host]
        links = dict(space.links)
        for name, link in space.links.items():
            if link.kind != "vxlan" or link.vxlan is None or link.vxlan.remote is not None:
                continue
            remote = [e for e in known if e.vni == link.vxlan.vni and e.host != space.label]
            links[name] = replace(
                link,
                fdb=frozenset((e.mac, e.vtep) for e in remote),
                neighbours=frozenset((e.ip, e.mac) for e in remote),
            )
        spaces[host] = replace(space, links=links)
