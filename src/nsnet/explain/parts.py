"""What the parts of the packet walk ask of one another (pure, types only).

:class:`~nsnet.explain.walk.Walker` is made of mixins, one per layer
(routing, neighbour, bridging, overlay, MTU ...), over the state of
:class:`~nsnet.explain.base.WalkerBase`. Where one part calls a method that
another defines, the method is declared here, once; ``WalkerBase`` is typed
against this protocol, so every part sees every declared method, and mypy
refuses a ``Walker`` that lacks one.
"""

from __future__ import annotations

from typing import Protocol

from nsnet.explain.netfilter import Context, Decision, Packet
from nsnet.explain.verdict import Fix, Leg, Space
from nsnet.views import LinkView


class WalkParts(Protocol):
    """Methods one part of the walk calls and another defines (the part is named on each)."""

    # walk.Walker: sending and receiving a packet, a frame through a bridge and out of its port.

    def _send(self, leg: Leg, space: Space, pkt: Packet, src_fixed: bool = False) -> tuple[Space, Packet]: ...

    def _receive(self, leg: Leg, space: Space, iface: str, pkt: Packet) -> tuple[Space, Packet]: ...

    def _out_of_port(
        self, leg: Leg, space: Space, bridge: LinkView, port: LinkView | None, out: LinkView, pkt: Packet
    ) -> Packet: ...

    def _into_peer(
        self, leg: Leg, space: Space, out: LinkView, far_space: Space, far: LinkView, pkt: Packet
    ) -> None: ...

    def _bridge(
        self, leg: Leg, space: Space, bridge: LinkView, port: LinkView | None, hop: str, pkt: Packet, sender: Space
    ) -> tuple[Space, Packet]: ...

    def _hook(self, leg: Leg, space: Space, hook: str, pkt: Packet, ctx: Context, layer: str = "ip") -> Decision: ...

    # bridging.BridgingMixin: a bridged frame through the bridge family's chains and, by br_netfilter, the IP hooks.

    def _bridged_netfilter(
        self, leg: Leg, space: Space, bridge: LinkView, port: LinkView, out: LinkView, pkt: Packet
    ) -> None: ...

    # neighbour.NeighbourMixin: who on a bridge has the next hop.

    def _owner_port(
        self, space: Space, bridge: LinkView, hop: str, exclude: str | None
    ) -> tuple[LinkView, Space, LinkView] | None: ...

    # routing.RoutingMixin: the fix for a missing route.

    def _route_fix(self, space: Space, dst: str, family: int | None = None) -> Fix: ...

    # addressing.AddressingMixin: addresses the topology gives and the kernel no longer holds.

    def _lost_owner(self, hop: str) -> tuple[Space, str, int] | None: ...

    def _lost_address_fix(self, hop: str, back_to: str | None = None) -> Fix | None: ...

    def _lost_address(self, space: Space) -> str | None: ...

    # mtu.MtuMixin

    def _mtu_fix(self, space: Space, link: LinkView, mtu: int) -> Fix: ...
