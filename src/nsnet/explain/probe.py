"""Send the real packet and read the kernel's own account of its fate.

Two kernel sources are read while the probe runs:
- netfilter trace: a TRACE rule in each namespace that has iptables tables,
  and ``xtables-monitor --trace`` there, name the table, chain and rule or
  policy that took each verdict;
- the ``skb:kfree_skb`` tracepoint, in a tracing instance of its own, gives
  the kernel's drop reasons (e.g. ``NETFILTER_DROP``, ``NO_SOCKET``).
Both are removed afterwards; the raw table is deleted again where nsnet had
to create it for the TRACE rules. In a lab with VXLAN devices the trace
follows the encapsulated packets between the VTEPs too (UDP to the VXLAN
port), so that a drop on the underlay is seen where it happens.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import dpkt

from ..capture import Decoded, Decoder, LiveCapture, resolve
from ..capture.frames import direction
from ..kernel import netns
from ..kernel.firewall import in_ns
from .model import Explanation, Snapshot
from .walk import parse_proto

_TRACE_RE = re.compile(
    r"^\s*TRACE: \d+ (\w+) (\w+):([^:\s]+):(rule|policy|return):?(?:0x[0-9a-f]+:)?(\w+)(?:\s*:(\S+))?\s*(.*)$"
)


@dataclass(frozen=True)
class TraceEvent:
    """One netfilter trace verdict: where, and what decided."""

    node: str
    packet: str
    table: str
    chain: str
    kind: str
    """``rule``, ``policy`` or ``return``."""
    verdict: str
    rule: str


@dataclass
class Observation:
    """What happened to the real packet."""

    answered: bool
    result: str
    trace: list[TraceEvent] = field(default_factory=list)
    drops: dict[str, int] = field(default_factory=dict)
    """Kernel drop reasons seen while the probe ran (``REASON at function``: count)."""
    verdict: TraceEvent | None = None
    """The netfilter verdict that dropped the packet, if one did."""
    seen: list[str] = field(default_factory=list)
    """The request and its answer at every capture point of the lab, in kernel-timestamp order."""
    last_point: str | None = None
    """The last capture point where the request was seen."""
    request_points: list[str] = field(default_factory=list)
    """Every capture point where the request was seen (``NODE:IFACE``), in kernel-timestamp order."""
    agrees: bool = True
    disagreement: str = ""


def _send(ns: str, dst: str, proto: str, port: int | None, size: int | None = None) -> tuple[bool, str]:
    """Send the packet from ``ns``; ``size``: its IP length (ping's data is 28 bytes less, a UDP payload too)."""
    if proto == "icmp":
        extra = ["-s", str(size - (48 if ":" in dst else 28))] if size else []
        done = subprocess.run(
            in_ns(ns, ["ping", "-c", "1", "-W", "1", *extra, dst]), capture_output=True, text=True, check=False
        )
        if done.returncode == 0:
            return True, "echo reply received"
        error = next((line for line in done.stdout.splitlines() if "Frag needed" in line), "")
        return False, "no echo reply within 1 s" + (f" ({error.split(': ', 1)[-1].strip()})" if error else "")
    assert port is not None
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with netns.entered(ns):
        sock = socket.socket(family, kind)
    with sock:
        sock.settimeout(1.0)
        try:
            sock.connect((dst, port))
            if proto == "tcp":
                return True, f"connected to tcp/{port}"
            sock.send(b"x" * (size - (48 if family == socket.AF_INET6 else 28)) if size else b"nsnet probe")
            sock.recv(1)
            return True, f"an answer came from udp/{port}"
        except ConnectionRefusedError:
            return True, "refused: RST" if proto == "tcp" else "refused: ICMP port unreachable"
        except TimeoutError:
            return False, f"no answer within 1 s on {proto}/{port}"
        except OSError as exc:
            return False, f"{proto}/{port}: {exc.strerror}"


def _tunnels(snap: Snapshot) -> list[str]:
    """Trace matches for the packets VXLAN devices of the lab send each other (VTEP to VTEP, to the UDP port)."""
    devices = {(vx.local, vx.vni, vx.port) for s in snap.spaces.values() for vx in s.view.vxlans or [] if vx.local}
    flows = {
        (a, b, port)
        for a, vni, port in devices
        for b, other_vni, other_port in devices
        if a != b and vni == other_vni and port == other_port and ":" not in a + b
    }
    return [f"-s {a} -d {b} -p udp -m udp --dport {port}" for a, b, port in sorted(flows)]


@contextlib.contextmanager
def _netfilter_trace(snap: Snapshot, src: str, dst: str, proto: str) -> Iterator[list[TraceEvent]]:
    events: list[TraceEvent] = []
    family = 6 if ":" in dst else 4
    restore, raw_table = ("ip6tables-restore", "ip6") if family == 6 else ("iptables-restore", "ip")
    proto = "ipv6-icmp" if family == 6 and proto == "icmp" else proto
    watched = [
        s for s in snap.spaces.values() if s.view.nftables or any(t.family == family for t in s.view.firewall or [])
    ]
    match = f"-p {proto} -m comment --comment nsnet-trace -j TRACE"
    rules = [f"-s {src} -d {dst} {match}", f"-s {dst} -d {src} {match}"]
    if family == 4:
        rules += [f"{flow} -m comment --comment nsnet-trace -j TRACE" for flow in _tunnels(snap)]
    monitors: list[tuple[str, subprocess.Popen[str]]] = []
    created_raw: list[str] = []
    try:
        for space in watched:
            ns = space.view.netns
            if not any(t.table == "raw" and t.family == family for t in space.view.firewall or []):
                created_raw.append(ns)
            text = "*raw\n" + "".join(f"-I {c} 1 {r}\n" for c in ("PREROUTING", "OUTPUT") for r in rules) + "COMMIT\n"
            subprocess.run(
                in_ns(ns, [restore, "--noflush", "--wait"]),
                input=text,
                text=True,
                check=True,
                capture_output=True,
            )
            monitor = subprocess.Popen(
                in_ns(ns, ["xtables-monitor", "--trace"]), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
            monitors.append((space.node, monitor))
        if monitors:
            time.sleep(0.3)  # let the monitors subscribe before the packet goes
        yield events
        if monitors:
            time.sleep(0.3)
    finally:
        for node, monitor in monitors:
            monitor.terminate()
            output, _ = monitor.communicate(timeout=5)
            for line in output.splitlines():
                m = _TRACE_RE.match(line)
                if m:
                    verdict = f"{m.group(5)} {m.group(6)}" if m.group(6) else m.group(5)
                    events.append(
                        TraceEvent(node, m.group(1), m.group(2), m.group(3), m.group(4), verdict, m.group(7).strip())
                    )
        for space in watched:
            ns = space.view.netns
            if ns in created_raw:
                subprocess.run(
                    in_ns(ns, ["nft", "delete", "table", raw_table, "raw"]), capture_output=True, check=False
                )
            else:
                text = "*raw\n" + "".join(f"-D {c} {r}\n" for c in ("PREROUTING", "OUTPUT") for r in rules)
                subprocess.run(
                    in_ns(ns, [restore, "--noflush", "--wait"]),
                    input=text + "COMMIT\n",
                    text=True,
                    capture_output=True,
                    check=False,
                )


@contextlib.contextmanager
def _drop_reasons() -> Iterator[dict[str, int]]:
    """Kernel drop reasons (IP packets) seen while the block runs; empty where tracing is unavailable."""
    reasons: dict[str, int] = {}
    argv = ["unshare", "--mount", "--propagation", "private", sys.executable, "-m", "nsnet.explain.dropwatch"]
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert child.stdin is not None and child.stdout is not None
    try:
        ready = child.stdout.readline().strip() == "ready"
        yield reasons
        if ready:
            child.stdin.write("stop\n")
            child.stdin.flush()
            line = child.stdout.readline()
            with contextlib.suppress(ValueError):
                reasons.update(json.loads(line))
    finally:
        with contextlib.suppress(OSError):
            child.stdin.close()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def probe(snap: Snapshot, predicted: Explanation) -> Observation:
    """Send the packet ``predicted`` describes, watch it, and compare with the prediction."""
    src = snap.spaces[predicted.src]
    dst = predicted.legs[0].dst
    name, port = parse_proto(predicted.proto)
    source_ip = predicted.legs[0].source
    trace_proto = "icmp" if name == "icmp" else name
    capture_proto = "icmp6" if name == "icmp" and ":" in dst else name
    flow = f"{capture_proto} and host {source_ip} and host {dst}" if source_ip else capture_proto
    with (
        _drop_reasons() as reasons,
        _netfilter_trace(snap, source_ip or "0.0.0.0/0", dst, trace_proto) as events,
        _captured(snap, flow) as frames,
    ):
        answered, result = _send(src.view.netns, dst, name, port, predicted.size)
    obs = Observation(answered=answered, result=result, trace=events, drops=reasons)
    obs.seen, obs.request_points = _path(frames, source_ip, dst)
    obs.last_point = obs.request_points[-1] if obs.request_points else None
    obs.verdict = next((e for e in events if e.verdict in ("DROP", "REJECT")), None)
    _compare(predicted, obs)
    return obs


@contextlib.contextmanager
def _captured(snap: Snapshot, expression: str) -> Iterator[list[tuple[str, str, Decoded, bytes]]]:
    """Capture the flow at every interface of every namespace of the lab while the block runs."""
    frames: list[tuple[str, str, Decoded, bytes]] = []
    # Every namespace with an interface besides lo (a lab without a host bridge has a host with lo only).
    points = resolve(
        snap.lab, [n for n, s in snap.spaces.items() if any(k.kind != "loopback" for k in s.view.links or [])]
    )
    names = [p.name for p in points]
    decoder = Decoder(vendors=False)
    with LiveCapture(points, expression) as live:
        yield frames
        time.sleep(0.2)
        for _ts, _, point, pkttype, wirelen, data in live.poll(0.05) + live.finish():
            frames.append((names[point], direction(pkttype), decoder.decode(data, wirelen), data))


def _path(frames: list[tuple[str, str, Decoded, bytes]], src: str, dst: str) -> tuple[list[str], list[str]]:
    """Lines of where the packets were seen, and the points that saw the request (src -> dst), in order."""
    seen = []
    points = []
    for point, way, decoded, data in frames:
        seen.append(f"{point} {way}: {decoded.text}")
        try:
            ip = dpkt.ethernet.Ethernet(data).data
            if isinstance(ip, dpkt.ip.IP):
                addresses = (socket.inet_ntoa(ip.src), socket.inet_ntoa(ip.dst))
            elif isinstance(ip, dpkt.ip6.IP6):
                addresses = (socket.inet_ntop(socket.AF_INET6, ip.src), socket.inet_ntop(socket.AF_INET6, ip.dst))
            else:
                continue
            if addresses == (src, dst):
                points.append(point)
        except (dpkt.UnpackError, OSError, ValueError):
            continue
    return seen, points


def _expects_answer(predicted: Explanation) -> bool | None:
    """Whether the prediction says an answer (reply, RST, ICMP error) comes back; None if none is due."""
    request = predicted.legs[0]
    if request.outcome in ("dropped", "rejected", "unknown"):
        return False
    if len(predicted.legs) == 1:
        return None  # delivered to a UDP socket: nothing has to answer
    return predicted.legs[1].outcome == "delivered"


def _compare(predicted: Explanation, obs: Observation) -> None:
    problems = []
    expected = _expects_answer(predicted)
    failed = next((s for s in predicted.legs[0].steps if not s.ok), None)
    missed = any(s.what == "miss" for leg in predicted.legs for s in leg.steps)
    if expected is False and obs.answered and missed:
        # A VXLAN miss the prediction saw unanswered: the controller may answer it while the probe runs.
        obs.result += " (a controller answered the VXLAN miss while the probe ran)"
    elif expected is not None and expected != obs.answered:
        problems.append(f"predicted {'an answer' if expected else 'no answer'}, observed: {obs.result}")
    if (
        failed is not None
        and failed.what == "vxlan"
        and " has no forwarding entry " in failed.text
        and not obs.answered
    ):
        # Dropped by the VXLAN device itself: the capture sees the request go into it, and on no other host.
        point = f"{failed.node}:{failed.text.split()[0]}"
        reached = {s.node for s in predicted.legs[0].steps}
        beyond = [p for p in obs.request_points if p.split(":", 1)[0] not in reached]
        if obs.request_points and point not in obs.request_points:
            problems.append(f"predicted the request to die at {point}, but it was never seen there")
        elif beyond:
            problems.append(f"predicted the request to die at {point}, but it was seen at {', '.join(beyond)}")
    blocked = next((s for leg in predicted.legs for s in leg.steps if not s.ok and s.what == "netfilter"), None)
    if blocked is not None and obs.verdict is None:
        problems.append("predicted a netfilter drop, but the kernel's trace shows none")
    elif blocked is None and obs.verdict is not None:
        v = obs.verdict
        problems.append(
            f"the kernel's netfilter dropped it in {v.node} ({v.table}:{v.chain}:{v.kind}:{v.verdict}), "
            "which was not predicted"
        )
    elif blocked is not None and obs.verdict is not None:
        v = obs.verdict
        if f" {v.table}/{v.chain} " not in f" {blocked.text} " and v.node != blocked.node:
            problems.append(
                f"predicted the drop at [{blocked.node}] {blocked.text}; the kernel dropped it in "
                f"{v.node} ({v.table}:{v.chain})"
            )
    obs.agrees = not problems
    obs.disagreement = "; ".join(problems)
