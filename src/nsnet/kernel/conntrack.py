"""A namespace's connection tracking entries, for ``inspect`` (through pyroute2's conntrack decoder)."""

from __future__ import annotations

import socket
from typing import Any

from nsnet.errors import KernelError
from nsnet.kernel import netns, rtnl
from nsnet.views import ConntrackView

TCP_STATES = [
    "NONE",
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
    "SYN_SENT2",
]


def read(ns: str) -> list[ConntrackView]:
    """Connection tracking entries of ``ns`` (empty where conntrack is not in use there)."""
    try:  # nothing tracked (most namespaces): no dump (it walks the whole, machine-wide table)
        with netns.entered(ns), open("/proc/sys/net/netfilter/nf_conntrack_count") as f:
            if f.read().strip() == "0":
                return []
    except (OSError, KernelError):
        pass
    from pyroute2 import Conntrack  # imported on first use: it takes a while

    try:
        if ns == "":
            ct = Conntrack()
        else:  # the socket made in the namespace by this thread: no child process
            with netns.entered(ns):
                kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                made = socket.socket(socket.AF_NETLINK, kind, rtnl.NETLINK_NETFILTER)
            ct = Conntrack(fileno=made.detach())
        try:
            entries = list(ct.dump_entries())
        finally:
            ct.close()
    except OSError:
        return []
    return [
        ConntrackView(
            protocol=e.tuple_orig.proto,
            original=_tuple(e.tuple_orig),
            reply=_tuple(e.tuple_reply),
            state=_tcp_state(getattr(e.protoinfo, "state", None)),
        )
        for e in entries
    ]


def _tcp_state(state: Any) -> str | None:
    if isinstance(state, int):
        return TCP_STATES[state] if state < len(TCP_STATES) else str(state)
    return None if state is None else str(state)


def _tuple(t: Any) -> dict[str, str | int | None]:
    return {"src": t.saddr, "dst": t.daddr, "sport": t.sport, "dport": t.dport}
