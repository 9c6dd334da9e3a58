"""rtnetlink messages of one namespace into :class:`~nsnet.watch.event.Event`, through nsnet's codec."""

from __future__ import annotations

import socket
from dataclasses import astuple, dataclass, field
from typing import Any

from nsnet.kernel import rtnl
from nsnet.watch.event import Action, Event, Kind, nud_state

Key = tuple[Any, ...]
"""What a message is about (a link, an address, a route, an entry): its changes are one thing's."""


@dataclass
class Space:
    """One watched namespace: its socket, index -> name map and the entries seen."""

    ns: str
    label: str
    sock: rtnl.Socket
    ident: tuple[int, int] | None
    names: dict[int, str] = field(default_factory=dict)
    seen: dict[Key, Key] = field(default_factory=dict)

    def name(self, index: int | None) -> str | None:
        if not index:
            return None
        return self.names.get(index, f"if{index}")


def decode(space: Space, mtype: int, body: memoryview, now: float) -> tuple[Key, Event] | None:
    """The key and the event of a message, or None to skip it."""
    if mtype in (rtnl.RTM_NEWLINK, rtnl.RTM_DELLINK):
        return _link(space, _action(mtype, rtnl.RTM_DELLINK), rtnl.LinkMsg(body), now)
    if mtype in (rtnl.RTM_NEWADDR, rtnl.RTM_DELADDR):
        return _addr(space, _action(mtype, rtnl.RTM_DELADDR), rtnl.AddrMsg(body), now)
    if mtype in (rtnl.RTM_NEWROUTE, rtnl.RTM_DELROUTE):
        return _route(space, _action(mtype, rtnl.RTM_DELROUTE), rtnl.RouteMsg(body), now)
    if mtype in (rtnl.RTM_NEWNEIGH, rtnl.RTM_DELNEIGH):
        m = rtnl.NeighMsg(body)
        action = _action(mtype, rtnl.RTM_DELNEIGH)
        return _fdb(space, action, m, now) if m.family == socket.AF_BRIDGE else _neigh(space, action, m, now)
    return None


def _action(mtype: int, delete: int) -> Action:
    return "del" if mtype == delete else "new"


def _link(space: Space, action: Action, m: rtnl.LinkMsg, now: float) -> tuple[Key, Event] | None:
    if m.family == socket.AF_BRIDGE:
        return None  # the bridge's own copy of a port's change (port state): the plain one suffices
    ifname = m.name or space.name(m.index)
    if ifname:
        space.names[m.index] = ifname
    event = _event(
        space,
        now,
        "link",
        action,
        ifname=ifname,
        state="up" if m.flags & rtnl.IFF_UP else "down",
        operstate=_operstate(m.operstate),
        carrier=bool(m.flags & rtnl.IFF_LOWER_UP),
        mtu=m.mtu,
        mac=m.mac,
        master=space.name(m.master),
    )
    return ("link", m.index), event


def _operstate(value: int | None) -> str | None:
    if value is None:
        return None
    return rtnl.OPERSTATES[value] if value < len(rtnl.OPERSTATES) else str(value)


def _addr(space: Space, action: Action, m: rtnl.AddrMsg, now: float) -> tuple[Key, Event]:
    event = _event(
        space,
        now,
        "addr",
        action,
        family=rtnl.FAMILIES.get(m.family),
        ifname=space.name(m.index),
        address=f"{m.local or m.address}/{m.prefixlen}",
        scope=_name(rtnl.RT_SCOPES, m.scope),
    )
    return ("addr", m.index, event.address), event


def _route(space: Space, action: Action, m: rtnl.RouteMsg, now: float) -> tuple[Key, Event]:
    event = _event(
        space,
        now,
        "route",
        action,
        family=rtnl.FAMILIES.get(m.family),
        dst=_destination(m.family, m.dst, m.dst_len),
        gateway=m.gateway,
        ifname=space.name(m.oif),
        src=m.prefsrc,
        table=rtnl.RT_TABLES.get(m.table, str(m.table)),
        proto=_name(rtnl.RT_PROTOS, m.proto),
        scope=_name(rtnl.RT_SCOPES, m.scope),
        route_type=_name(rtnl.RT_TYPES, m.type),
        metric=m.priority,
    )
    return ("route", event.table, event.dst, event.ifname), event


def _fdb(space: Space, action: Action, m: rtnl.NeighMsg, now: float) -> tuple[Key, Event]:
    event = _event(
        space,
        now,
        "fdb",
        action,
        family="bridge",
        ifname=space.name(m.ifindex),
        mac=m.lladdr,
        master=space.name(m.master),
        vlan=m.vlan,
        state=nud_state(m.state),
        permanent=bool(m.state & rtnl.NUD_PERMANENT),
        learned=not m.state & (rtnl.NUD_PERMANENT | rtnl.NUD_NOARP),
    )
    if m.master and not m.flags & rtnl.NTF_SELF:
        # The bridge's entry: a learned MAC moving to another port is a change of it.
        return ("fdb", m.master, event.mac, m.vlan), event
    return ("fdb-self", m.ifindex, event.mac, m.vlan), event


def _neigh(space: Space, action: Action, m: rtnl.NeighMsg, now: float) -> tuple[Key, Event]:
    event = _event(
        space,
        now,
        "neigh",
        action,
        family=rtnl.FAMILIES.get(m.family),
        ifname=space.name(m.ifindex),
        address=m.dst,
        mac=m.lladdr,
        state=nud_state(m.state),
    )
    return ("neigh", m.family, m.ifindex, event.address), event


def _destination(family: int | None, dst: str | None, dst_len: int) -> str:
    """A route's destination as ``ip route`` prints it: ``default``, a network, or a single address."""
    if not dst:
        return "default" if dst_len == 0 else f"0/{dst_len}"
    if (family, dst_len) in ((socket.AF_INET, 32), (socket.AF_INET6, 128)):
        return str(dst)
    return f"{dst}/{dst_len}"


def _name(table: dict[int, str], value: int | None) -> str | None:
    if value is None:
        return None
    return str(table.get(value, value))


def summary(event: Event) -> Key:
    """What an event shows, without its time and action."""
    return astuple(event)[5:]


def _event(space: Space, now: float, kind: Kind, action: Action, **details: Any) -> Event:
    return Event(now, space.ns, space.label, kind, action, **details)
