"""Where frames go: text lines like ``tcpdump -n -e``, one line per packet or one step per packet's
journey; JSON; a pcapng file.

A line::

    [R] 03:09:40.623101 Out 1a:f3:d8:8f:9a:04 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request ...

is the point's tag, the kernel timestamp (local time, microseconds, as
tcpdump prints it), the direction (``Out``: sent from that interface,
``In``: received on it), then what ``tcpdump -n -e`` prints after its
timestamp, with MAC makers' names where the IEEE registry has one. Where
tcpdump prints more than one line (VXLAN: the inner frame on a line of its
own), the next lines are indented under the first one's text.

A step (``--by-packet``)::

    #1 ARP request: R → ~ → B  (+17 µs, +26 µs)
       03:09:40.623101 1a:f3:d8:8f:9a:04 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), ...

is one packet followed from point to point, with the time each hop took,
and the points it never reached (``not seen at B``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, TextIO

from nsnet.capture.decode import Decoder
from nsnet.capture.fields import fields
from nsnet.capture.frames import PKTTYPES, Frame, direction
from nsnet.capture.pcapng import Interface, Writer
from nsnet.capture.points import Point
from nsnet.capture.timeline import Group, Grouper, Sink

COLORS = ("31", "34", "32", "35", "36", "33", "91", "94", "92", "95", "96", "93")


class Clock:
    """Kernel timestamps as tcpdump prints them: local time, microseconds (truncated)."""

    def __init__(self) -> None:
        self._sec = -1
        self._hms = ""

    def __call__(self, ts: int) -> str:
        sec, ns = divmod(ts, 1_000_000_000)
        if sec != self._sec:
            self._sec = sec
            self._hms = time.strftime("%H:%M:%S", time.localtime(sec))
        return f"{self._hms}.{ns // 1000:06d}"


def delta(ns: int) -> str:
    """A short duration: ``7.5 µs``, ``38 µs``, ``1.25 ms``, ``2.500 s``."""
    if ns < 10_000:
        return f"{ns / 1000:.1f} µs"
    if ns < 1_000_000:
        return f"{ns / 1000:.0f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.3f} s"


def legend(points: Sequence[Point], title: str) -> str:
    """The legend printed first: each tag, its point and where it is."""
    width = max(len(p.name) for p in points)
    tag_width = max(len(p.tag) for p in points) + 2
    lines = [title]
    for p in points:
        where = f"  ({p.netns})" if p.netns else ""
        lines.append(f"  {f'[{p.tag}]'.ljust(tag_width)} {p.name.ljust(width)}{where}".rstrip())
    return "\n".join(lines) + "\n"


def _ascii_fallback(out: TextIO, text: str) -> str:
    encoding = getattr(out, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return text.replace("→", "->").replace("µ", "u")
    return text


class GroupingSink(Sink):
    """A sink that can group frames by packet (``--by-packet``): steps go to :meth:`_steps` as they complete."""

    grouper: Grouper | None = None

    def tick(self, watermark: int) -> None:
        if self.grouper is not None:
            self._steps(self.grouper.expire(watermark))

    def close(self) -> None:
        if self.grouper is not None:
            self._steps(self.grouper.flush())

    def _steps(self, groups: list[Group]) -> None:
        raise NotImplementedError


class TextSink(GroupingSink):
    """Decoded lines on a text stream, one per frame or (``by_packet``) one step per packet."""

    def __init__(
        self,
        points: Sequence[Point],
        out: TextIO,
        by_packet: bool = False,
        color: bool = False,
        vendors: bool = True,
        window: float = 0.05,
    ) -> None:
        self.points = list(points)
        self.out = out
        self.decoder = Decoder(vendors=vendors, cache=4096 if len(self.points) > 1 else 0)
        self.clock = Clock()
        width = max(len(p.tag) for p in self.points) + 2
        self.tags = []
        for i, p in enumerate(self.points):
            tag = f"[{p.tag}]".ljust(width)
            if color:
                tag = f"\x1b[1;{COLORS[i % len(COLORS)]}m{tag}\x1b[0m"
            self.tags.append(tag)
        self.grouper = Grouper(window) if by_packet else None
        # A text of several lines (VXLAN): the next ones under the first one's text, past tag, time, direction.
        self.indent = "\n" + " " * (width + 21)
        self.step_indent = "\n" + " " * 19  # past the step's indent and time
        self.arrow = _ascii_fallback(out, " → ")
        self.micro = _ascii_fallback(out, "µ") == "µ"

    def add(self, frames: list[Frame]) -> None:
        if self.grouper is not None:
            self._steps(self.grouper.add(frames))
            return
        decode = self.decoder.decode
        clock = self.clock
        tags = self.tags
        nl, indent = "\n", self.indent
        lines = [
            f"{tags[point]} {clock(ts)} {'Out' if pkttype == 4 else 'In '} "
            f"{decode(data, wirelen).text.replace(nl, indent)}\n"
            for ts, _seq, point, pkttype, wirelen, data in frames
        ]
        self.out.write("".join(lines))
        self.out.flush()

    def close(self) -> None:
        super().close()
        self.out.flush()

    def _steps(self, groups: list[Group]) -> None:
        if not groups:
            return
        text = "".join(self.step(g) for g in groups)
        if not self.micro:
            text = text.replace("µ", "u")
        self.out.write(text)
        self.out.flush()

    def step(self, group: Group) -> str:
        first = group.first
        decoded = self.decoder.decode(first[5], first[4])
        path = self.arrow.join(self.points[f[2]].tag for f in group.frames)
        hops = [delta(b[0] - a[0]) for a, b in zip(group.frames, group.frames[1:], strict=False)]
        head = f"#{group.number} {decoded.kind}: {path}"
        if hops:
            head += f"  (+{', +'.join(hops)})"
        seen = {f[2] for f in group.frames}
        if len(self.points) > 1 and len(seen) < len(self.points):
            missing = [p.tag for i, p in enumerate(self.points) if i not in seen]
            head += f"  not seen at {', '.join(missing)}"
        text = decoded.text.replace("\n", self.step_indent)
        return f"{head}\n   {self.clock(first[0])} {text}\n"


class JsonSink(GroupingSink):
    """Collects packets (and steps) as plain data, for ``--json``."""

    def __init__(self, points: Sequence[Point], by_packet: bool = False, window: float = 0.05) -> None:
        self.points = list(points)
        self.decoder = Decoder(vendors=True)
        self.clock = Clock()
        self.packets: list[dict[str, Any]] = []
        self.grouper = Grouper(window) if by_packet else None
        self.groups: list[dict[str, Any]] | None = [] if by_packet else None

    def add(self, frames: list[Frame]) -> None:
        for ts, _seq, point, pkttype, wirelen, data in frames:
            p = self.points[point]
            decoded = self.decoder.decode(data, wirelen)
            self.packets.append(
                {
                    "n": len(self.packets) + 1,
                    "tag": p.tag,
                    "point": p.name,
                    "ts_ns": ts,
                    "time": self.clock(ts),
                    "direction": direction(pkttype),
                    "pkttype": PKTTYPES.get(pkttype, str(pkttype)),
                    "length": wirelen,
                    "caplen": len(data),
                    "kind": decoded.kind,
                    "text": decoded.text,
                    **fields(data, wirelen, self.decoder),
                }
            )
        if self.grouper is not None:
            self._steps(self.grouper.add(frames))

    def _steps(self, groups: list[Group]) -> None:
        assert self.groups is not None
        for g in groups:
            first = g.first
            decoded = self.decoder.decode(first[5], first[4])
            seen = [f[2] for f in g.frames]
            self.groups.append(
                {
                    "n": g.number,
                    "kind": decoded.kind,
                    "text": decoded.text,
                    "path": [self.points[i].tag for i in seen],
                    "sightings": [
                        {
                            "tag": self.points[f[2]].tag,
                            "point": self.points[f[2]].name,
                            "ts_ns": f[0],
                            "delta_ns": f[0] - (g.frames[k - 1][0] if k else f[0]),
                            "direction": direction(f[3]),
                        }
                        for k, f in enumerate(g.frames)
                    ],
                    "missing": [p.tag for i, p in enumerate(self.points) if i not in seen],
                }
            )

    def document(self) -> dict[str, Any]:
        return {
            "points": [
                {"tag": p.tag, "point": p.name, "node": p.node, "iface": p.iface, "netns": p.netns} for p in self.points
            ],
            "packets": self.packets,
            "groups": self.groups,
        }


class PcapngSink(Sink):
    """Writes frames to a pcapng file, an interface per capture point."""

    def __init__(self, path: str, points: Sequence[Point], expression: str = "", lab: str = "") -> None:
        interfaces = [
            Interface(
                name=p.name,
                description=f"nsnet lab {lab}, namespace {p.netns or 'root'}, interface {p.iface}" if lab else "",
                filter=expression,
            )
            for p in points
        ]
        self.writer = Writer(path, interfaces)

    def add(self, frames: list[Frame]) -> None:
        self.writer.add(frames)

    def tick(self, watermark: int) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
