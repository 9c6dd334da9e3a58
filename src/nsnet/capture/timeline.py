"""Several capture points, one timeline: the live capture loop, and packets grouped across points.

:class:`LiveCapture` opens a :class:`~nsnet.capture.ring.Ring` per point,
waits on all of them at once (``selectors``), and hands out frames in the
order of their kernel timestamps. The kernel hands a ring's block over when it
is full or ``timeout_ms`` after its first packet, so a frame may reach us a
little after a later frame of another point: frames are held ``hold``
seconds before they are handed out, and sorted. At the end (duration, count,
Ctrl-C) the rings are emptied once more, after the kernel's block timeout, so
nothing that was captured is lost.

:class:`Grouper` recognises one packet at successive points: the same bytes
(from the IP header on, what routers rewrite aside; see
:func:`~nsnet.capture.decode.group_key`) seen at another point within
``window`` seconds of its first sighting. Each group becomes one step of the
packet's journey: ``#1 ARP request: R → ~ → B``.
"""

from __future__ import annotations

import bisect
import collections
import selectors
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

from nsnet.capture import bpf
from nsnet.capture.decode import group_key
from nsnet.capture.frames import Frame
from nsnet.capture.points import Point
from nsnet.capture.ring import Counters, Ring
from nsnet.errors import NsnetError

SNAPLEN = 262144
SLICE = 2048
"""Frames given to the sinks at a time, the rings emptied in between."""
CHECK_EVERY = 0.5
"""Seconds between two looks at whether the points' namespaces still exist."""
BACKLOG = 1_000_000
"""Frames held in memory at most while the sinks catch up; beyond, the kernel drops (and counts)."""
_ts = itemgetter(0)


class LiveCapture:
    """Capture on several points at once; frames come out in kernel-timestamp order."""

    def __init__(
        self,
        points: Sequence[Point],
        expression: str = "",
        promisc: bool = True,
        buffer_bytes: int = 16 << 20,
        hold: float = 0.1,
        timeout_ms: int = 10,
        snaplen: int = SNAPLEN,
    ) -> None:
        if not points:
            raise NsnetError("no capture point")
        self.points = list(points)
        self.expression = expression
        self.program = bpf.compile_filter(expression, snaplen)
        self._promisc = promisc
        self._buffer = buffer_bytes
        self.timeout_ms = timeout_ms
        """How long the kernel keeps a ring block that is not full before handing it over."""
        self._hold_ns = int(hold * 1e9)
        self.rings: list[Ring] = []
        self._pending: list[Frame] = []
        self._seq = 0
        self._sel = selectors.DefaultSelector()
        self._next_check = 0.0

    def __enter__(self) -> LiveCapture:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        try:
            for i, p in enumerate(self.points):
                ring = Ring(i, p.netns, p.iface, self.program, self._promisc, self._buffer, self.timeout_ms)
                self.rings.append(ring)
                self._sel.register(ring.fileno(), selectors.EVENT_READ, ring)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for ring in self.rings:
            if not ring.gone:
                self._sel.unregister(ring.fileno())
            ring.close()
        self.rings.clear()
        self._sel.close()

    def _drain(self) -> None:
        seq = self._seq
        for ring in self.rings:
            if not ring.closed:
                seq = ring.drain(self._pending, seq)
        self._seq = seq

    def _check_namespaces(self) -> None:
        """Close the rings whose namespace was deleted (the lab went down): nothing more can come."""
        self._next_check = time.monotonic() + CHECK_EVERY
        for ring in self.rings:
            was_gone = bool(ring.gone)
            if ring.check_namespace():
                self._seq = ring.drain(self._pending, self._seq)
                if not was_gone:
                    self._sel.unregister(ring.fileno())
                ring.close()

    def poll(self, timeout: float) -> list[Frame]:
        """Wait up to ``timeout`` seconds; return the frames older than the hold window, in order."""
        events = self._sel.select(timeout) if timeout > 0 else []
        self._drain()
        for key, _ in events:
            ring = key.data
            if ring.check_gone():  # the interface was deleted: its socket only reports that, again and again
                self._sel.unregister(ring.fileno())
        if time.monotonic() >= self._next_check:
            self._check_namespaces()
        pending = self._pending
        if not pending:
            return []
        pending.sort()
        cut = bisect.bisect_right(pending, time.time_ns() - self._hold_ns, key=_ts)
        if not cut:
            return []
        ready = pending[:cut]
        del pending[:cut]
        return ready

    def relieve(self) -> None:
        """Empty the rings into memory now (up to :data:`BACKLOG` frames), to be handed out later."""
        if len(self._pending) < BACKLOG:
            self._drain()

    def finish(self) -> list[Frame]:
        """Every frame still in the rings or held back, in order (after the kernel's block timeout)."""
        time.sleep(self.timeout_ms * 3 / 1000)
        self._drain()
        ready = sorted(self._pending)
        self._pending = []
        return ready

    @property
    def alive(self) -> bool:
        """Whether any point's interface is still there."""
        return any(not ring.gone for ring in self.rings)

    @property
    def lab_gone(self) -> bool:
        """Whether the namespace of every point was deleted (its lab went down)."""
        return bool(self.rings) and all(ring.gone == "namespace deleted" for ring in self.rings)

    def watermark(self) -> int:
        """Every frame older than this (ns) has been handed out."""
        return time.time_ns() - self._hold_ns

    def counters(self) -> list[Counters]:
        """What the kernel counted per point: packets that passed the filter, and drops."""
        return [ring.update_counters() for ring in self.rings]


class Sink:
    """Takes frames in timeline order."""

    def add(self, frames: list[Frame]) -> None:
        raise NotImplementedError

    def tick(self, watermark: int) -> None:
        """Every frame older than ``watermark`` (ns) has been given."""

    def close(self) -> None:
        """No more frames."""


def run(
    capture: LiveCapture,
    sinks: Sequence[Sink],
    count: int | None = None,
    duration: float | None = None,
    stop: Callable[[], bool] | None = None,
) -> tuple[int, str]:
    """Feed the capture's frames to ``sinks`` until ``count`` frames, ``duration`` seconds, ``stop()`` or Ctrl-C.

    ``stop`` is asked between two waits: a signal handler that sets a flag
    stops the capture cleanly, without cutting a slice of frames short (a
    ``KeyboardInterrupt`` raised in the middle of one loses the rest of it).

    Sinks get the frames in slices; between two slices the rings are emptied
    into memory, so that a burst the sinks take a while over (decoding is the
    slow part) does not make the kernel drop what comes meanwhile.

    Returns how many frames were handed out, and why it stopped
    (``count``, ``duration``, ``interrupted``, ``interfaces gone``, ``lab down``).
    """
    emitted = 0
    deadline = time.monotonic() + duration if duration else None
    reason = ""
    tick = max(capture.timeout_ms / 1000, 0.01)

    def give(frames: list[Frame], relieve: bool = True) -> bool:
        nonlocal emitted
        if count is not None and emitted + len(frames) >= count:
            frames = frames[: count - emitted]
        emitted += len(frames)
        for start in range(0, len(frames), SLICE):
            part = frames[start : start + SLICE]
            for sink in sinks:
                sink.add(part)
            if relieve:
                capture.relieve()
        return count is not None and emitted >= count

    try:
        while True:
            timeout = tick
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    reason = "duration"
                    break
                timeout = min(timeout, left)
            if stop is not None and stop():
                reason = "interrupted"
                break
            if give(capture.poll(timeout)):
                reason = "count"
                break
            if not capture.alive:
                reason = "lab down" if capture.lab_gone else "interfaces gone"
                break
            mark = capture.watermark()
            for sink in sinks:
                sink.tick(mark)
    except KeyboardInterrupt:
        reason = "interrupted"
    if reason != "count":
        give(capture.finish(), relieve=False)
        if count is not None and emitted >= count:
            reason = "count"
    for sink in sinks:
        sink.close()
    return emitted, reason


# -- one packet, several points ---------------------------------------------------


@dataclass
class Group:
    """One packet seen at one or more points, in order."""

    number: int
    key: bytes
    frames: list[Frame] = field(default_factory=list)

    @property
    def first(self) -> Frame:
        return self.frames[0]


class Grouper:
    """Groups frames (given in time order) that are the same packet seen at successive points."""

    def __init__(self, window: float = 0.05) -> None:
        self._window = int(window * 1e9)
        self._open: collections.deque[Group] = collections.deque()
        self._by_key: dict[bytes, Group] = {}
        self._number = 0

    def add(self, frames: list[Frame]) -> list[Group]:
        """Take frames; return the groups that can no longer grow."""
        by_key = self._by_key
        done: list[Group] = []
        for f in frames:
            done += self.expire(f[0])
            key = group_key(f[5])
            group = by_key.get(key)
            if group is None or any(g[2] == f[2] for g in group.frames):
                self._number += 1
                group = Group(self._number, key)
                by_key[key] = group
                self._open.append(group)
            group.frames.append(f)
        return done

    def expire(self, now: int) -> list[Group]:
        """The groups whose window closed before ``now`` (ns)."""
        done = []
        window = self._window
        while self._open and self._open[0].frames[0][0] + window < now:
            group = self._open.popleft()
            if self._by_key.get(group.key) is group:
                del self._by_key[group.key]
            done.append(group)
        return done

    def flush(self) -> list[Group]:
        done = list(self._open)
        self._open.clear()
        self._by_key.clear()
        return done
