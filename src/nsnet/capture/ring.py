"""One capture point: an AF_PACKET socket in the point's namespace, with a TPACKET_V3 ring.

The socket is created inside the namespace (a socket stays bound to the
namespace it was created in), bound to one interface for every protocol
(``ETH_P_ALL``), filtered in the kernel by a BPF program, and read through
a memory-mapped ring of blocks (``PACKET_RX_RING``, ``TPACKET_V3``): the
kernel fills a block with many packets, each with its timestamp
(nanoseconds), its length on the wire and its ``sockaddr_ll`` (packet type:
outgoing, to us, broadcast, ...); a block is handed over when full or after
``timeout_ms``; giving it back costs one store. The kernel counts the
packets it had to drop for want of room (``PACKET_STATISTICS``).

Like tcpdump, the interface is put in promiscuous mode for as long as the
socket is open (``PACKET_MR_PROMISC``, undone by the kernel when it closes):
a bridge passes the frames it forwards between two other ports up to its own
interface only then.
"""

from __future__ import annotations

import mmap
import os
import socket
import struct
from dataclasses import dataclass

from nsnet.capture import bpf
from nsnet.capture.frames import PKTTYPE_OUTGOING, Frame
from nsnet.errors import KernelError
from nsnet.kernel import netns
from nsnet.model import ROOT_NS

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
PACKET_MR_PROMISC = 1
ETH_P_ALL = 0x0003
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
BLOCK_SIZE = 1 << 20
FRAME_SIZE = 2048

# struct tpacket3_hdr: next_offset, sec, nsec, snaplen, len, status, mac (then net, rxhash, vlan tci, vlan tpid)
_TP3 = struct.Struct("<IIIIIIH")
_VLAN = struct.Struct("<IH")  # tp_vlan_tci, tp_vlan_tpid at offset 32
_BLOCK = struct.Struct("<II")  # tpacket_hdr_v1 num_pkts, offset_to_first_pkt, at offset 12
_STATS = struct.Struct("<III")  # tpacket_stats_v3: packets, drops, freeze_q_cnt
_ZERO = b"\x00\x00\x00\x00"
SLL_PKTTYPE = 48 + 10  # sockaddr_ll follows the (16-byte aligned) 48-byte header


@dataclass
class Counters:
    """What the kernel counted for one socket since it was opened."""

    received: int = 0
    """Packets that passed the filter (including those dropped)."""
    dropped: int = 0
    """Packets dropped because the ring was full."""


class Ring:
    """A capture socket on one interface of one namespace."""

    def __init__(
        self,
        point: int,
        ns: str,
        ifname: str,
        program: list[tuple[int, int, int, int]],
        promisc: bool = True,
        buffer_bytes: int = 16 << 20,
        timeout_ms: int = 10,
    ) -> None:
        self.point = point
        self.ns = ns
        self.ifname = ifname
        self.counters = Counters()
        self.gone = ""
        """Why the socket stopped capturing (its interface or namespace was deleted), or empty."""
        self.ns_ident = netns.ident(ns) if ns != ROOT_NS else None
        """Which namespace ``ns`` named when the capture began (a deleted one is noticed by it)."""
        self._blocks = max(2, buffer_bytes // BLOCK_SIZE)
        self._block = 0
        self._skip_outgoing = ifname == "lo"  # loopback shows every packet twice; libpcap keeps one
        where = f"{ifname} in {ns or 'the root namespace'}"
        with netns.entered(ns):
            try:
                # Protocol 0: nothing is queued before bind(), which comes after the filter.
                self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            except OSError as exc:
                raise KernelError(f"cannot open a packet socket for {where}: {exc.strerror}") from exc
            try:
                ifindex = socket.if_nametoindex(ifname)
                bpf.attach(self.sock, program)
                self.sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
                frames = self._blocks * (BLOCK_SIZE // FRAME_SIZE)
                req = struct.pack("IIIIIII", BLOCK_SIZE, self._blocks, FRAME_SIZE, frames, timeout_ms, 0, 0)
                self.sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
                self._mm = mmap.mmap(
                    self.sock.fileno(), BLOCK_SIZE * self._blocks, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
                )
                if promisc:
                    mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
                    self.sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
                self.sock.bind((ifname, ETH_P_ALL))
            except OSError as exc:
                if hasattr(self, "_mm"):
                    self._mm.close()
                self.sock.close()
                raise KernelError(f"cannot capture on {where}: {exc.strerror or exc}") from exc

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self, out: list[Frame], seq: int) -> int:
        """Append every packet the kernel has handed over to ``out``; returns the next arrival number."""
        mm = self._mm
        block = self._block
        blocks = self._blocks
        point = self.point
        skip = PKTTYPE_OUTGOING if self._skip_outgoing else -1
        unpack = _TP3.unpack_from
        append = out.append
        while True:
            base = block * BLOCK_SIZE
            if not mm[base + 8] & TP_STATUS_USER:
                break
            count, first = _BLOCK.unpack_from(mm, base + 12)
            at = base + first
            for _ in range(count):
                step, sec, nsec, snaplen, wirelen, status, mac = unpack(mm, at)
                pkttype = mm[at + SLL_PKTTYPE]
                if pkttype != skip:
                    data = mm[at + mac : at + mac + snaplen]
                    if status & TP_STATUS_VLAN_VALID:  # the kernel took the 802.1Q tag out: put it back
                        tci, tpid = _VLAN.unpack_from(mm, at + 32)
                        if not status & TP_STATUS_VLAN_TPID_VALID:
                            tpid = 0x8100
                        data = data[:12] + struct.pack(">HH", tpid, tci & 0xFFFF) + data[12:]
                        wirelen += 4
                    append((sec * 1_000_000_000 + nsec, seq, point, pkttype, wirelen, data))
                    seq += 1
                at += step
            mm[base + 8 : base + 12] = _ZERO  # hand the block back to the kernel
            block += 1
            if block == blocks:
                block = 0
        self._block = block
        return seq

    def check_gone(self) -> bool:
        """Whether the socket reports an error (``ENETDOWN``: its interface was deleted)."""
        if not self.gone:
            error = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                self.gone = os.strerror(error)
        return bool(self.gone)

    def check_namespace(self) -> bool:
        """Whether the ring's namespace was deleted (or replaced): then the ring is emptied and closed,
        since its socket alone would keep the namespace, and its interfaces, alive."""
        if self.gone or self.ns_ident is None or netns.ident(self.ns) == self.ns_ident:
            return False
        self.gone = "namespace deleted"
        return True

    @property
    def closed(self) -> bool:
        return self.sock.fileno() < 0

    def update_counters(self) -> Counters:
        """Add what the kernel counted since the last call (reading resets its counters)."""
        try:
            raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)
        except OSError:
            return self.counters
        received, dropped, _ = _STATS.unpack(raw)
        self.counters.received += received
        self.counters.dropped += dropped
        return self.counters

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.update_counters()
            mm = getattr(self, "_mm", None)
            if mm is not None:
                mm.close()
            self.sock.close()
