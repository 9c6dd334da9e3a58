"""How long `inspect` takes on a lab of N nodes, each joined to one bridge.

Run as root: python bench/bench_inspect.py [N ...]   (default: 50 200)
Prints, per N: build time, inspect time (all sections), and time per node.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import nsnet
from nsnet.inspect import inspect


def topology(n: int) -> nsnet.Topology:
    nodes = {f"n{i}": {"interfaces": {"eth0": {"addresses": [f"10.{i // 250}.{i % 250}.2/8"]}}} for i in range(n)}
    host_ifaces = {f"p{i}": {"master": "br0"} for i in range(n)}
    return nsnet.from_dict(
        {
            "name": f"bench{n}",
            "host": {"bridges": {"br0": {}}, "interfaces": host_ifaces},
            "nodes": nodes,
            "links": [[f"n{i}:eth0", f"host:p{i}"] for i in range(n)],
        }
    )


def main(sizes: list[int]) -> None:
    print(f"{'N':>5} {'up (s)':>8} {'inspect (s)':>12} {'per node (ms)':>14}")
    for n in sizes:
        topo = topology(n)
        lab = f"bi{os.getpid()}x{n}"  # never a lab of anyone else's
        start = time.perf_counter()
        try:
            nsnet.up(topo, lab)
            built = time.perf_counter() - start
            runs = []
            for _ in range(3):
                start = time.perf_counter()
                view = inspect(lab)
                runs.append(time.perf_counter() - start)
            assert len(view.namespaces) == n + 1
            took = statistics.median(runs)
            print(f"{n:>5} {built:>8.2f} {took:>12.2f} {1000 * took / (n + 1):>14.1f}")
        finally:
            nsnet.down(lab)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [50, 200])
