"""Mininet's side of bench_build.py: N hosts on one Linux bridge, no controller.

Run by bench_build.py with the system's python3 (where Debian's `mininet`
package lives), inside a private network namespace: Mininet's "root" — where
its bridge and the bridge's ends of the veths live — is that namespace, never
the machine's. Prints {"up": seconds, "down": seconds, "ports": count} as JSON.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import mininet.net  # type: ignore[import-not-found]
from mininet.net import Mininet  # type: ignore[import-not-found]
from mininet.nodelib import LinuxBridge  # type: ignore[import-not-found]
from mininet.topo import Topo  # type: ignore[import-not-found]


class Star(Topo):  # type: ignore[misc]
    def build(self, n: int = 2) -> None:  # type: ignore[override]
        switch = self.addSwitch("br0")
        for i in range(n):
            self.addLink(self.addHost(f"h{i}"), switch)


def _stop(*_: Any) -> None:
    raise SystemExit(1)


def main(n: int) -> None:
    signal.signal(signal.SIGTERM, _stop)
    # Mininet raises machine-wide limits and sysctls when it starts; not here.
    mininet.net.fixLimits = lambda: None
    net = Mininet(topo=Star(n=n), switch=LinuxBridge, controller=None, build=False, waitConnected=False)
    started = time.perf_counter()
    try:
        net.build()
        net.start()
        up = time.perf_counter() - started
        ports = subprocess.run(["ip", "-o", "link", "show", "master", "br0"], capture_output=True, text=True)
        count = len(ports.stdout.splitlines())
    finally:
        started = time.perf_counter()
        net.stop()
        down = time.perf_counter() - started
    print(json.dumps({"up": up, "down": down, "ports": count}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
