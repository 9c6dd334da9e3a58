"""Messages decoded into the fields nsnet uses: links, addresses, routes, rules, neighbours and fdb entries.

The message classes are plain classes with ``__slots__`` (not dataclasses):
``nsnet-cni``, started once per container, imports this module, and a
dataclass costs its import time; a large lab's listing makes thousands of them.
"""

from __future__ import annotations

import _socket
import struct

from nsnet.kernel.rtnl.consts import (
    AF_INET,
    AF_INET6,
    FIB_RULE_INVERT,
    FRA_DST,
    FRA_FWMARK,
    FRA_FWMASK,
    FRA_GOTO,
    FRA_IIFNAME,
    FRA_OIFNAME,
    FRA_PRIORITY,
    FRA_SRC,
    FRA_TABLE,
    IFA_ADDRESS,
    IFA_LOCAL,
    IFLA_ADDRESS,
    IFLA_BR_AGEING_TIME,
    IFLA_BR_STP_STATE,
    IFLA_BRPORT_BCAST_FLOOD,
    IFLA_BRPORT_ISOLATED,
    IFLA_BRPORT_LEARNING,
    IFLA_BRPORT_MCAST_FLOOD,
    IFLA_BRPORT_MODE,
    IFLA_BRPORT_NEIGH_SUPPRESS,
    IFLA_BRPORT_PROXYARP,
    IFLA_BRPORT_STATE,
    IFLA_BRPORT_UNICAST_FLOOD,
    IFLA_IFALIAS,
    IFLA_IFNAME,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_INFO_SLAVE_DATA,
    IFLA_INFO_SLAVE_KIND,
    IFLA_LINK,
    IFLA_LINK_NETNSID,
    IFLA_LINKINFO,
    IFLA_MASTER,
    IFLA_MTU,
    IFLA_OPERSTATE,
    IFLA_VXLAN_GROUP,
    IFLA_VXLAN_ID,
    IFLA_VXLAN_L2MISS,
    IFLA_VXLAN_L3MISS,
    IFLA_VXLAN_LEARNING,
    IFLA_VXLAN_LINK,
    IFLA_VXLAN_LOCAL,
    IFLA_VXLAN_PORT,
    IFLA_VXLAN_PROXY,
    NDA_CACHEINFO,
    NDA_DST,
    NDA_LLADDR,
    NDA_MASTER,
    NDA_VLAN,
    NETNSA_NSID,
    NLA_TYPE_MASK,
    RTA_DST,
    RTA_GATEWAY,
    RTA_OIF,
    RTA_PREFSRC,
    RTA_PRIORITY,
    RTA_TABLE,
)
from nsnet.kernel.rtnl.encode import IFADDR, IFINFO, NDMSG, NLA, RTMSG, S32, U32

TYPE_CHECKING = False  # typing is not imported at run time (nsnet-cni starts once per container)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

HDR = struct.Struct("=IHHII")
_CACHEINFO = struct.Struct("=IIII")
_U16 = struct.Struct("=H")
_INET = (AF_INET, AF_INET6)


def attrs(data: bytes | memoryview, offset: int) -> dict[int, memoryview]:
    """The attributes of a message from ``offset`` on (the last of a type wins)."""
    view = memoryview(data)
    out: dict[int, memoryview] = {}
    end = len(view)
    while offset + 4 <= end:
        size, kind = NLA.unpack_from(view, offset)
        if size < 4:
            break
        out[kind & NLA_TYPE_MASK] = view[offset + 4 : offset + size]
        offset += (size + 3) & ~3
    return out


def messages(data: bytes | memoryview) -> Iterator[tuple[int, int, int, memoryview]]:
    """(type, flags, sequence number, body) of every message of a datagram."""
    view = memoryview(data)
    offset = 0
    while offset + HDR.size <= len(view):
        length, mtype, flags, seq, _ = HDR.unpack_from(view, offset)
        if length < HDR.size:
            return
        yield mtype, flags, seq, view[offset + HDR.size : offset + length]
        offset += (length + 3) & ~3


def text(value: memoryview | None) -> str | None:
    """A string attribute, up to its NUL."""
    return None if value is None else bytes(value).split(b"\0", 1)[0].decode(errors="replace")


def _u32(value: memoryview | None) -> int | None:
    return None if value is None or len(value) < 4 else int(U32.unpack_from(value)[0])


def _s32(value: memoryview | None) -> int | None:
    return None if value is None or len(value) < 4 else int(S32.unpack_from(value)[0])


def _byte(value: memoryview | None) -> int | None:
    return value[0] if value is not None and len(value) else None


def _flag(value: memoryview | None) -> bool:
    return bool(value is not None and len(value) and value[0])


def _mac(value: memoryview | None) -> str | None:
    return None if value is None else ":".join(f"{b:02x}" for b in bytes(value))


def _ip(family: int, value: memoryview | None) -> str | None:
    return None if value is None or family not in _INET else _socket.inet_ntop(family, bytes(value))


def _any_ip(value: memoryview | None) -> str | None:
    """An IPv4 or IPv6 address, told apart by its length."""
    if value is None:
        return None
    return _socket.inet_ntop(AF_INET if len(value) == 4 else AF_INET6, bytes(value))


class Message:
    """A decoded message: its fields are its ``__slots__``; compared, hashed and printed by them."""

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return other.__class__ is self.__class__ and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{self.__class__.__name__}({fields})"


class BridgePortInfo(Message):
    """A bridge port's settings (``ip -d link`` / ``bridge link``): IFLA_BRPORT_* of the slave data."""

    __slots__ = (
        "bcast_flood",
        "flood",
        "hairpin",
        "isolated",
        "learning",
        "mcast_flood",
        "neigh_suppress",
        "proxy_arp",
        "state",
    )
    state: int
    """0 disabled, 1 listening, 2 learning, 3 forwarding, 4 blocking."""
    learning: bool
    flood: bool
    mcast_flood: bool
    bcast_flood: bool
    hairpin: bool
    isolated: bool
    neigh_suppress: bool
    proxy_arp: bool

    def __init__(self, data: memoryview) -> None:
        a = attrs(data, 0)

        def flag(kind: int, default: bool) -> bool:
            return _flag(a[kind]) if kind in a else default

        state = _byte(a.get(IFLA_BRPORT_STATE))
        self.state = 3 if state is None else state
        self.learning = flag(IFLA_BRPORT_LEARNING, True)
        self.flood = flag(IFLA_BRPORT_UNICAST_FLOOD, True)
        self.mcast_flood = flag(IFLA_BRPORT_MCAST_FLOOD, True)
        self.bcast_flood = flag(IFLA_BRPORT_BCAST_FLOOD, True)
        self.hairpin = flag(IFLA_BRPORT_MODE, False)
        self.isolated = flag(IFLA_BRPORT_ISOLATED, False)
        self.neigh_suppress = flag(IFLA_BRPORT_NEIGH_SUPPRESS, False)
        self.proxy_arp = flag(IFLA_BRPORT_PROXYARP, False)


class VxlanInfo(Message):
    """A VXLAN device's settings as the kernel reports them (``dev`` by index)."""

    __slots__ = ("dev", "l2miss", "l3miss", "learning", "local", "port", "proxy", "remote", "vni")
    vni: int
    port: int
    local: str | None
    remote: str | None
    dev: int | None
    learning: bool
    proxy: bool
    l2miss: bool
    l3miss: bool

    def __init__(self, data: memoryview) -> None:
        a = attrs(data, 0)
        port = a.get(IFLA_VXLAN_PORT)
        self.vni = _u32(a.get(IFLA_VXLAN_ID)) or 0
        self.port = int.from_bytes(bytes(port), "big") if port is not None else 0
        self.local = _any_ip(a.get(IFLA_VXLAN_LOCAL))
        self.remote = _any_ip(a.get(IFLA_VXLAN_GROUP))
        self.dev = _u32(a.get(IFLA_VXLAN_LINK)) or None
        self.learning = _flag(a.get(IFLA_VXLAN_LEARNING))
        self.proxy = _flag(a.get(IFLA_VXLAN_PROXY))
        self.l2miss = _flag(a.get(IFLA_VXLAN_L2MISS))
        self.l3miss = _flag(a.get(IFLA_VXLAN_L3MISS))


class LinkMsg(Message):
    """The fields of an RTM_NEWLINK message nsnet uses."""

    __slots__ = (
        "ageing",
        "alias",
        "data",
        "family",
        "flags",
        "index",
        "kind",
        "mac",
        "master",
        "mtu",
        "name",
        "operstate",
        "peer_index",
        "peer_nsid",
        "port",
        "stp",
        "vxlan",
    )
    family: int
    """AF_BRIDGE: a bridge's own copy of a port's change (``watch`` hears both)."""
    index: int
    flags: int
    name: str
    kind: str | None
    mtu: int | None
    mac: str | None
    master: int | None
    alias: str | None
    peer_index: int | None
    """IFLA_LINK: for a veth, its peer's index (in the namespace ``peer_nsid`` names, if any)."""
    peer_nsid: int | None
    operstate: int | None
    stp: int | None
    ageing: int | None
    """In hundredths of a second."""
    vxlan: VxlanInfo | None
    port: BridgePortInfo | None
    """The bridge port settings, when the link is a port of a bridge."""
    data: bytes | None
    """IFLA_INFO_DATA as sent: the kind's own settings (decoded by :mod:`nsnet.kinds`)."""

    def __init__(self, body: memoryview) -> None:
        self.family, _, self.index, self.flags, _ = IFINFO.unpack_from(body)
        a = attrs(body, IFINFO.size)
        self.kind = self.stp = self.ageing = self.vxlan = self.port = self.data = None
        info = a.get(IFLA_LINKINFO)
        if info is not None:
            self._info(attrs(info, 0))
        self.name = text(a.get(IFLA_IFNAME)) or ""
        self.mtu = _u32(a.get(IFLA_MTU))
        self.mac = _mac(a.get(IFLA_ADDRESS))
        self.master = _u32(a.get(IFLA_MASTER)) or None
        self.alias = text(a.get(IFLA_IFALIAS))
        self.peer_index = _u32(a.get(IFLA_LINK))
        self.peer_nsid = _s32(a.get(IFLA_LINK_NETNSID))
        self.operstate = _byte(a.get(IFLA_OPERSTATE))

    def _info(self, nested: dict[int, memoryview]) -> None:
        self.kind = text(nested.get(IFLA_INFO_KIND))
        slave = nested.get(IFLA_INFO_SLAVE_DATA)
        if text(nested.get(IFLA_INFO_SLAVE_KIND)) == "bridge" and slave is not None:
            self.port = BridgePortInfo(slave)
        data = nested.get(IFLA_INFO_DATA)
        self.data = bytes(data) if data is not None else None
        if self.kind == "bridge" and data is not None:
            br = attrs(data, 0)
            self.stp, self.ageing = _u32(br.get(IFLA_BR_STP_STATE)), _u32(br.get(IFLA_BR_AGEING_TIME))
        elif self.kind == "vxlan" and data is not None:
            self.vxlan = VxlanInfo(data)


class RuleMsg(Message):
    """A policy routing rule (``ip rule``)."""

    __slots__ = (
        "action",
        "dst",
        "dst_len",
        "family",
        "fwmark",
        "fwmask",
        "goto",
        "iif",
        "invert",
        "oif",
        "priority",
        "src",
        "src_len",
        "table",
    )
    family: int
    priority: int
    action: int
    """FR_ACT_*: 1 lookup a table, 2 goto, 3 nop, 6 blackhole, 7 unreachable, 8 prohibit."""
    table: int
    invert: bool
    src: str | None
    src_len: int
    dst: str | None
    dst_len: int
    iif: str | None
    oif: str | None
    fwmark: int | None
    fwmask: int | None
    goto: int | None

    def __init__(self, body: memoryview) -> None:
        family, self.dst_len, self.src_len, _, table, _, _, self.action, flags = RTMSG.unpack_from(body)
        a = attrs(body, RTMSG.size)
        self.family = family
        self.priority = _u32(a.get(FRA_PRIORITY)) or 0
        self.table = _u32(a.get(FRA_TABLE)) or table
        self.invert = bool(flags & FIB_RULE_INVERT)
        self.src = _ip(family, a.get(FRA_SRC))
        self.dst = _ip(family, a.get(FRA_DST))
        self.iif = text(a.get(FRA_IIFNAME))
        self.oif = text(a.get(FRA_OIFNAME))
        self.fwmark = _u32(a.get(FRA_FWMARK))
        self.fwmask = _u32(a.get(FRA_FWMASK))
        self.goto = _u32(a.get(FRA_GOTO))


class AddrMsg(Message):
    """An address of a link (``ip addr``)."""

    __slots__ = ("address", "family", "flags", "index", "local", "prefixlen", "scope")
    family: int
    prefixlen: int
    flags: int
    """IFA_F_* (the low 8 bits: ``IFA_F_TENTATIVE`` while duplicate address detection runs)."""
    scope: int
    index: int
    address: str | None
    local: str | None

    def __init__(self, body: memoryview) -> None:
        self.family, self.prefixlen, self.flags, self.scope, self.index = IFADDR.unpack_from(body)
        a = attrs(body, IFADDR.size)
        self.address = _ip(self.family, a.get(IFA_ADDRESS))
        self.local = _ip(self.family, a.get(IFA_LOCAL))


class RouteMsg(Message):
    """A route (``ip route``); ``dst``, ``gateway`` and ``prefsrc`` only for IPv4 and IPv6."""

    __slots__ = ("dst", "dst_len", "family", "gateway", "oif", "prefsrc", "priority", "proto", "scope", "table", "type")
    family: int
    dst_len: int
    table: int
    proto: int
    scope: int
    type: int
    dst: str | None
    gateway: str | None
    oif: int | None
    priority: int | None
    prefsrc: str | None

    def __init__(self, body: memoryview) -> None:
        family, self.dst_len, _, _, table, self.proto, self.scope, self.type, _ = RTMSG.unpack_from(body)
        a = attrs(body, RTMSG.size)
        self.family = family
        self.table = _u32(a.get(RTA_TABLE)) or table
        self.dst = _ip(family, a.get(RTA_DST))
        self.gateway = _ip(family, a.get(RTA_GATEWAY))
        self.oif = _u32(a.get(RTA_OIF))
        self.priority = _u32(a.get(RTA_PRIORITY))
        self.prefsrc = _ip(family, a.get(RTA_PREFSRC))


def route_header(body: memoryview) -> tuple[int, int, int]:
    """A route's family, table (from the header: 252 means "see RTA_TABLE") and protocol, without decoding it."""
    family, _, _, _, table, proto, _, _, _ = RTMSG.unpack_from(body)
    return family, table, proto


class NeighMsg(Message):
    """A neighbour (ARP/ND) or a bridge's fdb entry."""

    __slots__ = ("dst", "family", "flags", "ifindex", "lladdr", "master", "state", "updated", "used", "vlan")
    family: int
    ifindex: int
    state: int
    flags: int
    dst: str | None
    lladdr: str | None
    master: int | None
    vlan: int | None
    used: int | None
    """Clock ticks since the entry was last used (``ndm_used``), if the kernel says."""
    updated: int | None

    def __init__(self, body: memoryview) -> None:
        self.family, self.ifindex, self.state, self.flags, _ = NDMSG.unpack_from(body)
        a = attrs(body, NDMSG.size)
        cache = a.get(NDA_CACHEINFO)
        self.used = self.updated = None
        if cache is not None and len(cache) >= _CACHEINFO.size:
            _, self.used, self.updated, _ = _CACHEINFO.unpack_from(cache)
        vlan = a.get(NDA_VLAN)
        dst = a.get(NDA_DST)
        # A bridge's fdb entry on a VXLAN device names its remote VTEP by NDA_DST.
        self.dst = _ip(self.family, dst) if self.family in _INET else _any_ip(dst)
        self.lladdr = _mac(a.get(NDA_LLADDR))
        self.master = _u32(a.get(NDA_MASTER))
        self.vlan = int(_U16.unpack_from(vlan)[0]) if vlan is not None and len(vlan) >= 2 else None


def parse_nsid(body: memoryview) -> int | None:
    return _s32(attrs(body, 4).get(NETNSA_NSID))


parse_link, parse_rule, parse_addr, parse_route, parse_neigh = LinkMsg, RuleMsg, AddrMsg, RouteMsg, NeighMsg
parse_bridge_port, parse_vxlan = BridgePortInfo, VxlanInfo
