"""Who is where on an overlay: the endpoints a topology puts behind each host's VXLAN devices (pure)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, replace

from nsnet.model import Link, Namespace, Topology, netns_names


@dataclass(frozen=True, order=True)
class VxlanDevice:
    """A VXLAN device of a host: its name, VNI and UDP port."""

    name: str
    vni: int
    port: int = 4789


@dataclass(frozen=True, order=True)
class OverlayEndpoint:
    """One address reachable over the overlay: ``ip`` answers at ``mac``, behind the VTEP ``vtep`` of ``host``."""

    vni: int
    ip: str
    mac: str
    vtep: str
    host: str
    node: str
    iface: str

    def key(self, lab: str) -> str:
        """The endpoint's key in the registry."""
        return f"/nsnet/{lab}/overlay/{self.vni}/{self.ip}"


@dataclass(frozen=True)
class HostView:
    """What one host's controller needs: its namespace, VTEP address, VXLAN devices and local endpoints."""

    host: str
    netns: str
    vtep: str
    devices: tuple[VxlanDevice, ...]
    local: tuple[OverlayEndpoint, ...]


def derived_mac(ipv4: str) -> str:
    """Docker's MAC for an address on an overlay: ``02:42`` and the four bytes of the IPv4 address."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ipv4).packed)


def vxlan_bridges(spaces: Mapping[str, Namespace], point_to_point: bool = False) -> dict[tuple[str, str], list[Link]]:
    """(host, bridge) -> the VXLAN devices attached to it, for every bridge that carries an overlay.

    Devices with a single ``remote`` count only with ``point_to_point``: they
    need no per-MAC entries.
    """
    out: dict[tuple[str, str], list[Link]] = {}
    for host, space in spaces.items():
        for link in space.links.values():
            if link.kind == "vxlan" and link.master and link.vxlan and (point_to_point or link.vxlan.remote is None):
                out.setdefault((host, link.master), []).append(link)
    return out


def endpoints(spaces: Mapping[str, Namespace], vteps: Mapping[str, str]) -> list[OverlayEndpoint]:
    """Every node address behind a bridge that carries a VXLAN device, with the VTEP of its host.

    ``spaces`` are keyed by logical name (a topology's) or by namespace name
    with ``vteps`` keyed the same way; the endpoint's ``host`` and ``node``
    are the spaces' labels.
    """
    out: list[OverlayEndpoint] = []
    for (host, bridge), devices in sorted(vxlan_bridges(spaces).items()):
        space = spaces[host]
        for port in space.links.values():
            if port.kind != "veth" or port.master != bridge or port.peer is None:
                continue
            node = spaces.get(port.peer.ns)
            iface = node.links.get(port.peer.ifname) if node else None
            if node is None or iface is None or iface.mac is None:
                continue
            for cidr in sorted(iface.addresses):
                ip = str(ipaddress.ip_interface(cidr).ip)
                for vni in sorted({d.vxlan.vni for d in devices if d.vxlan}):
                    out.append(OverlayEndpoint(vni, ip, iface.mac, vteps[host], space.label, node.label, iface.name))
    return out


def host_views(topology: Topology, lab: str | None = None) -> dict[str, HostView]:
    """What the controller of each host of ``topology`` (brought up as ``lab``) needs, by host."""
    overlay = topology.overlay
    if overlay is None:
        return {}
    names = netns_names(topology, lab)
    everywhere = endpoints(topology.namespaces, overlay.vteps)
    views = {}
    for host, vtep in overlay.vteps.items():
        devices = tuple(
            VxlanDevice(link.name, link.vxlan.vni, link.vxlan.port)
            for link in topology.namespaces[host].links.values()
            if link.kind == "vxlan" and link.vxlan and link.vxlan.remote is None
        )
        local = tuple(e for e in everywhere if e.host == host)
        views[host] = HostView(host, names[host], vtep, devices, local)
    return views


def lab_views(lab: str) -> tuple[dict[str, HostView], str | None]:
    """The host views of a lab that is up, from the topology it was last brought up from, and its registry URL."""
    from nsnet.engine.directory import (  # the engine loads topologies, which use this module
        lab_namespaces,
        lab_topology,
    )

    topology = lab_topology(lab)
    if topology is None or topology.overlay is None:
        return {}, None
    # The file may say more than `up` has built yet (edited, not applied): publish only nodes that exist.
    built = set(lab_namespaces(lab).values())
    views = {
        host: replace(view, local=tuple(e for e in view.local if e.node in built))
        for host, view in host_views(topology, lab).items()
    }
    return views, topology.overlay.registry
