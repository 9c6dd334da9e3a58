"""Captures started from the page: ``nsnet capture``'s loop in a thread, its timeline handed out in batches.

The capture loop (:func:`nsnet.capture.timeline.run`) runs in a thread of its
own and never waits for the page: its sinks write every frame to a pcapng
file (which the page downloads), keep the latest :data:`KEEP` frames, and
group sightings of one packet into steps as ``--by-packet`` does. Decoding,
the slow part, happens only for what the page asks: what is new since its
last read, at most a batch of the latest; during a flood of thousands of
packets a second, the lines in between are skipped and counted (they are in
the file), never the kernel's reading.
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

from nsnet.capture.decode import Decoder
from nsnet.capture.frames import Frame
from nsnet.capture.points import Point, resolve
from nsnet.capture.render import Clock, GroupingSink, PcapngSink, delta
from nsnet.capture.timeline import Group, Grouper, LiveCapture, run
from nsnet.errors import NsnetError

IDLE = 60.0
"""Seconds without a page asking for news after which a capture stops (its page was closed)."""
KEEP = 20_000
"""Lines (and steps) a capture keeps for the page; older ones are dropped."""
_ids = itertools.count(1)


class _KeepSink(GroupingSink):
    """Keeps the frames, and the packets (groups of sightings) as ``--by-packet`` finds them; decodes nothing."""

    def __init__(self, session: CaptureSession) -> None:
        self.session = session
        self.grouper = Grouper()

    def add(self, frames: list[Frame]) -> None:
        self.session.add_frames(frames)
        if self.grouper is not None:
            self._steps(self.grouper.add(frames))

    def _steps(self, groups: list[Group]) -> None:
        if groups:
            self.session.add_groups(groups)


class _Render:
    """Lines as ``nsnet capture`` prints them, and steps as ``--by-packet`` shows them, for what the page asks."""

    def __init__(self, points: Sequence[Point]) -> None:
        self.points = list(points)
        self.decoder = Decoder(vendors=True, cache=4096 if len(self.points) > 1 else 0)
        self.clock = Clock()
        width = max(len(p.tag) for p in self.points) + 2
        self.tags = [f"[{p.tag}]".ljust(width) for p in self.points]
        self.indent = "\n" + " " * (width + 21)
        self.lock = threading.Lock()

    def line(self, number: int, frame: Frame) -> dict[str, Any]:
        ts, seq, point, pkttype, wirelen, data = frame
        text = self.decoder.decode(data, wirelen).text.replace("\n", self.indent)
        return {
            "n": number,
            "seq": seq,
            "point": point,
            "text": f"{self.tags[point]} {self.clock(ts)} {'Out' if pkttype == 4 else 'In '} {text}",
        }

    def step(self, group: Group) -> dict[str, Any]:
        first = group.first
        decoded = self.decoder.decode(first[5], first[4])
        frames = group.frames
        seen = {f[2] for f in frames}
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
            "missing": [p.tag for i, p in enumerate(self.points) if i not in seen],
        }


@dataclass
class CaptureSession:
    """One capture of a lab: its points, filter, what it saw so far, and its pcapng file.

    The capture thread only appends frames and groups (cheap); they are
    decoded when the page asks for them, at most ``limit`` a time, the latest.
    """

    lab: str
    points: list[Point]
    expression: str
    ident: int = field(default_factory=lambda: next(_ids))
    frames: collections.deque[tuple[int, Frame]] = field(default_factory=lambda: collections.deque(maxlen=KEEP))
    """(line number, frame)."""
    groups: collections.deque[Group] = field(default_factory=lambda: collections.deque(maxlen=KEEP))
    total: int = 0
    total_steps: int = 0
    running: bool = True
    reason: str = ""
    error: str = ""
    path: str = ""
    counters: list[dict[str, Any]] = field(default_factory=list)
    """Per point, once stopped: packets the kernel passed through the filter, and dropped (its ring was full)."""
    started: float = field(default_factory=time.time)
    last_poll: float = field(default_factory=time.monotonic)
    _stop: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _render: _Render | None = None

    def add_frames(self, frames: list[Frame]) -> None:
        with self._lock:
            start = self.total
            self.frames.extend(zip(range(start + 1, start + 1 + len(frames)), frames, strict=True))
            self.total += len(frames)

    def add_groups(self, groups: list[Group]) -> None:
        with self._lock:
            self.groups.extend(groups)
            self.total_steps = groups[-1].number

    def since(self, line: int, step: int, limit: int = 1000) -> dict[str, Any]:
        """What is new after line ``line`` and step ``step``: the latest ``limit`` of each, the rest counted."""
        self.last_poll = time.monotonic()
        with self._lock:
            frames = [x for x in itertools.islice(reversed(self.frames), limit) if x[0] > line][::-1]
            groups = [g for g in itertools.islice(reversed(self.groups), limit) if g.number > step][::-1]
            total, total_steps = self.total, self.total_steps
        if self._render is None:
            self._render = _Render(self.points)
        render = self._render
        with render.lock:
            lines = [render.line(n, f) for n, f in frames]
            steps = [render.step(g) for g in groups]
        return {
            "lines": lines,
            "steps": steps,
            "last_line": total,
            "last_step": total_steps,
            "skipped": max((frames[0][0] - line - 1) if frames else total - line, 0),
            "skipped_steps": max((groups[0].number - step - 1) if groups else total_steps - step, 0),
            "running": self.running,
            "reason": self.reason,
            "error": self.error,
            "counters": self.counters,
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

    def _should_stop(self) -> bool:
        return self._stop or time.monotonic() - self.last_poll > IDLE

    def start(self, live: LiveCapture) -> None:
        threading.Thread(target=self._run, args=(live,), name=f"capture {self.lab}", daemon=True).start()

    def _run(self, live: LiveCapture) -> None:
        sinks = [PcapngSink(self.path, self.points, self.expression, self.lab), _KeepSink(self)]
        try:
            _, self.reason = run(live, sinks, stop=self._should_stop)
            if self.reason == "interrupted" and not self._stop:
                self.reason = f"no page asked for it in {IDLE:.0f} s"
            self.counters = [
                {"point": p.name, "tag": p.tag, "received": c.received, "dropped": c.dropped}
                for p, c in zip(self.points, live.counters(), strict=True)
            ]
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
    buffer_mib = max(4, min(32, 128 // len(points)))  # twice `nsnet capture`'s: the server shares its CPU
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
