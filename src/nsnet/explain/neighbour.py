"""The walk's neighbour decisions: who answers ARP (arp_ignore, arp_filter, arp_announce's choice of the asking
address), NDP, and what a neighbour entry already in the sender's table does to the frame (pure)."""

from __future__ import annotations

import ipaddress

from nsnet.explain.base import Stop, _addresses, _evidence, _has_address, _ip, _run_in, _yaml_under
from nsnet.explain.lookup import conf, route_lookup
from nsnet.explain.netfilter import Packet
from nsnet.explain.routing import RoutingMixin
from nsnet.explain.verdict import Fix, Leg, Space
from nsnet.views import LinkView, NeighbourView

USED_AS_IS = {"PERMANENT", "NOARP", "REACHABLE", "STALE", "DELAY", "PROBE"}
"""Entry states the kernel sends with, to the entry's MAC, without asking ARP or NDP first."""


def _local(space: Space, hop: str) -> bool:
    """``hop`` is an address of ``space`` the kernel answers ARP for with arp_ignore 0 (any interface, not 127/8)."""
    return not ipaddress.ip_address(hop).is_loopback and _has_address(space, hop)


class NeighbourMixin(RoutingMixin):
    """ARP/NDP: whether the owner of the next hop answers, and what the sender's neighbour table forces."""

    def _holds(self, space: Space, dev: str, hop: str, family: int) -> bool:
        """``hop`` would be answered for on ``space``'s ``dev`` by someone holding it: on ``dev`` itself, or (IPv4,
        arp_ignore 0) on any interface of ``space``. Whether ARP is really answered: :meth:`_arp_check`."""
        if _has_address(space, hop, dev):
            return True
        return family == 4 and _local(space, hop)

    def _proxies(self, space: Space, dev: str, hop: str, family: int) -> bool:
        """``space`` answers ARP for ``hop`` (not its own) on ``dev`` with its own MAC: proxy_arp on (all or
        ``dev``), forwarding on for ``dev``, and a unicast route to ``hop`` out of another interface."""
        if family != 4 or not conf(space, 4, dev, "proxy_arp"):
            return False
        sysctls = space.view.sysctls or {}
        if sysctls.get(f"net.ipv4.conf.{dev}.forwarding", sysctls.get("net.ipv4.ip_forward")) != "1":
            return False
        route = route_lookup(space, 4, hop, "", dev).route
        return route is not None and route.type == "unicast" and route.dev not in (None, dev)

    def _arp_source(self, space: Space, dev: str, hop: str, pkt: Packet) -> str | None:
        """The sender address of ``space``'s ARP request for ``hop`` on ``dev`` (arp_announce)."""
        announce = conf(space, 4, dev, "arp_announce")
        on_dev = [a for a in _addresses(space, dev) if a.family == 4 and a.address]
        if announce == 0 and pkt.src and _has_address(space, pkt.src):
            return pkt.src
        ip = ipaddress.ip_address(hop)
        same = [a for a in on_dev if ip in ipaddress.ip_interface(f"{a.address}/{a.prefixlen}").network]
        if announce == 1 and pkt.src and any(a.address == pkt.src for a in same):
            return pkt.src
        chosen = same or on_dev
        return chosen[0].address if chosen else pkt.src or None

    def _arp_check(
        self, leg: Leg, sender: Space, sender_dev: str, far: Space, far_dev: str, hop: str, pkt: Packet
    ) -> bool:
        """Raise :class:`Stop` if ``far`` does not answer ``sender``'s ARP for ``hop`` arriving on ``far_dev``;
        False if it answers by proxy (``hop`` is not its own)."""
        if not self._holds(far, far_dev, hop, pkt.family) and self._proxies(far, far_dev, hop, pkt.family):
            leg.add(far.node, "neigh", f"{far.node}:{far_dev} answers ARP for {hop} with its own MAC (proxy_arp)")
            return False
        if pkt.family != 4:
            self._solicitation_source(leg, sender, sender_dev, hop, pkt)
            if not _has_address(far, hop, far_dev):
                raise self._unanswered(
                    leg,
                    sender,
                    far,
                    far_dev,
                    hop,
                    "NDP answers only for an address of the "
                    f"interface the solicitation comes in by; {hop} is on another interface",
                    None,
                )
            self._heard_from(
                sender, sender_dev, far, far_dev, pkt.src if _has_address(sender, pkt.src, sender_dev) else None
            )
            return True
        asker = self._arp_source(sender, sender_dev, hop, pkt)
        on_dev = _has_address(far, hop, far_dev)
        why = _ignored(far, far_dev, hop, asker, on_dev)
        if why is not None:
            raise self._unanswered(leg, sender, far, far_dev, hop, why, "arp_ignore")
        if conf(far, 4, far_dev, "arp_filter") and asker:
            back = route_lookup(far, 4, asker, hop).route
            if back is None or back.dev != far_dev:
                out = back.dev if back is not None else "nowhere"
                why = f"arp_filter=1: its route back to the asking address {asker} leaves by {out}, not by {far_dev}"
                raise self._unanswered(leg, sender, far, far_dev, hop, why, "arp_filter")
        if not on_dev:
            leg.add(
                far.node,
                "neigh",
                f"{far.node} answers ARP for {hop} on {far_dev} (arp_ignore=0: {hop} is an "
                "address of another of its interfaces)",
            )
        self._heard_from(sender, sender_dev, far, far_dev, asker)
        return True

    def _solicitation_source(self, leg: Leg, space: Space, dev: str, hop: str, pkt: Packet) -> None:
        """A neighbour solicitation is sent from the packet's source if that is on ``dev``, else from ``dev``'s
        link-local address: without one the kernel sends none (``ndisc_send_ns``), and the packet waits in vain."""
        if pkt.src and _has_address(space, pkt.src, dev):
            return
        if any(a.address and ipaddress.ip_address(a.address).is_link_local for a in _addresses(space, dev)):
            return
        node = space.node
        link = self._links(space).get(dev)
        address = _eui64(link.mac) if link is not None and link.mac else "fe80::1"
        leg.add(
            node,
            "neigh",
            f"{node} has no link-local address on {dev}: it sends no neighbour solicitation for {hop} "
            f"(the packet's source {pkt.src} is not on {dev})",
            ok=False,
        )
        raise Stop(
            "dropped",
            f"{node} cannot ask for {hop}'s MAC: {dev} has no IPv6 link-local address to send the neighbour "
            "solicitation from",
            Fix(
                f"give {node}:{dev} a link-local address",
                command=f"{_ip(space, 6)} addr add {address}/64 dev {dev}",
            ),
        )

    def _unanswered(
        self, leg: Leg, sender: Space, far: Space, far_dev: str, hop: str, why: str, key: str | None
    ) -> Stop:
        leg.add(
            far.node, "neigh", f"{far.node}:{far_dev} gets the request for {hop} but does not answer: {why}", ok=False
        )
        if key is None:
            owner = next((a for a in _addresses(far) if a.address == hop), None)
            length = owner.prefixlen if owner else 128
            fix = Fix(
                f"put {hop} on {far.node}:{far_dev}",
                command=f"{_ip(far, 6)} addr add {hop}/{length} dev {far_dev}",
            )
        else:
            sysctls = far.view.sysctls or {}
            keys = [
                f"net.ipv4.conf.{where}.{key}"
                for where in ("all", far_dev)
                if (sysctls.get(f"net.ipv4.conf.{where}.{key}") or "0") != "0"
            ]
            fix = Fix(
                f"let {far.node} answer ARP for {hop} on {far_dev}",
                command=f"{_run_in(far)}sysctl -w "
                + " ".join(f"{k.replace(far_dev, far_dev.replace('.', '/'))}=0" for k in keys),
                topology=_yaml_under(self.where(far), ["sysctls:", *(f"  {k}: 0" for k in keys)]),
            )
        return Stop(
            "dropped",
            f"{sender.node}'s ARP for {hop} gets no answer: {far.node}:{far_dev} holds it but does not answer ({why})"
            if key
            else f"{sender.node}'s neighbour solicitation for {hop} gets no answer from {far.node}:{far_dev} ({why})",
            fix,
        )

    # -- what the sender's neighbour table says ----------------------------------------------------

    def _entry(self, space: Space, dev: str, hop: str) -> NeighbourView | None:
        """The neighbour entry ``space`` sends with as is for ``hop`` on ``dev`` (no ARP first), if any: in the
        snapshot, or left by the ARP/NDP request of an earlier hop of this walk."""
        for n in space.view.neighbours or []:
            if n.dev == dev and n.address == hop and USED_AS_IS & set(n.state):
                return n
        if (space.node, dev, hop) in self._heard:
            return NeighbourView(dev, hop, self._heard[(space.node, dev, hop)], ["STALE"], False)
        return None

    def _heard_from(self, sender: Space, sender_dev: str, far: Space, far_dev: str, asker: str | None) -> None:
        if asker:
            link = self._links(sender).get(sender_dev)
            self._heard[(far.node, far_dev, asker)] = link.mac if link is not None else None

    def _wrong_mac(self, leg: Leg, space: Space, dev: str, hop: str, owner_mac: str | None) -> NeighbourView | None:
        """``space``'s entry for ``hop`` on ``dev`` if it sends to a MAC other than the owner's (``owner_mac``)."""
        entry = self._entry(space, dev, hop)
        if entry is None or owner_mac is None or (entry.mac or "").lower() == owner_mac.lower():
            return None
        return entry

    def _wrong_entry_fix(self, space: Space, dev: str, hop: str, entry: NeighbourView) -> Fix:
        family = ipaddress.ip_address(hop).version
        return Fix(
            f"delete {space.node}'s wrong neighbour entry for {hop} (ARP then finds the right MAC)",
            command=f"{_ip(space, family)} neigh del {hop} dev {dev}",
        )

    def _misdelivered(
        self, leg: Leg, space: Space, dev: str, hop: str, entry: NeighbourView, where: str, taker: str | None
    ) -> Stop:
        """The frame goes to the entry's MAC: nobody has it (``taker`` None), or ``taker`` does and drops it."""
        state = ",".join(entry.state)
        leg.add(
            space.node,
            "neigh",
            f"{space.node}'s neighbour entry for {hop} on {dev} says lladdr {entry.mac} ({state}): "
            f"the frame goes there without asking ARP",
            ok=False,
        )
        if taker is None:
            why = f"no interface behind {where} has {entry.mac}: every receiver drops the frame (not its MAC)"
        else:
            why = f"{entry.mac} is {taker}'s, which does not have {hop} and does not route it on"
        return Stop(
            "dropped",
            f"{space.node}'s neighbour entry for {hop} ({state}) has the wrong MAC {entry.mac}: {why}",
            self._wrong_entry_fix(space, dev, hop, entry),
        )

    def _mac_owner(self, links: list[tuple[Space, LinkView]], mac: str | None) -> tuple[Space, LinkView] | None:
        for space, link in links:
            if mac and link.mac and link.mac.lower() == mac.lower():
                return space, link
        return None

    def _bridge_neighbour(
        self,
        leg: Leg,
        space: Space,
        bridge: LinkView,
        port: LinkView | None,
        hop: str,
        pkt: Packet,
        sender: Space,
        far_space: Space,
        far: LinkView,
    ) -> bool:
        """The sender's neighbour decision for ``hop`` behind ``bridge``, whose owner is ``far``: raises
        :class:`Stop` if the frame goes to a wrong MAC or ARP is not answered; True if ARP (NDP) is asked first."""
        if port is None:
            sender_dev: str | None = bridge.name
        elif port.peer is not None and port.peer.node == sender.node:
            sender_dev = port.peer.name
        else:
            return True
        if sender_dev is None:
            return True
        entry = self._wrong_mac(leg, sender, sender_dev, hop, far.mac)
        if entry is not None:
            ends = [(space, bridge)]
            for link in space.view.links or []:
                if link.master == bridge.name and link.peer and link.peer.node in self.snap.spaces and link.peer.name:
                    other = self.snap.spaces[link.peer.node]
                    end = self._links(other).get(link.peer.name)
                    if end is not None:
                        ends.append((other, end))
            taker = self._mac_owner(ends, entry.mac)
            if taker is not None and self._forwards(taker[0], pkt.family):
                leg.add(
                    sender.node,
                    "neigh",
                    f"the frame for {hop} goes to {entry.mac}, {taker[0].node}:{taker[1].name}, which routes",
                    ok=False,
                )
                raise Stop(
                    "unknown",
                    f"{sender.node}'s neighbour entry sends the frame for {hop} to {taker[0].node}:{taker[1].name} "
                    f"({entry.mac}), a router: explain does not follow a frame misdelivered to a router",
                    self._wrong_entry_fix(sender, sender_dev, hop, entry),
                )
            name = f"{taker[0].node}:{taker[1].name}" if taker else None
            raise self._misdelivered(leg, sender, sender_dev, hop, entry, f"bridge {space.node}:{bridge.name}", name)
        if self._entry(sender, sender_dev, hop) is not None:
            return False
        self._arp_check(leg, sender, sender_dev, far_space, far.name, hop, pkt)
        return True

    # -- who has the next hop -----------------------------------------------------

    def _owner_port(
        self, space: Space, bridge: LinkView, hop: str, exclude: str | None
    ) -> tuple[LinkView, Space, LinkView] | None:
        """The port of ``bridge`` (not ``exclude``) whose veth's other end has ``hop`` (or, failing that, whose
        namespace has it on another interface and may answer ARP for it, or answers for it by proxy_arp):
        (port, its space, that end)."""
        family = 6 if ":" in hop else 4
        for exact in (True, False, None):
            for out in space.view.links or []:
                if out.master != bridge.name or out.name == exclude:
                    continue
                if out.peer is None or out.peer.node is None or out.peer.name is None:
                    continue
                far_space = self.snap.spaces.get(out.peer.node)
                far = self._links(far_space).get(out.peer.name) if far_space else None
                if far_space is None or far is None:
                    continue
                if exact is None:
                    if self._proxies(far_space, far.name, hop, family):
                        return out, far_space, far
                elif _has_address(far_space, hop, far.name) if exact else self._holds(far_space, far.name, hop, family):
                    return out, far_space, far
        return None

    def _no_owner(self, leg: Leg, sender: Space, hop: str, where: str, bridge: tuple[Space, str] | None = None) -> Stop:
        asking = "ARP" if ":" not in hop else "neighbour solicitation"
        leg.add(
            sender.node,
            "neigh",
            f"{asking} for {hop} gets no answer: nobody behind {where} has it{_evidence(sender, hop)}",
            ok=False,
        )
        detached = self._detached_owner(hop, bridge) if bridge else None
        if detached is not None:
            return detached
        reason = f"no interface reachable from {where} has {hop}, so {asking} fails"
        wrong_gateway = self._wrong_gateway(sender, hop)
        if wrong_gateway is not None:
            return Stop(
                "dropped", f"{reason}: {sender.node} routes through {hop}, which is not a router there", wrong_gateway
            )
        owner = self._lost_owner(hop)
        if owner is not None:
            reason += f"; the topology gives {hop} to {owner[0].node}:{owner[1]}, which does not hold it now"
        return Stop(
            "dropped",
            reason,
            self._lost_address_fix(hop, leg.source or None)
            or Fix(f"check the address: nothing on that segment has {hop}"),
        )

    def _wrong_gateway(self, sender: Space, hop: str) -> Fix | None:
        """``hop`` is the gateway of the route ``sender`` took, and one other router there reaches the destination:
        the route through that router instead."""
        taken = self._hop_route
        if taken is None or taken[0] != sender.node or taken[1].gateway != hop:
            return None
        route, dst = taken[1], taken[2]
        family = 6 if ":" in hop else 4
        gateway = self._gateway(sender, dst, family)
        if gateway is None or gateway[0] == hop:
            return None
        via, dev = gateway
        where = self.where(sender)
        return Fix(
            f"route {route.dst} through {via}, the router on {sender.node}'s segment that reaches {dst}",
            command=f"{_ip(sender, family)} route replace {route.dst} via {via} dev {dev}",
            topology=f"{where}.routes: {{to: {route.dst}, via: {via}}}" if where else None,
        )

    def _detached_owner(self, hop: str, bridge: tuple[Space, str]) -> Stop | None:
        """The interface that has ``hop`` but whose veth end is not a port of ``bridge``, if any."""
        space, name = bridge
        for owner in self.snap.spaces.values():
            for link in owner.view.links or []:
                if link.peer is None or link.peer.node != space.node or not _has_address(owner, hop, link.name):
                    continue
                end = self._links(space).get(link.peer.name or "")
                if end is None or end.master == name:
                    continue
                where = self.where(space)
                attached = f"attached to {end.master}" if end.master else "not attached to any bridge"
                return Stop(
                    "dropped",
                    f"{owner.node}:{link.name} has {hop}, but its other end {space.node}:{end.name} is {attached}, "
                    f"not to {name}",
                    Fix(
                        f"attach {space.node}:{end.name} to {name}",
                        command=f"{_ip(space)} link set {end.name} master {name}",
                        topology=f"set master: {name} in {where}.interfaces.{end.name}" if where else None,
                    ),
                )
        return None


def _ignored(far: Space, far_dev: str, hop: str, asker: str | None, on_dev: bool) -> str | None:
    """Why arp_ignore keeps ``far`` from answering ARP for ``hop`` on ``far_dev`` (None: it answers)."""
    ignore = conf(far, 4, far_dev, "arp_ignore")
    why = None
    if ignore == 8:
        why = "arp_ignore=8: it answers no ARP request"
    elif ignore in (1, 2) and not on_dev:
        why = f"arp_ignore={ignore}: it answers only for addresses of {far_dev}, and {hop} is on another interface"
    elif ignore == 2 and asker:
        nets = [
            ipaddress.ip_interface(f"{a.address}/{a.prefixlen}").network
            for a in _addresses(far, far_dev)
            if a.address == hop
        ]
        if not any(ipaddress.ip_address(asker) in net for net in nets):
            why = f"arp_ignore=2: the asking address {asker} is not in {hop}'s subnet on {far_dev}"
    elif ignore == 3 and any(a.address == hop and a.scope == "host" for a in _addresses(far)):
        why = f"arp_ignore=3: {hop} has scope host"
    return why


def _eui64(mac: str) -> str:
    """The link-local address SLAAC would give the MAC ``mac`` (modified EUI-64)."""
    b = [int(x, 16) for x in mac.split(":")]
    b[0] ^= 2
    words = [b[0] << 8 | b[1], b[2] << 8 | 0xFF, 0xFE << 8 | b[3], b[4] << 8 | b[5]]
    return "fe80::" + ":".join(f"{w:x}" for w in words)
