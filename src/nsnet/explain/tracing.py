"""What the kernel says of a probe's packets: its netfilter trace (``xtables-monitor --trace``) and its drop
reasons (:mod:`nsnet.explain.dropwatch`), each gathered while a block runs and removed after it, even when the
probe is killed (the record lists what is installed before it exists)."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from nsnet.engine.probe_record import TRACE_COMMENT, ProbeRecord, delete_rules
from nsnet.explain.ndp import solicited_node
from nsnet.explain.verdict import Snapshot, Space
from nsnet.kernel.firewall import in_ns

_TRACE_RE = re.compile(
    r"^\s*TRACE: \d+ (\w+) ([\w-]+):([^:\s]+):(rule|policy|return):?(?:0x[0-9a-f]+:)?(\w+)(?:\s*:(\S+))?\s*(.*)$"
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


PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15


def die_with_parent(sig: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets ``sig`` when this process dies (even by SIGKILL)."""
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)

    return preexec


@contextlib.contextmanager
def netfilter_trace(snap: Snapshot, record: ProbeRecord, src: str, dst: str, proto: str) -> Iterator[list[TraceEvent]]:
    """The netfilter trace of the probe's packets in every namespace with rules, while the block runs: TRACE rules
    in table raw (listed in ``record`` before they exist), read by ``xtables-monitor --trace``."""
    events: list[TraceEvent] = []
    family = 6 if ":" in dst else 4
    record.family = family
    proto = "ipv6-icmp" if family == 6 and proto == "icmp" else proto
    watched = [
        s for s in snap.spaces.values() if s.view.nftables or any(t.family == family for t in s.view.firewall or [])
    ]
    match = f"-p {proto} -m comment --comment {TRACE_COMMENT} -j TRACE"
    specs = [f"-s {src} -d {dst} {match}", f"-s {dst} -d {src} {match}"]
    if family == 4:
        specs += [f"{flow} -m comment --comment {TRACE_COMMENT} -j TRACE" for flow in _tunnels(snap)]
    elif "/" not in src:  # NDP for dst: the solicitation to its solicited-node address, the advertisement back
        ndp = f"-p ipv6-icmp -m comment --comment {TRACE_COMMENT} -j TRACE"
        specs.append(f"-s {src} -d {solicited_node(dst)} {ndp}")
        if proto != "ipv6-icmp":
            specs.append(f"-s {dst} -d {src} {ndp}")
    rules = [f"{chain} {spec}" for chain in ("PREROUTING", "OUTPUT") for spec in specs]
    monitors: list[tuple[str, subprocess.Popen[str]]] = []
    try:
        for space in watched:
            monitor = _traced(space, record, rules, family)
            monitors.append((space.node, monitor))
            record.add_child("xtables-monitor", monitor.pid)
        if monitors:
            time.sleep(0.3)  # let the monitors subscribe before the packet goes
        yield events
        if monitors:
            time.sleep(0.3)
    finally:
        for node, monitor in monitors:
            events += _trace_events(node, monitor)
        for ns, installed in record.rules.items():
            delete_rules(ns, installed, drop_table=ns in record.created_raw, family=family)
        record.rules.clear()
        record.save()


def _traced(space: Space, record: ProbeRecord, rules: list[str], family: int) -> subprocess.Popen[str]:
    """Install the TRACE rules in ``space`` and start its trace monitor (which the caller records)."""
    ns = space.view.netns
    restore = "ip6tables-restore" if family == 6 else "iptables-restore"
    if not any(t.table == "raw" and t.family == family for t in space.view.firewall or []):
        record.created_raw.append(ns)
    record.rules[ns] = rules
    record.save()  # before the rules exist: a probe killed now leaves nothing unlisted
    text = "*raw\n" + "".join(f"-I {rule.replace(' ', ' 1 ', 1)}\n" for rule in rules) + "COMMIT\n"
    subprocess.run(
        in_ns(ns, [restore, "--noflush", "--wait"]),
        input=text,
        text=True,
        check=True,
        capture_output=True,
    )
    monitor = subprocess.Popen(
        in_ns(ns, ["xtables-monitor", "--trace"]),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=die_with_parent(signal.SIGKILL),
    )
    return monitor


def _trace_events(node: str, monitor: subprocess.Popen[str]) -> list[TraceEvent]:
    """Stop a trace monitor and read the verdicts it saw."""
    monitor.terminate()
    try:
        output, _ = monitor.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        monitor.kill()
        output, _ = monitor.communicate()
    events = []
    for line in output.splitlines():
        m = _TRACE_RE.match(line)
        if m:
            verdict = f"{m.group(5)} {m.group(6)}" if m.group(6) else m.group(5)
            events.append(TraceEvent(node, m.group(1), m.group(2), m.group(3), m.group(4), verdict, m.group(7).strip()))
    return events


@contextlib.contextmanager
def drop_reasons(record: ProbeRecord, devices: set[str], comm: str) -> Iterator[dict[str, int]]:
    """Kernel drop reasons of the probe's packets (IP) seen while the block runs; empty where tracing is
    unavailable. ``devices``: the lab's interfaces; ``comm``: the name the probe's senders take."""
    reasons: dict[str, int] = {}
    argv = ["unshare", "--mount", "--propagation", "private", sys.executable, "-m", "nsnet.explain.dropwatch"]
    record.instance = f"nsnet-{record.pid}-{comm}"  # recorded before it can exist
    record.save()
    argv += ["--devices", ",".join(sorted(devices)), "--comm", comm, "--instance", record.instance]
    child = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=die_with_parent(signal.SIGTERM),  # it removes its tracing instance then
    )
    assert child.stdin is not None and child.stdout is not None
    record.add_child("dropwatch", child.pid)
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
            child.terminate()
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        with contextlib.suppress(OSError):
            child.stdout.close()
