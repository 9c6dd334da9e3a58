"""The VXLAN part of the walk: a bridge's VXLAN port, ARP over it, its forwarding entries,
the encapsulated packet's way over the underlay and its decapsulation on the remote host (pure)."""

from __future__ import annotations

import ipaddress

from nsnet.explain.base import Stop, WalkerBase, _evidence, _fdb_text, _has_address, _ip, lookup
from nsnet.explain.netfilter import Packet
from nsnet.explain.verdict import Fix, Leg, Space
from nsnet.views import LinkView, VxlanView

VXLAN_OVERHEAD = 50
"""Bytes VXLAN adds to the inner IP packet: inner Ethernet 14, VXLAN 8, UDP 8, outer IPv4 20."""
ALL_ZEROS = "00:00:00:00:00:00"
"""The MAC of a VXLAN device's default entries: where frames with no entry of their own go."""
USABLE_NEIGH = {"PERMANENT", "REACHABLE", "NOARP"}
"""Neighbour states a VXLAN proxy answers from (NUD_CONNECTED)."""
CACHED_NEIGH = {"PERMANENT", "REACHABLE", "STALE", "DELAY", "PROBE"}
"""Neighbour states a sender sends with, without asking ARP first (NUD_VALID)."""
_CONTROLLER = "the controller (nsnet overlay serve) has not answered this miss yet, or is not running"


def _bridge_cmd(space: Space) -> str:
    """``bridge`` aimed at the space's namespace."""
    return f"bridge -n {space.view.netns}" if space.view.netns else "bridge"


def _missed(leg: Leg, node: str, dev: str, level: str, what: str) -> str:
    """Note that ``dev`` reported an L2 or L3 miss for ``what``; the reason's addition saying why it went unanswered."""
    leg.add(node, "miss", f"{dev} reports an {level} miss for {what} ({level.lower()}miss): {_CONTROLLER}", ok=False)
    return f"; {_CONTROLLER}"


def _vxlan_ports(space: Space, bridge: LinkView) -> list[tuple[LinkView, VxlanView]]:
    """The VXLAN devices that are ports of ``bridge``, with their settings and entries."""
    devices = {vx.name: vx for vx in space.view.vxlans or []}
    return [
        (link, devices[link.name])
        for link in space.view.links or []
        if link.master == bridge.name and link.name in devices
    ]


class OverlayMixin(WalkerBase):
    """The walker's way across VXLAN: from a bridge's VXLAN port to the bridge of another host."""

    def _across(
        self, space: Space, vx: VxlanView, hop: str
    ) -> tuple[Space, VxlanView, LinkView, tuple[LinkView, Space, LinkView] | None] | None:
        """Who has ``hop`` behind another host's VXLAN device of the same VNI and port.

        (host, its VXLAN device, that device's bridge, (port, space, interface) or None if the bridge has it).
        """
        for other in self.snap.spaces.values():
            if other is space:
                continue
            for rv in other.view.vxlans or []:
                if rv.vni != vx.vni or rv.port != vx.port or not rv.master:
                    continue
                rb = self._links(other).get(rv.master)
                if rb is None:
                    continue
                if _has_address(other, hop, rb.name):
                    return other, rv, rb, None
                found = self._owner_port(other, rb, hop, rv.name)
                if found is not None:
                    return other, rv, rb, found
        return None

    def _overlay(
        self, leg: Leg, space: Space, bridge: LinkView, port: LinkView | None, hop: str, pkt: Packet, sender: Space
    ) -> tuple[Space, Packet] | None:
        """The frame for ``hop`` leaves ``bridge`` through a VXLAN port, if ``hop`` is across one; else None."""
        found_over = [
            (link, vx, target)
            for link, vx in _vxlan_ports(space, bridge)
            if (target := self._across(space, vx, hop)) is not None
        ]
        if not found_over:
            self._leaves(leg, space, bridge, port, hop, pkt)
            return None
        link, vx, target = found_over[0]
        other, rv, rb, found = target
        node = space.node
        owner = f"{found[1].node}:{found[2].name}" if found else f"{other.node}:{rb.name}"
        true_mac = (found[2].mac if found else rb.mac) or "?"
        mac = self._overlay_arp(leg, space, link, vx, hop, sender, other, rv, owner, true_mac)
        came = f"from port {port.name} " if port else ""
        leg.add(node, "bridge", f"{bridge.name} forwards {came}to port {link.name} ({_fdb_text(space, bridge, mac)})")
        pkt = self._out_of_port(leg, space, bridge, port, link, pkt)
        vtep = self._vxlan_target(leg, space, link, vx, mac, hop, other, rv)
        self._underlay(leg, space, link, vx, vtep, other, rv, pkt)
        return self._decapsulate(leg, other, rv, rb, found, hop, pkt)

    def _leaves(self, leg: Leg, space: Space, bridge: LinkView, port: LinkView | None, hop: str, pkt: Packet) -> None:
        """On a machine's share: a frame for ``hop`` that a VXLAN port sends to another machine; raises Stop."""
        for link, vx in _vxlan_ports(space, bridge) if self.snap.remote else []:
            entry = next((n for n in vx.neighbours if n.address == hop and n.mac and USABLE_NEIGH & set(n.state)), None)
            vtep = next((e.vtep for e in vx.entries if entry and e.mac == entry.mac), None)
            if entry is None or vtep not in self.snap.remote:
                continue
            node, machine = space.node, self.snap.remote[vtep or ""]
            leg.add(node, "neigh", f"{link.name} answers ARP for {hop} from its neighbour table (proxy): {entry.mac}")
            came = f"from port {port.name} " if port else ""
            leg.add(
                node,
                "bridge",
                f"{bridge.name} forwards {came}to port {link.name} ({_fdb_text(space, bridge, entry.mac)})",
            )
            self._out_of_port(leg, space, bridge, port, link, pkt)
            leg.add(
                node,
                "vxlan",
                f"{link.name} sends it in VXLAN (VNI {vx.vni}) to VTEP {vtep}, machine {machine}, "
                f"from {vx.local} out of {vx.dev}",
            )
            owner = self.snap.owners.get(hop)
            here = f"machine {self.snap.machine}" if self.snap.machine else "this machine"
            raise Stop(
                "left",
                f"the request leaves {here} for machine {machine} (VTEP {vtep}, UDP {vx.port}); there, machine "
                f"{machine}'s VXLAN device of VNI {vx.vni} must deliver it to {entry.mac}"
                + (f" ({owner})" if owner else "")
                + f": `nsnet explain {self.snap.lab}` on machine {machine} follows it there",
            )

    def _overlay_arp(
        self,
        leg: Leg,
        space: Space,
        link: LinkView,
        vx: VxlanView,
        hop: str,
        sender: Space,
        other: Space,
        rv: VxlanView,
        owner: str,
        true_mac: str,
    ) -> str:
        """The MAC that ARP for ``hop`` resolves to over the VXLAN device (its proxy, or flooding); raises Stop."""
        node, dev = space.node, link.name
        cached = next(
            (n for n in sender.view.neighbours or [] if n.address == hop and n.mac and CACHED_NEIGH & set(n.state)),
            None,
        )
        if cached is not None and cached.mac:
            leg.add(
                sender.node,
                "neigh",
                f"{sender.node} has {hop} at {cached.mac} in its neighbour cache ({','.join(cached.state)}): no ARP",
            )
            if cached.mac != true_mac:
                leg.add(sender.node, "neigh", f"but {owner}, which has {hop}, is {true_mac}", ok=False)
                raise Stop(
                    "dropped",
                    f"{sender.node}'s neighbour cache has {hop} at {cached.mac}, but {owner} has {true_mac}",
                    Fix(
                        f"forget the wrong entry in {sender.node}",
                        command=f"{_ip(sender)} neigh flush to {hop}",
                    ),
                )
            return cached.mac
        if vx.proxy:
            entry = next((n for n in vx.neighbours if n.address == hop), None)
            if entry is not None and entry.mac and USABLE_NEIGH & set(entry.state):
                leg.add(node, "neigh", f"{dev} answers ARP for {hop} from its neighbour table (proxy): {entry.mac}")
                if entry.mac != true_mac:
                    leg.add(node, "neigh", f"but {owner}, which has {hop}, is {true_mac}", ok=False)
                    raise Stop(
                        "dropped",
                        f"the VXLAN proxy ({node}:{dev}) answers ARP for {hop} with {entry.mac}, "
                        f"but {owner} has {true_mac}: frames for {hop} go to a MAC nobody has",
                        self._neigh_fix(space, dev, vx, hop, true_mac, owner),
                    )
                return entry.mac
            missing = (
                f"{hop} is not in it"
                if entry is None
                else f"its entry for {hop} is {','.join(entry.state)}, and only reachable or permanent ones count"
            )
            leg.add(
                sender.node,
                "neigh",
                f"ARP for {hop} gets no answer: {node}:{dev} answers ARP from its neighbour table (proxy), "
                f"and {missing}{_evidence(sender, hop)}",
                ok=False,
            )
            reason = f"ARP is answered by the VXLAN proxy ({node}:{dev}) from its neighbour table: {missing}"
            if vx.l3miss:
                reason += _missed(leg, node, dev, "L3", hop)
            raise Stop("dropped", reason, self._neigh_fix(space, dev, vx, hop, true_mac, owner))
        flood = [e.vtep for e in vx.entries if e.mac == ALL_ZEROS]
        if rv.local in flood:
            leg.add(
                node,
                "neigh",
                f"{dev} has no ARP proxy: ARP for {hop} is flooded to VTEP {', '.join(flood)}; {owner} answers",
            )
            return true_mac
        to = f"only to VTEP {', '.join(flood)}" if flood else "to no VTEP (it has no 00:00:00:00:00:00 entry)"
        leg.add(
            sender.node,
            "neigh",
            f"ARP for {hop} gets no answer: {node}:{dev} has no ARP proxy and floods ARP {to}, "
            f"not to {other.node}'s {rv.local}{_evidence(sender, hop)}",
            ok=False,
        )
        raise Stop(
            "dropped",
            f"{node}:{dev} has no ARP proxy and does not flood ARP to VTEP {rv.local} ({other.node}), "
            f"behind which {hop} is",
            Fix(
                f"flood {node}:{dev}'s broadcasts to {other.node}'s VTEP too",
                command=f"{_bridge_cmd(space)} fdb append {ALL_ZEROS} dev {dev} dst {rv.local}",
            ),
        )

    def _start_controller(self) -> str:
        return (
            f"start the controller (nsnet overlay serve {self.snap.lab}) to answer the miss, or write the entry by hand"
        )

    def _neigh_fix(self, space: Space, dev: str, vx: VxlanView, hop: str, mac: str, owner: str) -> Fix:
        how = (
            self._start_controller()
            if vx.l3miss
            else f"give {space.node}:{dev} its neighbour entry for {hop} ({owner}) again"
        )
        return Fix(how, command=f"{_ip(space)} neigh replace {hop} lladdr {mac} dev {dev} nud permanent")

    def _vxlan_target(
        self,
        leg: Leg,
        space: Space,
        link: LinkView,
        vx: VxlanView,
        mac: str,
        hop: str,
        other: Space,
        rv: VxlanView,
    ) -> str:
        """The remote VTEP the VXLAN device sends ``mac`` to (it must be ``other``'s); raises Stop."""
        node, dev = space.node, link.name
        exact = [e for e in vx.entries if e.mac == mac]
        chosen = exact or [e for e in vx.entries if e.mac == ALL_ZEROS]
        command = f"{_bridge_cmd(space)} fdb append {mac} dev {dev} dst {rv.local}"
        if not chosen:
            leg.add(
                node,
                "vxlan",
                f"{dev} has no forwarding entry for {mac} (nor a default {ALL_ZEROS} one): it drops the frame",
                ok=False,
            )
            reason = f"{node}:{dev} has no fdb entry for {mac} ({hop}, behind {other.node}), so it drops the frame"
            if vx.l2miss:
                reason += _missed(leg, node, dev, "L2", mac)
                summary = self._start_controller()
            else:
                summary = f"give {node}:{dev} its forwarding entry for {mac} ({hop}) again: to VTEP {rv.local}"
            raise Stop("dropped", reason, Fix(summary, command=command))
        vteps = [e.vtep for e in chosen]
        how = "fdb" if exact else f"no entry for {mac}: its default ({ALL_ZEROS}) entries"
        if rv.local not in vteps:
            named = ", ".join(f"{e.vtep} ({e.host})" if e.host else e.vtep for e in chosen)
            leg.add(
                node, "vxlan", f"{dev} sends {mac} to VTEP {named} ({how}), not to {other.node}'s {rv.local}", ok=False
            )
            raise Stop(
                "dropped",
                f"{node}:{dev} sends {mac} to VTEP {named}, but {hop} is behind {other.node} ({rv.local})",
                Fix(
                    f"send {mac} to {other.node}'s VTEP {rv.local}",
                    command=(f"{_bridge_cmd(space)} fdb replace {mac} dev {dev} dst {rv.local}" if exact else command),
                ),
            )
        return rv.local

    def _underlay(
        self,
        leg: Leg,
        space: Space,
        link: LinkView,
        vx: VxlanView,
        vtep: str,
        other: Space,
        rv: VxlanView,
        pkt: Packet,
    ) -> None:
        """The encapsulated packet's way from this host's VTEP to ``other``'s, walked like any packet."""
        node, dev = space.node, link.name
        route = lookup(space, vtep)
        under = self._links(space).get(route.dev or "") if route else None
        if pkt.size and under is not None:
            self._encapsulation_mtu(leg, space, link, under, pkt)
        family = ipaddress.ip_address(vtep).version
        outer = Packet(
            family,
            vx.local or "",
            vtep,
            "udp",
            None,
            vx.port,
            size=pkt.size + VXLAN_OVERHEAD if pkt.size else 0,
            df=False,
        )
        crossing = Leg(title=f"VXLAN {vx.vni} {node} -> {other.node}", src=node, dst=vtep)
        self._arrived_on = None
        head = f"{dev}: VXLAN {vx.vni} to VTEP {vtep} ({other.node})"
        try:
            arrived, _ = self._send(crossing, space, outer, src_fixed=bool(vx.local))
        except Stop as stop:
            leg.add(node, "vxlan", f"{head}, encapsulated in UDP to port {vx.port}, over the underlay:")
            leg.steps += crossing.steps
            raise Stop(
                stop.outcome,
                f"VXLAN {vx.vni} from {node} cannot reach VTEP {vtep} ({other.node}) on the underlay: {stop.reason}",
                stop.fix,
            ) from None
        if arrived is not other:
            leg.add(node, "vxlan", f"{head}: {vtep} is {arrived.node}'s address, not {other.node}'s", ok=False)
            raise Stop("dropped", f"VXLAN {vx.vni} to {vtep} reaches {arrived.node}, not {other.node}")
        nodes = [s.node for s in crossing.steps if s.node not in (node, other.node)]
        middle = [n for i, n in enumerate(nodes) if i == 0 or nodes[i - 1] != n]
        end = f"{other.node}:{self._arrived_on[1]}" if self._arrived_on else other.node
        way = " -> ".join([*([route.dev] if route and route.dev else []), *middle, end])
        leg.add(node, "vxlan", f"{head}, over {way}")
        leg.steps += [
            s for s in crossing.steps if (s.what == "netfilter" and s.text.startswith("netfilter ")) or s.what == "mtu"
        ]
        remote = self._links(other).get(rv.name)
        if remote is None or remote.state != "up":
            leg.add(other.node, "link", f"{rv.name} is down: nothing in {other.node} takes VXLAN {rv.vni}", ok=False)
            raise Stop(
                "dropped",
                f"{other.node}:{rv.name} is down: nothing in {other.node} takes VXLAN {rv.vni} on udp/{rv.port}",
                self._link_up_fix(other, rv.name),
            )

    def _encapsulation_mtu(self, leg: Leg, space: Space, link: LinkView, under: LinkView, pkt: Packet) -> None:
        """A packet VXLAN cannot carry once its header is added, where DF forbids fragmenting it."""
        node, dev = space.node, link.name
        room = under.mtu - VXLAN_OVERHEAD
        if pkt.size > room and pkt.df and room >= 576:
            leg.add(
                node,
                "mtu",
                f"{dev}: VXLAN adds {VXLAN_OVERHEAD} bytes and the {pkt.size}-byte packet has DF set: "
                f"more than {under.name}'s MTU {under.mtu} allows ({room}); {dev} drops it and answers "
                "ICMP fragmentation needed",
                ok=False,
            )
            raise Stop(
                "dropped",
                f"the {pkt.size}-byte packet is bigger than the overlay carries: {node}:{under.name}'s MTU "
                f"{under.mtu} less {VXLAN_OVERHEAD} for VXLAN is {room}",
                self._mtu_fix(space, link, room),
            )

    def _decapsulate(
        self,
        leg: Leg,
        other: Space,
        rv: VxlanView,
        rb: LinkView,
        found: tuple[LinkView, Space, LinkView] | None,
        hop: str,
        pkt: Packet,
    ) -> tuple[Space, Packet]:
        """From the remote host's VXLAN device, through its bridge, to the interface that has ``hop``."""
        node = other.node
        if rb.state != "up":
            leg.add(node, "bridge", f"bridge {rb.name} is down", ok=False)
            raise Stop("dropped", f"bridge {node}:{rb.name} is down", self._link_up_fix(other, rb.name))
        if found is None:
            leg.add(node, "vxlan", f"{rv.name} -> bridge {rb.name}, which holds {hop} itself")
            return self._receive(leg, other, rb.name, pkt)
        out, far_space, far = found
        vlink = self._links(other)[rv.name]
        leg.add(
            node,
            "vxlan",
            f"{rv.name} -> bridge {rb.name} -> {out.name} -> {far_space.node}:{far.name} "
            f"({_fdb_text(other, rb, far.mac)})",
        )
        pkt = self._out_of_port(leg, other, rb, vlink, out, pkt)
        self._into_peer(leg, other, out, far_space, far, pkt)
        return self._receive(leg, far_space, far.name, pkt)
