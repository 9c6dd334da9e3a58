"""The rtnetlink nsnet-cni needs: one request at a time, and links, addresses and routes decoded.

The same messages and names as :mod:`nsnet.kernel.rtnl` (the subset the
plugin uses), without what makes that module costly to import for a process
started once per container and command: its message classes are
dataclasses (whose import brings :mod:`inspect`, and whose creation runs
generated code), its errors come from :mod:`nsnet.errors`, its batches need
threads' buffers. Here a socket sends a request and reads its answer.
"""

from __future__ import annotations

import _socket as socket  # not socket.py, whose enums are a millisecond of every call
import contextlib
import os
import struct

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK, NETLINK_EXT_ACK = 10, 11

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
F_REQUEST, F_MULTI, F_ACK, F_DUMP_INTR = 0x1, 0x2, 0x4, 0x10
F_CAPPED, F_ACK_TLVS = 0x100, 0x200
F_DUMP = 0x300
F_CREATE, F_EXCL = 0x400, 0x200
NEW = F_REQUEST | F_ACK | F_CREATE | F_EXCL
"""Flags of a request that creates something (and fails if it exists)."""
CHANGE = F_REQUEST | F_ACK
"""Flags of a request that changes or deletes something."""

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD, IFLA_EXT_MASK = 18, 20, 28, 29
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
RTEXT_FILTER_SKIP_STATS = 1 << 3
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
NLMSGERR_ATTR_MSG = 1
NLA_TYPE_MASK = 0x3FFF

_HDR = struct.Struct("=IHHII")
_ERR = struct.Struct("=i")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_NLA = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_INET = (socket.AF_INET, socket.AF_INET6)


# -- encoding ----------------------------------------------------------------


def attr(kind: int, data: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    size = 4 + len(data)
    return _NLA.pack(size, kind) + data + b"\0" * (-size % 4)


def u32(kind: int, value: int) -> bytes:
    return attr(kind, _U32.pack(value))


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


# -- decoding ----------------------------------------------------------------


def attrs(data: bytes | memoryview, offset: int) -> dict[int, memoryview]:
    """The attributes of a message from ``offset`` on (the last of a type wins)."""
    view = memoryview(data)
    out: dict[int, memoryview] = {}
    while offset + 4 <= len(view):
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


def _ip(family: int, value: memoryview | None) -> str | None:
    return None if value is None or family not in _INET else socket.inet_ntop(family, bytes(value))


class LinkMsg:
    """A link as RTM_GETLINK reports it (the fields the plugin reads)."""

    __slots__ = ("alias", "flags", "index", "kind", "mac", "master", "mtu", "name", "peer_index")

    def __init__(self, body: memoryview) -> None:
        _, _, self.index, self.flags, _ = _IFINFO.unpack_from(body)
        a = attrs(body, _IFINFO.size)
        info = a.get(IFLA_LINKINFO)
        self.kind = _str(attrs(info, 0).get(IFLA_INFO_KIND)) if info is not None else None
        self.name: str = _str(a.get(IFLA_IFNAME)) or ""
        self.mtu = _u32(a.get(IFLA_MTU))
        mac = a.get(IFLA_ADDRESS)
        self.mac = None if mac is None else ":".join(f"{b:02x}" for b in bytes(mac))
        self.master = _u32(a.get(IFLA_MASTER)) or None
        self.alias = _str(a.get(IFLA_IFALIAS))
        self.peer_index = _u32(a.get(IFLA_LINK))


class AddrMsg:
    __slots__ = ("address", "family", "index", "local", "prefixlen")

    def __init__(self, body: memoryview) -> None:
        self.family, self.prefixlen, _, _, self.index = _IFADDR.unpack_from(body)
        a = attrs(body, _IFADDR.size)
        self.address = _ip(self.family, a.get(IFA_ADDRESS))
        self.local = _ip(self.family, a.get(IFA_LOCAL))


class RouteMsg:
    __slots__ = ("dst", "dst_len", "family", "gateway", "oif", "table")

    def __init__(self, body: memoryview) -> None:
        self.family, self.dst_len, _, _, table, _, _, _, _ = _RTMSG.unpack_from(body)
        a = attrs(body, _RTMSG.size)
        self.table = _u32(a.get(RTA_TABLE)) or table
        self.dst = _ip(self.family, a.get(RTA_DST))
        self.gateway = _ip(self.family, a.get(RTA_GATEWAY))
        self.oif = _u32(a.get(RTA_OIF))


parse_link, parse_addr, parse_route = LinkMsg, AddrMsg, RouteMsg


# -- the socket --------------------------------------------------------------


def _error(flags: int, body: memoryview) -> OSError | None:
    """The error an acknowledgement carries (with the kernel's explanation, if any), or None."""
    code = -_ERR.unpack_from(body)[0]
    if not code:
        return None
    text = os.strerror(code)
    if flags & F_ACK_TLVS and len(body) >= 4 + _HDR.size:
        # The request comes back after the error code: its header only if capped, else whole.
        echoed = _HDR.size if flags & F_CAPPED else (_HDR.unpack_from(body, 4)[0] + 3) & ~3
        message = _str(attrs(body, 4 + echoed).get(NLMSGERR_ATTR_MSG))
        if message:
            text = f"{text}: {message}"
    return OSError(code, text)


class Socket:
    """An rtnetlink socket in the calling thread's network namespace at the time it is opened."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._seq = 0
        for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
            with contextlib.suppress(OSError):  # older kernels: full acknowledgements, no messages
                sock.setsockopt(SOL_NETLINK, opt, 1)
        sock.bind((0, 0))

    @classmethod
    def open(cls) -> Socket:
        return cls(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE))

    def close(self) -> None:
        self._sock.close()

    def _send(self, kind: int, flags: int, payload: bytes) -> int:
        self._seq += 1
        self._sock.send(_HDR.pack(_HDR.size + len(payload), kind, flags, self._seq, 0) + payload)
        return self._seq

    def _answers(self, seq: int) -> list[tuple[int, int, memoryview]]:
        """(type, flags, body) of the messages answering request ``seq``, up to its last."""
        out: list[tuple[int, int, memoryview]] = []
        while True:
            data = memoryview(self._sock.recv(1 << 18))
            offset, last = 0, False
            while offset + _HDR.size <= len(data):
                length, mtype, flags, got, _ = _HDR.unpack_from(data, offset)
                if length < _HDR.size:
                    break
                body = data[offset + _HDR.size : offset + length]
                offset += (length + 3) & ~3
                if got != seq:
                    continue
                if mtype == NLMSG_DONE:
                    return out
                out.append((mtype, flags, body))
                last = mtype == NLMSG_ERROR or not flags & F_MULTI
            if last:
                return out

    def request(self, kind: int, flags: int, payload: bytes) -> None:
        """Send one request and wait for its acknowledgement; raise :class:`OSError` if refused."""
        for mtype, mflags, body in self._answers(self._send(kind, flags, payload)):
            if mtype == NLMSG_ERROR:
                error = _error(mflags, body)
                if error is not None:
                    raise error

    def get(self, kind: int, payload: bytes) -> memoryview:
        """The one message a ``get`` request returns (e.g. RTM_GETLINK for one link)."""
        for mtype, flags, body in self._answers(self._send(kind, F_REQUEST, payload)):
            if mtype == NLMSG_ERROR:
                raise _error(flags, body) or OSError(0, "no answer")
            return body
        raise OSError(0, "the kernel answered nothing")

    def dump(self, kind: int, payload: bytes) -> list[memoryview]:
        """The bodies of every message a dump returns (asked again if the kernel interrupted it)."""
        for _ in range(10):
            out: list[memoryview] = []
            interrupted = False
            for mtype, flags, body in self._answers(self._send(kind, F_REQUEST | F_DUMP, payload)):
                if mtype == NLMSG_ERROR:
                    raise _error(flags, body) or OSError(0, "dump refused")
                interrupted |= bool(flags & F_DUMP_INTR)
                out.append(body)
            if not interrupted:
                return out
        raise OSError(0, "the kernel kept changing while nsnet-cni read it")
