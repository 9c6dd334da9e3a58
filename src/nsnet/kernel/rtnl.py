"""rtnetlink by hand: the few messages nsnet sends and reads, packed with :mod:`struct`.

This is the fast path of ``up``, ``down`` and ``observe``: one socket per
namespace, many requests written in one ``send`` and their acknowledgements
collected afterwards, and dumps decoded into the handful of fields nsnet uses.
(pyroute2 remains the library behind ``inspect`` and ``watch``, which show
everything the kernel reports.)
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from nsnet.errors import KernelError

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH, RTM_GETNSID = 28, 29, 30, 90
RTM_GETRULE = 34
NLMSG_ERROR, NLMSG_DONE = 2, 3

F_REQUEST, F_MULTI, F_ACK = 0x1, 0x2, 0x4
F_DUMP_INTR = 0x10
F_CAPPED, F_ACK_TLVS = 0x100, 0x200
F_DUMP = 0x300
F_CREATE, F_EXCL, F_REPLACE, F_APPEND = 0x400, 0x200, 0x100, 0x800
NEW = F_REQUEST | F_ACK | F_CREATE | F_EXCL
"""Flags of a request that creates something (and fails if it exists)."""
CHANGE = F_REQUEST | F_ACK
"""Flags of a request that changes or deletes something."""

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_IFALIAS, IFLA_AF_SPEC = 16, 18, 20, 26
IFLA_NET_NS_FD, IFLA_EXT_MASK, IFLA_LINK_NETNSID = 28, 29, 37
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA = 1, 2, 4, 5
IFLA_BRPORT_STATE, IFLA_BRPORT_MODE, IFLA_BRPORT_LEARNING, IFLA_BRPORT_UNICAST_FLOOD = 1, 4, 8, 9
IFLA_BRPORT_PROXYARP, IFLA_BRPORT_MCAST_FLOOD, IFLA_BRPORT_BCAST_FLOOD = 10, 27, 30
IFLA_BRPORT_NEIGH_SUPPRESS, IFLA_BRPORT_ISOLATED = 32, 33
FRA_DST, FRA_SRC, FRA_IIFNAME, FRA_GOTO, FRA_PRIORITY, FRA_FWMARK = 1, 2, 3, 4, 6, 10
FRA_TABLE, FRA_FWMASK, FRA_OIFNAME = 15, 16, 17
FIB_RULE_INVERT = 0x2
IFLA_BR_AGEING_TIME, IFLA_BR_STP_STATE = 4, 5
VETH_INFO_PEER = 1
IFLA_VXLAN_ID, IFLA_VXLAN_GROUP, IFLA_VXLAN_LINK, IFLA_VXLAN_LOCAL, IFLA_VXLAN_LEARNING = 1, 2, 3, 4, 7
IFLA_VXLAN_PROXY, IFLA_VXLAN_L2MISS, IFLA_VXLAN_L3MISS, IFLA_VXLAN_PORT = 11, 13, 14, 15
NUD_PERMANENT, NTF_SELF = 0x80, 0x02
IFLA_INET6_ADDR_GEN_MODE = 8
IN6_ADDR_GEN_MODE_NONE = 1
RTEXT_FILTER_SKIP_STATS = 1 << 3
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 6, 7, 15
NDA_DST, NDA_LLADDR, NDA_CACHEINFO, NDA_VLAN, NDA_MASTER = 1, 2, 3, 5, 9
NETNSA_NSID, NETNSA_FD = 1, 3
NLMSGERR_ATTR_MSG = 1
IFF_UP = 0x1
NLA_TYPE_MASK = 0x3FFF

_HDR = struct.Struct("=IHHII")
_ERR = struct.Struct("=i")
_IFINFO = struct.Struct("=BxHiII")
IFINFO_SIZE = _IFINFO.size
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_FIBRULE = struct.Struct("=BBBBBBBBI")
_NDMSG = struct.Struct("=BxxxiHBB")
_CACHEINFO = struct.Struct("=IIII")
_U16 = struct.Struct("=H")
_NLA = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_S32 = struct.Struct("=i")

CHUNK_MESSAGES = 256
"""Requests per ``send``: their acknowledgements must fit the receive buffer."""
CHUNK_BYTES = 64 << 10
RCVBUF = 4 << 20


# -- encoding ----------------------------------------------------------------


def attr(kind: int, data: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    size = 4 + len(data)
    return _NLA.pack(size, kind) + data + b"\0" * (-size % 4)


def u32(kind: int, value: int) -> bytes:
    return attr(kind, _U32.pack(value))


def s32(kind: int, value: int) -> bytes:
    return attr(kind, _S32.pack(value))


def string(kind: int, value: str) -> bytes:
    """A NUL-terminated string attribute."""
    return attr(kind, value.encode() + b"\0")


def nest(kind: int, *parts: bytes) -> bytes:
    return attr(kind, b"".join(parts))


def ifinfo(index: int = 0, flags: int = 0, change: int = 0, family: int = 0) -> bytes:
    return _IFINFO.pack(family, 0, index, flags, change)


def ifaddr(family: int, prefixlen: int, index: int, scope: int = 0) -> bytes:
    return _IFADDR.pack(family, prefixlen, 0, scope, index)


def rtmsg(family: int, dst_len: int, proto: int, table: int = 254, scope: int = 0, kind: int = 1) -> bytes:
    return _RTMSG.pack(family, dst_len, 0, 0, table, proto, scope, kind, 0)


def ndmsg(family: int, index: int = 0, state: int = 0, flags: int = 0) -> bytes:
    return _NDMSG.pack(family, index, state, flags, 0)


def rtgen(family: int = 0) -> bytes:
    """A ``struct rtgenmsg``, padded as the kernel reads it."""
    return bytes([family, 0, 0, 0])


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


NO_LINK_LOCAL = nest(
    IFLA_AF_SPEC, nest(socket.AF_INET6, attr(IFLA_INET6_ADDR_GEN_MODE, bytes([IN6_ADDR_GEN_MODE_NONE])))
)
"""``addrgenmode none``: no IPv6 link-local address (nor its DAD, MLD and router solicitations)."""


# -- decoding ----------------------------------------------------------------


def attrs(data: bytes | memoryview, offset: int) -> dict[int, memoryview]:
    """The attributes of a message from ``offset`` on (the last of a type wins)."""
    view = memoryview(data)
    out: dict[int, memoryview] = {}
    end = len(view)
    while offset + 4 <= end:
        size, kind = _NLA.unpack_from(view, offset)
        if size < 4:
            break
        out[kind & NLA_TYPE_MASK] = view[offset + 4 : offset + size]
        offset += (size + 3) & ~3
    return out


def _str(value: memoryview | None) -> str | None:
    return None if value is None else bytes(value).split(b"\0", 1)[0].decode(errors="replace")


def _u32(value: memoryview | None) -> int | None:
    return None if value is None or len(value) < 4 else int(_U32.unpack_from(value)[0])


def _s32(value: memoryview | None) -> int | None:
    return None if value is None or len(value) < 4 else int(_S32.unpack_from(value)[0])


def _mac(value: memoryview | None) -> str | None:
    return None if value is None else ":".join(f"{b:02x}" for b in bytes(value))


def _ip(family: int, value: memoryview | None) -> str | None:
    return None if value is None else socket.inet_ntop(family, bytes(value))


@dataclass(frozen=True)
class LinkMsg:
    """The fields of an RTM_NEWLINK message nsnet uses."""

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
    vxlan: VxlanInfo | None = None
    port: BridgePortInfo | None = None
    """The bridge port settings, when the link is a port of a bridge."""
    data: bytes | None = None
    """IFLA_INFO_DATA as sent: the kind's own settings (decoded by :mod:`nsnet.kinds`)."""


@dataclass(frozen=True)
class BridgePortInfo:
    """A bridge port's settings (``ip -d link`` / ``bridge link``): IFLA_BRPORT_* of the slave data."""

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


def parse_bridge_port(data: memoryview) -> BridgePortInfo:
    a = attrs(data, 0)

    def flag(kind: int, default: bool) -> bool:
        return _flag(a[kind]) if kind in a else default

    state = a.get(IFLA_BRPORT_STATE)
    return BridgePortInfo(
        state=state[0] if state is not None and len(state) else 3,
        learning=flag(IFLA_BRPORT_LEARNING, True),
        flood=flag(IFLA_BRPORT_UNICAST_FLOOD, True),
        mcast_flood=flag(IFLA_BRPORT_MCAST_FLOOD, True),
        bcast_flood=flag(IFLA_BRPORT_BCAST_FLOOD, True),
        hairpin=flag(IFLA_BRPORT_MODE, False),
        isolated=flag(IFLA_BRPORT_ISOLATED, False),
        neigh_suppress=flag(IFLA_BRPORT_NEIGH_SUPPRESS, False),
        proxy_arp=flag(IFLA_BRPORT_PROXYARP, False),
    )


@dataclass(frozen=True)
class VxlanInfo:
    """A VXLAN device's settings as the kernel reports them (``dev`` by index)."""

    vni: int
    port: int
    local: str | None
    remote: str | None
    dev: int | None
    learning: bool
    proxy: bool
    l2miss: bool
    l3miss: bool


def _flag(value: memoryview | None) -> bool:
    return bool(value is not None and len(value) and value[0])


def _any_ip(value: memoryview | None) -> str | None:
    """An IPv4 or IPv6 address, told apart by its length."""
    if value is None:
        return None
    return socket.inet_ntop(socket.AF_INET if len(value) == 4 else socket.AF_INET6, bytes(value))


def parse_vxlan(data: memoryview) -> VxlanInfo:
    a = attrs(data, 0)
    port = a.get(IFLA_VXLAN_PORT)
    return VxlanInfo(
        vni=_u32(a.get(IFLA_VXLAN_ID)) or 0,
        port=int.from_bytes(bytes(port), "big") if port is not None else 0,
        local=_any_ip(a.get(IFLA_VXLAN_LOCAL)),
        remote=_any_ip(a.get(IFLA_VXLAN_GROUP)),
        dev=_u32(a.get(IFLA_VXLAN_LINK)) or None,
        learning=_flag(a.get(IFLA_VXLAN_LEARNING)),
        proxy=_flag(a.get(IFLA_VXLAN_PROXY)),
        l2miss=_flag(a.get(IFLA_VXLAN_L2MISS)),
        l3miss=_flag(a.get(IFLA_VXLAN_L3MISS)),
    )


def parse_link(body: memoryview) -> LinkMsg:
    _, _, index, flags, _ = _IFINFO.unpack_from(body)
    a = attrs(body, _IFINFO.size)
    kind = stp = ageing = vxlan = port = raw = None
    info = a.get(IFLA_LINKINFO)
    if info is not None:
        nested = attrs(info, 0)
        kind = _str(nested.get(IFLA_INFO_KIND))
        slave = nested.get(IFLA_INFO_SLAVE_DATA)
        if _str(nested.get(IFLA_INFO_SLAVE_KIND)) == "bridge" and slave is not None:
            port = parse_bridge_port(slave)
        data = nested.get(IFLA_INFO_DATA)
        raw = bytes(data) if data is not None else None
        if kind == "bridge" and data is not None:
            br = attrs(data, 0)
            stp, ageing = _u32(br.get(IFLA_BR_STP_STATE)), _u32(br.get(IFLA_BR_AGEING_TIME))
        elif kind == "vxlan" and data is not None:
            vxlan = parse_vxlan(data)
    master = _u32(a.get(IFLA_MASTER))
    operstate = a.get(IFLA_OPERSTATE)
    return LinkMsg(
        index=index,
        flags=flags,
        name=_str(a.get(IFLA_IFNAME)) or "",
        kind=kind,
        mtu=_u32(a.get(IFLA_MTU)),
        mac=_mac(a.get(IFLA_ADDRESS)),
        master=master or None,
        alias=_str(a.get(IFLA_IFALIAS)),
        peer_index=_u32(a.get(IFLA_LINK)),
        peer_nsid=_s32(a.get(IFLA_LINK_NETNSID)),
        operstate=operstate[0] if operstate is not None and len(operstate) else None,
        stp=stp,
        ageing=ageing,
        vxlan=vxlan,
        port=port,
        data=raw,
    )


@dataclass(frozen=True)
class RuleMsg:
    """A policy routing rule (``ip rule``)."""

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


def parse_rule(body: memoryview) -> RuleMsg:
    family, dst_len, src_len, _, table, _, _, action, flags = _FIBRULE.unpack_from(body)
    a = attrs(body, _FIBRULE.size)
    return RuleMsg(
        family=family,
        priority=_u32(a.get(FRA_PRIORITY)) or 0,
        action=action,
        table=_u32(a.get(FRA_TABLE)) or table,
        invert=bool(flags & FIB_RULE_INVERT),
        src=_ip(family, a.get(FRA_SRC)),
        src_len=src_len,
        dst=_ip(family, a.get(FRA_DST)),
        dst_len=dst_len,
        iif=_str(a.get(FRA_IIFNAME)),
        oif=_str(a.get(FRA_OIFNAME)),
        fwmark=_u32(a.get(FRA_FWMARK)),
        fwmask=_u32(a.get(FRA_FWMASK)),
        goto=_u32(a.get(FRA_GOTO)),
    )


@dataclass(frozen=True)
class AddrMsg:
    family: int
    prefixlen: int
    scope: int
    index: int
    address: str | None
    local: str | None


def parse_addr(body: memoryview) -> AddrMsg:
    family, prefixlen, _, scope, index = _IFADDR.unpack_from(body)
    a = attrs(body, _IFADDR.size)
    return AddrMsg(family, prefixlen, scope, index, _ip(family, a.get(IFA_ADDRESS)), _ip(family, a.get(IFA_LOCAL)))


@dataclass(frozen=True)
class RouteMsg:
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


def route_header(body: memoryview) -> tuple[int, int, int]:
    """A route's family, table (from the header: 252 means "see RTA_TABLE") and protocol, without decoding it."""
    family, _, _, _, table, proto, _, _, _ = _RTMSG.unpack_from(body)
    return family, table, proto


def parse_route(body: memoryview) -> RouteMsg:
    family, dst_len, _, _, table, proto, scope, kind, _ = _RTMSG.unpack_from(body)
    a = attrs(body, _RTMSG.size)
    return RouteMsg(
        family=family,
        dst_len=dst_len,
        table=_u32(a.get(RTA_TABLE)) or table,
        proto=proto,
        scope=scope,
        type=kind,
        dst=_ip(family, a.get(RTA_DST)) if family in (socket.AF_INET, socket.AF_INET6) else None,
        gateway=_ip(family, a.get(RTA_GATEWAY)) if family in (socket.AF_INET, socket.AF_INET6) else None,
        oif=_u32(a.get(RTA_OIF)),
        priority=_u32(a.get(RTA_PRIORITY)),
        prefsrc=_ip(family, a.get(RTA_PREFSRC)) if family in (socket.AF_INET, socket.AF_INET6) else None,
    )


@dataclass(frozen=True)
class NeighMsg:
    """A neighbour (ARP/ND) or a bridge's fdb entry."""

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


def parse_neigh(body: memoryview) -> NeighMsg:
    family, ifindex, state, flags, _ = _NDMSG.unpack_from(body)
    a = attrs(body, _NDMSG.size)
    cache = a.get(NDA_CACHEINFO)
    used = updated = None
    if cache is not None and len(cache) >= _CACHEINFO.size:
        _, used, updated, _ = _CACHEINFO.unpack_from(cache)
    vlan = a.get(NDA_VLAN)
    return NeighMsg(
        family=family,
        ifindex=ifindex,
        state=state,
        flags=flags,
        # A bridge's fdb entry on a VXLAN device names its remote VTEP by NDA_DST.
        dst=_ip(family, a.get(NDA_DST)) if family in (socket.AF_INET, socket.AF_INET6) else _any_ip(a.get(NDA_DST)),
        lladdr=_mac(a.get(NDA_LLADDR)),
        master=_u32(a.get(NDA_MASTER)),
        vlan=int(_U16.unpack_from(vlan)[0]) if vlan is not None and len(vlan) >= 2 else None,
        used=used,
        updated=updated,
    )


def parse_nsid(body: memoryview) -> int | None:
    return _s32(attrs(body, 4).get(NETNSA_NSID))


# -- the socket --------------------------------------------------------------


def describe(code: int, message: str | None = None) -> str:
    text = f"{os.strerror(code)} (errno {errno.errorcode.get(code, code)})"
    return f"{text}: {message}" if message else text


@dataclass
class Failure:
    """A request the kernel refused."""

    code: int
    message: str | None

    def __str__(self) -> str:
        return describe(self.code, self.message)


_local = threading.local()


def _buffer() -> bytearray:
    """This thread's receive buffer (one is enough: what is received is copied out at once)."""
    buf: bytearray | None = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = bytearray(1 << 18)
    return buf


class Socket:
    """An rtnetlink socket, made by the caller in the namespace it belongs to."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._seq = 0
        for forced, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, forced, RCVBUF)
            except OSError:  # without CAP_NET_ADMIN: up to the system's limit
                sock.setsockopt(socket.SOL_SOCKET, plain, RCVBUF)
        for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
            with contextlib.suppress(OSError):  # older kernels: full acknowledgements, no messages
                sock.setsockopt(SOL_NETLINK, opt, 1)
        sock.bind((0, 0))

    @classmethod
    def open(cls, protocol: int = NETLINK_ROUTE) -> Socket:
        """A socket in the calling thread's current network namespace (rtnetlink, or ``protocol``)."""
        return cls(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol))

    def close(self) -> None:
        self._sock.close()

    def _next_seq(self) -> int:
        self._seq = self._seq % 0x7FFFFFFF + 1
        return self._seq

    def _message(self, kind: int, flags: int, payload: bytes) -> tuple[int, bytes]:
        seq = self._next_seq()
        return seq, _HDR.pack(_HDR.size + len(payload), kind, flags, seq, 0) + payload

    def transact(self, requests: Sequence[tuple[int, int, bytes]]) -> list[Failure | None]:
        """Send ``(type, flags, payload)`` requests, many per ``send``; per request, why it failed or ``None``.

        Every request must ask for an acknowledgement (:data:`NEW`, :data:`CHANGE`).
        """
        out: list[Failure | None] = [None] * len(requests)
        start = 0
        while start < len(requests):
            index: dict[int, int] = {}
            chunk: list[bytes] = []
            size = 0
            while start + len(chunk) < len(requests) and len(chunk) < CHUNK_MESSAGES and size < CHUNK_BYTES:
                seq, data = self._message(*requests[start + len(chunk)])
                index[seq] = start + len(chunk)
                chunk.append(data)
                size += len(data)
            self._sock.send(b"".join(chunk))
            waiting = set(index)
            for kind, flags, seq, body in self._receive(waiting):
                if kind == NLMSG_ERROR:
                    waiting.discard(seq)
                    code = -_ERR.unpack_from(body)[0]
                    if code:
                        out[index[seq]] = Failure(code, _ext_message(flags, body))
            start += len(chunk)
        return out

    def request(self, kind: int, flags: int, payload: bytes) -> None:
        """Send one request and wait for its acknowledgement; raise :class:`OSError` if refused."""
        failure = self.transact([(kind, flags, payload)])[0]
        if failure:
            raise OSError(failure.code, str(failure))

    def get(self, kind: int, payload: bytes) -> memoryview:
        """The one message a ``get`` request returns (e.g. RTM_GETLINK for one link)."""
        seq, data = self._message(kind, F_REQUEST, payload)
        self._sock.send(data)
        for mtype, flags, _, body in self._receive({seq}, dump=True):
            if mtype == NLMSG_ERROR:
                code = -_ERR.unpack_from(body)[0]
                raise OSError(code, describe(code, _ext_message(flags, body)))
            return body
        raise KernelError("the kernel answered nothing")  # pragma: no cover - it always answers

    def dump(self, kind: int, payload: bytes) -> list[memoryview]:
        """The bodies of every message a dump request returns (asked again if the kernel interrupted it)."""
        for _ in range(10):
            seq, data = self._message(kind, F_REQUEST | F_DUMP, payload)
            self._sock.send(data)
            out: list[memoryview] = []
            interrupted = False
            for mtype, flags, _, body in self._receive({seq}, dump=True):
                if mtype == NLMSG_ERROR:
                    code = -_ERR.unpack_from(body)[0]
                    raise OSError(code, describe(code, _ext_message(flags, body)))
                interrupted |= bool(flags & F_DUMP_INTR)
                out.append(body)
            if not interrupted:
                return out
        raise KernelError("the kernel kept changing while nsnet read it; try again")

    def _receive(self, waiting: set[int], dump: bool = False) -> Iterator[tuple[int, int, int, memoryview]]:
        """Messages answering ``waiting`` until each is answered (a dump: done; a get: answered once)."""
        while waiting:
            buf = _buffer()
            size = self._sock.recv_into(buf)
            view = memoryview(bytes(memoryview(buf)[:size]))
            offset = 0
            while offset + _HDR.size <= size:
                length, mtype, flags, seq, _ = _HDR.unpack_from(view, offset)
                if length < _HDR.size:
                    break
                body = view[offset + _HDR.size : offset + length]
                offset += (length + 3) & ~3
                if seq not in waiting:
                    continue  # an answer to a request abandoned earlier
                if dump and mtype == NLMSG_DONE:
                    waiting.discard(seq)
                    continue
                if dump and (mtype == NLMSG_ERROR or not flags & F_MULTI):
                    waiting.discard(seq)
                yield mtype, flags, seq, body


def _ext_message(flags: int, body: memoryview) -> str | None:
    """The kernel's explanation in an error acknowledgement (extended ack), if any."""
    if not flags & F_ACK_TLVS or len(body) < 4 + _HDR.size:
        return None
    # The request comes back after the error code: its header only if capped, else whole.
    echoed = _HDR.size if flags & F_CAPPED else (_HDR.unpack_from(body, 4)[0] + 3) & ~3
    return _str(attrs(body, 4 + echoed).get(NLMSGERR_ATTR_MSG)) or None
