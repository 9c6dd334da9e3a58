"""The MTU checks of the walk: what a veth end receives, what a bridge passes to a port,
and the fix that lowers an MTU (pure)."""

from __future__ import annotations

from dataclasses import replace

from nsnet.explain.base import Stop, WalkerBase, _ip
from nsnet.explain.netfilter import Packet
from nsnet.explain.overlay import _vxlan_ports
from nsnet.explain.verdict import Fix, Leg, Space
from nsnet.views import LinkView

VLAN_SLACK = 4
"""A veth or bridge port passes frames up to its MTU plus an Ethernet header and this (``is_skb_forwardable``)."""


class MtuMixin(WalkerBase):
    """The walker's MTU checks."""

    def _veth_mtu(self, leg: Leg, space: Space, link: LinkView, peer_space: Space, peer: LinkView, pkt: Packet) -> None:
        """A veth end takes no frame bigger than its MTU (plus an Ethernet header and 4 bytes of slack)."""
        if not pkt.size or pkt.size <= peer.mtu + VLAN_SLACK:
            return
        leg.add(
            peer_space.node,
            "mtu",
            f"{peer.name} (MTU {peer.mtu}) drops the {pkt.size}-byte packet from {space.node}:{link.name} "
            f"(MTU {link.mtu}): too big to receive",
            ok=False,
        )
        raise Stop(
            "dropped",
            f"the {pkt.size}-byte packet is bigger than the MTU {peer.mtu} of {peer_space.node}:{peer.name}, "
            f"the other end of {space.node}:{link.name} (MTU {link.mtu})",
            self._raise_mtu_fix(peer_space, peer) or self._mtu_fix(space, link, peer.mtu),
        )

    def _bridge_mtu(
        self, leg: Leg, space: Space, bridge: LinkView, port: LinkView | None, out: LinkView, pkt: Packet
    ) -> Packet:
        """A bridge passes a frame to a port only if it fits the port's MTU (br_netfilter fragments or drops)."""
        if not pkt.size:
            return pkt
        node = space.node
        key = "net.bridge.bridge-nf-call-iptables" if pkt.family == 4 else "net.bridge.bridge-nf-call-ip6tables"
        netfilter = port is not None and (space.view.sysctls or {}).get(key) == "1"
        if netfilter and pkt.size > out.mtu and not pkt.df:
            leg.add(
                node,
                "mtu",
                f"{pkt.size} bytes is more than port {out.name}'s MTU {out.mtu}: "
                f"br_netfilter fragments it (DF is clear)",
            )
            return replace(pkt, size=out.mtu)
        if pkt.size <= out.mtu + (0 if netfilter else VLAN_SLACK):
            return pkt
        why = "DF is set, so br_netfilter cannot fragment it" if netfilter else "a bridge does not fragment"
        leg.add(
            node,
            "mtu",
            f"{bridge.name} drops the {pkt.size}-byte packet: more than port {out.name}'s MTU {out.mtu} ({why})",
            ok=False,
        )
        sender = f"port {port.name}'s MTU is {port.mtu}" if port is not None else f"{bridge.name}'s is {bridge.mtu}"
        overlay = any(link.name == out.name for link, _ in _vxlan_ports(space, bridge))
        what = "the overlay's MTU" if overlay else "the MTU"
        raise Stop(
            "dropped",
            f"the {pkt.size}-byte packet is bigger than {what}: bridge port {node}:{out.name} takes {out.mtu} "
            f"({sender}), so bridge {node}:{bridge.name} drops it",
            self._raise_mtu_fix(space, out) or self._mtu_fix(space, port if port is not None else bridge, out.mtu),
        )

    def _raise_mtu_fix(self, space: Space, small: LinkView) -> Fix | None:
        """``small`` takes less than the other end of its veth pair: the one odd MTU on the way, raised back."""
        peer = small.peer
        far_space = self.snap.spaces.get(peer.node) if peer is not None and peer.node is not None else None
        far = self._links(far_space).get(peer.name or "") if far_space is not None and peer is not None else None
        if far_space is None or far is None or far.mtu <= small.mtu:
            return None
        where = self.where(space)
        return Fix(
            f"give {space.node}:{small.name} the MTU of the other end of its veth pair, {far.mtu}",
            command=f"{_ip(space)} link set {small.name} mtu {far.mtu}",
            topology=f"set mtu: {far.mtu} in {where}.interfaces.{small.name} (or remove its mtu)" if where else None,
        )

    def _mtu_fix(self, space: Space, link: LinkView, mtu: int) -> Fix:
        """Lower ``link``'s MTU, and that of the other end of its veth pair, to ``mtu``."""
        ends = [(space, link.name)]
        if link.peer is not None and link.peer.node in self.snap.spaces and link.peer.name:
            ends.append((self.snap.spaces[link.peer.node], link.peer.name))
        places = [
            f"{where}.{'vxlans' if link.kind == 'vxlan' else 'interfaces'}.{name}"
            for s, name in ends
            if (where := self.where(s))
        ]
        return Fix(
            f"give every interface on the way an MTU of at most {mtu}: "
            + " and ".join(f"{s.node}:{name}" for s, name in ends),
            command=" && ".join(f"{_ip(s)} link set {name} mtu {mtu}" for s, name in ends),
            topology=f"set mtu: {mtu} in {' and '.join(places)}" if places else None,
        )
