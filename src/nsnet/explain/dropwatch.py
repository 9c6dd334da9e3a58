"""Count the kernel's packet drop reasons (``skb:kfree_skb``) until told to stop.

Run as a child process inside a private mount namespace
(``unshare --mount --propagation private``), so that mounting tracefs, when
the machine has not, changes nothing outside it. It uses a tracing instance
of its own, removed at the end. Protocol: prints ``ready`` (or
``unavailable: WHY``), waits for a line on stdin, then prints one JSON
object ``{"REASON at function": count}``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter

TRACEFS = "/sys/kernel/tracing"
_KFREE_RE = re.compile(r"kfree_skb: .*protocol=(\d+) location=(\S+) reason: (\S+)")
IP_PROTOCOLS = ("2048", "34525")


def main() -> None:
    if not os.path.isdir(os.path.join(TRACEFS, "instances")):
        done = subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"unavailable: cannot mount tracefs: {done.stderr.strip()}", flush=True)
            return
    instance = os.path.join(TRACEFS, "instances", f"nsnet-{os.getpid()}")
    try:
        os.mkdir(instance)
    except OSError as exc:
        print(f"unavailable: no tracing instance: {exc.strerror}", flush=True)
        return
    reasons: Counter[str] = Counter()
    try:
        enable = os.path.join(instance, "events/skb/kfree_skb/enable")
        with open(enable, "w") as f:
            f.write("1")
        print("ready", flush=True)
        sys.stdin.readline()
        with open(enable, "w") as f:
            f.write("0")
        with open(os.path.join(instance, "trace")) as f:
            for line in f:
                m = _KFREE_RE.search(line)
                if m and m.group(1) in IP_PROTOCOLS and m.group(3) != "NOT_SPECIFIED":
                    reasons[f"{m.group(3)} at {m.group(2).split('+')[0]}"] += 1
    finally:
        os.rmdir(instance)
    print(json.dumps(dict(reasons)), flush=True)


if __name__ == "__main__":
    main()
