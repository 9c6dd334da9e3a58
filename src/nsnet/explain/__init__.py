"""Say where and why a packet dies: predicted from the kernel's state, confirmed by a probe."""

from __future__ import annotations

from .model import Explanation, Fix, Leg, Snapshot, Space, Step
from .snapshot import snapshot
from .walk import Walker, parse_proto


def explain(lab: str, src: str, dst: str, proto: str = "icmp", size: int | None = None) -> Explanation:
    """The predicted fate of a ``proto`` packet (``size`` bytes of IP) from node ``src`` to node or address ``dst``."""
    return Walker(snapshot(lab)).explain(src, dst, proto, size)


__all__ = ["Explanation", "Fix", "Leg", "Snapshot", "Space", "Step", "Walker", "explain", "parse_proto", "snapshot"]
