"""The decoded layers of a frame as plain data, for ``nsnet capture --json`` (dpkt parses, as in
:mod:`nsnet.capture.decode`, whose :class:`~nsnet.capture.decode.Decoder` words inner VXLAN frames)."""

from __future__ import annotations

from typing import Any

import dpkt
from dpkt import arp as _arp
from dpkt import ethernet as _eth
from dpkt import icmp as _icmp
from dpkt import icmp6 as _icmp6
from dpkt import ip as _ip
from dpkt import ip6 as _ip6
from dpkt import tcp as _tcp
from dpkt import udp as _udp

from nsnet.capture.decode import (
    _VXLAN,
    ARP_OPS,
    ICMP6_TYPES,
    ICMP_TYPES,
    MAX_NESTING,
    VXLAN_PORT,
    Decoder,
    Fields,
    _mac,
    _ntoa,
    _ntop6,
    _tcp_options,
    tcp_flags,
)
from nsnet.inspect import vendor

_PLAIN = Decoder(cache=0)
"""Words inner frames for :func:`fields` called without a decoder."""


def fields(frame: bytes, wirelen: int, decoder: Decoder | None = None, depth: int = 0) -> Fields:
    """The decoded layers of a frame as plain data (``--json``).

    A VXLAN packet has a ``vxlan`` layer (``flags``, ``vni``) after ``udp``,
    and an ``inner`` one: the inner frame's ``kind`` and ``text`` as
    ``decoder`` words them, and its layers, in the same shape.
    """
    out: Fields = {}
    try:
        _fields(frame, out, decoder, depth)
    except Exception:  # any bytes can arrive: keep the layers decoded before the one that made no sense
        out["malformed"] = True
    return out


def _fields(frame: bytes, out: Fields, decoder: Decoder | None, depth: int) -> None:
    try:
        eth = _eth.Ethernet(frame)
    except (dpkt.UnpackError, ValueError, IndexError):
        return
    out["eth"] = {
        "src": _mac(eth.src),
        "dst": _mac(eth.dst),
        "src_vendor": vendor(_mac(eth.src)),
        "dst_vendor": vendor(_mac(eth.dst)),
        "type": eth.type if eth.type > 1500 else None,
        "vlan": [tag.id for tag in getattr(eth, "vlan_tags", None) or []],
    }
    data = eth.data
    if isinstance(data, _arp.ARP):
        if data.pln == 4 and data.hln == 6:
            out["arp"] = {
                "op": ARP_OPS.get(data.op, str(data.op)),
                "sender_mac": _mac(data.sha),
                "sender_ip": _ntoa(data.spa),
                "target_mac": _mac(data.tha),
                "target_ip": _ntoa(data.tpa),
            }
        return
    if isinstance(data, _ip.IP):
        out["ip"] = {
            "version": 4,
            "src": _ntoa(data.src),
            "dst": _ntoa(data.dst),
            "proto": data.p,
            "ttl": data.ttl,
            "id": data.id,
            "length": data.len,
            "df": bool(data.df),
            "mf": bool(data.mf),
            "offset": data.offset * 8,
        }
        length = data.len - (data.hl << 2)
    elif isinstance(data, _ip6.IP6):
        ext = sum(h.length for h in data.all_extension_headers)
        out["ip"] = {
            "version": 6,
            "src": _ntop6(data.src),
            "dst": _ntop6(data.dst),
            "proto": getattr(data, "p", data.nxt),
            "ttl": data.hlim,
            "length": data.plen + 40,
            "extension_headers": [h.__class__.__name__ for h in data.all_extension_headers],
        }
        length = data.plen - ext
    else:
        return
    _transport(data.data, length, out, decoder, depth)


def _transport(l4: Any, length: int, out: Fields, decoder: Decoder | None, depth: int) -> None:
    """The layer above IP: TCP, UDP (and VXLAN in it), ICMP or ICMPv6."""
    if isinstance(l4, _tcp.TCP):
        out["tcp"] = {
            "sport": l4.sport,
            "dport": l4.dport,
            "flags": tcp_flags(l4.flags),
            "seq": l4.seq,
            "ack": l4.ack,
            "win": l4.win,
            "options": _tcp_options(l4.opts) if l4.opts else "",
            "length": max(length - (l4.off << 2), 0),
        }
    elif isinstance(l4, _udp.UDP):
        out["udp"] = {"sport": l4.sport, "dport": l4.dport, "length": l4.ulen - 8}
        if VXLAN_PORT in (l4.sport, l4.dport) and l4.ulen >= 16 and len(l4.data) >= 8:
            _vxlan(l4, out, decoder, depth)
    elif isinstance(l4, _icmp.ICMP):
        icmp: Fields = {"type": l4.type, "code": l4.code, "name": ICMP_TYPES.get(l4.type, f"type-#{l4.type}")}
        if isinstance(l4.data, _icmp.ICMP.Echo):
            icmp.update(id=l4.data.id, seq=l4.data.seq)
        icmp["length"] = length
        out["icmp"] = icmp
    elif isinstance(l4, _icmp6.ICMP6):
        icmp6: Fields = {"type": l4.type, "code": l4.code, "name": ICMP6_TYPES.get(l4.type, f"type-#{l4.type}")}
        if isinstance(l4.data, _icmp6.ICMP6.Echo):
            icmp6.update(id=l4.data.id, seq=l4.data.seq)
        elif l4.type in (135, 136) and isinstance(l4.data, bytes) and len(l4.data) >= 20:
            icmp6["target"] = _ntop6(l4.data[4:20])
        icmp6["length"] = length
        out["icmp6"] = icmp6


def _vxlan(udp: Any, out: Fields, decoder: Decoder | None, depth: int) -> None:
    """A VXLAN header and, up to :data:`MAX_NESTING` deep, the inner frame."""
    flags, vni = _VXLAN.unpack_from(udp.data)
    out["vxlan"] = {"flags": flags, "vni": vni >> 8}
    if depth < MAX_NESTING:
        frame, wirelen = udp.data[8:], udp.ulen - 16
        decoded = (decoder or _PLAIN).inner(frame, wirelen, depth + 1)
        out["inner"] = {
            "kind": decoded.kind,
            "text": decoded.text,
            **fields(frame, wirelen, decoder, depth + 1),
        }
