"""Frames decoded by dpkt, printed the way ``tcpdump -n -e`` prints them (as JSON: :mod:`nsnet.capture.fields`).

The protocol parsing is dpkt's (Ethernet with 802.1Q tags, ARP, IPv4, IPv6
with its extension headers, ICMP, ICMPv6, TCP with its options, UDP); this
module only words what dpkt found, in tcpdump's words, so that a line of
``nsnet capture`` and a line of ``tcpdump -n -e -r`` on the same file agree
(TCP sequence numbers are absolute, as with ``tcpdump -S``; application
protocols above TCP and UDP are not decoded).

VXLAN is the exception: UDP to or from port 4789 carries an 8-byte header
(flags, a 24-bit VNI; read here with :mod:`struct`, dpkt has no VXLAN module)
and an inner Ethernet frame, decoded by the same code as the outer one. As
tcpdump does, the inner frame's text follows the header on a line of its own:
a VXLAN packet's text is two lines (more for VXLAN in VXLAN, up to
:data:`MAX_NESTING` inner frames).

Decoding is a pure function of the frame's bytes, so a frame seen at several
capture points (the same bytes on both sides of a bridge) is decoded once:
:class:`Decoder` keeps the last few thousand results.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

import dpkt
from dpkt import arp as _arp
from dpkt import ethernet as _eth
from dpkt import icmp as _icmp
from dpkt import icmp6 as _icmp6
from dpkt import ip as _ip
from dpkt import ip6 as _ip6
from dpkt import llc as _llc
from dpkt import tcp as _tcp
from dpkt import udp as _udp

from nsnet.inspect import vendor

Fields = dict[str, Any]

ETHERTYPES = {
    0x0800: "IPv4",
    0x0806: "ARP",
    0x86DD: "IPv6",
    0x8100: "802.1Q",
    0x88A8: "802.1Q-QinQ",
    0x8035: "Reverse ARP",
    0x88CC: "LLDP",
    0x8847: "MPLS unicast",
    0x8848: "MPLS multicast",
    0x888E: "EAPOL",
    0x8863: "PPPoE D",
    0x8864: "PPPoE S",
}
ARP_OPS = {1: "request", 2: "reply", 3: "reverse request", 4: "reverse reply"}

ICMP_TYPES = {
    0: "echo reply",
    3: "unreachable",
    4: "source quench",
    5: "redirect",
    8: "echo request",
    9: "router advertisement",
    10: "router solicitation",
    11: "time exceeded",
    12: "parameter problem",
    13: "time stamp request",
    14: "time stamp reply",
    15: "information request",
    16: "information reply",
    17: "address mask request",
    18: "address mask reply",
}
# tcpdump's wording of "destination unreachable", by code (%s: the quoted packet's destination).
ICMP_UNREACH = {
    0: "net %s unreachable",
    1: "host %s unreachable",
    5: "%s unreachable - source route failed",
    6: "net %s unreachable - unknown",
    7: "host %s unreachable - unknown",
    8: "%s unreachable - source host isolated",
    9: "net %s unreachable - admin prohibited",
    10: "host %s unreachable - admin prohibited",
    11: "net %s unreachable - tos prohibited",
    12: "host %s unreachable - tos prohibited",
    13: "host %s unreachable - admin prohibited filter",
    14: "host %s unreachable - host precedence violation",
    15: "host %s unreachable - precedence cutoff",
}
ICMP6_TYPES = {
    1: "destination unreachable",
    2: "packet too big",
    3: "time exceeded in-transit",
    4: "parameter problem",
    128: "echo request",
    129: "echo reply",
    130: "multicast listener query",
    131: "multicast listener report",
    132: "multicast listener done",
    133: "router solicitation",
    134: "router advertisement",
    135: "neighbor solicitation",
    136: "neighbor advertisement",
    137: "redirect",
    143: "multicast listener report v2",
}
TRUNCATED = {0x0800: " [|ip]", 0x86DD: " [|ip6]", 0x0806: " [|arp]"}
IP_PROTOS = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 51: "ah", 58: "icmp6", 132: "sctp"}
# TCP flags in tcpdump's order and letters (FIN SYN RST PSH ACK URG ECE CWR).
TCP_FLAGS = ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x10, "."), (0x20, "U"), (0x40, "E"), (0x80, "W"))
TCP_OPT_NAMES = {0: "eol", 1: "nop", 4: "sackOK"}

VXLAN_PORT = 4789
MAX_NESTING = 8
"""Inner frames decoded in one frame at most (VXLAN in VXLAN...); a header deeper still is shown alone."""
_VXLAN = struct.Struct(">B3xI")  # flags, 3 reserved bytes; the VNI (24 bits) and a reserved byte

_ntoa = socket.inet_ntoa


def _ntop6(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, raw)


def _mac(raw: bytes) -> str:
    return raw.hex(":")


def _mac_v(raw: bytes) -> str:
    """A MAC, and its maker's name where the IEEE registry has one (tcpdump -e without -n does the same)."""
    text = raw.hex(":")
    maker = vendor(text)
    return f"{text} ({maker})" if maker else text


def ethertype_name(t: int) -> str:
    return ETHERTYPES.get(t, "Unknown")


def tcp_flags(flags: int) -> str:
    return "".join(letter for bit, letter in TCP_FLAGS if flags & bit) or "none"


def _tcp_options(buf: bytes) -> str:
    parts = []
    for opt in _tcp.parse_opts(buf):
        if opt is None:
            parts.append("bad opt")
            break
        code, data = opt
        if code in TCP_OPT_NAMES:
            parts.append(TCP_OPT_NAMES[code])
        elif code == 2 and len(data) == 2:
            parts.append(f"mss {int.from_bytes(data, 'big')}")
        elif code == 3 and len(data) == 1:
            parts.append(f"wscale {data[0]}")
        elif code == 8 and len(data) == 8:
            parts.append(f"TS val {int.from_bytes(data[:4], 'big')} ecr {int.from_bytes(data[4:], 'big')}")
        elif code == 5 and len(data) % 8 == 0:
            blocks = [
                f"{{{int.from_bytes(data[i : i + 4], 'big')}:{int.from_bytes(data[i + 4 : i + 8], 'big')}}}"
                for i in range(0, len(data), 8)
            ]
            parts.append(f"sack {len(blocks)} {''.join(blocks)}")
        else:
            parts.append(f"opt-{code}:{data.hex()}" if data else f"opt-{code}")
    return ",".join(parts)


class Decoded:
    """What one frame is: its tcpdump-style text, and a short kind for summaries (``ARP request``)."""

    __slots__ = ("kind", "text")

    def __init__(self, text: str, kind: str) -> None:
        self.text = text
        self.kind = kind


def group_key(frame: bytes) -> bytes:
    """The bytes that identify one packet at every point it crosses.

    The whole frame for anything but IP; for IPv4 and IPv6 the packet from
    the IP header on, with the fields a router rewrites at each hop (TTL and
    header checksum, hop limit) zeroed, so that a packet is recognised on both
    sides of a router as well as on both sides of a bridge.
    """
    t = frame[12:14]
    if t == b"\x08\x00" and len(frame) >= 34:
        return b"4" + frame[14:22] + b"\x00" + frame[23:24] + b"\x00\x00" + frame[26:]
    if t == b"\x86\xdd" and len(frame) >= 54:
        return b"6" + frame[14:21] + b"\x00" + frame[22:]
    return frame


class Decoder:
    """Decodes frames to text.

    ``cache``: how many recent results to remember: a frame seen at three
    points is then decoded once (0: decode every frame, for one point).
    """

    def __init__(self, vendors: bool = True, cache: int = 4096) -> None:
        self._vendors = vendors
        self._macs: dict[bytes, str] = {}
        self._cache: dict[bytes, Decoded] = {}
        self._limit = cache

    def decode(self, frame: bytes, wirelen: int) -> Decoded:
        if not self._limit:
            return self._safely(frame, wirelen)
        key = frame if wirelen == len(frame) else frame + wirelen.to_bytes(4, "big")
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= self._limit:
                self._cache.clear()
            found = self._cache[key] = self._safely(frame, wirelen)
        return found

    def _safely(self, frame: bytes, wirelen: int, depth: int = 0) -> Decoded:
        try:
            return self._decode(frame, wirelen, depth)
        except Exception:  # any bytes can arrive: a frame dpkt cannot make sense of is shown as such
            return Decoded(f"[|malformed], length {wirelen}", "malformed")

    def inner(self, frame: bytes, wirelen: int, depth: int) -> Decoded:
        """The frame inside ``depth`` VXLAN headers, decoded as an outer one (not remembered)."""
        return self._safely(frame, wirelen, depth)

    def mac(self, raw: bytes) -> str:
        """A MAC as tcpdump prints it, with its maker's name where the IEEE registry has one."""
        text = self._macs.get(raw)
        if text is None:
            if len(self._macs) > 65536:
                self._macs.clear()
            text = self._macs[raw] = _mac_v(raw) if self._vendors else _mac(raw)
        return text

    def _decode(self, frame: bytes, wirelen: int, depth: int = 0) -> Decoded:
        try:
            eth = _eth.Ethernet(frame)
        except (dpkt.UnpackError, ValueError, IndexError):
            return Decoded(" [|ether]" if depth else f"[|ether], length {wirelen}", "truncated")
        macs = self._macs
        src = macs.get(eth.src) or self.mac(eth.src)
        dst = macs.get(eth.dst) or self.mac(eth.dst)
        etype = eth.type
        if etype <= 1500:
            return Decoded(f"{src} > {dst}, {_llc_text(eth)}", "802.3")
        head = f"{src} > {dst}, ethertype {ETHERTYPES.get(etype, 'Unknown')} (0x{etype:04x}), length {wirelen}: "
        payload_len = wirelen - 14
        data = eth.data
        if etype in _VLAN_TYPES:
            for tag in getattr(eth, "vlan_tags", None) or ():
                etype = tag.type
                payload_len -= 4
                head += f"vlan {tag.id}, p {tag.pri}, ethertype {ethertype_name(etype)} (0x{etype:04x}), "
        layer = _LAYERS.get(type(data))
        if layer is not None:
            text, kind = layer(data, self, depth)
        elif isinstance(data, _arp.ARP):
            text, kind = _arp_text(data, payload_len, self.mac)
        elif etype in TRUNCATED:
            text, kind = TRUNCATED[etype], "truncated"
        else:
            return Decoded(head.rstrip(", :"), f"ethertype 0x{etype:04x}")
        return Decoded(head + text, kind)


def _llc_text(eth: Any) -> str:
    llc = getattr(eth, "llc", None)
    text = f"802.3, length {eth.type}"
    if isinstance(llc, _llc.LLC):
        text += f": LLC, dsap 0x{llc.dsap:02x}, ssap 0x{llc.ssap:02x}, ctrl 0x{llc.ctl:02x}"
        if llc.dsap == 0x42:
            text += ": STP"
    return text


def _arp_text(a: Any, length: int, mac: Callable[[bytes], str]) -> tuple[str, str]:
    if a.pro != 0x0800 or a.hln != 6 or a.pln != 4:
        return f"ARP, hardware {a.hrd}, protocol 0x{a.pro:04x}, op {a.op}, length {length}", "ARP"
    tpa, spa = _ntoa(a.tpa), _ntoa(a.spa)
    if a.op == 1:
        tha = f" ({mac(a.tha)})" if any(a.tha) else ""
        return f"Request who-has {tpa}{tha} tell {spa}, length {length}", "ARP request"
    if a.op == 2:
        return f"Reply {spa} is-at {mac(a.sha)}, length {length}", "ARP reply"
    return f"ARP op {a.op}, length {length}", f"ARP {ARP_OPS.get(a.op, a.op)}"


def _ipv4(ip: Any, decoder: Decoder, depth: int) -> tuple[str, str]:
    src, dst = _ntoa(ip.src), _ntoa(ip.dst)
    data = ip.data
    kind = type(data)
    if kind is _udp.UDP:
        sport, dport = data.sport, data.dport
        ends = f"{src}.{sport} > {dst}.{dport}: "
        if sport == VXLAN_PORT or dport == VXLAN_PORT:
            return _vxlan_text(ends, data, decoder, depth)
        return f"{ends}UDP, length {data.ulen - 8}", "UDP"
    length = ip.len - 20 - len(ip.opts)
    if kind is _tcp.TCP:
        return _tcp_text(f"{src}.{data.sport} > {dst}.{data.dport}", data, length)
    if kind is _icmp.ICMP:
        text, what = _icmp_text(data)
        return f"{src} > {dst}: ICMP {text}, length {length}", f"ICMP {what}"
    p = ip.p
    if ip.offset:
        return f"{src} > {dst}: ip-proto-{p}", f"IPv4 fragment ({IP_PROTOS.get(p, p)})"
    return f"{src} > {dst}: ip-proto-{p} {length}", f"IPv4 {IP_PROTOS.get(p, f'proto {p}')}"


def _icmp_text(m: Any) -> tuple[str, str]:
    t = m.type
    name = ICMP_TYPES.get(t, f"type-#{t}")
    data = m.data
    if t in (0, 8) and isinstance(data, _icmp.ICMP.Echo):
        return f"{name}, id {data.id}, seq {data.seq}", name
    if t == 3 and isinstance(data, _icmp.ICMP.Unreach):
        inner = data.data
        if not isinstance(inner, _ip.IP):
            return "unreachable", "unreachable"
        odst = _ntoa(inner.dst)
        code = m.code
        if code == 2:
            return f"{odst} protocol {inner.p} unreachable", "protocol unreachable"
        if code == 3:
            l4 = inner.data  # dpkt leaves a quoted TCP header of 8 bytes undecoded: its port is bytes 2-3
            dport = l4.dport if isinstance(l4, (_udp.UDP, _tcp.TCP)) else int.from_bytes(bytes(l4)[2:4], "big")
            proto = {6: "tcp", 17: "udp"}.get(inner.p)
            if proto:
                return f"{odst} {proto} port {dport} unreachable", "port unreachable"
            return f"{odst} protocol {inner.p} port {dport} unreachable", "port unreachable"
        if code == 4:
            return f"{odst} unreachable - need to frag (mtu {data.mtu})", "need to frag"
        wording = ICMP_UNREACH.get(code)
        if wording:
            return wording % odst, wording.replace(" %s", "").replace("%s ", "")
        return f"{odst} unreachable - #{code}", "unreachable"
    if t == 11:
        return ("ip reassembly time exceeded" if m.code == 1 else "time exceeded in-transit"), "time exceeded"
    return name, name


def _vxlan_text(ends: str, udp: Any, decoder: Decoder, depth: int) -> tuple[str, str]:
    """``VXLAN, flags [I] (0x08), vni 42``, then the inner frame on the next line, as tcpdump prints it."""
    length = udp.ulen - 8
    payload = udp.data
    if length < 8:
        return f"{ends}VXLAN (invalid)", "VXLAN invalid"
    if len(payload) < 8:
        return f"{ends}VXLAN [|vxlan]", "truncated"
    flags, vni = _VXLAN.unpack_from(payload)
    vni >>= 8
    text = f"{ends}VXLAN, flags [{'I' if flags & 0x08 else 'invalid'}] (0x{flags:02x}), vni {vni}"
    if depth >= MAX_NESTING:
        return f"{text} (nested too deep)", f"VXLAN {vni}: nested too deep"
    inner = decoder.inner(payload[8:], length - 8, depth + 1)
    return f"{text}\n{inner.text}", f"VXLAN {vni}: {inner.kind}"


def _tcp_text(ends: str, t: Any, ip_payload: int) -> tuple[str, str]:
    flags = t.flags
    hlen = t.off << 2
    length = max(ip_payload - hlen, 0)
    text = f"{ends}: Flags [{tcp_flags(flags)}]"
    if length or flags & 0x07:  # data, SYN, FIN or RST
        text += f", seq {t.seq}"
        if length:
            text += f":{(t.seq + length) & 0xFFFFFFFF}"
    if flags & 0x10:
        text += f", ack {t.ack}"
    text += f", win {t.win}"
    if flags & 0x20:
        text += f", urg {t.urp}"
    if t.opts:
        text += f", options [{_tcp_options(t.opts)}]"
    return f"{text}, length {length}", f"TCP [{tcp_flags(flags)}]"


def _ipv6(ip: Any, decoder: Decoder, depth: int) -> tuple[str, str]:
    src, dst = _ntop6(ip.src), _ntop6(ip.dst)
    data = ip.data
    prefix = "HBH " if 0 in ip.extension_hdrs else ""
    length = ip.plen - sum(h.length for h in ip.all_extension_headers)
    if isinstance(data, (_tcp.TCP, _udp.UDP)):
        # After a hop-by-hop header tcpdump has printed the addresses already: the ports come alone.
        if prefix:
            ends = f"{src} > {dst}: {prefix}{data.sport} > {data.dport}"
        else:
            ends = f"{src}.{data.sport} > {dst}.{data.dport}"
        if isinstance(data, _tcp.TCP):
            return _tcp_text(ends, data, length)
        if VXLAN_PORT in (data.sport, data.dport):
            return _vxlan_text(f"{ends}: ", data, decoder, depth)
        return f"{ends}: UDP, length {data.ulen - 8}", "UDP"
    if isinstance(data, _icmp6.ICMP6):
        text, kind = _icmp6_text(data)
        return f"{src} > {dst}: {prefix}ICMP6, {text}, length {length}", f"ICMP6 {kind}"
    p = getattr(ip, "p", ip.nxt)
    return f"{src} > {dst}: {prefix}ip-proto-{p} {length}", f"IPv6 {IP_PROTOS.get(p, f'proto {p}')}"


def _icmp6_text(m: Any) -> tuple[str, str]:
    t = m.type
    name = ICMP6_TYPES.get(t, f"type-#{t}")
    data = m.data
    if t in (128, 129) and isinstance(data, _icmp6.ICMP6.Echo):
        return f"{name}, id {data.id}, seq {data.seq}", name
    raw = data if isinstance(data, bytes) else bytes(data)
    if t == 135 and len(raw) >= 20:
        return f"{name}, who has {_ntop6(raw[4:20])}", name
    if t == 136 and len(raw) >= 20:
        return f"{name}, tgt is {_ntop6(raw[4:20])}", name
    if t == 143 and len(raw) >= 4:
        return f"{name}, {int.from_bytes(raw[2:4], 'big')} group record(s)", name
    return name, name


_LAYERS: dict[type, Callable[[Any, Decoder, int], tuple[str, str]]] = {_ip.IP: _ipv4, _ip6.IP6: _ipv6}
_VLAN_TYPES = frozenset({0x8100, 0x88A8, 0x9100})
