"""What decoding costs a Python program at the least, against the whole of `tcpdump -n -e -r`.

Run: python bench/bench_decode_floor.py [FRAMES]   (default 400,000; no root needed)

It writes a pcap of UDP frames (Ethernet, IPv4, UDP, 64 bytes of payload),
then times, best of 3:

- `tcpdump -n -e -r FILE > /dev/null`: reading, decoding and printing;
- dpkt reading the file, frame by frame, doing nothing with the frames;
- dpkt decoding every frame already in memory (``dpkt.ethernet.Ethernet``),
  printing nothing.

The last two are the least any dpkt-based decoder pays per frame. If the
decoding alone already takes longer than tcpdump's whole run, no formatting,
caching or batching on top of it can reach tcpdump's speed; sharing the work
across every core divides it at best by the number of cores.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import dpkt


def write(path: str, frames: int) -> list[bytes]:
    out = []
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
        for i in range(frames):
            udp = dpkt.udp.UDP(sport=40000, dport=9000, data=b"x" * 64)
            ip = dpkt.ip.IP(
                src=socket.inet_aton("11.11.11.2"), dst=socket.inet_aton("11.11.11.3"), p=17, id=i & 0xFFFF, data=udp
            )
            eth = dpkt.ethernet.Ethernet(src=b"\x02\0\0\0\0\x01", dst=b"\x02\0\0\0\0\x02", type=0x0800, data=ip)
            frame = bytes(eth)
            writer.writepkt(frame, ts=1_700_000_000 + i * 1e-5)
            out.append(frame)
    return out


def best(fn: Callable[[], object], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(frames: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "floor.pcap")
        data = write(path, frames)

        def tcpdump() -> None:
            subprocess.run(
                ["tcpdump", "-n", "-e", "-r", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
            )

        def read() -> None:
            with open(path, "rb") as f:
                for _ in dpkt.pcap.Reader(f):
                    pass

        def parse() -> None:
            ethernet = dpkt.ethernet.Ethernet
            for frame in data:
                ethernet(frame)

        rows = [("tcpdump -n -e -r (read, decode, print)", best(tcpdump)), ("dpkt: read the file only", best(read))]
        rows.append(("dpkt: decode in memory only", best(parse)))
    print(f"{frames:,} frames, best of 3")
    for name, seconds in rows:
        print(f"  {name:<40} {seconds:6.3f} s  {seconds / frames * 1e6:5.2f} us/frame")
    ratio = rows[0][1] / rows[2][1]
    cores = len(os.sched_getaffinity(0))
    print(
        f"tcpdump's whole run / dpkt's decoding alone: {ratio:.2f} on one core, "
        f"{ratio * cores:.2f} at best on {cores} cores"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400_000)
