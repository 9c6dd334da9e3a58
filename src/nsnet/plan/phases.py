"""The phases of a plan, in the order their actions run (pure).

The order is stated once, by :class:`Phase`: :mod:`nsnet.plan.diff` puts
each action it finds in its phase, and :meth:`Steps.ordered` lists them
phase after phase. Creation comes in dependency order (a namespace before its
links, a bridge before its ports, a link before those made on it, an address
before the routes through it). Removals that could clash with what is created (routes, links to rebuild, a
server to restart) come first; every other removal waits until all additions
have succeeded, so that a failure rolls back by undoing additions only.
"""

from __future__ import annotations

from enum import Enum

from nsnet.plan.actions import Action


class Phase(Enum):
    """A phase of a plan; the members' order is the order of the plan."""

    ROUTE_REMOVALS = ("routes that go away, before anything that could clash with them", True)
    EARLY_REMOVALS = ("links to rebuild (another kind, peer, VNI, parent ...) and servers to stop or restart", False)
    NAMESPACES = ("namespaces, and Docker on a host that asks for it", False)
    LINKS_ALONE = ("links made on their own: bridges, dummies", False)
    LINK_PAIRS = ("veth pairs", False)
    LINKS_ON_LOWER = (
        "links made on another device: VXLAN (its underlay device may be a veth), macvlan, ipvlan",
        False,
    )
    LINK_SETTINGS = ("master, MTU, MAC, ownership mark; a kind's own settings (a bridge's STP and ageing)", False)
    ADDRESS_REMOVALS = (
        "addresses that go away: before the new ones, as deleting a primary deletes its secondaries",
        True,
    )
    ADDRESSES = ("addresses added", False)
    NAMES = ("files under /etc/netns (hosts, resolv.conf): written once the addresses they list are there", False)
    ALONE_UP = (
        "links made on their own set up (or down): first, so that ports join a bridge that is already up",
        True,
    )
    LINKS_UP = ("other links set up (or down)", False)
    ENTRIES = ("a VXLAN device's forwarding and neighbour entries (static overlays)", False)
    ROUTES = ("routes added", False)
    SHAPING = ("traffic shaping set or removed", False)
    SYSCTLS = ("sysctls set or given back their original values", False)
    FIREWALL = ("iptables rules and policies, per IP version", False)
    SERVERS = ("servers started (the outside's)", False)
    LINK_REMOVALS = ("links that go away (and what nsnet put in a root host that goes away)", False)
    BRIDGE_REMOVALS = ("bridges that go away, once their ports are gone", False)
    NAMESPACE_REMOVALS = ("namespaces that go away, their servers stopped first", False)

    def __init__(self, why: str, last_found_first: bool) -> None:
        self.why = why
        self.last_found_first = last_found_first
        """The phase runs its actions in the reverse of the order the diff found them."""


CREATION = (Phase.LINKS_ALONE, Phase.LINK_PAIRS, Phase.LINKS_ON_LOWER)
"""The phase that creates a link, by its kind's ``order`` (:class:`nsnet.kinds.base.Kind`)."""


class Steps:
    """A plan's actions by phase, as the diff finds them."""

    def __init__(self) -> None:
        self._by_phase: dict[Phase, list[Action]] = {phase: [] for phase in Phase}

    def add(self, phase: Phase, *actions: Action) -> None:
        self._by_phase[phase].extend(actions)

    def ordered(self) -> list[Action]:
        """Every action, phase after phase."""
        out: list[Action] = []
        for phase in Phase:
            actions = self._by_phase[phase]
            out += reversed(actions) if phase.last_found_first else actions
        return out
