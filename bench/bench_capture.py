"""How many packets a second `nsnet capture` keeps up with, and how fast it decodes a file, against tcpdump.

Run as root: python bench/bench_capture.py [SECONDS]   (default: 2 seconds of load per step)

It brings up the seed's lab 2 (fixed) under a name of its own, then sends
UDP from RED to BLUE at increasing rates (a paced sender in RED; BLUE has a
socket bound that never reads, so nothing is sent back) while `nsnet capture`
runs:

- on one point (RED:reth0) and on three (RED:reth0 host:br0 BLUE:beth0);
- writing pcapng only (-w), and decoding to text as well (-w --print, to /dev/null).

A step passes when every point captured every packet sent, with no kernel
drop, and the capture had kept up: it ends within half a second of the
Ctrl-C sent right after the last packet (a capture may hold a backlog in
memory rather than let the kernel drop; that is not counted as keeping up).
It prints the highest passing rate per configuration (packets sent a
second, and frames handled a second: three points see every packet three
times), then the time `nsnet capture --read` and `tcpdump -n -e -r` take to
print the same files (output to /dev/null), and their ratio.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "lab2-bridge-fixed.yaml"
RATES = [25_000, 50_000, 75_000, 100_000, 150_000, 200_000, 250_000, 300_000, 400_000]
NSNET = [sys.executable, "-m", "nsnet"]
CATCH_UP = 0.5
"""Seconds a capture may take to end after Ctrl-C (emptying its rings, writing, exiting): no more."""

SENDER = """
import socket, sys, time
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("11.11.11.3", 9999))
payload, send, sent = b"x" * 64, s.send, 0
start = time.perf_counter()
while True:
    elapsed = time.perf_counter() - start
    if elapsed >= seconds:
        break
    due = min(int(elapsed * rate), sent + 1000)
    if due <= sent:
        time.sleep(0.0002)
        continue
    for _ in range(due - sent):
        send(payload)
    sent = due
print(sent, time.perf_counter() - start)
"""
SINK = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("11.11.11.3", 9999))
print("bound", flush=True)
time.sleep(3600)
"""
POINT_LINE = re.compile(
    r"^\s+\[(\S+)\] (\S+)\s+(\d+) packets?, (\d+) received by filter, (\d+) dropped by kernel", re.M
)


def run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=True)


def step(lab: str, points: list[str], rate: int, seconds: float, path: str, decode: bool) -> tuple[str, int, float]:
    """Capture while sending at ``rate`` for ``seconds``, then Ctrl-C; (failure or "", packets sent, seconds).

    A step fails if a point missed a packet, the kernel dropped one, or the
    capture was still catching up when the sender stopped: it must end within
    ``CATCH_UP`` seconds of the Ctrl-C that follows the last packet.
    """
    argv = [*NSNET, "capture", lab, *points, "udp", "-w", path]
    if decode:
        argv.append("--print")
    cap = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert cap.stderr is not None
        for line in cap.stderr:
            err.append(line)
            if line.startswith("capturing in lab"):
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(60) or cap.poll() is not None:
            raise RuntimeError("capture did not start: " + "".join(err))
        sent_out = run("ip", "netns", "exec", f"{lab}-RED", sys.executable, "-c", SENDER, str(rate), str(seconds))
        time.sleep(0.2)
        asked = time.monotonic()
        cap.send_signal(signal.SIGINT)
        cap.wait(timeout=seconds * 20 + 60)
        lag = time.monotonic() - asked
    finally:
        if cap.poll() is None:
            cap.kill()
            cap.wait()
    reader.join(10)
    sent, took = sent_out.stdout.split()
    counts = POINT_LINE.findall("".join(err))
    if len(counts) != len(points):
        raise RuntimeError("no summary: " + "".join(err))
    failure = ""
    if any(int(dropped) for *_, dropped in counts):
        failure = "drops"
    elif any(int(packets) != int(sent) for _, _, packets, _, _ in counts):
        failure = "missed"
    elif lag > CATCH_UP:
        failure = f"{lag:.1f} s behind"
    return failure, int(sent), float(took)


def best_of(n: int, *argv: str) -> float:
    """Seconds the fastest of ``n`` runs of ``argv`` took, output to /dev/null."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=600)
        times.append(time.perf_counter() - start)
    return min(times)


def count_frames(path: str) -> int:
    from nsnet.capture import read

    return sum(1 for _ in read(path).frames)


def decode_rates_in_process(path: str) -> tuple[float, float]:
    """Frames a second decoded to text without the process start-up (to /dev/null): one process, and workers."""
    from nsnet.capture import Point, TextSink, assign_tags, parallel, read

    found = read(path)
    frames = list(found.frames)
    points = assign_tags([Point.from_name(i.name) for i in found.interfaces])
    with open(os.devnull, "w") as devnull:
        sink = TextSink(points, devnull)
        start = time.perf_counter()
        for i in range(0, len(frames), 4096):
            sink.add(frames[i : i + 4096])
        sink.close()
        one = len(frames) / (time.perf_counter() - start)
        cores = len(os.sched_getaffinity(0))
        start = time.perf_counter()
        parallel.print_file(read(path), points, devnull.fileno(), False, cores)
        return one, len(frames) / (time.perf_counter() - start)


def main(seconds: float) -> None:
    lab = f"bcap{os.getpid() % 100000}"
    run(*NSNET, "up", str(EXAMPLE), "--name", lab, "-q")
    sink = subprocess.Popen(
        ["ip", "netns", "exec", f"{lab}-BLUE", sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True
    )
    files: dict[str, str] = {}
    tmp = tempfile.mkdtemp(prefix="nsnet-bench-")
    try:
        assert sink.stdout is not None and sink.stdout.readline().strip() == "bound"
        print(f"UDP from RED to BLUE, {seconds:g} s per step; a step passes with every packet captured, no drop")
        print(f"{'points':>6} {'mode':<15} {'sent/s':>9} {'frames/s':>9}  first failing rate")
        for points in (["RED:reth0"], ["RED:reth0", "host:br0", "BLUE:beth0"]):
            for decode in (False, True):
                path = os.path.join(tmp, f"{len(points)}-{'decode' if decode else 'write'}.pcapng")
                best, failed = 0.0, ""
                for rate in RATES:
                    failure, sent, took = step(lab, points, rate, seconds, path, decode)
                    if failure:
                        failed = f"{rate:,}/s ({failure})"
                        break
                    best = sent / took
                if not decode:
                    files[f"{len(points)}"] = path  # the last (largest) capture, for the decoding figures
                mode = "-w --print" if decode else "-w"
                print(
                    f"{len(points):>6} {mode:<15} {best:>9,.0f} {best * len(points):>9,.0f}  {failed or 'none'}",
                    flush=True,
                )
        print()
        print("decoding a file to text (output to /dev/null), best of 3:")
        print(
            f"{'file':<28} {'frames':>9} {'nsnet (s)':>10} {'tcpdump (s)':>12} {'ratio':>6}"
            f" {'frames/s, 1 process':>21} {'all cores':>10}"
        )
        for name, path in sorted(files.items()):
            frames = count_frames(path)
            ours = best_of(3, *NSNET, "capture", "--read", path)
            theirs = best_of(3, "tcpdump", "-n", "-e", "-r", path)
            label = f"{name} point{'s' if name != '1' else ''}, {os.path.getsize(path) >> 20} MiB"
            one, every = decode_rates_in_process(path)
            print(
                f"{label:<28} {frames:>9,} {ours:>10.2f} {theirs:>12.2f} {theirs / ours:>6.2f}"
                f" {one:>21,.0f} {every:>10,.0f}"
            )
        print("ratio: tcpdump's time / nsnet's (1.00: as fast as tcpdump), `nsnet capture --read` as it chooses;")
        print("frames/s: decoding in this process (no start-up), in one process, and with a worker per core")
        print(f"load average at the end: {os.getloadavg()[0]:.2f} on {len(os.sched_getaffinity(0))} cores")
    finally:
        sink.kill()
        sink.wait()
        run(*NSNET, "down", lab, "-q")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0)
