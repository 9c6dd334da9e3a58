"""Read a lab into a :class:`Snapshot` for explain: inspect's view plus listening sockets."""

from __future__ import annotations

from ..inspect import inspect
from ..kernel import netns
from .model import Snapshot, Space

_PROC = {"tcp": ("/proc/net/tcp", "/proc/net/tcp6"), "udp": ("/proc/net/udp", "/proc/net/udp6")}
_LISTEN = "0A"


def listening(ns: str) -> frozenset[tuple[str, int]]:
    """(protocol, port) of TCP sockets listening and UDP sockets bound in ``ns``."""
    found: set[tuple[str, int]] = set()
    with netns.entered(ns):
        for proto, files in _PROC.items():
            for path in files:
                try:
                    with open(path) as f:
                        lines = f.readlines()[1:]
                except OSError:
                    continue
                for line in lines:
                    fields = line.split()
                    if len(fields) < 4 or (proto == "tcp" and fields[3] != _LISTEN):
                        continue
                    found.add((proto, int(fields[1].rsplit(":", 1)[1], 16)))
    return frozenset(found)


def snapshot(lab: str) -> Snapshot:
    """Everything explain needs to know about ``lab``, read from the kernel now."""
    view = inspect(lab)
    return Snapshot(
        lab=lab,
        spaces={v.node: Space(view=v, listening=listening(v.netns)) for v in view.namespaces},
    )
