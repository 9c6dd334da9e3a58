"""Decoding a large file on every core: ``nsnet capture --read`` with the plain timeline.

Decoding is a pure function of each frame (no state carried from one frame to
the next: TCP sequence numbers are absolute), so the file can be cut in
batches of consecutive frames and the batches decoded side by side. Each
worker process (forked, sharing the memory-mapped file) walks the file's
blocks, decodes the batches numbered ``mine`` modulo the number of workers,
and sends their text through a pipe; the parent writes the batches in order.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
from collections.abc import Callable, Sequence

from nsnet.capture.frames import Frame
from nsnet.capture.pcapng import Capture
from nsnet.capture.points import Point
from nsnet.capture.render import TextSink
from nsnet.errors import NsnetError

BATCH = 8192
_HEAD = struct.Struct("<cI")  # message kind, payload length
DATA, END, ERROR = b"D", b"E", b"X"


def workers() -> int:
    """How many worker processes are worth it: the cores this process may use, less those already busy.

    On cores other work keeps busy, workers only compete with it and with
    each other (each walks the whole file), so the load average counts.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(cores, round(cores - busy)))


def print_file(capture: Capture, points: Sequence[Point], out_fd: int, color: bool, count: int) -> list[int]:
    """Print a file's timeline to ``out_fd`` with ``count`` worker processes; returns the frames per point."""
    pipes: list[tuple[int, int]] = []
    pids: list[int] = []
    try:
        for mine in range(count):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the worker: never returns
                os.close(r)
                for other, _ in pipes:
                    os.close(other)
                _work(capture, points, w, color, count, mine)
            os.close(w)
            pipes.append((r, pid))
            pids.append(pid)
        return _collect([r for r, _ in pipes], out_fd, len(points))
    finally:
        for r, _ in pipes:
            os.close(r)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
            os.waitpid(pid, 0)


def _work(capture: Capture, points: Sequence[Point], w: int, color: bool, count: int, mine: int) -> None:
    """A worker's life: decode its batches, send them, send its counts, exit (never return)."""

    def send(kind: bytes, payload: bytes) -> None:
        data = _HEAD.pack(kind, len(payload)) + payload
        while data:
            data = data[os.write(w, data) :]

    code = 1
    try:
        try:
            _decode_batches(capture, points, send, color, count, mine)
        except NsnetError as exc:
            send(ERROR, str(exc).encode())
        code = 0
    finally:  # Ctrl-C, a closed pipe, anything: the parent knows what to do
        os._exit(code)


def _decode_batches(
    capture: Capture, points: Sequence[Point], send: Callable[[bytes, bytes], None], color: bool, count: int, mine: int
) -> None:
    text = io.StringIO()
    sink = TextSink(points, text, color=color)
    per_point = [0] * len(points)
    batch: list[Frame] = []
    current = -1

    def flush() -> None:
        sink.add(batch)
        send(DATA, text.getvalue().encode())
        text.seek(0)
        text.truncate()
        batch.clear()

    for frame in capture.stripe(BATCH, count, mine):
        number = frame[1] // BATCH
        if number != current and batch:
            flush()
        current = number
        if frame[2] >= len(per_point):
            raise NsnetError("the file declares an interface after its first packet: not supported")
        per_point[frame[2]] += 1
        batch.append(frame)
    if batch:
        flush()
    send(END, json.dumps(per_point).encode())


def _read_exactly(fd: int, n: int) -> bytes:
    parts = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise NsnetError("a decoding worker stopped early")
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def _collect(pipes: list[int], out_fd: int, points: int) -> list[int]:
    per_point = [0] * points
    done = [False] * len(pipes)
    k = 0
    while not all(done):
        i = k % len(pipes)
        k += 1
        if done[i]:
            continue
        kind, size = _HEAD.unpack(_read_exactly(pipes[i], _HEAD.size))
        payload = _read_exactly(pipes[i], size)
        if kind == DATA:
            view = memoryview(payload)
            while view:
                view = view[os.write(out_fd, view) :]
            continue
        if kind == ERROR:
            raise NsnetError(payload.decode())
        # This worker is done: so is the file, and every later batch; the others only have their ends to send.
        done[i] = True
        for n, c in enumerate(json.loads(payload)):
            per_point[n] += c
        for j in range(len(pipes)):
            if not done[j]:
                kind, size = _HEAD.unpack(_read_exactly(pipes[j], _HEAD.size))
                payload = _read_exactly(pipes[j], size)
                if kind == ERROR:
                    raise NsnetError(payload.decode())
                if kind == DATA:  # cannot be: batches come in order
                    raise NsnetError("decoding workers out of step")
                done[j] = True
                for n, c in enumerate(json.loads(payload)):
                    per_point[n] += c
    return per_point
