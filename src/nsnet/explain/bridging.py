"""The walk's bridge port decisions: port state, isolation, learning and flooding of unknown unicast, and the
flooding of the ARP broadcast or NDP multicast that finds the owner (pure)."""

from __future__ import annotations

from ..views import BridgePortView, LinkView
from .base import Stop, WalkerBase
from .model import Fix, Leg, Space
from .netfilter import Packet
from .overlay import _bridge_cmd

PORT_DEFAULTS = BridgePortView("forwarding", True, True, True, True, False, False, False, False)
"""A port whose settings were not read (an older snapshot) behaves as a new port."""
STATE_NUMBERS = {"disabled": 0, "listening": 1, "learning": 2, "forwarding": 3, "blocking": 4}


def _port(link: LinkView) -> BridgePortView:
    return link.port or PORT_DEFAULTS


class BridgingMixin(WalkerBase):
    """What a bridge's port flags do to the frame."""

    def _port_fix(self, space: Space, port: str, setting: str, summary: str) -> Fix:
        return Fix(summary, command=f"{_bridge_cmd(space)} link set dev {port} {setting}")

    def _port_state_check(self, leg: Leg, space: Space, bridge: LinkView, link: LinkView, way: str) -> None:
        """Only a port in state forwarding passes data frames, in or out."""
        state = _port(link).state
        if state == "forwarding":
            return
        node = space.node
        leg.add(node, "bridge", f"port {link.name} of {bridge.name} is in state {state}: it passes no data", ok=False)
        stp = next((b.stp for b in space.view.bridges or [] if b.name == bridge.name), False)
        fix = (
            Fix(f"let STP bring {node}:{link.name} to forwarding, or turn STP off on {bridge.name}")
            if stp
            else self._port_fix(space, link.name, "state 3", f"put {node}:{link.name} in state forwarding")
        )
        raise Stop(
            "dropped",
            f"bridge port {node}:{link.name} is in state {state}, so {bridge.name} drops the frame {way} it",
            fix,
        )

    def _port_in(self, leg: Leg, space: Space, bridge: LinkView, port: LinkView | None) -> None:
        """The frame enters ``bridge`` by ``port`` (None: sent by the bridge device itself)."""
        if port is None:
            return
        if port.port is not None:
            self._port_state_check(leg, space, bridge, port, "coming in by")
        if _port(port).learning and port.peer is not None and port.peer.node in self.snap.spaces and port.peer.name:
            sender = self._links(self.snap.spaces[port.peer.node]).get(port.peer.name)
            if sender is not None and sender.mac:
                self._fdb_learned.add((space.node, bridge.name, port.name, sender.mac.lower()))

    def _port_out(
        self,
        leg: Leg,
        space: Space,
        bridge: LinkView,
        port: LinkView | None,
        out: LinkView,
        mac: str | None,
        pkt: Packet,
        asks: bool,
    ) -> None:
        """``bridge`` is to pass the frame for ``mac`` from ``port`` to ``out``; ``asks``: the sender first
        broadcasts ARP (or multicasts NDP) for it, which must reach ``out`` too."""
        node = space.node
        self._port_state_check(leg, space, bridge, out, "going out of")
        flags = _port(out)
        if port is not None and _port(port).isolated and flags.isolated:
            leg.add(node, "bridge", f"ports {port.name} and {out.name} of {bridge.name} are both isolated", ok=False)
            raise Stop(
                "dropped",
                f"bridge ports {node}:{port.name} and {node}:{out.name} are both isolated: {bridge.name} passes "
                "nothing between them",
                self._port_fix(space, out.name, "isolated off", f"take isolation off {node}:{out.name}"),
            )
        if asks:
            flood, name = (flags.bcast_flood, "bcast_flood") if pkt.family == 4 else (flags.mcast_flood, "mcast_flood")
            if not flood:
                what = "ARP broadcast" if pkt.family == 4 else "neighbour solicitation (multicast)"
                leg.add(
                    node,
                    "bridge",
                    f"{bridge.name} floods the {what} to every port but {out.name} ({name} off)",
                    ok=False,
                )
                raise Stop(
                    "dropped",
                    f"the {what} never reaches {node}:{out.name} ({name} off), so the owner is never asked",
                    self._port_fix(space, out.name, f"{name} on", f"turn {name} on for {node}:{out.name}"),
                )
        known = [
            f
            for f in space.view.fdb or []
            if mac and f.mac and f.mac.lower() == mac.lower() and f.bridge == bridge.name and f.port == out.name
        ]
        if known or (mac and (node, bridge.name, out.name, mac.lower()) in self._fdb_learned):
            return
        if flags.learning and asks:  # the owner's ARP/NDP answer teaches the bridge where it is
            return
        if flags.flood:
            why = "learning off" if not flags.learning else "not learned yet"
            leg.add(
                node, "bridge", f"{mac} is not in {bridge.name}'s fdb ({why} on {out.name}): flooded as unknown unicast"
            )
            return
        reason = "learning is off there" if not flags.learning else "it is not learned yet"
        leg.add(
            node,
            "bridge",
            f"{mac} is not in {bridge.name}'s fdb ({reason}) and flood is off on {out.name}: the frame goes nowhere",
            ok=False,
        )
        setting = "learning on flood on" if not flags.learning else "flood on"
        raise Stop(
            "dropped",
            f"{bridge.name} never sends the frame for {mac} to {node}:{out.name}: {reason}, and flood is off on that "
            "port",
            self._port_fix(space, out.name, setting, f"turn {setting.replace(' on', '')} on for {node}:{out.name}"),
        )
