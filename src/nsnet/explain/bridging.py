"""The walk's bridge port decisions: port state, isolation, learning and flooding of unknown unicast, and the
flooding of the ARP broadcast or NDP multicast that finds the owner (pure)."""

from __future__ import annotations

from nsnet.explain.base import Stop, WalkerBase, _ip
from nsnet.explain.netfilter import Context, Packet
from nsnet.explain.overlay import _bridge_cmd
from nsnet.explain.verdict import Fix, Leg, Space
from nsnet.views import BridgePortView, LinkView

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
        if state == "disabled":
            self._port_without_carrier(leg, space, bridge, link, way)
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

    def _port_without_carrier(self, leg: Leg, space: Space, bridge: LinkView, link: LinkView, way: str) -> None:
        """A port is disabled while it is down or has no carrier (its veth's other end down): name that end."""
        node = space.node
        if link.state != "up":
            leg.add(node, "link", f"port {link.name} of {bridge.name} is down: the bridge disables it", ok=False)
            raise Stop(
                "dropped",
                f"bridge port {node}:{link.name} is down, so {bridge.name} drops the frame {way} it",
                self._link_up_fix(space, link.name, leg.source),
            )
        peer = link.peer
        far_space = self.snap.spaces.get(peer.node) if peer is not None and peer.node is not None else None
        far = self._links(far_space).get(peer.name or "") if far_space is not None and peer is not None else None
        if far_space is not None and far is not None and far.state != "up":
            leg.add(
                far_space.node,
                "link",
                f"{far.name} is down: port {node}:{link.name} of {bridge.name} has no carrier, so it is disabled",
                ok=False,
            )
            raise Stop(
                "dropped",
                f"the other end of bridge port {node}:{link.name}, {far_space.node}:{far.name}, is down, so "
                f"{bridge.name} drops the frame {way} {link.name}",
                self._link_up_fix(far_space, far.name, leg.source),
            )

    def _misplaced_port(self, space: Space, link: LinkView) -> Stop | None:
        """``link`` is not on the bridge the topology puts it on (taken out, or moved to another bridge)."""
        planned = self.snap.masters.get(space.node, {}).get(link.name)
        if planned is None or link.master == planned or planned not in self._links(space):
            return None
        node = space.node
        now = f"a port of {link.master}" if link.master else "on no bridge"
        where = self.where(space)
        return Stop(
            "dropped",
            f"{node}:{link.name} is {now}, but the topology puts it on {planned}: what it carries never reaches "
            f"{planned}'s other ports",
            Fix(
                f"attach {node}:{link.name} to {planned} again",
                command=f"{_ip(space)} link set {link.name} master {planned}",
                topology=f"{where}.interfaces.{link.name} has master: {planned}: `nsnet up` puts it back"
                if where
                else None,
            ),
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

    def _bridged_netfilter(
        self, leg: Leg, space: Space, bridge: LinkView, port: LinkView, out: LinkView, pkt: Packet
    ) -> None:
        """A frame the bridge forwards: the bridge family's chains, and the IP hooks when br_netfilter hands it on.

        On each bridge hook the kernel runs nft's bridge chains (priority -200)
        before br_netfilter calls the IP hook of the same name.
        """
        ctx = Context(
            in_iface=bridge.name, out_iface=bridge.name, physdev_in=port.name, physdev_out=out.name, bridged=True
        )
        key = "net.bridge.bridge-nf-call-iptables" if pkt.family == 4 else "net.bridge.bridge-nf-call-ip6tables"
        value = (space.view.sysctls or {}).get(key)
        node = space.node
        handed = value == "1"
        if handed:
            leg.add(
                node,
                "netfilter",
                f"{key}=1: bridged IP traffic goes through {node}'s iptables as if routed "
                "(in and out interface: the bridge)",
            )
        else:
            why = f"{key}={value}" if value is not None else "br_netfilter is not loaded"
            leg.add(
                node,
                "netfilter",
                f"bridged traffic is not handed to iptables here ({why}): {node}'s FORWARD chain never sees it",
            )
        for hook in ("PREROUTING", "FORWARD", "POSTROUTING"):
            self._hook(leg, space, hook, pkt, ctx, layer="bridge")
            if handed:
                self._hook(leg, space, hook, pkt, ctx)
