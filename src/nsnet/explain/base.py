"""What every part of the packet walk shares: the walker's state over a snapshot, :class:`Stop`,
route lookup and reading a namespace's addresses, neighbours and fdb (pure)."""

from __future__ import annotations

import ipaddress

from nsnet.explain.parts import WalkParts
from nsnet.explain.verdict import Fix, Snapshot, Space
from nsnet.model import HOST, UNDERLAY
from nsnet.views import AddressView, LinkView, NeighbourView, RouteView


class Stop(Exception):
    """The packet goes no further; ``fix`` says how to change that."""

    def __init__(self, outcome: str, reason: str, fix: Fix | None = None) -> None:
        self.outcome = outcome
        self.reason = reason
        self.fix = fix


def _addresses(space: Space, dev: str | None = None) -> list[AddressView]:
    return [a for a in space.view.addresses or [] if dev is None or a.dev == dev]


def _has_address(space: Space, address: str, dev: str | None = None) -> bool:
    return any(a.address == address for a in _addresses(space, dev))


def _net(route: RouteView) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if route.dst == "default":
        return ipaddress.ip_network("0.0.0.0/0" if route.family == 4 else "::/0")
    return ipaddress.ip_network(route.dst if "/" in route.dst else f"{route.dst}/{32 if route.family == 4 else 128}")


def lookup(space: Space, dst: str) -> RouteView | None:
    """The route the kernel would pick in ``space`` for ``dst`` (main table, longest prefix, lowest metric)."""
    ip = ipaddress.ip_address(dst)
    best: RouteView | None = None
    for route in space.view.routes or []:
        if route.table != "main" or route.family != ip.version:
            continue
        net = _net(route)
        if ip not in net:
            continue
        if (
            best is None
            or net.prefixlen > _net(best).prefixlen
            or (net.prefixlen == _net(best).prefixlen and (route.metric or 0) < (best.metric or 0))
        ):
            best = route
    return best


def _ip(space: Space, family: int = 4) -> str:
    """``ip`` aimed at the space's namespace (plain ``ip`` for the root namespace); ``-6`` for IPv6."""
    six = " -6" if family == 6 else ""
    return f"ip{six} -n {space.view.netns}" if space.view.netns else f"ip{six}"


def _run_in(space: Space) -> str:
    """The prefix that runs a command in the space's namespace."""
    return f"ip netns exec {space.view.netns} " if space.view.netns else ""


def _yaml_under(where: str | None, lines: list[str]) -> str | None:
    """``lines`` placed under a block of a topology file (``host``, ``hosts.A``, ``nodes.RED``); None: nowhere."""
    if where is None:
        return None
    if where == "host":
        return "host:\n" + "\n".join("  " + line for line in lines)
    group, _, name = where.partition(".")
    return f"{group}:\n  {name}:\n" + "\n".join("    " + line for line in lines)


def _evidence(sender: Space, hop: str) -> str:
    neigh: list[NeighbourView] = [n for n in sender.view.neighbours or [] if n.address == hop]
    return f" ({sender.node}'s neighbour entry for {hop}: {','.join(neigh[0].state)})" if neigh else ""


def _fdb_text(space: Space, bridge: LinkView, mac: str | None) -> str:
    """What the bridge's fdb says of ``mac``: learned on a port, or not yet (flooded)."""
    learned = [f for f in space.view.fdb or [] if f.mac == mac and f.bridge == bridge.name and f.kind == "learned"]
    return f"fdb: {mac} learned on {learned[0].port}" if learned else f"{mac} not in the fdb yet: flooded to every port"


class WalkerBase(WalkParts):
    """The state a walk over a :class:`Snapshot` keeps, and what every part of the walk asks of it."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snap = snapshot
        self.by_netns = {s.view.netns: s for s in snapshot.spaces.values()}
        spaces = snapshot.spaces
        # A multi-host lab: hosts joined by the underlay switch, no `host` namespace.
        self.machines = (
            {
                s.node
                for s in spaces.values()
                if s.node != UNDERLAY and any(link.peer and link.peer.node == UNDERLAY for link in s.view.links or [])
            }
            if HOST not in spaces and UNDERLAY in spaces
            else set()
        )
        self._arrived_on: tuple[str, str] | None = None
        self._hop_route: tuple[str, RouteView, str] | None = None
        """(node, route, destination) of the last route lookup that sent the packet on: whose gateway it asks for."""
        self._size = 0
        self._link_maps: dict[str, dict[str, LinkView]] = {}
        self._fdb_learned: set[tuple[str, str, str, str]] = set()
        """(node, bridge, port, MAC) a bridge learned from a frame of this walk (ports with learning on)."""
        self._heard: dict[tuple[str, str, str], str | None] = {}
        """(node, interface, address) -> MAC of a neighbour the walk made known there: who asks ARP or NDP of a
        namespace leaves its address and MAC in that namespace's neighbour table (as STALE)."""

    def where(self, space: Space) -> str | None:
        """Where ``space`` is written in the topology file (``host``, ``hosts.A``, ``nodes.RED``); None: nowhere."""
        if space.node == HOST:
            return "host"
        if self.machines and space.node == UNDERLAY:
            return None  # nsnet makes the underlay switch from underlay: alone
        return f"hosts.{space.node}" if space.node in self.machines else f"nodes.{space.node}"

    def _links(self, space: Space) -> dict[str, LinkView]:
        """``space``'s links by name, built once: the snapshot does not change during a walk."""
        links = self._link_maps.get(space.node)
        if links is None:
            links = self._link_maps[space.node] = {link.name: link for link in space.view.links or []}
        return links

    def _link_up_fix(self, space: Space, dev: str, back_to: str | None = None) -> Fix:
        """Bring ``dev`` up; and, where the routes through it went down with it, the route to ``back_to`` (where
        the answer goes) back too."""
        where = self.where(space)
        kinds = ("bridges", "vxlans") if space.node in self.machines else ("bridges",)
        other = ", ".join(f"{kind}.{dev}" for kind in kinds)
        command = f"{_ip(space)} link set {dev} up"
        route = self._route_after_up(space, dev, back_to) if back_to else None
        return Fix(
            f"bring {space.node}:{dev} up" + (" and give it its route back" if route else ""),
            command=command + (f" && {route}" if route else ""),
            topology=f"remove `up: false` from {where}.interfaces.{dev} (or {other})" if where else None,
        )

    def _route_after_up(self, space: Space, dev: str, back_to: str) -> str | None:
        """The route to ``back_to`` ``space`` still lacks once ``dev`` is up again (the kernel puts back only the
        subnet routes of its addresses)."""
        ip = ipaddress.ip_address(back_to)
        if _has_address(space, back_to):
            return None
        for a in _addresses(space, dev):
            if (
                a.address
                and a.family == ip.version
                and ip in ipaddress.ip_interface(f"{a.address}/{a.prefixlen}").network
            ):
                return None
        if lookup(space, back_to) is not None:
            return None
        return self._concrete_route(space, back_to, ip.version)

    def _concrete_route(self, space: Space, dst: str, family: int | None = None) -> str | None:
        """The command of :meth:`_route_fix` to ``dst``, where it names a real router or subnet (not GATEWAY)."""
        fix = self._route_fix(space, dst, family)
        return fix.command if fix.command and "GATEWAY" not in fix.command else None
