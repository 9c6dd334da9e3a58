"""How :class:`~nsnet.engine.seam.LiveKernel` reads a lab's namespaces: links, static routes and marks.

The links come from the same reader as ``inspect``'s (:mod:`nsnet.kernel.readers`):
one listing per namespace, veth peers resolved across the namespaces read.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, replace

from nsnet import kinds
from nsnet.kernel import readers, rtnl
from nsnet.kernel.netlink import Netlink, kind_fields
from nsnet.model import ROOT_NS, Endpoint, Link, Route

UNKNOWN_PEER = Endpoint("?", "?")
LINK_LOCAL = -1
"""The key of :func:`_addresses` under which the indexes of links with an IPv6 link-local address are listed."""
"""The peer of a veth whose other end is in none of the namespaces read."""


@dataclass(frozen=True)
class Reading:
    """What the engine reads of one namespace through netlink."""

    links: dict[str, Link]
    """Every link but ``lo``, with its global addresses, its veth peer (or parent) and its VXLAN entries."""
    routes: frozenset[Route]
    """The static routes (``proto static``) of the main table."""
    mark: str | None
    """The alias of ``lo``: nsnet's mark on a namespace it created (None in the root namespace)."""


def read(nl: Netlink, spaces: Sequence[str]) -> dict[str, Reading]:
    """Each namespace of ``spaces`` read whole (veth peers are resolved across all of them)."""
    msgs = {ns: nl.link_msgs(ns) for ns in spaces}
    links = readers.Links(nl, msgs)
    out = {}
    for ns, listed in msgs.items():
        mark = next((m.alias for m in listed if m.index == rtnl.LOOPBACK_IFINDEX), None)
        routes = frozenset(_static_routes(nl, ns, {m.index: m.name for m in listed}))
        out[ns] = Reading(_links(nl, ns, links), routes, None if ns == ROOT_NS else mark)
    return out


def _links(nl: Netlink, ns: str, links: readers.Links) -> dict[str, Link]:
    """Every link of ``ns`` but ``lo``, with its global addresses, its veth peer and its VXLAN entries."""
    names = links.names[ns]
    ips = _addresses(nl, ns, names)
    out: dict[str, Link] = {}
    for m in links.msgs[ns]:
        if m.name == "lo":
            continue
        link = _link(m, names, frozenset(ips.get(m.index, ())))
        if str(m.index) in ips.get(LINK_LOCAL, ()):
            link = replace(link, link_local=True)
        linked = kinds.get(m.kind).linked  # what IFLA_LINK names: a veth's peer, a macvlan's parent
        if linked and m.peer_index is not None:
            found = links.peer(ns, m) if linked == "peer" else links.parent(ns, m)
            end = Endpoint(*found) if found else UNKNOWN_PEER
            link = replace(link, peer=end) if linked == "peer" else replace(link, parent=end)
        out[m.name] = link
    vxlans = {m.index: m.name for m in links.msgs[ns] if m.kind == "vxlan"}
    if vxlans:
        fdb, neigh = readers.overlay_entries(nl, ns, vxlans)
        for name in vxlans.values():
            out[name] = replace(out[name], fdb=frozenset(fdb[name]), neighbours=frozenset(neigh[name]))
    return out


def _link(m: rtnl.LinkMsg, names: dict[int, str], ips: frozenset[str]) -> Link:
    """A link as the model holds it; its kind reads its own settings (bridge, VXLAN, macvlan ...)."""
    link = Link(
        name=m.name,
        kind=m.kind or "other",  # type: ignore[arg-type]
        master=names.get(m.master) if m.master else None,
        mtu=m.mtu,
        mac=m.mac,
        up=bool(m.flags & rtnl.IFF_UP),
        addresses=ips,
        alias=m.alias,
    )
    return replace(link, **kind_fields(m.kind, m.data, names)) if kinds.get(m.kind).params else link


def _addresses(nl: Netlink, ns: str, names: dict[int, str]) -> dict[int, list[str]]:
    """Link index -> its addresses (CIDR), IPv6 link-local ones left out (the indexes of the links that have
    one listed under :data:`LINK_LOCAL`); ``lo``'s too."""
    out: dict[int, list[str]] = {}
    for a in readers.address_msgs(nl, ns):
        if a.address is None or names.get(a.index, "lo") == "lo":
            continue
        if a.family == socket.AF_INET:  # as ipaddress would write it
            out.setdefault(a.index, []).append(f"{a.address}/{a.prefixlen}")
            continue
        ip = ipaddress.ip_interface(f"{a.address}/{a.prefixlen}")
        if not ip.is_link_local:
            out.setdefault(a.index, []).append(str(ip))
        else:
            out.setdefault(LINK_LOCAL, []).append(str(a.index))
    return out


def _static_routes(nl: Netlink, ns: str, names: dict[int, str]) -> set[Route]:
    """Static routes (``proto static``) of the main table."""
    routes: set[Route] = set()
    for r in readers.route_msgs(nl, ns, rtnl.RT_TABLE_MAIN, rtnl.RTPROT_STATIC):
        if r.family not in (socket.AF_INET, socket.AF_INET6):
            continue
        dst = r.dst or ("0.0.0.0" if r.family == socket.AF_INET else "::")
        routes.add(
            Route(
                to=str(ipaddress.ip_network(f"{dst}/{r.dst_len}")),
                via=r.gateway,
                dev=names.get(r.oif) if r.oif else None,
                metric=r.priority,
            )
        )
    return routes
