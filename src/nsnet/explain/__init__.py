"""Say where and why a packet dies: predicted from the kernel's state, confirmed by a probe.

The walker (:mod:`.walk` and its mixins) is pure: it reads a :class:`Snapshot`.
:mod:`.snapshot` takes one from a running lab, :mod:`.probe` confirms with the kernel.
"""

from __future__ import annotations

from nsnet.explain.verdict import Explanation, Fix, Leg, Snapshot, Space, Step
from nsnet.explain.walk import Walker, parse_proto


def explain(lab: str, src: str, dst: str, proto: str = "icmp", size: int | None = None) -> Explanation:
    """The predicted fate of a ``proto`` packet (``size`` bytes of IP) from node ``src`` to node or address ``dst``."""
    from nsnet.explain.snapshot import snapshot  # the kernel and the running labs: only when a lab is read

    return Walker(snapshot(lab)).explain(src, dst, proto, size)


__all__ = ["Explanation", "Fix", "Leg", "Snapshot", "Space", "Step", "Walker", "explain", "parse_proto"]
