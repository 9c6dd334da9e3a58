"""Live netlink events from every namespace of a lab, on one timeline (``nsnet watch``).

One rtnetlink socket per namespace, made inside it by this thread (no child
process) and bound to the multicast groups of links, IPv4/IPv6 addresses and
routes, and neighbours; the sockets are multiplexed with :mod:`selectors`
and their messages decoded by nsnet's codec (:mod:`nsnet.watch.decode`). Bridge
forwarding-database (fdb) changes arrive as neighbour messages of family
``AF_BRIDGE``. Each message becomes a frozen :class:`Event`, with interface
indexes resolved to names in the namespace they belong to.

Before the first event, each namespace's links, neighbours and fdb entries are
read once, so that an entry already present shows up as ``change`` rather than
``new``, and a message that changes nothing :class:`Event` shows (the kernel
repeats itself, e.g. a bridge port's carrier) is left out.

Netlink messages carry no timestamp: :attr:`Event.time` is when nsnet read the
message, so events of different namespaces are ordered by receipt.

A namespace that disappears while watched (``nsnet down``) yields one
``netns del`` event and its socket is closed at once: an open socket would
keep the namespace, and its interfaces, alive.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import replace

from nsnet.engine import directory
from nsnet.engine.journal import Journal
from nsnet.errors import KernelError
from nsnet.kernel import netns, rtnl
from nsnet.kernel.netlink import Netlink
from nsnet.model import ROOT_NS
from nsnet.watch.decode import Space, decode, summary
from nsnet.watch.event import Action, Event, Kind, nud_state

__all__ = ["Action", "Event", "Kind", "Watcher", "lab_namespaces", "nud_state", "watch"]

GROUPS = (
    rtnl.RTMGRP_LINK
    | rtnl.RTMGRP_NEIGH
    | rtnl.RTMGRP_IPV4_IFADDR
    | rtnl.RTMGRP_IPV6_IFADDR
    | rtnl.RTMGRP_IPV4_ROUTE
    | rtnl.RTMGRP_IPV6_ROUTE
)
"""RTNLGRP_LINK, _NEIGH, _IPV4_IFADDR, _IPV6_IFADDR, _IPV4_ROUTE and _IPV6_ROUTE, as a bind() mask."""
DRAIN = 64
"""Datagrams read from one ready socket per round, so that a busy namespace cannot starve the others."""
CHECK_EVERY = 1.0
"""Seconds between checks that the watched namespaces still exist."""


def lab_namespaces(lab: str, nodes: Sequence[str] | None = None) -> dict[str, str]:
    """Node label -> kernel namespace of ``lab``: its nodes and its host(s), or only ``nodes``."""
    hosts = directory.host_labels(lab)  # raises LabNotFoundError for an unknown lab
    if nodes:
        return {node: directory.namespace_of(lab, node) for node in dict.fromkeys(nodes)}
    journal = Journal.load(lab)
    spaces = {label: ns for ns, label in (journal.namespaces if journal else {}).items() if label not in hosts}
    ordered = sorted(hosts, key=lambda h: (h == "underlay", h))
    spaces.update({host: directory.namespace_of(lab, host) for host in ordered})
    return spaces


def _ident(ns: str) -> tuple[int, int] | None:
    """Device and inode of a namespace's file, to notice it being deleted (or replaced)."""
    if ns == ROOT_NS:
        return None
    try:
        st = os.stat(netns.path(ns))
    except FileNotFoundError:
        return (0, 0)
    return (st.st_dev, st.st_ino)


class Watcher:
    """Events of a lab's namespaces, as an iterator; sockets are open once it is built.

    Iteration ends after ``timeout`` seconds (counted from construction),
    after ``count`` events, or when every watched namespace is gone. The
    sockets are closed when iteration ends, on any exception (Ctrl-C
    included), by :meth:`close` and at the end of a ``with`` block.
    """

    def __init__(
        self, lab: str, nodes: Sequence[str] | None = None, timeout: float | None = None, count: int | None = None
    ) -> None:
        self.lab = lab
        self.namespaces = lab_namespaces(lab, nodes)
        """Node label -> kernel namespace, in the order watched."""
        self.started = time.time()
        self.emitted = 0
        self.overruns = 0
        """Times a socket's receive buffer overflowed (events were lost)."""
        self.gone: list[str] = []
        """Labels of namespaces that disappeared while watched."""
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._count = count
        self._pending: deque[Event] = deque()
        self._spaces: dict[int, Space] = {}
        self._selector = selectors.DefaultSelector()
        self._next_check = time.monotonic() + CHECK_EVERY
        self._closed = False
        try:
            for label, ns in self.namespaces.items():
                self._open(label, ns)
            with Netlink() as nl:
                for space in self._spaces.values():
                    self._snapshot(nl, space)
        except BaseException:
            self.close()
            raise

    # -- the iterator ----------------------------------------------------------

    def __iter__(self) -> Watcher:
        return self

    def __next__(self) -> Event:
        try:
            return self._next()
        except BaseException:
            self.close()
            raise

    def _next(self) -> Event:
        if self._closed or (self._count is not None and self.emitted >= self._count):
            self.close()
            raise StopIteration
        while not self._pending:
            if not self._spaces:
                self.close()
                raise StopIteration
            wait = CHECK_EVERY
            if self._deadline is not None:
                wait = min(wait, self._deadline - time.monotonic())
                if wait <= 0:
                    self.close()
                    raise StopIteration
            for key, _ in self._selector.select(wait):
                self._read(key.fd)
            if time.monotonic() >= self._next_check:
                self._check_namespaces()
        self.emitted += 1
        event = self._pending.popleft()
        if self._count is not None and self.emitted >= self._count:
            self.close()
        return event

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every socket (idempotent); iteration then ends."""
        self._closed = True
        for space in list(self._spaces.values()):
            self._drop(space)
        self._selector.close()

    # -- sockets -----------------------------------------------------------------

    def _open(self, label: str, ns: str) -> None:
        if not netns.exists(ns):
            raise KernelError(f"network namespace {ns!r} of node {label} does not exist")
        ident = _ident(ns)
        try:
            with netns.entered(ns):
                sock = rtnl.Socket.open(groups=GROUPS)
        except OSError as exc:
            raise KernelError(f"cannot open a netlink socket in {ns or 'root'}: {exc}") from exc
        try:
            self._selector.register(sock.fileno(), selectors.EVENT_READ)
        except BaseException:
            sock.close()
            raise
        self._spaces[sock.fileno()] = Space(ns, label, sock, ident)

    def _drop(self, space: Space) -> None:
        fd = next((fd for fd, s in self._spaces.items() if s is space), None)
        if fd is None:
            return
        del self._spaces[fd]
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(fd)
        space.sock.close()

    def _snapshot(self, nl: Netlink, space: Space) -> None:
        """Read links, neighbours and fdb entries once: names for indexes, and what is already there."""
        what = f"read {space.ns or 'root'}"
        links = nl.dump(space.ns, what, rtnl.RTM_GETLINK, rtnl.ifinfo())
        space.names.update((m.index, m.name) for m in map(rtnl.LinkMsg, links))  # a port may come before its bridge
        neighbours = [
            body
            for family in (socket.AF_UNSPEC, socket.AF_BRIDGE)
            for body in nl.dump(space.ns, what, rtnl.RTM_GETNEIGH, rtnl.ndmsg(family))
        ]
        for mtype, bodies in ((rtnl.RTM_NEWLINK, links), (rtnl.RTM_NEWNEIGH, neighbours)):
            for body in bodies:
                decoded = decode(space, mtype, body, 0.0)
                if decoded is not None:
                    key, event = decoded
                    space.seen[key] = summary(event)
        nl.forget(space.ns)

    def _read(self, fd: int) -> None:
        space = self._spaces.get(fd)
        if space is None:
            return
        for _ in range(DRAIN):
            try:
                messages = space.sock.events()
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise KernelError(f"reading netlink events in {space.ns or 'root'}: {exc}") from exc
                # The kernel dropped messages (the socket works on): count it.
                self.overruns += 1
                continue
            if messages is None:
                return
            now = time.time()
            for mtype, body in messages:
                self._handle(space, mtype, body, now)

    def _check_namespaces(self) -> None:
        self._next_check = time.monotonic() + CHECK_EVERY
        for space in list(self._spaces.values()):
            if space.ident is not None and _ident(space.ns) != space.ident:
                self._drop(space)
                self.gone.append(space.label)
                self._pending.append(Event(time.time(), space.ns, space.label, "netns", "del"))

    # -- decoding ---------------------------------------------------------------

    def _handle(self, space: Space, mtype: int, body: memoryview, now: float) -> None:
        decoded = decode(space, mtype, body, now)
        if decoded is None:
            return
        key, event = decoded
        if event.kind in ("link", "neigh", "fdb"):
            shown = summary(event)
            if event.action == "del":
                space.seen.pop(key, None)
            elif key in space.seen:
                if space.seen[key] == shown:
                    return  # nothing shown has changed
                space.seen[key] = shown
                event = replace(event, action="change")
            else:
                space.seen[key] = shown
        self._pending.append(event)


def watch(
    lab: str, nodes: Sequence[str] | None = None, timeout: float | None = None, count: int | None = None
) -> Watcher:
    """Watch ``lab`` (or only ``nodes`` of it): an iterator of :class:`Event`, ready when this returns.

    Use it in a ``with`` block, or iterate it to the end, so that its sockets
    are closed::

        with watch("lab2", timeout=10) as events:
            for event in events:
                print(event.node, event.kind, event.action, event.describe())
    """
    return Watcher(lab, nodes, timeout=timeout, count=count)
