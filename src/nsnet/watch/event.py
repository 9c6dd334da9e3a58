"""One event of ``nsnet watch``: what changed in which namespace, in the words of ``ip`` and ``bridge``."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from nsnet.kernel import rtnl

Kind = Literal["link", "addr", "route", "neigh", "fdb", "netns"]
Action = Literal["new", "del", "change"]


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
    return "|".join(name for bit, name in rtnl.NUD_STATES if state & bit) or "NONE"
