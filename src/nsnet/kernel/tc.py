"""What the kernel's traffic control can do here.

The kernel may lack netem (``CONFIG_NET_SCH_NETEM``): a topology that asks
for delay or loss is refused before anything changes, with that reason.
"""

from __future__ import annotations

import functools
import subprocess

from nsnet.errors import PreflightError


@functools.cache
def netem_available() -> bool:
    """Whether this kernel has netem: tried on ``lo`` of a private, throwaway namespace."""
    probe = subprocess.run(
        ["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def require(shapings: list[str]) -> None:
    """Refuse shapings this kernel cannot do, before anything changes."""
    if any(s.startswith("netem") for s in shapings) and not netem_available():
        raise PreflightError(
            "delay and loss need the netem queueing discipline, which this kernel does not have "
            "(CONFIG_NET_SCH_NETEM, module sch_netem): remove delay/loss from the topology, "
            "keep rate (tbf) alone, or run on a kernel with netem"
        )
