"""A machine's share of a multi-host lab (pure): what one real machine builds of it.

The share of machine ``A`` is a single-host lab with ``host: root`` semantics:
host ``A``'s bridges, VXLAN devices, routes, sysctls and firewall go to the
machine's root namespace (the lab's ``host``), the nodes linked to ``A`` are
namespaces there, and nothing else of the lab is. The simulated underlay
(``eth0`` and the switch) gives way to the machine's real interface: the
VXLAN devices sit on it with the machine's address as their local VTEP, the
forwarding entries point at the other machines' addresses, and everything on
the overlay gets the real interface's MTU less 50 (an MTU the file sets is
kept when it fits).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from nsnet.errors import NsnetError
from nsnet.model import HOST, Endpoint, Link, Namespace, Topology
from nsnet.overlay.build import UNDERLAY_IFACE, VXLAN_OVERHEAD
from nsnet.overlay.endpoints import HostView, host_views, vxlan_bridges


def placement(topology: Topology) -> dict[str, str]:
    """Node -> the host it sits on (the host its links lead to); :class:`NsnetError` if one has none or two."""
    hosts = set(topology.overlay.vteps) if topology.overlay else set()
    spaces = topology.namespaces
    where: dict[str, str] = {}
    for host in sorted(hosts):
        todo = [k.peer.ns for k in spaces[host].links.values() if k.peer and k.peer.ns in topology.nodes]
        while todo:
            node = todo.pop()
            if where.get(node) == host:
                continue
            if node in where:
                raise NsnetError(f"node {node} is linked to hosts {where[node]} and {host}: a node sits on one machine")
            where[node] = host
            todo += [k.peer.ns for k in spaces[node].links.values() if k.peer and k.peer.ns in topology.nodes]
    lost = [n for n in topology.nodes if n not in where]
    if lost:
        raise NsnetError(f"node{'s' if len(lost) > 1 else ''} {', '.join(lost)} on no host: link each to a host")
    return where


def _vteps(topology: Topology) -> dict[str, str]:
    """Simulated VTEP address -> the real one of the machine carrying that host."""
    vteps = topology.overlay.vteps if topology.overlay else {}
    return {sim: topology.machines[host].address for host, sim in vteps.items() if host in topology.machines}


def _on_overlay(spaces: Mapping[str, Namespace]) -> set[tuple[str, str]]:
    """(space, link) of everything that carries overlay traffic: VXLAN devices, their bridges, ports, node ends."""
    out = {(s, n) for s, space in spaces.items() for n, k in space.links.items() if k.kind == "vxlan"}
    for host, bridge in vxlan_bridges(spaces, point_to_point=True):
        out.add((host, bridge))
        for name, port in spaces[host].links.items():
            if port.kind == "veth" and port.master == bridge and port.peer is not None:
                out |= {(host, name), (port.peer.ns, port.peer.ifname)}
    return out


def share(topology: Topology, machine: str, mtu: int) -> Topology:
    """Machine ``machine``'s share of ``topology``, whose underlay interface has MTU ``mtu``."""
    if machine not in topology.machines or topology.overlay is None:
        known = ", ".join(topology.machines) or "none"
        raise NsnetError(f"lab {topology.name} has no machine {machine!r} (machines: {known})")
    m = topology.machines[machine]
    where = placement(topology)
    mine = [n for n in topology.nodes if where[n] == machine]
    vteps = _vteps(topology)
    was, limit = topology.overlay.mtu - VXLAN_OVERHEAD, mtu - VXLAN_OVERHEAD
    overlay = _on_overlay(topology.namespaces)
    too_big: list[str] = []

    def moved(ep: Endpoint | None) -> Endpoint | None:
        return Endpoint(HOST, ep.ifname) if ep is not None and ep.ns == machine else ep

    def adapt(space: str, link: Link) -> Link:
        link = replace(link, peer=moved(link.peer), parent=moved(link.parent))
        if (space, link.name) in overlay and link.mtu is not None:
            new = limit if link.mtu == was else link.mtu
            if new > limit:
                too_big.append(f"{space}:{link.name} (mtu {link.mtu})")
            link = replace(link, mtu=new)
        if link.vxlan is not None:
            vx = link.vxlan
            remote = vteps.get(vx.remote, vx.remote) if vx.remote else None
            local, dev = (m.address, m.interface) if vx.dev == UNDERLAY_IFACE else (vx.local, vx.dev)
            link = replace(link, vxlan=replace(vx, local=local, dev=dev, remote=remote))
            if link.fdb is not None:
                link = replace(link, fdb=frozenset((mac, vteps.get(vtep, vtep)) for mac, vtep in link.fdb))
        return link

    host = topology.namespaces[machine]
    links = {n: adapt(machine, k) for n, k in host.links.items() if n != UNDERLAY_IFACE}
    routes = frozenset(replace(r, dev=m.interface) if r.dev == UNDERLAY_IFACE else r for r in host.routes)
    spaces = {
        n: replace(topology.namespaces[n], links={k: adapt(n, v) for k, v in topology.namespaces[n].links.items()})
        for n in mine
    }
    spaces[HOST] = replace(host, name=HOST, label=HOST, links=links, routes=routes)
    if too_big:
        raise NsnetError(
            f"on machine {machine}, {m.interface} carries {limit} bytes of overlay (mtu {mtu}, less 50 for VXLAN): "
            f"{', '.join(too_big)} is more; lower it in the file, or raise {m.interface}'s MTU"
        )
    local = set(mine)
    expectations = tuple(
        e for e in topology.expectations if e.src in local and (e.dst in local or e.dst not in topology.namespaces)
    )
    return replace(
        topology,
        host_mode="root",
        namespaces=spaces,
        expectations=expectations,
        overlay=None,
        machine=machine,
    )


def machine_view(topology: Topology, machine: str) -> HostView:
    """What the overlay controller of ``machine`` needs: its host's view, on the root namespace and real VTEPs."""
    view = host_views(topology)[machine]
    vteps = _vteps(topology)
    local = tuple(replace(e, vtep=vteps.get(e.vtep, e.vtep)) for e in view.local)
    return replace(view, netns="", vtep=topology.machines[machine].address, local=local)
