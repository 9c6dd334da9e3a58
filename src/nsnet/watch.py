"""Live netlink events from every namespace of a lab, on one timeline (``nsnet watch``).

One rtnetlink socket per namespace, made inside it by this thread (no child
process) and bound to the multicast groups of links, IPv4/IPv6 addresses and
routes, and neighbours; the sockets are multiplexed with :mod:`selectors`
and their messages decoded by pyroute2's rtnetlink marshal. Bridge
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
from dataclasses import astuple, dataclass, field, fields, replace
from typing import Any, Literal

from pyroute2.netlink.rtnl import (
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV4_ROUTE,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_IPV6_ROUTE,
    RTMGRP_LINK,
    RTMGRP_NEIGH,
    rt_proto,
    rt_type,
)
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from nsnet.engine import directory
from nsnet.engine.journal import Journal
from nsnet.errors import KernelError
from nsnet.kernel import netns
from nsnet.kernel.netlink import Netlink
from nsnet.model import ROOT_NS

Kind = Literal["link", "addr", "route", "neigh", "fdb", "netns"]
Action = Literal["new", "del", "change"]

GROUPS = RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE
"""RTNLGRP_LINK, _NEIGH, _IPV4_IFADDR, _IPV6_IFADDR, _IPV4_ROUTE and _IPV6_ROUTE, as a bind() mask."""

IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
NTF_SELF = 0x02
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
NUD_STATES = (
    (0x01, "INCOMPLETE"),
    (0x02, "REACHABLE"),
    (0x04, "STALE"),
    (0x08, "DELAY"),
    (0x10, "PROBE"),
    (0x20, "FAILED"),
    (0x40, "NOARP"),
    (0x80, "PERMANENT"),
)
FAMILIES = {socket.AF_INET: "inet", socket.AF_INET6: "inet6", socket.AF_BRIDGE: "bridge"}
TABLES = {253: "default", 254: "main", 255: "local"}
SCOPES = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}
"""Address and route scopes, named as ``ip`` names them."""
NETLINK_ROUTE = 0
SO_RCVBUFFORCE = 33
RCVBUF = 4 << 20
"""Receive buffer per socket: room for bursts (a lab coming up), so that no event is lost."""
RECV_SIZE = 1 << 16
DRAIN = 64
"""Datagrams read from one ready socket per round, so that a busy namespace cannot starve the others."""
CHECK_EVERY = 1.0
"""Seconds between checks that the watched namespaces still exist."""


@dataclass(frozen=True)
class Event:
    """One netlink event in one namespace of a lab.

    Which fields are set depends on :attr:`kind`; the others are ``None``:

    - ``link``: ifname, state (``up``/``down``: administratively), operstate,
      carrier, mtu, mac, master (the bridge it is a port of);
    - ``addr``: family, ifname, address (CIDR), scope;
    - ``route``: family, dst (CIDR or ``default``), gateway, ifname, src,
      table, proto, scope, route_type, metric;
    - ``neigh``: family, ifname, address (the IP), mac (the link-layer
      address, if known), state (the NUD state: REACHABLE, STALE, ...);
    - ``fdb``: family (``bridge``), ifname (the bridge port, or the device
      for ``self`` entries), mac, master (the bridge; ``None`` for ``self``
      entries), vlan, state (NUD), permanent, learned;
    - ``netns``: nothing: the namespace is gone and no longer watched.
    """

    time: float
    """When nsnet read the message (seconds since the epoch)."""
    namespace: str
    """Kernel namespace name (``""`` for the root namespace)."""
    node: str
    """The namespace's node label in the lab (``host`` for the lab's host)."""
    kind: Kind
    action: Action
    ifname: str | None = None
    family: str | None = None
    address: str | None = None
    mac: str | None = None
    state: str | None = None
    operstate: str | None = None
    carrier: bool | None = None
    mtu: int | None = None
    master: str | None = None
    permanent: bool | None = None
    learned: bool | None = None
    vlan: int | None = None
    dst: str | None = None
    gateway: str | None = None
    src: str | None = None
    table: str | None = None
    proto: str | None = None
    scope: str | None = None
    route_type: str | None = None
    metric: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON object: every field, ``null`` where it does not apply."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def describe(self) -> str:
        """The event's details in the words of ``ip`` and ``bridge`` (without time, node, kind, action)."""
        if self.kind == "link":
            text = f"{self.ifname} {self.state} carrier {'on' if self.carrier else 'off'} operstate {self.operstate}"
            text += f" mtu {self.mtu}" if self.mtu is not None else ""
            text += f" mac {self.mac}" if self.mac else ""
            return text + (f" master {self.master}" if self.master else "")
        if self.kind == "addr":
            return f"{self.address} dev {self.ifname} scope {self.scope}"
        if self.kind == "route":
            text = "" if self.route_type in (None, "unicast") else f"{self.route_type} "
            text += f"{self.dst}"
            text += f" via {self.gateway}" if self.gateway else ""
            text += f" dev {self.ifname}" if self.ifname else ""
            text += f" table {self.table}" if self.table != "main" else ""
            text += f" proto {self.proto} scope {self.scope}"
            text += f" src {self.src}" if self.src else ""
            return text + (f" metric {self.metric}" if self.metric is not None else "")
        if self.kind == "neigh":
            lladdr = f" lladdr {self.mac}" if self.mac else ""
            return f"{self.address}{lladdr} {self.state} dev {self.ifname}"
        if self.kind == "fdb":
            text = f"{self.mac} dev {self.ifname}"
            text += f" vlan {self.vlan}" if self.vlan is not None else ""
            text += f" master {self.master}" if self.master else " self"
            how = "learned" if self.learned else "permanent" if self.permanent else "static"
            return text + f" ({how})"
        return f"namespace {self.namespace or 'root'} is gone, no longer watched"


def nud_state(state: int) -> str:
    """Name(s) of a NUD state bit mask: ``REACHABLE``, ``STALE|...``; ``NONE`` for 0."""
    return "|".join(name for bit, name in NUD_STATES if state & bit) or "NONE"


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


@dataclass
class _Space:
    """One watched namespace: its socket, index -> name map and the entries seen."""

    ns: str
    label: str
    sock: socket.socket
    ident: tuple[int, int] | None
    names: dict[int, str] = field(default_factory=dict)
    seen: dict[tuple[Any, ...], tuple[Any, ...]] = field(default_factory=dict)

    def name(self, index: int | None) -> str | None:
        if not index:
            return None
        return self.names.get(index, f"if{index}")


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
        self._spaces: dict[int, _Space] = {}
        self._selector = selectors.DefaultSelector()
        self._next_check = time.monotonic() + CHECK_EVERY
        self._closed = False
        self._marshal = MarshalRtnl()
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
        kind = socket.SOCK_RAW | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
        try:
            with netns.entered(ns):
                sock = socket.socket(socket.AF_NETLINK, kind, NETLINK_ROUTE)
        except OSError as exc:
            raise KernelError(f"cannot open a netlink socket in {ns or 'root'}: {exc}") from exc
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.bind((0, GROUPS))
            self._selector.register(sock.fileno(), selectors.EVENT_READ)
        except BaseException:
            sock.close()
            raise
        self._spaces[sock.fileno()] = _Space(ns, label, sock, ident)

    def _drop(self, space: _Space) -> None:
        fd = next((fd for fd, s in self._spaces.items() if s is space), None)
        if fd is None:
            return
        del self._spaces[fd]
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(fd)
        space.sock.close()

    def _snapshot(self, nl: Netlink, space: _Space) -> None:
        """Read links, neighbours and fdb entries once: names for indexes, and what is already there."""
        what = f"read {space.ns or 'root'}"
        links = nl.call(space.ns, what, "get_links")
        for msg in links:
            space.names[msg["index"]] = msg.get("IFLA_IFNAME")
        messages = [*links]
        messages += nl.call(space.ns, what, "get_neighbours", family=socket.AF_UNSPEC)
        messages += nl.call(space.ns, what, "get_neighbours", family=socket.AF_BRIDGE)
        for msg in messages:
            decoded = self._decode(space, msg, 0.0)
            if decoded is not None:
                key, event = decoded
                space.seen[key] = _summary(event)
        nl.forget(space.ns)

    def _read(self, fd: int) -> None:
        space = self._spaces.get(fd)
        if space is None:
            return
        for _ in range(DRAIN):
            try:
                data = space.sock.recv(RECV_SIZE)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise KernelError(f"reading netlink events in {space.ns or 'root'}: {exc}") from exc
                # The kernel dropped messages (the socket works on): count it.
                self.overruns += 1
                continue
            now = time.time()
            for msg in self._marshal.parse(data):
                self._handle(space, msg, now)

    def _check_namespaces(self) -> None:
        self._next_check = time.monotonic() + CHECK_EVERY
        for space in list(self._spaces.values()):
            if space.ident is not None and _ident(space.ns) != space.ident:
                self._drop(space)
                self.gone.append(space.label)
                self._pending.append(Event(time.time(), space.ns, space.label, "netns", "del"))

    # -- decoding ---------------------------------------------------------------

    def _handle(self, space: _Space, msg: Any, now: float) -> None:
        decoded = self._decode(space, msg, now)
        if decoded is None:
            return
        key, event = decoded
        if event.kind in ("link", "neigh", "fdb"):
            summary = _summary(event)
            if event.action == "del":
                space.seen.pop(key, None)
            elif key in space.seen:
                if space.seen[key] == summary:
                    return  # nothing shown has changed
                space.seen[key] = summary
                event = replace(event, action="change")
            else:
                space.seen[key] = summary
        self._pending.append(event)

    def _decode(self, space: _Space, msg: Any, now: float) -> tuple[tuple[Any, ...], Event] | None:
        """The key (what the message is about) and the event of a message, or None to skip it."""
        kind_of = msg.get("event") or ""
        action: Action = "del" if kind_of.startswith("RTM_DEL") else "new"
        family = msg.get("family")
        if kind_of in ("RTM_NEWLINK", "RTM_DELLINK"):
            if family == socket.AF_BRIDGE:
                return None  # the bridge's own copy of a port's change (port state): the plain one suffices
            index = msg["index"]
            ifname = msg.get("IFLA_IFNAME") or space.name(index)
            if ifname:
                space.names[index] = ifname
            flags = msg.get("flags") or 0
            event = _event(
                space,
                now,
                "link",
                action,
                ifname=ifname,
                state="up" if flags & IFF_UP else "down",
                operstate=msg.get("IFLA_OPERSTATE"),
                carrier=bool(flags & IFF_LOWER_UP),
                mtu=msg.get("IFLA_MTU"),
                mac=msg.get("IFLA_ADDRESS"),
                master=space.name(msg.get("IFLA_MASTER")),
            )
            return ("link", index), event
        if kind_of in ("RTM_NEWADDR", "RTM_DELADDR"):
            ip = msg.get("IFA_LOCAL") or msg.get("IFA_ADDRESS")
            event = _event(
                space,
                now,
                "addr",
                action,
                family=FAMILIES.get(family),
                ifname=space.name(msg.get("index")),
                address=f"{ip}/{msg.get('prefixlen')}",
                scope=_name(SCOPES, msg.get("scope")),
            )
            return ("addr", msg.get("index"), event.address), event
        if kind_of in ("RTM_NEWROUTE", "RTM_DELROUTE"):
            dst_len = msg.get("dst_len") or 0
            dst = msg.get("RTA_DST")
            table = msg.get("RTA_TABLE") or msg.get("table")
            event = _event(
                space,
                now,
                "route",
                action,
                family=FAMILIES.get(family),
                dst=_destination(family, dst, dst_len),
                gateway=msg.get("RTA_GATEWAY"),
                ifname=space.name(msg.get("RTA_OIF")),
                src=msg.get("RTA_PREFSRC"),
                table=TABLES.get(table, str(table)),
                proto=_name(rt_proto, msg.get("proto")),
                scope=_name(SCOPES, msg.get("scope")),
                route_type=_name(rt_type, msg.get("type")),
                metric=msg.get("RTA_PRIORITY"),
            )
            return ("route", event.table, event.dst, event.ifname), event
        if kind_of in ("RTM_NEWNEIGH", "RTM_DELNEIGH"):
            state = msg.get("state") or 0
            ifindex = msg.get("ifindex")
            if family == socket.AF_BRIDGE:
                master_index = msg.get("NDA_MASTER")
                vlan = msg.get("NDA_VLAN")
                event = _event(
                    space,
                    now,
                    "fdb",
                    action,
                    family="bridge",
                    ifname=space.name(ifindex),
                    mac=msg.get("NDA_LLADDR"),
                    master=space.name(master_index),
                    vlan=vlan,
                    state=nud_state(state),
                    permanent=bool(state & NUD_PERMANENT),
                    learned=not state & (NUD_PERMANENT | NUD_NOARP),
                )
                if master_index and not msg.get("flags", 0) & NTF_SELF:
                    # The bridge's entry: a learned MAC moving to another port is a change of it.
                    return ("fdb", master_index, event.mac, vlan), event
                return ("fdb-self", ifindex, event.mac, vlan), event
            event = _event(
                space,
                now,
                "neigh",
                action,
                family=FAMILIES.get(family),
                ifname=space.name(ifindex),
                address=msg.get("NDA_DST"),
                mac=msg.get("NDA_LLADDR"),
                state=nud_state(state),
            )
            return ("neigh", family, ifindex, event.address), event
        return None


def _destination(family: int | None, dst: str | None, dst_len: int) -> str:
    """A route's destination as ``ip route`` prints it: ``default``, a network, or a single address."""
    if not dst:
        return "default" if dst_len == 0 else f"0/{dst_len}"
    if (family, dst_len) in ((socket.AF_INET, 32), (socket.AF_INET6, 128)):
        return str(dst)
    return f"{dst}/{dst_len}"


def _name(table: dict[Any, Any], value: int | None) -> str | None:
    if value is None:
        return None
    return str(table.get(value, value))


def _summary(event: Event) -> tuple[Any, ...]:
    """What an event shows, without its time and action."""
    return astuple(event)[5:]


def _event(space: _Space, now: float, kind: Kind, action: Action, **details: Any) -> Event:
    return Event(now, space.ns, space.label, kind, action, **details)


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
