"""pcapng files: one interface description block per capture point, nanosecond timestamps.

The blocks are dpkt's (:mod:`dpkt.pcapng`): a section header, then an
interface description block (IDB) per capture point, named ``NODE:IFACE``
(option ``if_name``) with ``if_tsresol`` 9 (nanoseconds), and an enhanced
packet block (EPB) per frame carrying its interface id and, in option
``epb_flags``, its direction and reception type (outgoing, or incoming as
unicast to us, broadcast, multicast, or to another host). tcpdump, tshark and
Wireshark read such a file; Wireshark shows each point as an interface.

dpkt's own ``pcapng.Writer`` writes every packet on interface 0 with
microsecond timestamps, and its ``Reader`` knows only the first interface;
so packets go through the same struct layout dpkt's block classes define (as
dpkt's ``Writer.writepkts`` does), with the interface id and the timestamp
resolution filled in. A classic pcap file (``tcpdump -w``) is read too.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import dpkt
from dpkt import pcapng as _ng

from nsnet import __version__
from nsnet.capture.frames import PKTTYPE_OUTGOING, Frame
from nsnet.errors import NsnetError

_EPB = _ng.EnhancedPacketBlockLE
_EPB_HEAD = struct.Struct(_EPB.__hdr_fmt__[:-1])  # the EPB header without the trailing length
_U32 = struct.Struct("<I")
_PAD = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")

# epb_flags: bits 0-1 direction (1 inbound, 2 outbound), bits 2-4 reception type
# (1 unicast, 2 multicast, 3 broadcast, 4 promiscuous). Keyed by sockaddr_ll's packet type.
EPB_FLAGS = {0: 0b00101, 1: 0b01101, 2: 0b01001, 3: 0b10001, PKTTYPE_OUTGOING: 0b00010}
PKTTYPE_OF_FLAGS = {flags: pkttype for pkttype, flags in EPB_FLAGS.items()}
OPT_EPB_FLAGS = 2
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144


def _option(code: int, data: bytes) -> bytes:
    return bytes(_ng.PcapngOptionLE(code=code, data=data))


_END = bytes(_ng.PcapngOptionLE(code=_ng.PCAPNG_OPT_ENDOFOPT))
# The options part of an EPB, per packet type: epb_flags, then the end of options.
_EPB_OPTIONS = {pkttype: _option(OPT_EPB_FLAGS, _U32.pack(flags)) + _END for pkttype, flags in EPB_FLAGS.items()}


@dataclass(frozen=True)
class Interface:
    """An interface description block: a capture point as the file names it."""

    name: str
    description: str = ""
    filter: str = ""
    linktype: int = LINKTYPE_ETHERNET
    snaplen: int = SNAPLEN


class Writer:
    """Writes frames (:data:`~nsnet.capture.frames.Frame`) to a pcapng file."""

    def __init__(self, path: str, interfaces: list[Interface]) -> None:
        try:
            self._f: BinaryIO = open(path, "wb")  # noqa: SIM115 (closed by close())
        except OSError as exc:
            raise NsnetError(f"cannot write {path}: {exc.strerror}") from exc
        self.path = path
        self.written = 0
        shb = _ng.SectionHeaderBlockLE(
            opts=[
                _ng.PcapngOptionLE(code=_ng.PCAPNG_OPT_SHB_OS, data=" ".join(os.uname()[0:3:2]).encode()),
                _ng.PcapngOptionLE(code=_ng.PCAPNG_OPT_SHB_USERAPPL, data=f"nsnet {__version__}".encode()),
                _ng.PcapngOptionLE(code=_ng.PCAPNG_OPT_ENDOFOPT),
            ]
        )
        blocks = [bytes(shb)]
        for iface in interfaces:
            opts = [
                _ng.PcapngOptionLE(code=_ng.PCAPNG_OPT_IF_NAME, data=iface.name.encode()),
                _ng.PcapngOptionLE(code=_ng.PCAPNG_OPT_IF_TSRESOL, data=b"\x09"),
            ]
            if iface.description:
                opts.append(_ng.PcapngOptionLE(code=_ng.PCAPNG_OPT_IF_DESCRIPTION, data=iface.description.encode()))
            if iface.filter:  # first byte 0: a libpcap filter string
                opts.append(_ng.PcapngOptionLE(code=_ng.PCAPNG_OPT_IF_FILTER, data=b"\x00" + iface.filter.encode()))
            opts.append(_ng.PcapngOptionLE(code=_ng.PCAPNG_OPT_ENDOFOPT))
            idb = _ng.InterfaceDescriptionBlockLE(linktype=iface.linktype, snaplen=iface.snaplen, opts=opts)
            blocks.append(bytes(idb))
        self._write(b"".join(blocks))

    def _write(self, data: bytes) -> None:
        try:
            self._f.write(data)
        except OSError as exc:
            raise NsnetError(f"cannot write {self.path}: {exc.strerror}") from exc

    def add(self, frames: list[Frame]) -> None:
        """Append frames (in the order given)."""
        if not frames:
            return
        pack = _EPB_HEAD.pack
        u32 = _U32.pack
        options = _EPB_OPTIONS
        pad = _PAD
        parts = []
        for ts, _seq, point, pkttype, wirelen, data in frames:
            caplen = len(data)
            opts = options.get(pkttype) or options[0]
            n = 32 + caplen + (-caplen & 3) + len(opts)
            parts.append(pack(6, n, point, ts >> 32, ts & 0xFFFFFFFF, caplen, wirelen))
            parts.append(data)
            parts.append(pad[caplen & 3])
            parts.append(opts)
            parts.append(u32(n))
        self.written += len(frames)
        self._write(b"".join(parts))

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()


# -- reading -----------------------------------------------------------------


Stripe = tuple[int, int, int]
"""``(batch, workers, mine)``: only frames whose ``seq // batch % workers == mine``."""


class Capture:
    """What a capture file holds: its capture points, then its frames (one pass)."""

    def __init__(
        self,
        interfaces: list[Interface],
        frames: Callable[[Stripe | None], Iterator[Frame]],
        stripes: bool = False,
    ) -> None:
        self.interfaces = interfaces
        self._make = frames
        self._frames: Iterator[Frame] | None = None
        self.stripes = stripes
        """Whether :meth:`stripe` works (pcapng files)."""

    @property
    def frames(self) -> Iterator[Frame]:
        if self._frames is None:
            self._frames = self._make(None)
        return self._frames

    def stripe(self, batch: int, workers: int, mine: int) -> Iterator[Frame]:
        """Only the batches of ``batch`` frames numbered ``mine`` modulo ``workers`` (for parallel decoding)."""
        if not self.stripes:
            raise NsnetError("only pcapng files can be read in stripes")
        return self._make((batch, workers, mine))


def read(path: str) -> Capture:
    """Open a pcapng (or classic pcap) file.

    Interface descriptions before the first packet (as nsnet and tcpdump write
    them) are known at once; the file is closed when its frames are exhausted.
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed when the frames are exhausted)
        size = os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise NsnetError(f"cannot read {path}: {exc.strerror}") from exc
    if size < 24:
        f.close()
        raise NsnetError(f"{path} is not a pcapng or pcap file (too short)")
    buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    magic = buf[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
        buf.close()
        return _read_pcap(f, path)
    if _U32.unpack_from(buf, 0)[0] != _ng.PCAPNG_BT_SHB:
        buf.close()
        f.close()
        raise NsnetError(f"{path} is not a pcapng or pcap file")
    interfaces: list[Interface] = []
    reader = _PcapngReader(buf, path, interfaces)
    reader.head()

    def frames(stripe: Stripe | None) -> Iterator[Frame]:
        try:
            yield from reader.frames(stripe)
        finally:
            buf.close()
            f.close()

    return Capture(interfaces, frames, stripes=True)


class _PcapngReader:
    def __init__(self, buf: mmap.mmap, path: str, interfaces: list[Interface]) -> None:
        self.buf = buf
        self.path = path
        self.interfaces = interfaces
        self.pos = 0
        self.le = True
        self.scale: list[tuple[int, int, int]] = []  # per interface: multiply, divide, offset (ns)
        self.first_id = 0  # interfaces of earlier sections
        self.flag_cache: dict[bytes, int] = {}

    def _bad(self, what: str) -> NsnetError:
        return NsnetError(f"{self.path}: {what} at byte {self.pos}")

    def head(self) -> None:
        """Read the blocks up to the first packet (the section header and the interfaces)."""
        buf = self.buf
        while self.pos + 12 <= len(buf):
            kind = struct.unpack_from("<I" if self.le else ">I", buf, self.pos)[0]
            if kind == _ng.PCAPNG_BT_SHB:
                self._section()
            elif kind == _ng.PCAPNG_BT_IDB:
                self._interface()
            else:
                return

    def _length(self) -> int:
        fmt = "<I" if self.le else ">I"
        n: int = struct.unpack_from(fmt, self.buf, self.pos + 4)[0]
        if n < 12 or n % 4 or self.pos + n > len(self.buf):
            raise self._bad(f"bad block length {n}")
        return n

    def _section(self) -> None:
        bom = bytes(self.buf[self.pos + 8 : self.pos + 12])
        self.le = bom == b"\x4d\x3c\x2b\x1a"
        if not self.le and bom != b"\x1a\x2b\x3c\x4d":
            raise self._bad("bad byte-order magic")
        n = self._length()
        cls = _ng.SectionHeaderBlockLE if self.le else _ng.SectionHeaderBlock
        try:
            shb = cls(self.buf[self.pos : self.pos + n])
        except dpkt.UnpackError as exc:
            raise self._bad(f"bad section header ({exc})") from exc
        if shb.v_major != _ng.PCAPNG_VERSION_MAJOR:
            raise self._bad(f"unsupported pcapng version {shb.v_major}.{shb.v_minor}")
        self.first_id = len(self.interfaces)
        self.pos += n

    def _interface(self) -> None:
        n = self._length()
        cls = _ng.InterfaceDescriptionBlockLE if self.le else _ng.InterfaceDescriptionBlock
        try:
            idb = cls(self.buf[self.pos : self.pos + n])
        except dpkt.UnpackError as exc:
            raise self._bad(f"bad interface description ({exc})") from exc
        name = description = text_filter = ""
        resol, offset = 6, 0
        for opt in idb.opts:
            if opt.code == _ng.PCAPNG_OPT_IF_NAME:
                name = opt.data.decode(errors="replace").rstrip("\x00")
            elif opt.code == _ng.PCAPNG_OPT_IF_DESCRIPTION:
                description = opt.data.decode(errors="replace").rstrip("\x00")
            elif opt.code == _ng.PCAPNG_OPT_IF_FILTER and opt.data[:1] == b"\x00":
                text_filter = opt.data[1:].decode(errors="replace").rstrip("\x00")
            elif opt.code == _ng.PCAPNG_OPT_IF_TSRESOL and opt.data:
                resol = opt.data[0]
            elif opt.code == _ng.PCAPNG_OPT_IF_TSOFFSET and len(opt.data) == 8:
                offset = struct.unpack("<q" if self.le else ">q", opt.data)[0]
        if resol & 0x80:  # a power of two
            self.scale.append((1_000_000_000, 1 << (resol & 0x7F), offset * 1_000_000_000))
        elif resol <= 9:
            self.scale.append((10 ** (9 - resol), 1, offset * 1_000_000_000))
        else:
            self.scale.append((1, 10 ** (resol - 9), offset * 1_000_000_000))
        number = len(self.interfaces)
        self.interfaces.append(
            Interface(
                name=name or f"if{number}",
                description=description,
                filter=text_filter,
                linktype=idb.linktype,
                snaplen=idb.snaplen,
            )
        )
        self.pos += n

    def _flags(self, opts: bytes) -> int:
        """The packet type an EPB's options give (incoming unicast when they say nothing)."""
        found = self.flag_cache.get(opts)
        if found is None:
            found = 0
            cls = _ng.PcapngOptionLE if self.le else _ng.PcapngOption
            rest = opts
            while len(rest) >= 4:
                try:
                    opt = cls(rest)
                except dpkt.UnpackError:
                    break
                if opt.code == _ng.PCAPNG_OPT_ENDOFOPT:
                    break
                if opt.code == OPT_EPB_FLAGS and len(opt.data) == 4:
                    value = struct.unpack("<I" if self.le else ">I", opt.data)[0]
                    found = PKTTYPE_OF_FLAGS.get(value & 0x1F)
                    if found is None:
                        found = PKTTYPE_OUTGOING if value & 3 == 2 else 0
                rest = rest[len(opt) :]
            self.flag_cache[opts] = found
        return found

    def frames(self, stripe: Stripe | None = None) -> Iterator[Frame]:
        buf = self.buf
        end = len(buf)
        seq = 0
        batch, workers, mine = stripe or (1, 1, 0)
        epb_le = _EPB_HEAD
        epb_be = struct.Struct(">" + _EPB_HEAD.format[1:])
        while self.pos + 12 <= end:
            if self.pos + 28 <= end:
                kind, n, iface, hi, lo, caplen, wirelen = (epb_le if self.le else epb_be).unpack_from(buf, self.pos)
            else:
                kind = struct.unpack_from("<I" if self.le else ">I", buf, self.pos)[0]
                n = iface = hi = lo = caplen = wirelen = 0
            if kind == _ng.PCAPNG_BT_EPB:
                if n < 32 + caplen or n % 4 or self.pos + n > end:
                    raise self._bad(f"bad packet block length {n}")
                if workers > 1 and seq // batch % workers != mine:
                    seq += 1
                    self.pos += n
                    continue
                start = self.pos + 28
                data = buf[start : start + caplen]
                opts_at = start + caplen + (-caplen & 3)
                opts = buf[opts_at : self.pos + n - 4] if opts_at < self.pos + n - 4 else b""
                point = self.first_id + iface
                if point >= len(self.scale):
                    raise self._bad(f"packet on undeclared interface {iface}")
                mul, div, off = self.scale[point]
                ts = ((hi << 32) | lo) * mul // div + off
                yield (ts, seq, point, self._flags(opts) if opts else 0, wirelen, data)
                seq += 1
                self.pos += n
            elif kind == _ng.PCAPNG_BT_SHB:
                self._section()
            elif kind == _ng.PCAPNG_BT_IDB:
                self._interface()
            elif kind == _ng.PCAPNG_BT_SPB:
                n = self._length()
                wirelen = struct.unpack_from("<I" if self.le else ">I", buf, self.pos + 8)[0]
                caplen = min(wirelen, n - 16)
                if workers == 1 or seq // batch % workers == mine:
                    yield (0, seq, self.first_id, 0, wirelen, buf[self.pos + 12 : self.pos + 12 + caplen])
                seq += 1
                self.pos += n
            else:
                self.pos += self._length()


def _read_pcap(f: BinaryIO, path: str) -> Capture:
    try:
        reader = dpkt.pcap.Reader(f)
    except (ValueError, dpkt.UnpackError) as exc:
        f.close()
        raise NsnetError(f"{path}: {exc}") from exc
    iface = Interface(name=os.path.basename(path), linktype=reader.datalink(), snaplen=reader.snaplen)

    def frames(stripe: Stripe | None) -> Iterator[Frame]:
        try:
            micro = isinstance(reader._divisor, float)  # else a Decimal: nanoseconds, exact
            for seq, (ts, data) in enumerate(reader):
                stamp = round(ts * 1e6) * 1000 if micro else int(ts * 1_000_000_000)
                yield (stamp, seq, 0, 0, len(data), bytes(data))
        finally:
            f.close()

    return Capture([iface], frames)
