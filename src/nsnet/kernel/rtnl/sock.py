"""The netlink socket: requests batched many per ``send``, dumps, and the events of multicast groups."""

from __future__ import annotations

import _socket
import _thread
import contextlib
import errno
import os

from nsnet.kernel.rtnl.consts import (
    F_ACK_TLVS,
    F_CAPPED,
    F_DUMP,
    F_DUMP_INTR,
    F_MULTI,
    F_REQUEST,
    NETLINK_CAP_ACK,
    NETLINK_EXT_ACK,
    NETLINK_ROUTE,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSGERR_ATTR_MSG,
    SO_RCVBUFFORCE,
    SO_SNDBUFFORCE,
    SOL_NETLINK,
)
from nsnet.kernel.rtnl.decode import HDR, attrs, messages, text
from nsnet.kernel.rtnl.encode import S32

TYPE_CHECKING = False  # typing is not imported at run time (nsnet-cni starts once per container)
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

CHUNK_MESSAGES = 256
"""Requests per ``send``: their acknowledgements must fit the receive buffer."""
CHUNK_BYTES = 64 << 10
RCVBUF = 4 << 20
"""Room for bursts: a dump of many links, the events of a lab coming up."""
EVENTS_SIZE = 1 << 16


def describe(code: int, message: str | None = None) -> str:
    """An error code in words (``File exists (errno EEXIST)``), with the kernel's explanation if any."""
    words = f"{os.strerror(code)} (errno {errno.errorcode.get(code, code)})"
    return f"{words}: {message}" if message else words


class Failure:
    """A request the kernel refused."""

    __slots__ = ("code", "message")

    def __init__(self, code: int, message: str | None) -> None:
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return describe(self.code, self.message)

    def __repr__(self) -> str:
        return f"Failure({self.code!r}, {self.message!r})"


_local = _thread._local()


def _buffer() -> bytearray:
    """This thread's receive buffer (one is enough: what is received is copied out at once)."""
    buf: bytearray | None = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = bytearray(1 << 18)
    return buf


class Socket:
    """A netlink socket, made by the caller in the namespace it belongs to.

    ``groups`` (RTMGRP_* bits) makes it an event socket: non-blocking, read
    with :meth:`events` when its :meth:`fileno` is readable.
    """

    def __init__(self, sock: _socket.socket, groups: int = 0) -> None:
        self._sock = sock
        self._seq = 0
        try:
            for forced, plain in ((SO_RCVBUFFORCE, _socket.SO_RCVBUF), (SO_SNDBUFFORCE, _socket.SO_SNDBUF)):
                try:
                    sock.setsockopt(_socket.SOL_SOCKET, forced, RCVBUF)
                except OSError:  # without CAP_NET_ADMIN: up to the system's limit
                    sock.setsockopt(_socket.SOL_SOCKET, plain, RCVBUF)
            for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
                with contextlib.suppress(OSError):  # older kernels: full acknowledgements, no messages
                    sock.setsockopt(SOL_NETLINK, opt, 1)
            sock.bind((0, groups))
        except BaseException:
            sock.close()
            raise

    @classmethod
    def open(cls, protocol: int = NETLINK_ROUTE, groups: int = 0) -> Socket:
        """A socket in the calling thread's current network namespace (rtnetlink, or ``protocol``)."""
        flags = _socket.SOCK_RAW | _socket.SOCK_CLOEXEC | (_socket.SOCK_NONBLOCK if groups else 0)
        return cls(_socket.socket(_socket.AF_NETLINK, flags, protocol), groups)

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    def events(self) -> list[tuple[int, memoryview]] | None:
        """(type, body) of the messages of one datagram an event socket received; None when none waits.

        Raises :class:`OSError` ``ENOBUFS`` when the kernel dropped messages
        (the receive buffer overflowed); the socket works on.
        """
        try:
            data = self._sock.recv(EVENTS_SIZE)
        except BlockingIOError:
            return None
        return [(mtype, body) for mtype, _, _, body in messages(data)]

    def _next_seq(self) -> int:
        self._seq = self._seq % 0x7FFFFFFF + 1
        return self._seq

    def _message(self, kind: int, flags: int, payload: bytes) -> tuple[int, bytes]:
        seq = self._next_seq()
        return seq, HDR.pack(HDR.size + len(payload), kind, flags, seq, 0) + payload

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
                    code = -S32.unpack_from(body)[0]
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
        """The one message a ``get`` request returns (e.g. RTM_GETLINK for one link); :class:`OSError` if refused."""
        seq, data = self._message(kind, F_REQUEST, payload)
        self._sock.send(data)
        for mtype, flags, _, body in self._receive({seq}, dump=True):
            if mtype == NLMSG_ERROR:
                raise _error(flags, body)
            return body
        raise OSError(errno.EIO, "the kernel answered nothing")  # pragma: no cover - it always answers

    def dump(self, kind: int, payload: bytes) -> list[memoryview]:
        """The bodies of every message a dump request returns (asked again if the kernel interrupted it)."""
        for _ in range(10):
            seq, data = self._message(kind, F_REQUEST | F_DUMP, payload)
            self._sock.send(data)
            out: list[memoryview] = []
            interrupted = False
            for mtype, flags, _, body in self._receive({seq}, dump=True):
                if mtype == NLMSG_ERROR:
                    raise _error(flags, body)
                interrupted |= bool(flags & F_DUMP_INTR)
                out.append(body)
            if not interrupted:
                return out
        raise OSError(errno.EAGAIN, "the kernel kept changing while nsnet read it; try again")

    def _receive(self, waiting: set[int], dump: bool = False) -> Iterator[tuple[int, int, int, memoryview]]:
        """Messages answering ``waiting`` until each is answered (a dump: done; a get: answered once)."""
        while waiting:
            buf = _buffer()
            size = self._sock.recv_into(buf)
            for mtype, flags, seq, body in messages(bytes(memoryview(buf)[:size])):
                if seq not in waiting:
                    continue  # an answer to a request abandoned earlier
                if dump and mtype == NLMSG_DONE:
                    waiting.discard(seq)
                    continue
                if dump and (mtype == NLMSG_ERROR or not flags & F_MULTI):
                    waiting.discard(seq)
                yield mtype, flags, seq, body


def _error(flags: int, body: memoryview) -> OSError:
    code = -S32.unpack_from(body)[0] or errno.EIO
    return OSError(code, describe(code, _ext_message(flags, body)))


def _ext_message(flags: int, body: memoryview) -> str | None:
    """The kernel's explanation in an error acknowledgement (extended ack), if any."""
    if not flags & F_ACK_TLVS or len(body) < 4 + HDR.size:
        return None
    # The request comes back after the error code: its header only if capped, else whole.
    echoed = HDR.size if flags & F_CAPPED else (HDR.unpack_from(body, 4)[0] + 3) & ~3
    return text(attrs(body, 4 + echoed).get(NLMSGERR_ATTR_MSG)) or None
