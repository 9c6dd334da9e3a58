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

Everything the probe installs is written down first (:mod:`nsnet.engine.probe_record`);
SIGINT and SIGTERM unwind the probe in order, its children die with it, and
what a SIGKILL leaves is removed by the next ``up``, ``down`` or ``explain``
of the lab.
"""

from __future__ import annotations

import contextlib
import ctypes
import secrets
import shutil
import signal
import socket
import string
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import dpkt

from nsnet.capture import Decoded, Decoder, LiveCapture, resolve
from nsnet.capture.frames import direction
from nsnet.engine.probe_record import ProbeRecord
from nsnet.explain.tracing import PR_SET_NAME, TraceEvent, die_with_parent, drop_reasons, netfilter_trace
from nsnet.explain.verdict import Explanation, Snapshot
from nsnet.explain.walk import parse_proto
from nsnet.kernel import netns


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


def _send(
    ns: str, dst: str, proto: str, port: int | None, size: int | None, sender: tuple[str, Path]
) -> tuple[bool, str]:
    """Send the packet from ``ns``; ``size``: its IP length (ping's data is 28 bytes less, a UDP payload too).
    ``sender``: the name the sending process (or thread) takes, and a directory for the link that names ping."""
    comm, bin_dir = sender
    if proto == "icmp":
        extra = ["-s", str(size - (48 if ":" in dst else 28))] if size else []
        named = bin_dir / comm  # the kernel names a process after the file it runs
        bin_dir.mkdir(parents=True, exist_ok=True)
        named.symlink_to(shutil.which("ping") or "/usr/bin/ping")
        with (
            netns.entered(ns),
            subprocess.Popen(
                ["ping", "-c", "1", "-W", "1", *extra, dst],
                executable=named,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                preexec_fn=die_with_parent(signal.SIGKILL),
            ) as ping,
        ):
            output, _ = ping.communicate()
        if ping.returncode == 0:
            return True, "echo reply received"
        error = next((line for line in output.splitlines() if "Frag needed" in line), "")
        return False, "no echo reply within 1 s" + (f" ({error.split(': ', 1)[-1].strip()})" if error else "")
    assert port is not None
    with _thread_named(comm):
        return _connect(ns, dst, proto, port, size)


@contextlib.contextmanager
def _thread_named(comm: str) -> Iterator[None]:
    """Give this thread the name ``comm`` while the block runs."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/thread-self/comm", "rb") as f:
        before = f.read().strip()
    libc.prctl(PR_SET_NAME, comm.encode(), 0, 0, 0)
    try:
        yield
    finally:
        libc.prctl(PR_SET_NAME, before, 0, 0, 0)


def _connect(ns: str, dst: str, proto: str, port: int, size: int | None) -> tuple[bool, str]:
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


class ProbeInterrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT) arrived while the probe ran; what it installed has been removed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _orderly_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`ProbeInterrupted`, once: the probe unwinds, and its clean-up is not
    interrupted by a second signal. Handlers can only be set in the main thread; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def stop(signum: int, frame: FrameType | None) -> None:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        raise ProbeInterrupted(signum)

    for sig in previous:
        signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _recorded(lab: str) -> Iterator[ProbeRecord]:
    """A record of what this probe installs, kept (under the state directory) while it runs."""
    record = ProbeRecord(lab)
    record.save()
    try:
        yield record
    finally:
        record.remove()


def _devices(snap: Snapshot) -> set[str]:
    """The names of the lab's interfaces (``lo`` aside: every namespace has one)."""
    return {link.name for s in snap.spaces.values() for link in s.view.links or [] if link.name != "lo"}


def probe(snap: Snapshot, predicted: Explanation) -> Observation:
    """Send the packet ``predicted`` describes, watch it, and compare with the prediction.

    SIGINT and SIGTERM while it runs raise :class:`ProbeInterrupted` once everything the probe installed is
    removed again."""
    src = snap.spaces[predicted.src]
    dst = predicted.legs[0].dst
    name, port = parse_proto(predicted.proto)
    source_ip = predicted.legs[0].source
    trace_proto = "icmp" if name == "icmp" else name
    capture_proto = "icmp6" if name == "icmp" and ":" in dst else name
    flow = f"{capture_proto} and host {source_ip} and host {dst}" if source_ip else capture_proto
    comm = "nsnet" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(10))
    with (
        _orderly_signals(),
        _recorded(snap.lab) as record,
        drop_reasons(record, _devices(snap), comm) as reasons,
        netfilter_trace(snap, record, source_ip or "0.0.0.0/0", dst, trace_proto) as events,
        _captured(snap, flow) as frames,
    ):
        answered, result = _send(src.view.netns, dst, name, port, predicted.size, (comm, record.bin_dir))
    obs = Observation(answered=answered, result=result, trace=events, drops=reasons)
    obs.seen, obs.request_points = _path(frames, source_ip, dst, _route_of(predicted), _bridges(snap))
    obs.last_point = obs.request_points[-1] if obs.request_points else None
    obs.verdict = next((e for e in events if e.verdict in ("DROP", "REJECT")), None)
    _compare(predicted, obs)
    return obs


Frame = tuple[float, str, str, Decoded, bytes]
"""A captured frame: kernel timestamp, point (``NODE:IFACE``), direction, decoded, raw bytes."""


@contextlib.contextmanager
def _captured(snap: Snapshot, expression: str) -> Iterator[list[Frame]]:
    """Capture the flow at every interface of every namespace of the lab while the block runs."""
    frames: list[Frame] = []
    capturable = [node for node, s in snap.spaces.items() if any(link.name != "lo" for link in s.view.links or [])]
    points = resolve(snap.lab, capturable) if capturable else []
    if not points:  # nothing but lo anywhere (a node explained to itself in a lab of one)
        yield frames
        return
    names = [p.name for p in points]
    decoder = Decoder(vendors=False)
    with LiveCapture(points, expression) as live:
        yield frames
        time.sleep(0.2)
        for ts, _, point, pkttype, wirelen, data in live.poll(0.05) + live.finish():
            frames.append((ts, names[point], direction(pkttype), decoder.decode(data, wirelen), data))


def _route_of(predicted: Explanation) -> dict[tuple[str, str], list[str]]:
    """The nodes each leg of the prediction walks, in order, keyed by the leg's (source, destination) address."""
    route: dict[tuple[str, str], list[str]] = {}
    for leg in predicted.legs:
        nodes: list[str] = []
        for step in leg.steps:
            if step.node not in nodes:
                nodes.append(step.node)
        route.setdefault((leg.source, leg.dst), nodes)
    return route


def _bridges(snap: Snapshot) -> set[str]:
    """The lab's bridges as capture points (``NODE:BRIDGE``)."""
    return {
        f"{node}:{link.name}" for node, s in snap.spaces.items() for link in s.view.links or [] if link.kind == "bridge"
    }


def _packet(data: bytes) -> tuple[str, str, int, int] | None:
    """(source, destination, protocol, IP id) of an IPv4 frame; the flow label stands for the id in IPv6."""
    try:
        ip = dpkt.ethernet.Ethernet(data).data
    except (dpkt.UnpackError, ValueError):
        return None
    if isinstance(ip, dpkt.ip.IP):
        return socket.inet_ntoa(ip.src), socket.inet_ntoa(ip.dst), ip.p, ip.id
    if isinstance(ip, dpkt.ip6.IP6):
        src, dst = (socket.inet_ntop(socket.AF_INET6, a) for a in (ip.src, ip.dst))
        return src, dst, ip.nxt, ip.flow
    return None


def _path(
    frames: list[Frame], src: str, dst: str, route: dict[tuple[str, str], list[str]], bridges: set[str]
) -> tuple[list[str], list[str]]:
    """Lines of where the packets were seen, and the points that saw the request (src -> dst), in path order.

    The kernel stamps a frame once and copies the stamp to every point it crosses, so timestamps tie (or, with
    several capture sockets, come out of order) within one packet's way: each packet's sightings are ordered by
    the nodes its leg of the prediction walks, then, within a node, in through a port, into the bridge, out of the
    bridge, out through a port; the packets themselves by the time they were first seen."""
    packets: dict[tuple[str, str, int, int] | None, list[tuple[int, Frame]]] = {}
    for i, frame in enumerate(frames):
        packets.setdefault(_packet(frame[4]), []).append((i, frame))

    def placed(key: tuple[str, str, int, int] | None, item: tuple[int, Frame]) -> tuple[int, int, float, int]:
        i, (ts, point, way, _, _) = item
        nodes = route.get((key[0], key[1]), []) if key else []
        node = point.split(":", 1)[0]
        where = nodes.index(node) if node in nodes else len(nodes)
        bridge = point in bridges
        rank = (1 if bridge else 0) if way == "in" else (2 if bridge else 3)
        return where, rank, ts, i

    ordered: list[Frame] = []
    for key, items in sorted(packets.items(), key=lambda kv: min(f[0] for _, f in kv[1])):
        ordered += [frame for _, frame in sorted(items, key=lambda item: placed(key, item))]
    seen = [f"{point} {way}: {decoded.text}" for _, point, way, decoded, _ in ordered]
    points = [point for _, point, _, _, data in ordered if (_packet(data) or ("", ""))[:2] == (src, dst)]
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
    missed = any(s.what == "miss" for leg in predicted.legs for s in leg.steps)
    if expected is False and obs.answered and missed:
        # A VXLAN miss the prediction saw unanswered: the controller may answer it while the probe runs.
        obs.result += " (a controller answered the VXLAN miss while the probe ran)"
    elif expected is not None and expected != obs.answered:
        problems.append(f"predicted {'an answer' if expected else 'no answer'}, observed: {obs.result}")
    problems += _vxlan_drop_problems(predicted, obs)
    problems += _netfilter_problems(predicted, obs)
    obs.agrees = not problems
    obs.disagreement = "; ".join(problems)


def _vxlan_drop_problems(predicted: Explanation, obs: Observation) -> list[str]:
    """Dropped by the VXLAN device itself: the capture sees the request go into it, and on no other host."""
    failed = next((s for s in predicted.legs[0].steps if not s.ok), None)
    if failed is None or failed.what != "vxlan" or " has no forwarding entry " not in failed.text or obs.answered:
        return []
    point = f"{failed.node}:{failed.text.split()[0]}"
    reached = {s.node for s in predicted.legs[0].steps}
    beyond = [p for p in obs.request_points if p.split(":", 1)[0] not in reached]
    if obs.request_points and point not in obs.request_points:
        return [f"predicted the request to die at {point}, but it was never seen there"]
    if beyond:
        return [f"predicted the request to die at {point}, but it was seen at {', '.join(beyond)}"]
    return []


def _netfilter_problems(predicted: Explanation, obs: Observation) -> list[str]:
    """Where the predicted netfilter drop and the kernel's trace disagree."""
    blocked = next((s for leg in predicted.legs for s in leg.steps if not s.ok and s.what == "netfilter"), None)
    v = obs.verdict
    if blocked is not None and v is None:
        return ["predicted a netfilter drop, but the kernel's trace shows none"]
    if blocked is None and v is not None:
        return [
            f"the kernel's netfilter dropped it in {v.node} ({v.table}:{v.chain}:{v.kind}:{v.verdict}), "
            "which was not predicted"
        ]
    if blocked is None or v is None:
        return []
    if f" {v.table}/{v.chain} " not in f" {blocked.text} " and v.node != blocked.node:
        return [
            f"predicted the drop at [{blocked.node}] {blocked.text}; the kernel dropped it in "
            f"{v.node} ({v.table}:{v.chain})"
        ]
    return []
