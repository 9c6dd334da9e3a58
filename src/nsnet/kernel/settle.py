"""Wait until the links an ``up`` brought up carry packets.

A veth end brought up before its peer has no carrier yet; when the peer
comes up, the kernel attaches that end's transmit queue only once its link
watcher has handled the carrier change, and the link watcher needs the rtnl
lock. On a busy host (namespaces being deleted hold that lock for seconds)
packets sent in that window are dropped without a trace: a ping right after
``up`` fails. The link watcher sets the operational state as it attaches the
queue, so an up veth or bridge with carrier that is not yet operationally UP
is still in that window.

An IPv6 address under duplicate address detection (DAD) is *tentative*: the
kernel neither sends from it nor answers for it until DAD ends (a second or
so). nsnet adds its own IPv6 addresses without DAD (``nodad``, as Docker
adds containers' addresses: their uniqueness is the lab's, checked when it
is loaded), but the link-local addresses a ``link_local: true`` interface
gets from the kernel go through it; ``up`` waits for them too, so that
``reach`` and ``explain`` right after ``up`` see the lab as it will stay.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from nsnet.kernel import readers, rtnl
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


def tentative(nl: Netlink, ns: str) -> list[str]:
    """The IPv6 addresses of ``ns`` still under duplicate address detection (those that failed it are left out)."""
    return [
        f"{a.address}"
        for a in readers.address_msgs(nl, ns)
        if a.flags & rtnl.IFA_F_TENTATIVE and not a.flags & rtnl.IFA_F_DADFAILED
    ]


def wait(nl: Netlink, spaces: Iterable[str], timeout: float = 10.0) -> dict[str, list[str]]:
    """Wait up to ``timeout`` seconds for every link of ``spaces`` to settle and its IPv6 addresses to
    leave DAD; what had not (link names, addresses), by namespace."""
    pending = set(spaces)
    deadline = time.monotonic() + timeout
    pause = 0.005
    left: dict[str, list[str]] = {}
    while pending:
        left = {ns: names for ns in sorted(pending) if (names := unsettled(nl, ns) + tentative(nl, ns))}
        pending = set(left)
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(pause)
        pause = min(pause * 2, 0.1)
    return left
