"""The one reader of namespaces' netlink state: typed views for ``inspect``, and what ``observe`` builds on.

Links are read once per namespace into :class:`~nsnet.kernel.rtnl.LinkMsg`;
:class:`Links` resolves veth peers across the namespaces read (the one place
that asks the kernel which namespace an id names, ``RTM_GETNSID``). The other
readers return the :mod:`nsnet.views` dataclasses ``inspect`` reports, or the
decoded messages (:func:`address_msgs`, :func:`route_msgs`) that ``observe``
turns into the model.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
from collections.abc import Mapping, Sequence

import netaddr

from nsnet import kinds
from nsnet.kernel import netns, rtnl
from nsnet.kernel.netlink import Netlink, kind_fields
from nsnet.views import (
    AddressView,
    BridgePortView,
    BridgeView,
    FdbView,
    LinkView,
    NeighbourView,
    PeerView,
    PolicyRuleView,
    RouteView,
    VtepEntryView,
    VxlanView,
)


def nud_names(state: int) -> list[str]:
    """NUD state bits as names (``ip neigh`` prints them the same way)."""
    return [name for bit, name in rtnl.NUD_STATES if state & bit] or ["NONE"]


@functools.lru_cache(maxsize=4096)
def vendor(mac: str | None) -> str | None:
    """The maker registered for a MAC's OUI (IEEE registry), or ``None``."""
    if not mac or mac == "00:00:00:00:00:00":
        return None
    try:
        eui = netaddr.EUI(mac)
        if int(eui) >> 41 & 1:  # locally administered: random, no maker (veths, bridges)
            return None
        return str(eui.oui.registration().org)
    except (netaddr.AddrFormatError, netaddr.NotRegisteredError, IndexError, ValueError):
        return None


# -- links and their peers ---------------------------------------------------


def nsid(nl: Netlink, ns: str, other: str) -> int | None:
    """The id ``ns`` knows namespace ``other`` by (as a veth's IFLA_LINK_NETNSID gives it), if any."""
    fd = netns.open_fd(other)
    try:
        query = rtnl.rtgen() + rtnl.u32(rtnl.NETNSA_FD, fd)
        body = nl.get(ns, f"look up the id of {other or 'root'}", rtnl.RTM_GETNSID, query)
    finally:
        os.close(fd)
    found = rtnl.parse_nsid(body)
    return None if found is None or found < 0 else found


class Links:
    """The links of several namespaces, read once, with every veth's peer found among them.

    A veth names its peer by index (and the peer's namespace by an id only
    its own namespace knows); its peer names it back. So the peer is the link
    of that index, in another namespace read (or the same one, without an
    id), that points back at it; only where several namespaces fit (alike
    enough to number their links alike) is the kernel asked which one the id
    names.
    """

    def __init__(self, nl: Netlink, msgs: Mapping[str, Sequence[rtnl.LinkMsg]]) -> None:
        self.msgs = msgs
        self.names = {ns: {m.index: m.name for m in found} for ns, found in msgs.items()}
        self._peers: dict[tuple[str, int], tuple[str, int] | None] = {}
        self._nl = nl
        by_pair: dict[tuple[int, int], list[str]] = {}
        for ns, found in msgs.items():
            for m in found:
                if m.kind == "veth" and m.peer_index is not None:
                    by_pair.setdefault((m.index, m.peer_index), []).append(ns)
        for ns, found in msgs.items():
            for m in found:
                if m.kind != "veth" or m.peer_index is None:
                    continue
                same = m.peer_nsid is None
                spaces = [other for other in by_pair.get((m.peer_index, m.index), ()) if (other == ns) == same]
                if len(spaces) > 1:
                    spaces = [other for other in spaces if nsid(nl, ns, other) == m.peer_nsid]
                self._peers[(ns, m.index)] = (spaces[0], m.peer_index) if len(spaces) == 1 else None

    @classmethod
    def read(cls, nl: Netlink, spaces: Sequence[str]) -> Links:
        return cls(nl, {ns: nl.link_msgs(ns) for ns in spaces})

    def peer(self, ns: str, m: rtnl.LinkMsg) -> tuple[str, str] | None:
        """The namespace and name of a veth's peer; None when not a veth or its peer is elsewhere."""
        found = self._peers.get((ns, m.index))
        if found is None:
            return None
        return found[0], self.names[found[0]][found[1]]

    def parent(self, ns: str, m: rtnl.LinkMsg) -> tuple[str, str] | None:
        """The namespace and name of the link a macvlan or ipvlan sits on (IFLA_LINK, in the namespace
        its id names); None when it is in none of the namespaces read."""
        if m.peer_index is None:
            return None
        same = m.peer_nsid is None
        spaces = [o for o, names in self.names.items() if m.peer_index in names and (o == ns) == same]
        if len(spaces) > 1:
            spaces = [o for o in spaces if nsid(self._nl, ns, o) == m.peer_nsid]
        return (spaces[0], self.names[spaces[0]][m.peer_index]) if len(spaces) == 1 else None


def link_kind(m: rtnl.LinkMsg) -> str:
    """A link's kind as ``inspect`` names it: ``loopback`` and ``device`` for links without one."""
    return m.kind or ("loopback" if m.name == "lo" else "device")


def link_views(links: Links, ns: str, spaces: Mapping[str, str], mark: str) -> list[LinkView]:
    """Every link of ``ns`` (``lo`` included), as ``ip -d link`` shows it; ``spaces`` labels the namespaces."""
    names = links.names[ns]
    out = []
    for m in links.msgs[ns]:
        peer = parent = None
        linked = kinds.get(m.kind).linked  # what IFLA_LINK names: a veth's peer, a macvlan's parent
        if linked and m.peer_index is not None:
            found = links.peer(ns, m) if linked == "peer" else links.parent(ns, m)
            where, name = found if found else (None, None)
            # The root namespace's key is "": a namespace like any other, not a missing one.
            node = spaces.get(where) if where is not None else None
            end = PeerView(node=node, netns=where, name=name, index=m.peer_index)
            peer, parent = (end, None) if linked == "peer" else (None, end)
        operstate = m.operstate if m.operstate is not None and m.operstate < len(rtnl.OPERSTATES) else 0
        out.append(
            LinkView(
                name=m.name,
                index=m.index,
                kind=link_kind(m),
                state="up" if m.flags & rtnl.IFF_UP else "down",
                operstate=rtnl.OPERSTATES[operstate],
                mtu=m.mtu or 0,
                mac=m.mac,
                vendor=vendor(m.mac),
                master=names.get(m.master) if m.master else None,
                peer=peer,
                alias=m.alias,
                owned=m.alias == mark,
                port=bridge_port(m.port) if m.master else None,
                parent=parent,
                mode=kind_fields(m.kind, m.data, names).get("mode"),
            )
        )
    return out


def bridge_port(info: rtnl.BridgePortInfo | None) -> BridgePortView | None:
    if info is None:
        return None
    return BridgePortView(
        state=rtnl.PORT_STATES.get(info.state, str(info.state)),
        learning=info.learning,
        flood=info.flood,
        mcast_flood=info.mcast_flood,
        bcast_flood=info.bcast_flood,
        hairpin=info.hairpin,
        isolated=info.isolated,
        neigh_suppress=info.neigh_suppress,
        proxy_arp=info.proxy_arp,
    )


def bridges(msgs: Sequence[rtnl.LinkMsg]) -> list[BridgeView]:
    """The bridges among ``msgs``, with their STP, ageing time (seconds) and ports."""
    names = {m.index: m.name for m in msgs}
    return [
        BridgeView(
            name=m.name,
            stp=bool(m.stp),
            ageing_time=(m.ageing or 0) // 100,
            ports=sorted(p.name for p in msgs if p.master and names.get(p.master) == m.name),
        )
        for m in msgs
        if m.kind == "bridge"
    ]


def vteps(links: Links, spaces: Mapping[str, str]) -> dict[str, str]:
    """VTEP address -> the host (label) whose VXLAN devices send from it."""
    return {
        m.vxlan.local: spaces[ns]
        for ns, msgs in links.msgs.items()
        for m in msgs
        if m.vxlan is not None and m.vxlan.local
    }


def vxlans(nl: Netlink, ns: str, links: Links, vteps: Mapping[str, str]) -> list[VxlanView]:
    """The VXLAN devices of ``ns`` with their forwarding entries (``vteps`` names the hosts) and neighbours."""
    devices = [m for m in links.msgs[ns] if m.vxlan is not None]
    if not devices:
        return []
    names = links.names[ns]
    entries = [
        (names[m.ifindex], m.lladdr, m.dst, bool(m.state & rtnl.NUD_PERMANENT))
        for m in _fdb_msgs(nl, ns)
        if m.dst and m.lladdr and m.ifindex in names
    ]
    near = neighbours(nl, ns, names)
    out = []
    for m in devices:
        vx = m.vxlan
        assert vx is not None
        out.append(
            VxlanView(
                name=m.name,
                vni=vx.vni,
                port=vx.port,
                local=vx.local,
                remote=vx.remote,
                dev=names.get(vx.dev or 0),
                learning=vx.learning,
                proxy=vx.proxy,
                l2miss=vx.l2miss,
                l3miss=vx.l3miss,
                master=names.get(m.master) if m.master else None,
                mtu=m.mtu,
                entries=[
                    VtepEntryView(mac, vtep, vteps.get(vtep), "permanent" if permanent else "learned")
                    for dev, mac, vtep, permanent in entries
                    if dev == m.name
                ],
                neighbours=[n for n in near if n.dev == m.name],
            )
        )
    return out


# -- addresses, routes, rules ------------------------------------------------


def address_msgs(nl: Netlink, ns: str) -> list[rtnl.AddrMsg]:
    payload = rtnl.ifaddr(socket.AF_UNSPEC, 0, 0)
    return [rtnl.parse_addr(b) for b in nl.dump(ns, "list addresses", rtnl.RTM_GETADDR, payload)]


def addresses(nl: Netlink, ns: str, names: Mapping[int, str]) -> list[AddressView]:
    return [
        AddressView(
            dev=names.get(a.index),
            family=4 if a.family == socket.AF_INET else 6,
            address=a.address if a.family == socket.AF_INET6 else a.local,
            prefixlen=a.prefixlen,
            scope=rtnl.RT_SCOPES.get(a.scope, str(a.scope)),
        )
        for a in address_msgs(nl, ns)
    ]


def route_msgs(nl: Netlink, ns: str, table: int | None = None, proto: int | None = None) -> list[rtnl.RouteMsg]:
    """Routes of every table (or of ``table``, made by ``proto``), IPv4 and IPv6."""
    payload = rtnl.rtmsg(socket.AF_UNSPEC, 0, 0, table=0, kind=0)
    out = []
    for body in nl.dump(ns, "list routes", rtnl.RTM_GETROUTE, payload):
        _, in_table, by = rtnl.route_header(body)
        if (proto is not None and by != proto) or (table is not None and in_table not in (table, rtnl.RT_TABLE_COMPAT)):
            continue
        r = rtnl.parse_route(body)
        if table is None or r.table == table:
            out.append(r)
    return out


def routes(nl: Netlink, ns: str, names: Mapping[int, str]) -> list[RouteView]:
    """Routes of every table (main, local, others), IPv4 then IPv6."""
    out = []
    for family in (socket.AF_INET, socket.AF_INET6):
        payload = rtnl.rtmsg(family, 0, 0, table=0, kind=0)
        for body in nl.dump(ns, "list routes", rtnl.RTM_GETROUTE, payload):
            m = rtnl.parse_route(body)
            if m.family != family:
                continue
            out.append(
                RouteView(
                    family=4 if family == socket.AF_INET else 6,
                    table=rtnl.RT_TABLES.get(m.table, str(m.table)),
                    type=rtnl.RT_TYPES.get(m.type, str(m.type)),
                    dst=f"{m.dst}/{m.dst_len}" if m.dst else "default",
                    gateway=m.gateway,
                    dev=names.get(m.oif) if m.oif else None,
                    proto=rtnl.RT_PROTOS.get(m.proto, str(m.proto)),
                    scope=rtnl.RT_SCOPES.get(m.scope, str(m.scope)),
                    src=m.prefsrc,
                    metric=m.priority,
                )
            )
    return out


def rules(nl: Netlink, ns: str) -> list[PolicyRuleView]:
    """Policy routing rules (``ip rule`` and ``ip -6 rule``), in priority order."""
    out = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for body in nl.dump(ns, "list rules", rtnl.RTM_GETRULE, rtnl.rtmsg(family, 0, 0, table=0, kind=0)):
            m = rtnl.parse_rule(body)
            if m.family != family:
                continue
            out.append(
                PolicyRuleView(
                    family=4 if family == socket.AF_INET else 6,
                    priority=m.priority,
                    action=rtnl.RULE_ACTIONS.get(m.action, str(m.action)),
                    table=rtnl.RT_TABLES.get(m.table, str(m.table)) if m.action == rtnl.FR_ACT_TO_TBL else None,
                    src=f"{m.src}/{m.src_len}" if m.src else None,
                    dst=f"{m.dst}/{m.dst_len}" if m.dst else None,
                    iif=m.iif,
                    oif=m.oif,
                    fwmark=m.fwmark or None,
                    fwmask=m.fwmask if m.fwmark else None,
                    invert=m.invert,
                    goto=m.goto,
                )
            )
    return sorted(out, key=lambda r: (r.family, r.priority))


# -- neighbours and the fdb --------------------------------------------------


def _neigh_msgs(nl: Netlink, ns: str, family: int) -> list[rtnl.NeighMsg]:
    return [rtnl.parse_neigh(b) for b in nl.dump(ns, "list neighbours", rtnl.RTM_GETNEIGH, rtnl.ndmsg(family))]


def _fdb_msgs(nl: Netlink, ns: str) -> list[rtnl.NeighMsg]:
    return [rtnl.parse_neigh(b) for b in nl.dump(ns, "list fdb", rtnl.RTM_GETNEIGH, rtnl.ndmsg(socket.AF_BRIDGE))]


def neighbours(nl: Netlink, ns: str, names: Mapping[int, str]) -> list[NeighbourView]:
    """IPv4 and IPv6 neighbours, as ``ip neigh show nud all`` lists them, but for the kernel's own NOARP entries
    (loopback, multicast, broadcast) and NONE entries; a NOARP entry made by hand is kept: it decides the MAC."""
    out = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for m in _neigh_msgs(nl, ns, family):
            if m.family != family or m.state == 0 or names.get(m.ifindex) == "lo":
                continue
            if m.state == rtnl.NUD_NOARP and (not m.lladdr or m.lladdr == "00:00:00:00:00:00" or _group(m.dst)):
                continue
            out.append(
                NeighbourView(
                    dev=names.get(m.ifindex),
                    address=m.dst,
                    mac=m.lladdr,
                    state=nud_names(m.state),
                    router=bool(m.flags & rtnl.NTF_ROUTER),
                )
            )
    return out


def _group(address: str | None) -> bool:
    """A multicast or all-ones address (the kernel keeps NOARP entries of its own for them)."""
    if not address:
        return True
    ip = ipaddress.ip_address(address)
    return ip.is_multicast or (ip.version == 4 and str(ip).endswith(".255"))


def fdb(nl: Netlink, ns: str, names: Mapping[int, str]) -> list[FdbView]:
    """Bridge forwarding database entries, as ``bridge fdb show`` lists them."""
    return [
        FdbView(
            mac=m.lladdr,
            port=names.get(m.ifindex),
            bridge=names.get(m.master) if m.master else None,
            vlan=m.vlan,
            kind="permanent" if m.state & rtnl.NUD_PERMANENT else "static" if m.state & rtnl.NUD_NOARP else "learned",
            self=bool(m.flags & rtnl.NTF_SELF),
            used=m.used / rtnl.USER_HZ if m.used is not None else None,
            updated=m.updated / rtnl.USER_HZ if m.updated is not None else None,
        )
        for m in _fdb_msgs(nl, ns)
    ]


def overlay_entries(
    nl: Netlink, ns: str, devices: Mapping[int, str]
) -> tuple[dict[str, set[tuple[str, str]]], dict[str, set[tuple[str, str]]]]:
    """Permanent fdb entries (MAC, VTEP) and neighbours (IP, MAC) of the VXLAN ``devices`` (index -> name)."""
    fdb: dict[str, set[tuple[str, str]]] = {name: set() for name in devices.values()}
    neigh: dict[str, set[tuple[str, str]]] = {name: set() for name in devices.values()}
    for m in _fdb_msgs(nl, ns):
        name = devices.get(m.ifindex)
        if name and m.dst and m.lladdr and m.lladdr != "00:00:00:00:00:00" and m.state & rtnl.NUD_PERMANENT:
            fdb[name].add((m.lladdr, m.dst))
    for family in (socket.AF_INET, socket.AF_INET6):
        for m in _neigh_msgs(nl, ns, family):
            name = devices.get(m.ifindex)
            if name and m.dst and m.lladdr and m.state & rtnl.NUD_PERMANENT:
                neigh[name].add((m.dst, m.lladdr))
    return fdb, neigh
