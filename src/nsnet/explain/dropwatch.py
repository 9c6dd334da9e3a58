"""Count the kernel's drop reasons (``skb:kfree_skb``) for the probe's own packets until told to stop.

Run as a child process inside a private mount namespace
(``unshare --mount --propagation private``), so that mounting tracefs, when
the machine has not, changes nothing outside it. It uses a tracing instance
of its own (``--instance``: ``nsnet-PID-NAME``, the probe's PID and its
senders' random name, so that probes in different PID namespaces never share
one), removed at the end, on SIGTERM or SIGINT too.

The tracepoint sees the whole machine and names no namespace or address, so
the drops are tied to the probe through the process that sent it. The kernel
carries a packet across veth pairs and bridges, and answers an echo request
or a SYN, in the context of the process that sent it (the softirq runs when
that process enables it again), and the probe's senders (ping, the thread
that opens a socket) carry a name of their own (``--comm``). So the instance
records only what happens in their context (a filter in the kernel): the
drops (``skb:kfree_skb``), the ``net`` tracepoints that show a packet on an
interface (``netif_rx``, ``netif_receive_skb``, ``net_dev_queue``, with the
packet's address and the interface's name) and ``skb:consume_skb`` (a packet
freed normally, whose address may come back). A drop counts when the last
interface its packet was seen on is one of the lab's (``--devices``), ``lo``,
or none: another namespace's packet the same softirq happens to carry on is
left out.

Protocol: prints ``ready`` (or ``unavailable: WHY``), waits for a line on
stdin, then prints one JSON object ``{"REASON at function": count}``.
``--remove NAME`` removes a tracing instance left by a killed probe.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from types import FrameType

TRACEFS = "/sys/kernel/tracing"
EVENTS = ("skb/kfree_skb", "skb/consume_skb", "net/netif_rx", "net/netif_receive_skb", "net/net_dev_queue")
BUFFER_KB = "512"
_LINE_RE = re.compile(r"\s(kfree_skb|consume_skb|netif_rx|netif_receive_skb|net_dev_queue): (.*)$")
_KFREE_RE = re.compile(r"location=(\S+) reason: (\S+)")
_DEV_RE = re.compile(r"dev=(\S+) skbaddr=(\S+)")
_SKB_RE = re.compile(r"skbaddr=(\S+)")
INSTANCE_RE = re.compile(r"nsnet-\d+(-[a-z]+)?")
"""A probe's tracing instance: ``nsnet-`` the probe's PID and its senders' name (unique across PID namespaces)."""


class _Stopped(Exception):
    pass


def _stop(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise _Stopped


def _mounted() -> str | None:
    """None if tracefs is usable at :data:`TRACEFS`, else why not."""
    if os.path.isdir(os.path.join(TRACEFS, "instances")):
        return None
    done = subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS], capture_output=True, text=True, check=False)
    return None if done.returncode == 0 else f"cannot mount tracefs: {done.stderr.strip()}"


def count(lines: Iterable[str], devices: set[str]) -> Counter[str]:
    """Drop reasons of the probe's packets in the trace ``lines`` of its senders (see the module's docstring)."""
    last_dev: dict[str, str] = {}
    reasons: Counter[str] = Counter()
    for line in lines:
        m = _LINE_RE.search(line)
        if not m:
            continue
        event, rest = m.group(1), m.group(2)
        if event in ("netif_rx", "netif_receive_skb", "net_dev_queue"):
            d = _DEV_RE.search(rest)
            if d:
                last_dev[d.group(2)] = d.group(1)
            continue
        s = _SKB_RE.search(rest)
        dev = last_dev.pop(s.group(1) if s else "", None)  # freed: its address may come back as another packet
        k = _KFREE_RE.search(rest)
        if event == "kfree_skb" and k and (dev is None or dev == "lo" or dev in devices):
            reasons[f"{k.group(2)} at {k.group(1).split('+')[0]}"] += 1
    return reasons


def filters(comm: str) -> dict[str, str]:
    """The kernel-side filter of each event: the probe's senders only (and IP packets with a reason, for drops:
    reason 2 is NOT_SPECIFIED)."""
    who = f'comm == "{comm}"'
    return {e: who for e in EVENTS} | {
        "skb/kfree_skb": f"{who} && (protocol == 2048 || protocol == 34525) && reason != 2"
    }


def watch(devices: set[str], comm: str, name: str) -> None:
    why = _mounted()
    if why:
        print(f"unavailable: {why}", flush=True)
        return
    instance = os.path.join(TRACEFS, "instances", name)
    reasons: Counter[str] = Counter()
    made = False
    try:
        try:
            os.mkdir(instance)
            made = True
        except OSError as exc:
            print(f"unavailable: no tracing instance: {exc.strerror}", flush=True)
            return
        with open(os.path.join(instance, "buffer_size_kb"), "w") as f:
            f.write(BUFFER_KB)
        for event, expression in filters(comm).items():
            with open(os.path.join(instance, "events", event, "filter"), "w") as f:
                f.write(expression)
            with open(os.path.join(instance, "events", event, "enable"), "w") as f:
                f.write("1")
        print("ready", flush=True)
        sys.stdin.readline()
        with open(os.path.join(instance, "tracing_on"), "w") as f:
            f.write("0")
        with open(os.path.join(instance, "trace")) as f:
            reasons = count(f, devices)
    except _Stopped:
        return
    finally:
        if made:
            remove(instance)
    print(json.dumps(dict(reasons)), flush=True)


def remove(instance: str) -> None:
    """Remove a tracing instance (its events are disabled with it)."""
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(instance)


def main() -> None:
    parser = argparse.ArgumentParser(prog="nsnet.explain.dropwatch")
    parser.add_argument("--devices", default="", help="the lab's interface names, comma-separated")
    parser.add_argument("--comm", default="", help="the name (comm) of every process or thread that sends the probe")
    parser.add_argument("--instance", metavar="NAME", help="the tracing instance to use (nsnet-PID-NAME)")
    parser.add_argument("--remove", metavar="NAME", help="remove the tracing instance NAME (nsnet-PID-NAME) and exit")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    name = args.remove or args.instance or ""
    if not INSTANCE_RE.fullmatch(name):
        sys.exit(f"{name!r} is not a probe's tracing instance (nsnet-PID-NAME)")
    if args.remove:
        if _mounted() is None:
            remove(os.path.join(TRACEFS, "instances", args.remove))
        return
    if not re.fullmatch(r"[a-z]{1,15}", args.comm):
        sys.exit(f"--comm {args.comm!r}: give the senders' name, up to 15 letters a-z")
    watch({d for d in args.devices.split(",") if d}, args.comm, name)


if __name__ == "__main__":
    main()
