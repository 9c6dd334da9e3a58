"""capture: the seed's three tcpdumps as one timeline, on real namespaces, checked against tcpdump itself."""

from __future__ import annotations

import json
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import dpkt
import pytest

from nsnet.capture import Point, Writer, assign_tags, compile_filter, parallel, read, split_args
from nsnet.capture.decode import Decoder
from nsnet.capture.pcapng import Interface
from nsnet.errors import NsnetError

from conftest import EXAMPLES, nsnet, sh, unique_name

pytestmark = pytest.mark.unit

SEED = [
    ("ARP request", "R"),
    ("ARP request", "~"),
    ("ARP request", "B"),
    ("ARP reply", "B"),
    ("ARP reply", "~"),
    ("ARP reply", "R"),
    ("ICMP echo request", "R"),
    ("ICMP echo request", "~"),
    ("ICMP echo request", "B"),
    ("ICMP echo reply", "B"),
    ("ICMP echo reply", "~"),
    ("ICMP echo reply", "R"),
]
THREE = ("RED:reth0", "host:br0", "BLUE:beth0")


class Capture:
    """``nsnet capture`` running in the background: started, ready, then stopped or finished."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nsnet", "capture", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self.ready = threading.Event()
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read(self, stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)
            if line.startswith("capturing in lab"):
                self.ready.set()
        self.ready.set()  # ended before it was ready: wait_ready() reports it

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.ready.wait(timeout), "capture did not start in time"
        assert self.proc.poll() is None, f"capture ended early: {''.join(self.err)}"

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for t in self._threads:
            t.join(10)
        return code, "".join(self.out), "".join(self.err)


def up(lab: str, example: str = "lab2-bridge-fixed.yaml") -> None:
    result = nsnet("up", str(EXAMPLES / example), "--name", lab, "-q")
    assert result.code == 0, result.text


def ping(ns: str, count: int = 1, target: str = "11.11.11.3") -> str:
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, "ping", "-c", str(count), "-i", "0.2", "-W", "1", target],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return proc.stdout


def capture_ping(lab: str, *args: str, count: int = 1) -> tuple[str, str]:
    """Capture while RED pings BLUE, then Ctrl-C; returns (stdout, stderr) of the capture."""
    cap = Capture(lab, *args, "--duration", "60")
    cap.wait_ready()
    ping(f"{lab}-RED", count)
    time.sleep(0.3)
    cap.proc.send_signal(signal.SIGINT)
    code, out, err = cap.finish()
    assert code == 0, err
    return out, err


def sequence(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["kind"], p["tag"]) for p in doc["packets"]]


def test_one_ping_crosses_the_three_points_in_the_seeds_order(lab_name: str, tmp_path: Path) -> None:
    up(lab_name)
    out, err = capture_ping(lab_name, *THREE, "arp or icmp", "--json")
    doc = json.loads(out)
    assert [p["point"] for p in doc["points"]] == list(THREE)
    assert [p["tag"] for p in doc["points"]] == ["R", "~", "B"]
    assert sequence(doc) == SEED
    stamps = [p["ts_ns"] for p in doc["packets"]]
    assert stamps == sorted(stamps)
    red_mac = json.loads(sh("ip", "-n", f"{lab_name}-RED", "-j", "link", "show", "reth0"))[0]["address"]
    blue_mac = json.loads(sh("ip", "-n", f"{lab_name}-BLUE", "-j", "link", "show", "beth0"))[0]["address"]
    request, reply = doc["packets"][0], doc["packets"][3]
    assert request["arp"] == {
        "op": "request",
        "sender_mac": red_mac,
        "sender_ip": "11.11.11.2",
        "target_mac": "00:00:00:00:00:00",
        "target_ip": "11.11.11.3",
    }
    assert request["eth"]["dst"] == "ff:ff:ff:ff:ff:ff" and request["direction"] == "out"
    assert reply["arp"]["sender_mac"] == blue_mac and reply["eth"]["src"] == blue_mac
    echo = doc["packets"][6]
    assert echo["icmp"]["name"] == "echo request" and echo["icmp"]["seq"] == 1
    assert echo["ip"]["src"] == "11.11.11.2" and echo["ip"]["dst"] == "11.11.11.3"
    assert [p["direction"] for p in doc["packets"][6:9]] == ["out", "in", "in"]
    # Every point: 4 packets, as many counted by the kernel, none dropped.
    for point in doc["summary"]["points"]:
        assert (point["packets"], point["received"], point["dropped"]) == (4, 4, 0), point
    assert "12 packets" in err and "0 dropped by kernel" in err


def test_by_packet_shows_each_packets_journey(lab_name: str) -> None:
    up(lab_name)
    out, _ = capture_ping(lab_name, *THREE, "arp or icmp", "--by-packet")
    steps = re.findall(r"^#(\d+) (.+?): (.+?)  \((.*?)\)$", out, re.M)
    assert [(n, kind, path) for n, kind, path, _ in steps] == [
        ("1", "ARP request", "R → ~ → B"),
        ("2", "ARP reply", "B → ~ → R"),
        ("3", "ICMP echo request", "R → ~ → B"),
        ("4", "ICMP echo reply", "B → ~ → R"),
    ]
    for *_, hops in steps:
        assert re.fullmatch(r"\+[\d.]+ (µs|ms), \+[\d.]+ (µs|ms)", hops), hops
    assert out.startswith("lab " + lab_name + ", capture points:\n  [R] RED:reth0")


def test_unfixed_lab_the_echo_request_never_reaches_blue(lab_name: str) -> None:
    up(lab_name, "lab2-bridge.yaml")
    out, _ = capture_ping(lab_name, *THREE, "arp or icmp", "--json", "--by-packet")
    doc = json.loads(out)
    seen = sequence(doc)
    assert seen[:6] == SEED[:6]  # ARP crosses the bridge
    requests = [tag for kind, tag in seen if kind == "ICMP echo request"]
    assert requests == ["R", "~"]
    assert not [tag for kind, tag in seen if kind == "ICMP echo reply"]
    step = next(g for g in doc["groups"] if g["kind"] == "ICMP echo request")
    assert step["path"] == ["R", "~"] and step["missing"] == ["B"]


def test_decoded_lines_agree_with_tcpdump_on_the_written_file(lab_name: str, tmp_path: Path) -> None:
    up(lab_name)
    written = tmp_path / "lab2.pcapng"
    out, _ = capture_ping(lab_name, *THREE, "arp or icmp", "-w", str(written), "--print", count=2)
    ours = [line for line in out.splitlines() if line.startswith("[")]
    assert len(ours) == 18  # ARP request and reply, two echo requests and replies, at three points
    theirs = sh("tcpdump", "-n", "-e", "-r", str(written)).splitlines()
    assert len(theirs) == len(ours)
    for line, reference in zip(ours, theirs, strict=True):
        _tag, stamp, _direction, text = line.split(" ", 3)
        assert f"{stamp} {text.strip()}" == reference
    # Nanoseconds survive the file: tcpdump --nano agrees with --read --json.
    doc = json.loads(nsnet("capture", "--read", str(written), "--json").out)
    nano = sh("tcpdump", "-n", "--nano", "-r", str(written)).splitlines()
    for packet, reference in zip(doc["packets"], nano, strict=True):
        assert reference.split()[0].endswith(f".{packet['ts_ns'] % 10**9:09d}")
    assert doc["summary"]["stopped"] == "end"
    first = json.loads(nsnet("capture", "--read", str(written), "-c", "1", "--json").out)
    assert first["summary"]["stopped"] == "count" and first["summary"]["packets"] == 1
    # Reading the file gives back the same timeline.
    again = nsnet("capture", "--read", str(written))
    assert again.code == 0, again.text
    assert [line for line in again.out.splitlines() if line.startswith("[")] == ours


def test_pcapng_has_an_interface_per_point(lab_name: str, tmp_path: Path) -> None:
    up(lab_name)
    written = tmp_path / "points.pcapng"
    capture_ping(lab_name, *THREE, "icmp", "-w", str(written))
    names, ids = [], []
    data = written.read_bytes()
    at = 0
    while at < len(data):  # walk the blocks with dpkt's own block classes
        kind, length = struct.unpack_from("<II", data, at)
        block = data[at : at + length]
        if kind == dpkt.pcapng.PCAPNG_BT_IDB:
            idb = dpkt.pcapng.InterfaceDescriptionBlockLE(block)
            opts = {o.code: o.data for o in idb.opts}
            names.append(opts[dpkt.pcapng.PCAPNG_OPT_IF_NAME].decode())
            assert opts[dpkt.pcapng.PCAPNG_OPT_IF_TSRESOL] == b"\x09"
            assert opts[dpkt.pcapng.PCAPNG_OPT_IF_FILTER] == b"\x00icmp"
            assert idb.linktype == 1
        elif kind == dpkt.pcapng.PCAPNG_BT_EPB:
            ids.append(dpkt.pcapng.EnhancedPacketBlockLE(block).iface_id)
        at += length
    assert names == list(THREE)
    assert ids == [0, 1, 2, 2, 1, 0]  # echo request R ~ B, echo reply B ~ R
    found = read(str(written))
    assert [i.name for i in found.interfaces] == list(THREE)
    # out at R, in at B; br0 sees them only as promiscuous (to another host)
    assert [(f[2], f[3]) for f in found.frames] == [(0, 4), (1, 3), (2, 0), (2, 4), (1, 3), (0, 0)]


def test_without_promiscuous_mode_the_bridge_sees_only_broadcasts(lab_name: str) -> None:
    up(lab_name)
    out, _ = capture_ping(lab_name, *THREE, "arp or icmp", "--json", "--no-promisc")
    seen = sequence(json.loads(out))
    assert [kind for kind, tag in seen if tag == "~"] == ["ARP request"]
    assert [s for s in seen if s[1] != "~"] == [s for s in SEED if s[1] != "~"]


def test_a_filter_excludes_arp(lab_name: str) -> None:
    up(lab_name)
    out, _ = capture_ping(lab_name, *THREE, "icmp", "--json")
    kinds = [kind for kind, _ in sequence(json.loads(out))]
    assert kinds == ["ICMP echo request"] * 3 + ["ICMP echo reply"] * 3


def test_node_alone_and_default_points(lab_name: str) -> None:
    up(lab_name)
    out, _ = capture_ping(lab_name, "RED", "host", "icmp", "--json")
    doc = json.loads(out)
    assert [(p["tag"], p["point"]) for p in doc["points"]] == [
        ("R", "RED:reth0"),
        ("~1", "host:br0"),
        ("~2", "host:reth1"),
        ("~3", "host:beth1"),
    ]
    # reth1 receives the request from RED, br0 passes it up; beth1 sends it to BLUE.
    assert next(p["tag"] for p in doc["packets"] if p["kind"] == "ICMP echo request") == "R"
    assert {p["tag"] for p in doc["packets"]} == {"R", "~1", "~2", "~3"}
    out, _ = capture_ping(lab_name, "icmp", "--json")
    assert [p["point"] for p in json.loads(out)["points"]] == ["RED:reth0", "BLUE:beth0", "host:br0"]


def test_tcp_and_udp_agree_with_tcpdump(lab_name: str, tmp_path: Path) -> None:
    up(lab_name)
    written = tmp_path / "tcp.pcapng"
    server = subprocess.Popen(
        ["ip", "netns", "exec", f"{lab_name}-BLUE", sys.executable, "-c", _SERVER],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and select.select([server.stdout], [], [], 30)[0], "server did not start"
        assert server.stdout.readline().strip() == "listening"
        cap = Capture(lab_name, "RED:reth0", "BLUE:beth0", "tcp or udp", "-w", str(written), "--duration", "60")
        cap.wait_ready()
        subprocess.run(
            ["ip", "netns", "exec", f"{lab_name}-RED", sys.executable, "-c", _CLIENT],
            check=True,
            timeout=30,
        )
        time.sleep(0.3)
        cap.proc.send_signal(signal.SIGINT)
        code, _, err = cap.finish()
        assert code == 0, err
    finally:
        server.kill()
        server.wait()
    shown = nsnet("capture", "--read", str(written), "--json")
    doc = json.loads(shown.out)
    ours = [f"{p['time']} {p['text']}" for p in doc["packets"]]
    theirs = sh("tcpdump", "-S", "-n", "-e", "-r", str(written)).splitlines()
    assert ours == theirs
    flags = [p["tcp"]["flags"] for p in doc["packets"] if "tcp" in p and p["tag"] == "R"]
    assert flags[:3] == ["S", "S.", "."] and "P." in flags and "F." in flags
    udp = [p for p in doc["packets"] if "udp" in p]
    assert len(udp) == 2 and udp[0]["udp"] == {"sport": udp[0]["udp"]["sport"], "dport": 40124, "length": 5}


_SERVER = """
import socket
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("11.11.11.3", 40123)); t.listen(1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("11.11.11.3", 40124))
print("listening", flush=True)
c, _ = t.accept(); c.sendall(c.recv(100).upper()); c.close()
"""
_CLIENT = """
import socket
c = socket.create_connection(("11.11.11.3", 40123), timeout=10)
c.sendall(b"hello"); c.recv(100); c.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b"hello", ("11.11.11.3", 40124))
"""


def test_mac_makers_are_named(new_lab_name: list[str], tmp_path: Path) -> None:
    topology = tmp_path / "vendor.yaml"
    text = (EXAMPLES / "lab2-bridge-fixed.yaml").read_text()
    text = text.replace(
        "reth0: {addresses: [11.11.11.2/24]}", "reth0: {addresses: [11.11.11.2/24], mac: '00:1b:21:aa:bb:cc'}"
    )
    topology.write_text(text)
    lab = unique_name()
    new_lab_name.append(lab)
    result = nsnet("up", str(topology), "--name", lab, "-q")
    assert result.code == 0, result.text
    out, _ = capture_ping(lab, "RED:reth0", "arp", "--json")
    request = json.loads(out)["packets"][0]
    assert request["text"].startswith("00:1b:21:aa:bb:cc (Intel Corporate) > ff:ff:ff:ff:ff:ff, ethertype ARP")
    assert request["eth"]["src_vendor"] == "Intel Corporate" and request["eth"]["dst_vendor"] is None
    assert request["arp"]["sender_mac"] == "00:1b:21:aa:bb:cc"


def test_ctrl_c_stops_cleanly_with_a_summary(lab_name: str) -> None:
    up(lab_name)
    cap = Capture(lab_name, *THREE, "icmp")
    cap.wait_ready()
    ping(f"{lab_name}-RED")
    time.sleep(0.5)
    cap.proc.send_signal(signal.SIGINT)
    code, out, err = cap.finish()
    assert code == 0, err
    assert "Traceback" not in err
    assert re.search(r"^6 packets in [\d.]+ s \(interrupted\)$", err, re.M), err
    for tag, point in (("R", "RED:reth0"), ("~", "host:br0"), ("B", "BLUE:beth0")):
        assert re.search(
            rf"^  \[{re.escape(tag)}\] {point} +2 packets, 2 received by filter, 0 dropped by kernel$", err, re.M
        ), err
    assert len([line for line in out.splitlines() if line.startswith("[")]) == 6


def test_capture_ends_when_its_interfaces_are_deleted(lab_name: str) -> None:
    up(lab_name)
    cap = Capture(lab_name, "RED:reth0", "host:reth1", "icmp", "--duration", "60")
    cap.wait_ready()
    started = time.monotonic()
    sh("ip", "-n", f"{lab_name}-host", "link", "del", "reth1")  # and its peer, RED's reth0
    code, _, err = cap.finish(timeout=30)
    assert code == 0, err
    assert time.monotonic() - started < 20
    assert re.search(r"^\d+ packets? in [\d.]+ s \(interfaces gone\)$", err, re.M), err
    assert err.count("(interface gone)") == 2


def test_count_stops_after_n_packets(lab_name: str) -> None:
    up(lab_name)
    cap = Capture(lab_name, *THREE, "icmp", "--count", "4", "--duration", "30")
    cap.wait_ready()
    ping(f"{lab_name}-RED", count=2)
    code, out, err = cap.finish()
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert [line.split()[0] for line in lines] == ["[R]", "[~]", "[B]", "[B]"]
    assert re.search(r"^4 packets in", err, re.M)


def test_errors_are_clear(lab_name: str) -> None:
    up(lab_name)
    bad = nsnet("capture", lab_name, "RED:eth9")
    assert bad.code == 4 and "has no interface 'eth9'" in bad.err and "reth0" in bad.err
    bad = nsnet("capture", lab_name, "RED", "icmp and (")
    assert bad.code == 2 and "bad capture filter 'icmp and ('" in bad.err
    bad = nsnet("capture", "nosuchlab", "RED")
    assert bad.code == 4 and "no lab named 'nosuchlab'" in bad.err
    bad = nsnet("capture", "--read", "/nonexistent.pcapng")
    assert bad.code == 2 and "cannot read" in bad.err


# -- without namespaces --------------------------------------------------------


def test_points_and_filter_are_told_apart() -> None:
    nodes = {"RED", "BLUE", "host"}
    assert split_args(["RED:reth0", "host:br0", "BLUE:beth0"], nodes) == (["RED:reth0", "host:br0", "BLUE:beth0"], "")
    assert split_args(["RED", "icmp"], nodes) == (["RED"], "icmp")
    assert split_args(["RED", "host", "11.11.11.3"], nodes) == (["RED"], "host 11.11.11.3")
    assert split_args(["RED", "host"], nodes) == (["RED", "host"], "")
    assert split_args(["RED", "host", "icmp"], nodes) == (["RED", "host"], "icmp")
    assert split_args(["host", "BLUE", "tcp", "port", "80"], nodes) == (["host", "BLUE"], "tcp port 80")
    assert split_args(["arp or icmp"], nodes) == ([], "arp or icmp")


def test_tags_are_short_and_unique() -> None:
    def tags(*names: str) -> list[str]:
        return [p.tag for p in assign_tags([Point.from_name(n) for n in names])]

    assert tags("RED:reth0", "host:br0", "BLUE:beth0") == ["R", "~", "B"]
    assert tags("RED:a", "ROUTER:b", "BLUE:c") == ["RE", "RO", "B"]
    assert tags("RED:a", "RED:b", "host:br0") == ["R1", "R2", "~"]
    assert tags("web:eth0") == ["W"]


def test_filters_are_compiled_by_libpcap() -> None:
    program = compile_filter("icmp")
    assert program[0] == (0x28, 0, 0, 12)  # ldh [12]: the ethertype
    assert program[-1] == (0x06, 0, 0, 0)  # ret #0: everything else is dropped
    with pytest.raises(NsnetError, match="bad capture filter"):
        compile_filter("no such thing")


def _frames() -> list[bytes]:
    """Frames of every kind the decoder words, built with dpkt."""
    red, blue, intel = bytes.fromhex("1af3d88f9a04"), bytes.fromhex("6e8b96764af3"), bytes.fromhex("001b21aabbcc")
    a4 = socket.inet_aton

    def a6(text: str) -> bytes:
        return socket.inet_pton(socket.AF_INET6, text)

    def eth(src: bytes, dst: bytes, kind: int, data: Any) -> bytes:
        return bytes(dpkt.ethernet.Ethernet(src=src, dst=dst, type=kind, data=bytes(data)))

    def ip4(src: str, dst: str, p: int, data: Any, ttl: int = 64) -> Any:
        packet = dpkt.ip.IP(src=a4(src), dst=a4(dst), p=p, ttl=ttl, id=7, data=data)
        packet.len = 20 + len(bytes(data))
        return packet

    def ip6(src: str, dst: str, nxt: int, data: Any) -> Any:
        packet = dpkt.ip6.IP6(src=a6(src), dst=a6(dst), nxt=nxt, hlim=64, data=bytes(data))
        packet.plen = len(bytes(data))
        return packet

    def tcp(sport: int, dport: int, flags: int, opts: bytes = b"", data: bytes = b"") -> Any:
        segment = dpkt.tcp.TCP(sport=sport, dport=dport, seq=1000, ack=2000, flags=flags, win=502, opts=opts, data=data)
        segment.off = (20 + len(opts)) // 4
        return segment

    def udp(data: bytes) -> Any:
        return dpkt.udp.UDP(sport=40000, dport=40124, ulen=8 + len(data), data=data)

    echo = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=321, seq=7, data=b"x" * 56))
    quoted = ip4("11.11.11.2", "11.11.11.3", 17, udp(b"hi"))
    syn_opts = bytes.fromhex("020405b40402080a000000010000000001030307")
    zero = b"\x00" * 6
    return [
        eth(
            red, b"\xff" * 6, 0x0806, dpkt.arp.ARP(op=1, sha=red, spa=a4("11.11.11.2"), tha=zero, tpa=a4("11.11.11.3"))
        ),
        eth(blue, red, 0x0806, dpkt.arp.ARP(op=2, sha=blue, spa=a4("11.11.11.3"), tha=red, tpa=a4("11.11.11.2"))),
        eth(red, blue, 0x0806, dpkt.arp.ARP(op=1, sha=red, spa=a4("11.11.11.2"), tha=blue, tpa=a4("11.11.11.3"))),
        eth(intel, b"\xff" * 6, 0x0806, dpkt.arp.ARP(op=1, sha=intel, spa=a4("1.2.3.4"), tha=zero, tpa=a4("1.2.3.4"))),
        eth(red, blue, 0x0800, ip4("11.11.11.2", "11.11.11.3", 1, echo)),
        eth(blue, red, 0x0800, ip4("11.11.11.3", "11.11.11.2", 1, dpkt.icmp.ICMP(type=0, data=echo.data))),
        eth(
            blue,
            red,
            0x0800,
            ip4(
                "11.11.11.3", "11.11.11.2", 1, dpkt.icmp.ICMP(type=3, code=3, data=dpkt.icmp.ICMP.Unreach(data=quoted))
            ),
        ),
        eth(
            blue,
            red,
            0x0800,
            ip4(
                "11.11.11.1", "11.11.11.2", 1, dpkt.icmp.ICMP(type=3, code=1, data=dpkt.icmp.ICMP.Unreach(data=quoted))
            ),
        ),
        eth(
            blue,
            red,
            0x0800,
            ip4("11.11.11.1", "11.11.11.2", 1, dpkt.icmp.ICMP(type=11, data=dpkt.icmp.ICMP.TimeExceed(data=quoted))),
        ),
        eth(red, blue, 0x0800, ip4("11.11.11.2", "11.11.11.3", 6, tcp(40000, 40123, 0x02, syn_opts))),
        eth(blue, red, 0x0800, ip4("11.11.11.3", "11.11.11.2", 6, tcp(40123, 40000, 0x12, syn_opts))),
        eth(
            red,
            blue,
            0x0800,
            ip4("11.11.11.2", "11.11.11.3", 6, tcp(40000, 40123, 0x18, b"\x01\x01\x08\x0a" + bytes(8), b"hello")),
        ),
        eth(red, blue, 0x0800, ip4("11.11.11.2", "11.11.11.3", 6, tcp(40000, 40123, 0x11))),
        eth(blue, red, 0x0800, ip4("11.11.11.3", "11.11.11.2", 6, tcp(40123, 40001, 0x14))),
        eth(blue, red, 0x0800, ip4("11.11.11.3", "11.11.11.2", 6, tcp(40123, 40001, 0xF0))),
        eth(red, blue, 0x0800, ip4("11.11.11.2", "11.11.11.3", 17, udp(b"y" * 100))),
        eth(
            red,
            blue,
            0x86DD,
            ip6("fd00::2", "fd00::3", 58, dpkt.icmp6.ICMP6(type=128, data=dpkt.icmp6.ICMP6.Echo(id=5, seq=1))),
        ),
        eth(
            red,
            bytes.fromhex("3333ff000003"),
            0x86DD,
            ip6(
                "fd00::2",
                "ff02::1:ff00:3",
                58,
                dpkt.icmp6.ICMP6(type=135, data=bytes(4) + a6("fd00::3") + b"\x01\x01" + red),
            ),
        ),
        eth(
            blue,
            red,
            0x86DD,
            ip6("fd00::3", "fd00::2", 58, dpkt.icmp6.ICMP6(type=136, data=b"\x60" + bytes(3) + a6("fd00::3"))),
        ),
        eth(red, blue, 0x86DD, ip6("fd00::2", "fd00::3", 17, udp(b"z" * 10))),
        eth(red, blue, 0x86DD, ip6("fd00::2", "fd00::3", 6, tcp(40000, 40123, 0x02))),
        red + blue + struct.pack(">HHH", 0x8100, 10, 0x0800) + bytes(ip4("11.11.11.2", "11.11.11.3", 1, echo)),
        eth(red, blue, 0x0800, ip4("11.11.11.2", "11.11.11.3", 1, echo))[:30],
    ]


def test_decoder_agrees_with_tcpdump_on_every_kind_of_frame(tmp_path: Path) -> None:
    frames = _frames()
    path = tmp_path / "kinds.pcapng"
    writer = Writer(str(path), [Interface("RED:reth0"), Interface("BLUE:beth0")])
    base = 1_700_000_000_123_456_789
    writer.add([(base + i * 1000, i, i % 2, 4 * (i % 2), len(f), f) for i, f in enumerate(frames)])
    writer.close()
    theirs = sh("tcpdump", "-S", "-n", "-e", "-r", str(path)).splitlines()
    decoder = Decoder(vendors=False)
    ours = [decoder.decode(f, len(f)).text for f in frames]
    assert len(theirs) == len(ours)
    for line, reference in zip(ours, theirs, strict=True):
        assert reference.split(" ", 1)[1].rstrip() == line
    # With vendors: the IEEE registry names 00:1b:21.
    assert Decoder().decode(frames[3], len(frames[3])).text.startswith("00:1b:21:aa:bb:cc (Intel Corporate) > ")
    # tcpdump's own pcap (its -w), microseconds or nanoseconds, reads back the same.
    for precision in ("micro", "nano"):
        classic = tmp_path / f"kinds-{precision}.pcap"
        sh("tcpdump", "-r", str(path), "-w", str(classic), f"--time-stamp-precision={precision}")
        shown = nsnet("capture", "--read", str(classic), "--json")
        assert shown.code == 0, shown.text
        packets = json.loads(shown.out)["packets"]
        exact = [base + i * 1000 for i in range(len(frames))]
        assert [p["ts_ns"] for p in packets] == (exact if precision == "nano" else [t // 1000 * 1000 for t in exact])
        assert [p["text"] for p in packets] == [Decoder().decode(f, len(f)).text for f in frames]
    # The file reads back the same, direction and all.
    back = list(read(str(path)).frames)
    assert [(f[0], f[2], f[3], f[5]) for f in back] == [
        (base + i * 1000, i % 2, 4 * (i % 2), f) for i, f in enumerate(frames)
    ]


def test_a_large_file_is_decoded_on_every_core_in_order(tmp_path: Path) -> None:
    frames = _frames()
    path = tmp_path / "large.pcapng"
    writer = Writer(str(path), [Interface("RED:reth0"), Interface("host:br0"), Interface("BLUE:beth0")])
    base = 1_700_000_000_000_000_000
    rounds = 3000
    for r in range(rounds):
        writer.add([(base + (r * len(frames) + i) * 997, 0, i % 3, 0, len(f), f) for i, f in enumerate(frames)])
    writer.close()
    assert path.stat().st_size > 4 << 20  # large enough for the CLI to use workers, where cores are idle
    found = read(str(path))
    points = assign_tags([Point.from_name(i.name) for i in found.interfaces])
    printed = tmp_path / "printed.txt"
    with printed.open("w") as out:
        per_point = parallel.print_file(found, points, out.fileno(), False, 2)  # two workers, whatever the load
    ours = printed.read_text().splitlines()
    theirs = sh("tcpdump", "-S", "-n", "-e", "-r", str(path)).splitlines()
    assert len(ours) == len(theirs) == rounds * len(frames)
    for line, reference in zip(ours, theirs, strict=True):
        _tag, stamp, _direction, text = line.split(" ", 3)
        assert f"{stamp} {text.strip()}".replace(" (Intel Corporate)", "") == reference.rstrip()
    assert per_point == [rounds * sum(1 for i in range(len(frames)) if i % 3 == k) for k in range(3)]
    shown = nsnet("capture", "--read", str(path))
    assert shown.code == 0, shown.text
    assert [line for line in shown.out.splitlines() if line.startswith("[")] == ours
    assert re.search(rf"^  \[B\] BLUE:beth0 +{per_point[2]} packets$", shown.err, re.M), shown.err
