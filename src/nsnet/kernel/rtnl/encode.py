"""Requests packed with :mod:`struct`: attributes and the headers of link, address, route and neighbour messages."""

from __future__ import annotations

import _socket
import struct

from nsnet.kernel.rtnl.consts import (
    AF_BRIDGE,
    AF_INET,
    AF_INET6,
    IFLA_AF_SPEC,
    IFLA_INET6_ADDR_GEN_MODE,
    IN6_ADDR_GEN_MODE_EUI64,
    IN6_ADDR_GEN_MODE_NONE,
    NDA_DST,
    NDA_LLADDR,
)

NLA = struct.Struct("=HH")
IFINFO = struct.Struct("=BxHiII")
IFADDR = struct.Struct("=BBBBI")
RTMSG = struct.Struct("=BBBBBBBBI")
NDMSG = struct.Struct("=BxxxiHBB")
U32 = struct.Struct("=I")
S32 = struct.Struct("=i")
IFINFO_SIZE = IFINFO.size


def attr(kind: int, data: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    size = 4 + len(data)
    return NLA.pack(size, kind) + data + b"\0" * (-size % 4)


def u32(kind: int, value: int) -> bytes:
    return attr(kind, U32.pack(value))


def s32(kind: int, value: int) -> bytes:
    return attr(kind, S32.pack(value))


def string(kind: int, value: str) -> bytes:
    """A NUL-terminated string attribute."""
    return attr(kind, value.encode() + b"\0")


def nest(kind: int, *parts: bytes) -> bytes:
    return attr(kind, b"".join(parts))


def ifinfo(index: int = 0, flags: int = 0, change: int = 0, family: int = 0) -> bytes:
    return IFINFO.pack(family, 0, index, flags, change)


def ifaddr(family: int, prefixlen: int, index: int, scope: int = 0) -> bytes:
    return IFADDR.pack(family, prefixlen, 0, scope, index)


def rtmsg(family: int, dst_len: int, proto: int, table: int = 254, scope: int = 0, kind: int = 1) -> bytes:
    return RTMSG.pack(family, dst_len, 0, 0, table, proto, scope, kind, 0)


def ndmsg(family: int, index: int = 0, state: int = 0, flags: int = 0) -> bytes:
    return NDMSG.pack(family, index, state, flags, 0)


def rtgen(family: int = 0) -> bytes:
    """A ``struct rtgenmsg``, padded as the kernel reads it."""
    return bytes([family, 0, 0, 0])


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def ip_bytes(ip: str) -> tuple[int, bytes]:
    """An IPv4 or IPv6 address's family and packed bytes."""
    family = AF_INET6 if ":" in ip else AF_INET
    return family, _socket.inet_pton(family, ip)


def neighbour(index: int, ip: str, mac: str | None, state: int, flags: int = 0) -> bytes:
    """The body of a neighbour entry (``ip neigh``): ``ip`` is at ``mac`` on link ``index``."""
    family, packed = ip_bytes(ip)
    payload = ndmsg(family, index, state, flags) + attr(NDA_DST, packed)
    return payload + attr(NDA_LLADDR, mac_bytes(mac)) if mac else payload


def fdb(index: int, mac: str, vtep: str, state: int, flags: int) -> bytes:
    """The body of a bridge fdb entry of a VXLAN device (``bridge fdb``): frames to ``mac`` go to ``vtep``."""
    _, packed = ip_bytes(vtep)
    return ndmsg(AF_BRIDGE, index, state, flags) + attr(NDA_LLADDR, mac_bytes(mac)) + attr(NDA_DST, packed)


NO_LINK_LOCAL = nest(IFLA_AF_SPEC, nest(AF_INET6, attr(IFLA_INET6_ADDR_GEN_MODE, bytes([IN6_ADDR_GEN_MODE_NONE]))))
"""``addrgenmode none``: no IPv6 link-local address (nor its DAD, MLD and router solicitations)."""
LINK_LOCAL = nest(IFLA_AF_SPEC, nest(AF_INET6, attr(IFLA_INET6_ADDR_GEN_MODE, bytes([IN6_ADDR_GEN_MODE_EUI64]))))
"""``addrgenmode eui64``: the kernel's IPv6 link-local address, made (and checked by DAD) when the link comes up."""
