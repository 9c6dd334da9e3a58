"""Read-only views of a namespace for ``inspect``: neighbours, fdb, routes, addresses, conntrack."""

from __future__ import annotations

import os
import socket
from typing import Any

from pyroute2 import Conntrack

from ..views import AddressView, ConntrackView, FdbView, NeighbourView, RouteView
from . import netns
from .netlink import Netlink

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
}
USER_HZ = 100


def nud_names(state: int) -> list[str]:
    """NUD state bits as names (``ip neigh`` prints them the same way)."""
    return [name for bit, name in NUD_STATES.items() if state & bit] or ["NONE"]


def index_names(nl: Netlink, ns: str) -> dict[int, str]:
    return {m["index"]: m.get("ifname") for m in nl.call(ns, "list links", "get_links")}


def neighbours(nl: Netlink, ns: str, names: dict[int, str]) -> list[NeighbourView]:
    """IPv4 and IPv6 neighbours, as ``ip neigh show`` lists them (no NOARP/NONE entries)."""
    out = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for m in nl.call(ns, "list neighbours", "get_neighbours", family=family):
            if m["state"] in (0, 0x40):
                continue
            out.append(
                NeighbourView(
                    dev=names.get(m["ifindex"]),
                    address=m.get("NDA_DST"),
                    mac=m.get("NDA_LLADDR"),
                    state=nud_names(m["state"]),
                    router=bool(m["flags"] & 0x80),
                )
            )
    return out


def fdb(nl: Netlink, ns: str, names: dict[int, str]) -> list[FdbView]:
    """Bridge forwarding database entries, as ``bridge fdb show`` lists them."""
    out = []
    for m in nl.call(ns, "list fdb", "get_neighbours", family=socket.AF_BRIDGE):
        state = m["state"]
        cache = m.get("NDA_CACHEINFO") or {}
        master = m.get("NDA_MASTER")
        out.append(
            FdbView(
                mac=m.get("NDA_LLADDR"),
                port=names.get(m["ifindex"]),
                bridge=names.get(master) if master else None,
                vlan=m.get("NDA_VLAN"),
                kind="permanent" if state & 0x80 else "static" if state & 0x40 else "learned",
                self=bool(m["flags"] & NTF_SELF),
                used=cache["ndm_used"] / USER_HZ if "ndm_used" in cache else None,
                updated=cache["ndm_updated"] / USER_HZ if "ndm_updated" in cache else None,
            )
        )
    return out


def routes(nl: Netlink, ns: str, names: dict[int, str]) -> list[RouteView]:
    """Routes of every table (main, local, others), IPv4 then IPv6."""
    out = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for m in nl.call(ns, "list routes", "get_routes", family=family):
            table = m.get("RTA_TABLE") or m["table"]
            dst = m.get("RTA_DST")
            oif = m.get("RTA_OIF")
            out.append(
                RouteView(
                    family=4 if family == socket.AF_INET else 6,
                    table=RT_TABLES.get(table, str(table)),
                    type=RT_TYPES.get(m["type"], str(m["type"])),
                    dst=f"{dst}/{m['dst_len']}" if dst else "default",
                    gateway=m.get("RTA_GATEWAY"),
                    dev=names.get(oif) if oif else None,
                    proto=RT_PROTOS.get(m["proto"], str(m["proto"])),
                    scope=RT_SCOPES.get(m["scope"], str(m["scope"])),
                    src=m.get("RTA_PREFSRC"),
                    metric=m.get("RTA_PRIORITY"),
                )
            )
    return out


def addresses(nl: Netlink, ns: str, names: dict[int, str]) -> list[AddressView]:
    return [
        AddressView(
            dev=names.get(a["index"]),
            family=4 if a["family"] == socket.AF_INET else 6,
            address=a.get("IFA_ADDRESS") if a["family"] == socket.AF_INET6 else a.get("IFA_LOCAL"),
            prefixlen=a["prefixlen"],
            scope=RT_SCOPES.get(a["scope"], str(a["scope"])),
        )
        for a in nl.call(ns, "list addresses", "get_addr")
    ]


def conntrack(ns: str) -> list[ConntrackView]:
    """Connection tracking entries of ``ns`` (empty where conntrack is not in use there)."""
    try:
        ct = Conntrack() if ns == "" else Conntrack(netns=ns, flags=0)
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
    msgs = nl.call(ns, "list links", "get_links")
    names = {m["index"]: m.get("ifname") for m in msgs}
    out = []
    for m in msgs:
        kind = m.get(("IFLA_LINKINFO", "IFLA_INFO_KIND"))
        data = m.get(("IFLA_LINKINFO", "IFLA_INFO_DATA")) if kind == "bridge" else None
        master = m.get("IFLA_MASTER")
        out.append(
            {
                "index": m["index"],
                "name": m.get("ifname"),
                "kind": kind or ("loopback" if m.get("ifname") == "lo" else "device"),
                "up": bool(m["flags"] & 1),
                "operstate": m.get("IFLA_OPERSTATE") or "UNKNOWN",
                "mtu": m.get("IFLA_MTU"),
                "mac": m.get("IFLA_ADDRESS"),
                "master": names.get(master) if master else None,
                "alias": m.get("IFLA_IFALIAS"),
                "peer_index": m.get("IFLA_LINK") if kind == "veth" else None,
                "peer_nsid": m.get("IFLA_LINK_NETNSID"),
                "stp": bool(data.get("IFLA_BR_STP_STATE")) if data is not None else None,
                "ageing": int(data.get("IFLA_BR_AGEING_TIME") or 0) // 100 if data is not None else None,
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
        fd = os.open(netns.path(other), os.O_RDONLY)
        try:
            answer = nl.call(ns, f"look up the id of {other}", "get_netnsid", fd=fd)
        finally:
            os.close(fd)
        nsid = answer.get("nsid") if isinstance(answer, dict) else None
        if nsid in wanted:
            out[int(nsid)] = other
    return out
