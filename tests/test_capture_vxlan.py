"""capture: VXLAN decoded as tcpdump decodes it, on a real underlay and on frames built with dpkt."""

from __future__ import annotations

import io
import json
import re
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dpkt
import pytest

from nsnet.capture import JsonSink, PcapngSink, Point, TextSink, Writer, assign_tags, fields
from nsnet.capture.decode import MAX_NESTING, Decoder
from nsnet.capture.pcapng import Interface
from nsnet.capture.timeline import LiveCapture, run

from conftest import nsnet, sh

STAMP = r"\d\d:\d\d:\d\d\.\d{6}"


def _entries(tcpdump_output: str) -> list[str]:
    """tcpdump's output, one entry per packet: a VXLAN packet's lines joined with newlines."""
    entries: list[str] = []
    for line in tcpdump_output.splitlines():
        if re.match(rf"{STAMP} ", line):  # not a MAC, which may start with two digits and a colon
            entries.append(line)
        else:
            entries[-1] += "\n" + line
    return entries


def _timeline(out: str) -> list[str]:
    """The text sink's lines as tcpdump prints them: tag and direction dropped, continuation lines unindented."""
    entries: list[str] = []
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("["))  # past the legend
    for line in lines[first:]:
        if line.startswith("["):
            _tag, stamp, _direction, text = line.split(" ", 3)
            entries.append(f"{stamp} {text.lstrip()}")
        else:
            assert line.startswith(" " * 24), line  # under the first line's text
            entries[-1] += "\n" + line[24:]
    return entries


# -- a real underlay -----------------------------------------------------------


@pytest.fixture
def underlay(lab_name: str) -> Iterator[tuple[str, str]]:
    """Two namespaces: a veth underlay 192.168.100.1/24 <-> .2, a VXLAN (VNI 42) over it, 10.99.0.1/24 <-> .2."""
    a, b = f"{lab_name}-A", f"{lab_name}-B"
    try:
        for ns in (a, b):
            sh("ip", "netns", "add", ns)
            # No IPv6: only the ping's ARP and ICMP cross the tunnel, nothing at a random moment.
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        sh("ip", "-n", a, "link", "add", "u0", "type", "veth", "peer", "name", "u0", "netns", b)
        for ns, me, peer, overlay in ((a, "1", "2", "10.99.0.1/24"), (b, "2", "1", "10.99.0.2/24")):
            sh("ip", "-n", ns, "addr", "add", f"192.168.100.{me}/24", "dev", "u0")
            sh("ip", "-n", ns, "link", "set", "u0", "up")
            # The source port is the kernel's choice in a range; the default range holds 49152, which
            # tcpdump decodes as Broadcom's LI shim, whatever the other port: keep clear of it.
            sh(
                "ip", "-n", ns, "link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789",
                "srcport", "40000", "40100", "local", f"192.168.100.{me}", "remote", f"192.168.100.{peer}",
                "dev", "u0",
            )  # fmt: skip
            sh("ip", "-n", ns, "addr", "add", overlay, "dev", "vx0")
            sh("ip", "-n", ns, "link", "set", "vx0", "up")
        yield a, b
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def _mac(ns: str, iface: str) -> str:
    return str(json.loads(sh("ip", "-n", ns, "-j", "link", "show", iface))[0]["address"])


def test_vxlan_on_the_underlay_agrees_with_tcpdump(underlay: tuple[str, str], tmp_path: Path) -> None:
    a, b = underlay
    points = assign_tags([Point("A", "u0", a), Point("B", "u0", b)])
    written = tmp_path / "vxlan.pcapng"
    text = io.StringIO()
    json_sink = JsonSink(points, by_packet=True)
    sinks = [PcapngSink(str(written), points, "udp port 4789"), json_sink, TextSink(points, text)]
    stop = threading.Event()
    with LiveCapture(points, "udp port 4789") as live:  # the sockets are bound once this returns
        thread = threading.Thread(target=run, args=(live, sinks), kwargs={"stop": stop.is_set}, daemon=True)
        thread.start()
        try:
            pinged = subprocess.run(
                ["ip", "netns", "exec", a, "ping", "-c", "2", "-i", "0.2", "-W", "1", "10.99.0.2"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            time.sleep(0.3)
        finally:
            stop.set()
            thread.join(30)
    assert not thread.is_alive()
    assert pinged.returncode == 0, pinged.stdout + pinged.stderr

    # Every packet as tcpdump prints it: the VXLAN header, then the inner frame on the next line.
    theirs = _entries(sh("tcpdump", "-n", "-e", "-r", str(written)))
    packets = json_sink.packets
    assert [f"{p['time']} {p['text']}" for p in packets] == theirs
    assert _timeline(text.getvalue()) == theirs
    # ARP request and reply, two echo requests and replies, each seen leaving one end and reaching the other.
    assert len(packets) == 12
    kinds = [(p["kind"], p["tag"], p["direction"]) for p in packets]
    assert kinds[:4] == [
        ("VXLAN 42: ARP request", "A", "out"),
        ("VXLAN 42: ARP request", "B", "in"),
        ("VXLAN 42: ARP reply", "B", "out"),
        ("VXLAN 42: ARP reply", "A", "in"),
    ]
    assert [k for k, tag, _ in kinds[4:] if tag == "A"] == [
        "VXLAN 42: ICMP echo request",
        "VXLAN 42: ICMP echo reply",
    ] * 2

    outer = {"A": _mac(a, "u0"), "B": _mac(b, "u0")}
    inner = {"A": _mac(a, "vx0"), "B": _mac(b, "vx0")}
    echoes = [p for p in packets if p["tag"] == "A" and "echo" in p["kind"]]
    ident = echoes[0]["inner"]["icmp"]["id"]
    for n, p in enumerate(echoes):
        request = n % 2 == 0
        seq = n // 2 + 1
        there, back = ("A", "B") if request else ("B", "A")
        me, peer = ("1", "2") if request else ("2", "1")
        name = "echo request" if request else "echo reply"
        # The JSON: outer layers, the VXLAN header, the inner frame's layers.
        assert p["eth"]["src"] == outer[there] and p["eth"]["dst"] == outer[back]
        assert (p["ip"]["src"], p["ip"]["dst"]) == (f"192.168.100.{me}", f"192.168.100.{peer}")
        assert p["udp"]["dport"] == 4789 and 40000 <= p["udp"]["sport"] <= 40100
        assert p["vxlan"] == {"flags": 0x08, "vni": 42}
        assert p["inner"]["kind"] == f"ICMP {name}"
        assert p["inner"]["eth"]["src"] == inner[there] and p["inner"]["eth"]["dst"] == inner[back]
        assert (p["inner"]["ip"]["src"], p["inner"]["ip"]["dst"]) == (f"10.99.0.{me}", f"10.99.0.{peer}")
        assert p["inner"]["icmp"] == {
            "type": 8 if request else 0,
            "code": 0,
            "name": name,
            "id": ident,
            "seq": seq,
            "length": 64,
        }
        # The text, and tcpdump's line for the same packet.
        outer_line, inner_line = p["text"].split("\n")
        assert outer_line == (
            f"{outer[there]} > {outer[back]}, ethertype IPv4 (0x0800), length 148: "
            f"192.168.100.{me}.{p['udp']['sport']} > 192.168.100.{peer}.4789: VXLAN, flags [I] (0x08), vni 42"
        )
        assert inner_line == (
            f"{inner[there]} > {inner[back]}, ethertype IPv4 (0x0800), length 98: "
            f"10.99.0.{me} > 10.99.0.{peer}: ICMP {name}, id {ident}, seq {seq}, length 64"
        )
        assert f"{p['time']} {p['text']}" in theirs

    # --by-packet: each encapsulated packet crosses the underlay, A to B or B to A.
    groups = json_sink.groups
    assert groups is not None
    assert [(g["kind"], g["path"]) for g in groups] == [
        ("VXLAN 42: ARP request", ["A", "B"]),
        ("VXLAN 42: ARP reply", ["B", "A"]),
        ("VXLAN 42: ICMP echo request", ["A", "B"]),
        ("VXLAN 42: ICMP echo reply", ["B", "A"]),
        ("VXLAN 42: ICMP echo request", ["A", "B"]),
        ("VXLAN 42: ICMP echo reply", ["B", "A"]),
    ]

    # The file read back by the command: the same packets, the same layers; steps indented under their text.
    shown = nsnet("capture", "--read", str(written), "--json")
    assert shown.code == 0, shown.text
    again = json.loads(shown.out)["packets"]
    assert [(p["text"], p["vxlan"], p["inner"]) for p in again] == [
        (p["text"], p["vxlan"], p["inner"]) for p in packets
    ]
    steps = nsnet("capture", "--read", str(written), "--by-packet")
    assert steps.code == 0, steps.text
    lines = steps.out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("#3 VXLAN 42: ICMP echo request: A → B  (+"))
    assert lines[at + 1].startswith("   ") and lines[at + 1].endswith("VXLAN, flags [I] (0x08), vni 42")
    assert lines[at + 2] == " " * 19 + echoes[0]["text"].split("\n")[1]


# -- frames built with dpkt ------------------------------------------------------

RED, BLUE = bytes.fromhex("1af3d88f9a04"), bytes.fromhex("6e8b96764af3")
IN1, IN2 = bytes.fromhex("b6d2fbc1851e"), bytes.fromhex("f239f8174869")


def _eth(src: bytes, dst: bytes, kind: int, data: Any) -> bytes:
    return bytes(dpkt.ethernet.Ethernet(src=src, dst=dst, type=kind, data=bytes(data)))


def _ip4(src: str, dst: str, p: int, data: Any) -> Any:
    packet = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=p, ttl=64, id=7, data=data)
    packet.len = 20 + len(bytes(data))
    return packet


def _a6(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, text)


def _udp(sport: int, dport: int, data: bytes) -> Any:
    return dpkt.udp.UDP(sport=sport, dport=dport, ulen=8 + len(data), data=data)


def _vxlan(vni: int, frame: bytes, flags: int = 0x08) -> bytes:
    return struct.pack(">B3xI", flags, vni << 8) + frame


def _outer(payload: bytes, sport: int = 40000, dport: int = 4789) -> bytes:
    return _eth(RED, BLUE, 0x0800, _ip4("192.168.100.1", "192.168.100.2", 17, _udp(sport, dport, payload)))


def _hbh(l4: Any) -> bytes:
    """IPv6 with a hop-by-hop header (a PadN option) before UDP."""
    body = bytes([17, 0]) + b"\x01\x04" + bytes(4) + bytes(l4)
    head = bytes(dpkt.ip6.IP6(src=_a6("fd00::1"), dst=_a6("fd00::2"), nxt=0, hlim=1, plen=len(body)))[:40]
    return _eth(RED, BLUE, 0x86DD, head + body)


def _frames() -> list[bytes]:
    echo = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=321, seq=7, data=b"x" * 56))
    inner = _eth(IN1, IN2, 0x0800, _ip4("10.99.0.1", "10.99.0.2", 1, echo))
    arp = _eth(
        IN1,
        b"\xff" * 6,
        0x0806,
        dpkt.arp.ARP(op=1, sha=IN1, spa=socket.inet_aton("10.99.0.1"), tha=bytes(6), tpa=socket.inet_aton("10.99.0.2")),
    )
    tagged = inner[:12] + b"\x81\x00\x00\x0a" + inner[12:]
    v6 = dpkt.ip6.IP6(
        src=_a6("fd00::1"), dst=_a6("fd00::2"), nxt=17, hlim=64, data=bytes(_udp(40000, 4789, _vxlan(42, inner)))
    )
    v6.plen = len(v6.data)
    return [
        _outer(_vxlan(42, inner)),
        _outer(_vxlan(42, arp), sport=4789, dport=50000),  # either port
        _outer(_vxlan(16777215, inner, flags=0x00)),  # no I flag
        _outer(_vxlan(42, inner, flags=0x0C)),
        _outer(_vxlan(7, _outer(_vxlan(42, arp)))),  # VXLAN in VXLAN
        _outer(_vxlan(42, tagged)),
        _outer(b"\x08\x00\x00"),  # shorter than the header
        _outer(_vxlan(42, b"\x01\x02\x03")),  # an inner frame shorter than an Ethernet header
        _outer(_vxlan(42, b"")),
        _eth(RED, BLUE, 0x86DD, v6),
        _hbh(_udp(40000, 4789, _vxlan(42, inner))),
        _hbh(_udp(40000, 40124, b"z" * 10)),
        _outer(b"not vxlan", dport=4788),
    ]


def test_decoder_agrees_with_tcpdump_on_vxlan_frames(tmp_path: Path) -> None:
    frames = _frames()
    path = tmp_path / "vxlan.pcapng"
    writer = Writer(str(path), [Interface("RED:reth0")])
    base = 1_700_000_000_123_456_789
    writer.add([(base + i * 1000, i, 0, 0, len(f), f) for i, f in enumerate(frames)])
    writer.close()
    theirs = [entry.split(" ", 1)[1] for entry in _entries(sh("tcpdump", "-n", "-e", "-r", str(path)))]
    decoder = Decoder(vendors=False)
    decoded = [decoder.decode(f, len(f)) for f in frames]
    assert [d.text for d in decoded] == theirs
    assert [d.kind for d in decoded] == [
        "VXLAN 42: ICMP echo request",
        "VXLAN 42: ARP request",
        "VXLAN 16777215: ICMP echo request",
        "VXLAN 42: ICMP echo request",
        "VXLAN 7: VXLAN 42: ARP request",
        "VXLAN 42: ICMP echo request",
        "VXLAN invalid",
        "VXLAN 42: truncated",
        "VXLAN 42: truncated",
        "VXLAN 42: ICMP echo request",
        "VXLAN 42: ICMP echo request",
        "UDP",
        "UDP",
    ]
    # The JSON layers, and the inner frame's, in the same shape.
    first = fields(frames[0], len(frames[0]))
    assert first["udp"] == {"sport": 40000, "dport": 4789, "length": 106}
    assert first["vxlan"] == {"flags": 8, "vni": 42}
    assert first["inner"]["kind"] == "ICMP echo request" and first["inner"]["text"] == decoded[0].text.split("\n")[1]
    assert first["inner"]["eth"]["src"] == "b6:d2:fb:c1:85:1e" and first["inner"]["ip"]["dst"] == "10.99.0.2"
    assert first["inner"]["icmp"] == {"type": 8, "code": 0, "name": "echo request", "id": 321, "seq": 7, "length": 64}
    nested = fields(frames[4], len(frames[4]))
    assert nested["vxlan"]["vni"] == 7 and nested["inner"]["vxlan"]["vni"] == 42
    assert nested["inner"]["inner"]["arp"]["target_ip"] == "10.99.0.2"
    assert nested["inner"]["kind"] == "VXLAN 42: ARP request"
    assert fields(frames[2], len(frames[2]))["vxlan"] == {"flags": 0, "vni": 16777215}
    assert fields(frames[7], len(frames[7]))["inner"] == {"kind": "truncated", "text": " [|ether]"}
    assert "vxlan" not in fields(frames[6], len(frames[6])) and "vxlan" not in fields(frames[-1], len(frames[-1]))
    # The --read timeline: the inner frame on the next line, under the first one's text.
    shown = nsnet("capture", "--read", str(path))
    assert shown.code == 0, shown.text
    assert [entry.split(" ", 1)[1] for entry in _timeline(shown.out)] == theirs


def test_nesting_is_decoded_to_a_limit() -> None:
    echo = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=1, seq=1))
    frame = _eth(IN1, IN2, 0x0800, _ip4("10.99.0.1", "10.99.0.2", 1, echo))
    for vni in range(MAX_NESTING + 2):
        frame = _outer(_vxlan(vni, frame))
    decoded = Decoder(vendors=False).decode(frame, len(frame))
    lines = decoded.text.split("\n")
    assert len(lines) == MAX_NESTING + 1
    assert lines[-1].endswith(f"vni {1} (nested too deep)")
    assert decoded.kind.endswith("VXLAN 1: nested too deep") and decoded.kind.count("VXLAN") == MAX_NESTING + 1
    layers = fields(frame, len(frame))
    depth = 0
    while "inner" in layers:
        layers = layers["inner"]
        depth += 1
    assert depth == MAX_NESTING and layers["vxlan"]["vni"] == 1
