"""Wait until the links an ``up`` brought up carry packets.

A veth end brought up before its peer has no carrier yet; when the peer
comes up, the kernel attaches that end's transmit queue only once its link
watcher has handled the carrier change, and the link watcher needs the rtnl
lock. On a busy host (namespaces being deleted hold that lock for seconds)
packets sent in that window are dropped without a trace: a ping right after
``up`` fails. The link watcher sets the operational state as it attaches the
queue, so an up veth or bridge with carrier that is not yet operationally UP
is still in that window.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from nsnet.kernel import rtnl
from nsnet.kernel.netlink import Netlink

SETTLING = frozenset({"veth", "bridge"})
"""Kinds whose operational state follows their carrier (others stay UNKNOWN)."""


def unsettled(nl: Netlink, ns: str) -> list[str]:
    """The links of ``ns`` that are up with carrier but whose transmit queue is not attached yet."""
    return [
        m.name
        for m in nl.link_msgs(ns)
        if m.kind in SETTLING
        and m.flags & rtnl.IFF_UP
        and m.flags & rtnl.IFF_LOWER_UP
        and m.operstate != rtnl.IF_OPER_UP
    ]


def wait(nl: Netlink, spaces: Iterable[str], timeout: float = 10.0) -> dict[str, list[str]]:
    """Wait up to ``timeout`` seconds for every link of ``spaces`` to settle; what had not, by namespace."""
    pending = set(spaces)
    deadline = time.monotonic() + timeout
    pause = 0.005
    left: dict[str, list[str]] = {}
    while pending:
        left = {ns: names for ns in sorted(pending) if (names := unsettled(nl, ns))}
        pending = set(left)
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(pause)
        pause = min(pause * 2, 0.1)
    return left
