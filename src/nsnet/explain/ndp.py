"""IPv6 neighbour discovery across a bridge whose IPv6 traffic br_netfilter hands to ip6tables (pure).

ARP is not IP: ``bridge-nf-call-iptables`` never shows it to iptables. NDP is
ICMPv6: with ``bridge-nf-call-ip6tables=1`` the bridge hands the sender's
neighbour solicitation (type 135, to the solicited-node multicast address of
the next hop) and the owner's advertisement (type 136, back to the asking
address) to ip6tables' PREROUTING, FORWARD and POSTROUTING like any bridged
packet. conntrack leaves NDP untracked (``nf_conntrack_icmpv6_error``), so a
rule accepting ``ESTABLISHED`` traffic does not let it through; a FORWARD
policy DROP drops it, and the packet that asked never leaves its sender.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from nsnet.explain.base import Stop, WalkerBase, _addresses, _has_address
from nsnet.explain.netfilter import Packet
from nsnet.explain.verdict import Leg, Space
from nsnet.views import LinkView


def solicited_node(address: str) -> str:
    """The solicited-node multicast address of ``address`` (ff02::1:ffXX:XXXX, RFC 4291)."""
    low = int(ipaddress.IPv6Address(address)) & 0xFFFFFF
    return str(ipaddress.IPv6Address(int(ipaddress.IPv6Address("ff02::1:ff00:0")) | low))


class NdpMixin(WalkerBase):
    """The neighbour solicitation and advertisement for a next hop behind a bridge, through bridged ip6tables."""

    def _ndp_across(
        self,
        leg: Leg,
        space: Space,
        bridge: LinkView,
        port: LinkView,
        out: LinkView,
        hop: str,
        pkt: Packet,
        sender: Space,
    ) -> None:
        """Raise :class:`Stop` if ``space``'s bridged netfilter drops the solicitation for ``hop`` (from ``port`` to
        ``out``) or the owner's advertisement back."""
        key = "net.bridge.bridge-nf-call-ip6tables"
        if (space.view.sysctls or {}).get(key) != "1":
            return  # the bridge family's own chains still see NDP: the packet's own crossing shows them
        dev = port.peer.name if port.peer is not None and port.peer.name else ""
        asker = pkt.src if pkt.src and _has_address(sender, pkt.src, dev) else _link_local(sender, dev)
        if asker is None:
            return  # no solicitation at all: the neighbour step says so
        base = Packet(6, asker, solicited_node(hop), "icmpv6", icmp_type="nd-neighbor-solicit", ctstate="UNTRACKED")
        for what, ndp, came, went in (
            (f"{sender.node}'s neighbour solicitation for {hop} (NDP, ICMPv6 type 135)", base, port, out),
            (
                f"the neighbour advertisement for {hop} back to {sender.node} (NDP, ICMPv6 type 136)",
                replace(base, src=hop, dst=asker, icmp_type="nd-neighbor-advert"),
                out,
                port,
            ),
        ):
            leg.add(space.node, "neigh", f"{what}: {ndp.src} -> {ndp.dst}, bridged from {came.name} to {went.name}")
            try:
                self._bridged_netfilter(leg, space, bridge, came, went, ndp)
            except Stop as stop:
                raise Stop(
                    stop.outcome,
                    f"{what} is {stop.outcome} by {space.node}'s ip6tables ({key}=1: bridged NDP is "
                    f"ICMPv6 and goes through them): {stop.reason}; without the answer "
                    f"{sender.node} never sends the packet to {hop}",
                    stop.fix,
                ) from stop


def _link_local(space: Space, dev: str) -> str | None:
    return next(
        (a.address for a in _addresses(space, dev) if a.address and ipaddress.ip_address(a.address).is_link_local),
        None,
    )
