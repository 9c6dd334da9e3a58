"""The ``nsnet capture`` command: many capture points, one timeline, decoded like tcpdump, saved as pcapng."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

import click

from nsnet.capture import parallel, pcapng
from nsnet.capture.frames import Frame
from nsnet.capture.points import Point, assign_tags, resolve, split_args
from nsnet.capture.render import JsonSink, PcapngSink, TextSink, legend
from nsnet.capture.timeline import LiveCapture, Sink, run
from nsnet.cli import complete
from nsnet.cli._common import emit_json, err, fail, guard, main, plural
from nsnet.engine import preflight
from nsnet.engine.directory import lab_namespaces
from nsnet.errors import NsnetError
from nsnet.model import HOST

BATCH = 4096
PARALLEL_ABOVE = 4 << 20  # bytes: below, starting workers costs more than it saves


class _Counter(Sink):
    """Counts the frames handed out, per point."""

    def __init__(self, n: int) -> None:
        self.per_point = [0] * n

    def add(self, frames: list[Frame]) -> None:
        counts = self.per_point
        for f in frames:
            counts[f[2]] += 1


@main.command()
@click.argument("args", nargs=-1, metavar="LAB [POINT]... [FILTER]", shell_complete=complete.points)
@click.option(
    "-c", "--count", type=click.IntRange(min=1), metavar="N", help="Stop after N packets (all points together)."
)
@click.option(
    "-d", "--duration", type=click.FloatRange(min=0, min_open=True), metavar="S", help="Stop after S seconds."
)
@click.option(
    "-w",
    "--write",
    metavar="FILE",
    help="Write the packets to a pcapng file, an interface per point; prints nothing unless --print.",
)
@click.option("--print", "also_print", is_flag=True, help="With -w: print the timeline as well.")
@click.option("-r", "--read", "read_path", metavar="FILE", help="Print the timeline of a pcapng (or pcap) file.")
@click.option(
    "--by-packet", is_flag=True, help="One step per packet: where it was seen, in order, and how long each hop took."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (schema: docs/capture.md).")
@click.option("-p", "--no-promisc", is_flag=True, help="Leave interfaces out of promiscuous mode (as tcpdump -p).")
@click.option(
    "-B",
    "--buffer",
    "buffer_mib",
    type=click.IntRange(min=2, max=1024),
    metavar="MIB",
    help="Kernel ring size per point, in MiB [default: 16, less from 5 points on: 64 MiB in all].",
)
@guard
def capture(
    args: tuple[str, ...],
    count: int | None,
    duration: float | None,
    write: str | None,
    also_print: bool,
    read_path: str | None,
    by_packet: bool,
    as_json: bool,
    no_promisc: bool,
    buffer_mib: int | None,
) -> None:
    """Capture on several points of LAB at once; print one timeline, decoded like `tcpdump -n -e`.

    \b
    POINT is NODE:IFACE, or NODE for all its interfaces but lo; `host` is the
    lab's host. Without points: every node's interfaces and the host's bridges.
    FILTER is a tcpdump filter (`icmp`, `arp or icmp`, `tcp port 80`),
    compiled by libpcap and applied in the kernel.
      nsnet capture lab2 RED:reth0 host:br0 BLUE:beth0
      nsnet capture lab2 RED host:br0 BLUE icmp --count 4 --by-packet
      nsnet capture lab2 -w lab2.pcapng --duration 10
      nsnet capture --read lab2.pcapng

    Each line is tagged with its point ([R], [~], [B]: legend first) and
    ordered by kernel timestamps. Runs until Ctrl-C, --count or --duration,
    then prints per point the packets captured and the kernel's drops.
    """
    if read_path is not None:
        if write:
            fail("--read and --write do not go together (copy the file instead)")
        if args:
            fail("a filter applies to live captures; filter a file with: tcpdump -r FILE -w OUT FILTER")
        _read(read_path, count, by_packet, as_json)
        return
    if not args:
        fail("name a lab (or --read FILE): nsnet capture LAB [POINT]... [FILTER]")
    if also_print and not write:
        fail("--print goes with --write (without it the timeline is printed anyway)")
    preflight.require_root("capture in the lab's namespaces")
    stopping = _Stop()
    with contextlib.suppress(ValueError):  # not in the main thread: leave the signals alone
        signal.signal(signal.SIGTERM, stopping)
        signal.signal(signal.SIGINT, stopping)
    lab = args[0]
    nodes = set(lab_namespaces(lab).values()) | {HOST}
    specs, expression = split_args(args[1:], nodes)
    points = resolve(lab, specs)
    show = not write or also_print
    if buffer_mib is None:
        buffer_mib = max(2, min(16, 64 // len(points)))
    live = LiveCapture(points, expression, promisc=not no_promisc, buffer_bytes=buffer_mib << 20)
    counter = _Counter(len(points))
    sinks: list[Sink] = [counter]
    if write:
        sinks.append(PcapngSink(write, points, expression, lab))
    json_sink = JsonSink(points, by_packet) if as_json else None
    if json_sink is not None and show:
        sinks.append(json_sink)
    elif show:
        sinks.append(TextSink(points, sys.stdout, by_packet, color=sys.stdout.isatty()))
    started = time.monotonic()
    try:
        with live:
            _heading(lab, points, expression, count, duration, write)
            if show and not as_json:
                _echo(legend(points, f"lab {lab}, capture points:"))
            try:
                emitted, reason = run(live, sinks, count, duration, stop=stopping.asked)
            except BrokenPipeError:  # e.g. `nsnet capture lab2 | head`: stop quietly
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                emitted, reason = sum(counter.per_point), "output closed"
                for sink in sinks:
                    with contextlib.suppress(OSError):
                        sink.close()
            counters = live.counters()
            summary_gone = [bool(r.gone) for r in live.rings]
    except KeyboardInterrupt:  # before the capture started
        sys.exit(130)
    elapsed = time.monotonic() - started
    summary: dict[str, Any] = {
        "packets": emitted,
        "seconds": round(elapsed, 3),
        "stopped": reason or "end",
        "points": [
            {
                "tag": p.tag,
                "point": p.name,
                "packets": counter.per_point[i],
                "received": counters[i].received,
                "dropped": counters[i].dropped,
                "gone": summary_gone[i],
            }
            for i, p in enumerate(points)
        ],
        "file": write,
    }
    if json_sink is not None:
        emit_json({**json_sink.document(), "filter": expression, "summary": summary}, "capture")
    _summary(summary)


class _Stop:
    """Ctrl-C or SIGTERM: stop at the next turn of the capture loop; twice: at once."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt

    def asked(self) -> bool:
        return self.count > 0


def _echo(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _heading(
    lab: str, points: Sequence[Point], expression: str, count: int | None, duration: float | None, write: str | None
) -> None:
    """The ready line on stderr: once it is printed, every packet is captured."""
    limits = [f"{duration:g} s" if duration else "", plural(count, "packet") if count else ""]
    until = " or ".join(x for x in limits if x) or "Ctrl-C"
    where = ", ".join(f"[{p.tag}] {p.name}" for p in points)
    text = f"capturing in lab {lab} on {where}"
    if expression:
        text += f", filter {expression!r}"
    if write:
        text += f", writing {write}"
    err.print(f"{text}; until {until}", markup=False, soft_wrap=True)


def _summary(summary: dict[str, Any]) -> None:
    text = f"{plural(summary['packets'], 'packet')} in {summary['seconds']:.1f} s"
    if summary["stopped"] in ("interrupted", "output closed", "interfaces gone", "lab down"):
        text += f" ({summary['stopped']})"
    if summary.get("file"):
        text += f", written to {summary['file']}"
    lines = [text]
    points = summary["points"]
    width = max(len(p["point"]) for p in points)
    tag_width = max(len(p["tag"]) for p in points) + 2
    for p in points:
        line = f"  {'[' + p['tag'] + ']':<{tag_width}} {p['point']:<{width}}  {plural(p['packets'], 'packet')}"
        if "received" in p:
            line += f", {p['received']} received by filter, {p['dropped']} dropped by kernel"
        if p.get("gone"):
            line += " (interface gone)"
        lines.append(line)
    err.print("\n".join(lines), markup=False, soft_wrap=True)


def _read(path: str, count: int | None, by_packet: bool, as_json: bool) -> None:
    found = pcapng.read(path)
    points = []
    for iface in found.interfaces:
        point = Point.from_name(iface.name)
        where = re.search(r"namespace (\S+),", iface.description)
        if where:  # written by nsnet: the namespace is in the interface's description
            point = dataclasses.replace(point, netns=where.group(1))
        points.append(point)
    points = assign_tags(points)
    if not points:
        raise NsnetError(f"{path} describes no interface")
    started = time.monotonic()
    try:
        if as_json:
            json_sink = JsonSink(points, by_packet)
            per_point = _feed(found, points, json_sink, count)
            summary = _read_summary(points, per_point, started, count)
            emit_json({**json_sink.document(), "file": path, "summary": summary}, "capture")
            return
        _echo(legend(points, f"{path}, capture points:"))
        color = sys.stdout.isatty()
        cores = parallel.workers()
        if not by_packet and not count and found.stripes and cores > 1 and os.path.getsize(path) > PARALLEL_ABOVE:
            per_point = parallel.print_file(found, points, sys.stdout.fileno(), color, cores)
        else:
            per_point = _feed(found, points, TextSink(points, sys.stdout, by_packet, color=color), count)
    except BrokenPipeError:  # e.g. `nsnet capture --read f | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    except KeyboardInterrupt:
        sys.exit(130)
    _summary(_read_summary(points, per_point, started, count))


def _feed(found: pcapng.Capture, points: list[Point], sink: Sink, count: int | None) -> list[int]:
    """Give a file's frames to ``sink`` in batches; returns the frames per point."""
    counter = _Counter(len(points))
    frames = itertools.islice(found.frames, count) if count else found.frames
    while True:
        batch = list(itertools.islice(frames, BATCH))
        if not batch:
            break
        if max(f[2] for f in batch) >= len(points):
            raise NsnetError("the file declares an interface after its first packet: not supported")
        counter.add(batch)
        sink.add(batch)
    sink.close()
    return counter.per_point


def _read_summary(points: list[Point], per_point: list[int], started: float, count: int | None) -> dict[str, Any]:
    read = sum(per_point)
    return {
        "packets": read,
        "seconds": round(time.monotonic() - started, 3),
        "stopped": "count" if count and read >= count else "end",
        "points": [{"tag": p.tag, "point": p.name, "packets": per_point[i]} for i, p in enumerate(points)],
    }
