"""Captures started from the page: ``nsnet capture``'s loop in a thread, its timeline handed out in batches.

The capture loop (:func:`nsnet.capture.timeline.run`) runs in a thread of its
own and never waits for the page: its sink decodes each frame to the line
``nsnet capture`` prints, groups sightings of one packet into steps as
``--by-packet`` does, and appends both to bounded buffers. Every frame also
goes to a pcapng file, which the page downloads. The page asks for what is
new since its last read; if it fell more than :data:`KEEP` lines behind (a
flood of thousands of packets a second), the lines in between are skipped
and counted, never the kernel's reading.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..capture.decode import Decoder
from ..capture.frames import Frame
from ..capture.points import Point, resolve
from ..capture.render import Clock, GroupingSink, PcapngSink, delta
from ..capture.timeline import Group, Grouper, LiveCapture, run
from ..errors import NsnetError

KEEP = 20_000
"""Lines (and steps) a capture keeps for the page; older ones are dropped."""
_ids = itertools.count(1)


class _WebSink(GroupingSink):
    """Lines as ``nsnet capture`` prints them, and steps as ``--by-packet`` groups them."""

    def __init__(self, session: CaptureSession, points: Sequence[Point]) -> None:
        self.session = session
        self.points = list(points)
        self.decoder = Decoder(vendors=True, cache=4096 if len(self.points) > 1 else 0)
        self.clock = Clock()
        width = max(len(p.tag) for p in self.points) + 2
        self.tags = [f"[{p.tag}]".ljust(width) for p in self.points]
        self.grouper = Grouper()
        self.indent = "\n" + " " * (width + 21)

    def add(self, frames: list[Frame]) -> None:
        decode, clock, tags, nl, indent = self.decoder.decode, self.clock, self.tags, "\n", self.indent
        lines = [
            (
                seq,
                point,
                f"{tags[point]} {clock(ts)} {'Out' if pkttype == 4 else 'In '} "
                f"{decode(data, wirelen).text.replace(nl, indent)}",
            )
            for ts, seq, point, pkttype, wirelen, data in frames
        ]
        self.session.add_lines(lines)
        self._steps(self.grouper.add(frames) if self.grouper else [])

    def _steps(self, groups: list[Group]) -> None:
        if groups:
            self.session.add_steps([self.step(g) for g in groups])

    def step(self, group: Group) -> dict[str, Any]:
        first = group.first
        decoded = self.decoder.decode(first[5], first[4])
        frames = group.frames
        return {
            "n": group.number,
            "kind": decoded.kind,
            "text": decoded.text,
            "time": self.clock(first[0]),
            "seqs": [f[1] for f in frames],
            "sightings": [
                {
                    "tag": self.points[f[2]].tag,
                    "point": self.points[f[2]].name,
                    "node": self.points[f[2]].node,
                    "iface": self.points[f[2]].iface,
                    "direction": "out" if f[3] == 4 else "in",
                    "delta": delta(f[0] - frames[k - 1][0]) if k else "",
                }
                for k, f in enumerate(frames)
            ],
            "missing": [p.tag for i, p in enumerate(self.points) if i not in {f[2] for f in frames}],
        }


@dataclass
class CaptureSession:
    """One capture of a lab: its points, filter, what it saw so far, and its pcapng file."""

    lab: str
    points: list[Point]
    expression: str
    ident: int = field(default_factory=lambda: next(_ids))
    lines: collections.deque[tuple[int, int, int, str]] = field(default_factory=lambda: collections.deque(maxlen=KEEP))
    """(number, seq, point, text)."""
    steps: collections.deque[tuple[int, dict[str, Any]]] = field(default_factory=lambda: collections.deque(maxlen=KEEP))
    total: int = 0
    total_steps: int = 0
    running: bool = True
    reason: str = ""
    error: str = ""
    path: str = ""
    started: float = field(default_factory=time.time)
    _stop: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_lines(self, lines: list[tuple[int, int, str]]) -> None:
        with self._lock:
            start = self.total
            self.lines.extend((start + k + 1, seq, point, text) for k, (seq, point, text) in enumerate(lines))
            self.total += len(lines)

    def add_steps(self, steps: list[dict[str, Any]]) -> None:
        with self._lock:
            start = self.total_steps
            self.steps.extend((start + k + 1, s) for k, s in enumerate(steps))
            self.total_steps += len(steps)

    def since(self, line: int, step: int, limit: int = 2000) -> dict[str, Any]:
        """What is new after line number ``line`` and step number ``step`` (at most ``limit`` lines: the latest)."""
        with self._lock:
            new_lines = [x for x in itertools.islice(reversed(self.lines), limit) if x[0] > line][::-1]
            new_steps = [s for n, s in reversed(self.steps) if n > step][::-1]
            skipped = (new_lines[0][0] - line - 1) if new_lines else 0
            return {
                "lines": [{"n": n, "seq": seq, "point": p, "text": t} for n, seq, p, t in new_lines],
                "steps": new_steps,
                "last_line": self.total,
                "last_step": self.total_steps,
                "skipped": max(skipped, 0),
                "running": self.running,
                "reason": self.reason,
                "error": self.error,
            }

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.ident,
            "lab": self.lab,
            "filter": self.expression,
            "points": [{"tag": p.tag, "point": p.name, "node": p.node, "iface": p.iface} for p in self.points],
        }

    def stop(self) -> None:
        self._stop = True

    def start(self, live: LiveCapture) -> None:
        threading.Thread(target=self._run, args=(live,), name=f"capture {self.lab}", daemon=True).start()

    def _run(self, live: LiveCapture) -> None:
        sinks = [PcapngSink(self.path, self.points, self.expression, self.lab), _WebSink(self, self.points)]
        try:
            _, self.reason = run(live, sinks, stop=lambda: self._stop)
        except (NsnetError, OSError) as exc:
            self.error = str(exc)
        finally:
            live.close()
            self.running = False

    def remove(self) -> None:
        self.stop()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def start(lab: str, specs: Sequence[str], expression: str) -> CaptureSession:
    """Resolve the points (as ``nsnet capture`` does), open their rings, and start capturing; errors come first."""
    points = resolve(lab, specs)
    buffer_mib = max(2, min(16, 64 // len(points)))
    live = LiveCapture(points, expression, buffer_bytes=buffer_mib << 20)  # compiles the filter: a bad one raises
    live.open()  # every ring is open when this returns: whatever is sent next is captured
    try:
        fd, path = tempfile.mkstemp(prefix=f"nsnet-web-{lab}-", suffix=".pcapng")
        os.close(fd)
    except OSError:
        live.close()
        raise
    session = CaptureSession(lab, points, expression, path=path)
    session.start(live)
    return session
