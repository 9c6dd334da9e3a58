"""Read-only views of a namespace for ``inspect``: neighbours, fdb, routes, addresses, conntrack."""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import asdict
from typing import Any

from nsnet import kinds
from nsnet.errors import KernelError
from nsnet.kernel import netns, rtnl
from nsnet.kernel.netlink import Netlink, kind_fields
from nsnet.views import (
    AddressView,
    BridgePortView,
    ConntrackView,
    FdbView,
    NeighbourView,
    PolicyRuleView,
    RouteView,
)

NUD_STATES = {
    0x01: "INCOMPLETE",
    0x02: "REACHABLE",
    0x04: "STALE",
    0x08: "DELAY",
    0x10: "PROBE",
    0x20: "FAILED",
    0x40: "NOARP",
    0x80: "PERMANENT",
}
NTF_SELF = 0x02
NETLINK_NETFILTER = 12
NTF_EXT_LEARNED = 0x10
RT_TABLES = {253: "default", 254: "main", 255: "local"}
RT_PROTOS = {0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static"}
RT_SCOPES = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}
RT_TYPES = {
    1: "unicast",
    2: "local",
    3: "broadcast",
    4: "anycast",
    5: "multicast",
    6: "blackhole",
    7: "unreachable",
    8: "prohibit",
    9: "throw",
    10: "nat",
    11: "xresolve",
}
RULE_ACTIONS = {1: "lookup", 2: "goto", 3: "nop", 6: "blackhole", 7: "unreachable", 8: "prohibit"}
PORT_STATES = {0: "disabled", 1: "listening", 2: "learning", 3: "forwarding", 4: "blocking"}
USER_HZ = 100


def nud_names(state: int) -> list[str]:
    """NUD state bits as names (``ip neigh`` prints them the same way)."""
    return [name for bit, name in NUD_STATES.items() if state & bit] or ["NONE"]


OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")
NTF_ROUTER = 0x80


def index_names(nl: Netlink, ns: str) -> dict[int, str]:
    return {m.index: m.name for m in nl.link_msgs(ns)}


def neighbours(nl: Netlink, ns: str, names: dict[int, str]) -> list[NeighbourView]:
    """IPv4 and IPv6 neighbours, as ``ip neigh show nud all`` lists them, but for the kernel's own NOARP entries
    (loopback, multicast, broadcast) and NONE entries; a NOARP entry made by hand is kept: it decides the MAC."""
    out = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for body in nl.dump(ns, "list neighbours", rtnl.RTM_GETNEIGH, rtnl.ndmsg(family)):
            m = rtnl.parse_neigh(body)
            if m.family != family or m.state == 0 or names.get(m.ifindex) == "lo":
                continue
            if m.state == 0x40 and (not m.lladdr or m.lladdr == "00:00:00:00:00:00" or _group(m.dst)):
                continue
            out.append(
                NeighbourView(
                    dev=names.get(m.ifindex),
                    address=m.dst,
                    mac=m.lladdr,
                    state=nud_names(m.state),
                    router=bool(m.flags & NTF_ROUTER),
                )
            )
    return out


def _group(address: str | None) -> bool:
    """A multicast or all-ones address (the kernel keeps NOARP entries of its own for them)."""
    if not address:
        return True
    ip = ipaddress.ip_address(address)
    return ip.is_multicast or (ip.version == 4 and str(ip).endswith(".255"))


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
                    action=RULE_ACTIONS.get(m.action, str(m.action)),
                    table=RT_TABLES.get(m.table, str(m.table)) if m.action == 1 else None,
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


def bridge_port(info: rtnl.BridgePortInfo | None) -> BridgePortView | None:
    if info is None:
        return None
    return BridgePortView(
        state=PORT_STATES.get(info.state, str(info.state)),
        learning=info.learning,
        flood=info.flood,
        mcast_flood=info.mcast_flood,
        bcast_flood=info.bcast_flood,
        hairpin=info.hairpin,
        isolated=info.isolated,
        neigh_suppress=info.neigh_suppress,
        proxy_arp=info.proxy_arp,
    )


def fdb(nl: Netlink, ns: str, names: dict[int, str]) -> list[FdbView]:
    """Bridge forwarding database entries, as ``bridge fdb show`` lists them."""
    out = []
    for body in nl.dump(ns, "list fdb", rtnl.RTM_GETNEIGH, rtnl.ndmsg(socket.AF_BRIDGE)):
        m = rtnl.parse_neigh(body)
        out.append(
            FdbView(
                mac=m.lladdr,
                port=names.get(m.ifindex),
                bridge=names.get(m.master) if m.master else None,
                vlan=m.vlan,
                kind="permanent" if m.state & 0x80 else "static" if m.state & 0x40 else "learned",
                self=bool(m.flags & NTF_SELF),
                used=m.used / USER_HZ if m.used is not None else None,
                updated=m.updated / USER_HZ if m.updated is not None else None,
            )
        )
    return out


def vxlan_entries(nl: Netlink, ns: str, names: dict[int, str]) -> list[tuple[str, str, str, bool]]:
    """(device, MAC, VTEP, permanent) of every fdb entry that sends to a remote VTEP (``dst``)."""
    out = []
    for body in nl.dump(ns, "list fdb", rtnl.RTM_GETNEIGH, rtnl.ndmsg(socket.AF_BRIDGE)):
        m = rtnl.parse_neigh(body)
        if m.dst and m.lladdr and m.ifindex in names:
            out.append((names[m.ifindex], m.lladdr, m.dst, bool(m.state & rtnl.NUD_PERMANENT)))
    return out


def routes(nl: Netlink, ns: str, names: dict[int, str]) -> list[RouteView]:
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
                    table=RT_TABLES.get(m.table, str(m.table)),
                    type=RT_TYPES.get(m.type, str(m.type)),
                    dst=f"{m.dst}/{m.dst_len}" if m.dst else "default",
                    gateway=m.gateway,
                    dev=names.get(m.oif) if m.oif else None,
                    proto=RT_PROTOS.get(m.proto, str(m.proto)),
                    scope=RT_SCOPES.get(m.scope, str(m.scope)),
                    src=m.prefsrc,
                    metric=m.priority,
                )
            )
    return out


def addresses(nl: Netlink, ns: str, names: dict[int, str]) -> list[AddressView]:
    return [
        AddressView(
            dev=names.get(a.index),
            family=4 if a.family == socket.AF_INET else 6,
            address=a.address if a.family == socket.AF_INET6 else a.local,
            prefixlen=a.prefixlen,
            scope=RT_SCOPES.get(a.scope, str(a.scope)),
        )
        for a in nl.addresses(ns)
    ]


def conntrack(ns: str) -> list[ConntrackView]:
    """Connection tracking entries of ``ns`` (empty where conntrack is not in use there)."""
    try:  # nothing tracked (most namespaces): no dump (it walks the whole, machine-wide table)
        with netns.entered(ns), open("/proc/sys/net/netfilter/nf_conntrack_count") as f:
            if f.read().strip() == "0":
                return []
    except (OSError, KernelError):
        pass
    from pyroute2 import Conntrack  # imported on first use: it takes a while

    try:
        if ns == "":
            ct = Conntrack()
        else:  # the socket made in the namespace by this thread: no child process
            with netns.entered(ns):
                made = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
            ct = Conntrack(fileno=made.detach())
        try:
            entries = list(ct.dump_entries())
        finally:
            ct.close()
    except OSError:
        return []
    return [
        ConntrackView(
            protocol=e.tuple_orig.proto,
            original=_tuple(e.tuple_orig),
            reply=_tuple(e.tuple_reply),
            state=_tcp_state(getattr(e.protoinfo, "state", None)),
        )
        for e in entries
    ]


_TCP_STATES = [
    "NONE",
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
    "SYN_SENT2",
]


def _tcp_state(state: Any) -> str | None:
    if isinstance(state, int):
        return _TCP_STATES[state] if state < len(_TCP_STATES) else str(state)
    return None if state is None else str(state)


def _tuple(t: Any) -> dict[str, str | int | None]:
    return {"src": t.saddr, "dst": t.daddr, "sport": t.sport, "dport": t.dport}


def links(nl: Netlink, ns: str) -> list[dict[str, Any]]:
    """Every link in ``ns`` (``lo`` included), with what ``ip -d link`` shows of it."""
    msgs = nl.link_msgs(ns)
    names = {m.index: m.name for m in msgs}
    out = []
    for m in msgs:
        bridge = m.kind == "bridge"
        out.append(
            {
                "index": m.index,
                "name": m.name,
                "kind": m.kind or ("loopback" if m.name == "lo" else "device"),
                "up": bool(m.flags & 1),
                "operstate": OPERSTATES[m.operstate] if m.operstate is not None and m.operstate < 7 else "UNKNOWN",
                "mtu": m.mtu,
                "mac": m.mac,
                "master": names.get(m.master) if m.master else None,
                "alias": m.alias,
                "peer_index": m.peer_index if kinds.get(m.kind).linked else None,
                "linked": kinds.get(m.kind).linked,  # what peer_index names: a veth's peer, a macvlan's parent
                "mode": kind_fields(m.kind, m.data, names).get("mode"),
                "peer_nsid": m.peer_nsid,
                "stp": bool(m.stp) if bridge else None,
                "ageing": (m.ageing or 0) // 100 if bridge else None,
                "vxlan": None if m.vxlan is None else {**asdict(m.vxlan), "dev": names.get(m.vxlan.dev or 0)},
                "port": bridge_port(m.port) if m.master else None,
            }
        )
    return out


def netnsids(nl: Netlink, ns: str, others: list[str], wanted: set[int]) -> dict[int, str]:
    """Which of ``others`` are the namespaces ``ns`` knows by the ids in ``wanted``.

    A veth names its peer's namespace by such an id; lookups stop as soon as
    every wanted id is found.
    """
    out: dict[int, str] = {}
    for other in others:
        if other == ns or not wanted - out.keys():
            continue
        fd = os.open(netns.path(other), os.O_RDONLY | os.O_CLOEXEC)
        try:
            query = rtnl.rtgen() + rtnl.u32(rtnl.NETNSA_FD, fd)
            body = nl.get(ns, f"look up the id of {other}", rtnl.RTM_GETNSID, query)
        finally:
            os.close(fd)
        nsid = rtnl.parse_nsid(body)
        if nsid in wanted:
            out[nsid] = other
    return out
