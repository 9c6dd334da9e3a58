"""Follow a packet through a lab snapshot, hop by hop, as the kernel would (pure).

The request leaves the source (route lookup, OUTPUT), crosses veth pairs and
bridges (fdb or flood, and the host's iptables when bridged traffic is
handed to it), is routed by any namespace on the way (ip_forward, FORWARD),
and is delivered (PREROUTING, INPUT, a listening socket). Then the reply
takes the way back. The first thing that stops the packet ends the leg,
with the reason and a fix.

A bridge with a VXLAN port extends its segment to the bridges of the other
hosts whose VXLAN device has the same VNI and UDP port: ARP for an address
there is answered by the local device's proxy from its neighbour entries
(or, without a proxy, flooded to the VTEPs of its default entries), the
frame goes to the VTEP its forwarding entry names, and the encapsulated
packet is walked across the underlay like any other (routes, ARP, the
underlay switch, every netfilter hook) before it is taken out of the
remote host's VXLAN device into its bridge. Packet sizes are checked
against every MTU on the way, VXLAN's 50 bytes included.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from ..model import HOST, UNDERLAY
from ..views import AddressView, LinkView, NeighbourView, RouteView, VxlanView
from .model import Explanation, Fix, Leg, Snapshot, Space
from .netfilter import Context, Decision, Packet, evaluate

EPHEMERAL_PORT = 40000
VXLAN_OVERHEAD = 50
"""Bytes VXLAN adds to the inner IP packet: inner Ethernet 14, VXLAN 8, UDP 8, outer IPv4 20."""
VLAN_SLACK = 4
"""A veth or bridge port passes frames up to its MTU plus an Ethernet header and this (``is_skb_forwardable``)."""
ALL_ZEROS = "00:00:00:00:00:00"
"""The MAC of a VXLAN device's default entries: where frames with no entry of their own go."""
USABLE_NEIGH = {"PERMANENT", "REACHABLE", "NOARP"}
"""Neighbour states a VXLAN proxy answers from (NUD_CONNECTED)."""
CACHED_NEIGH = {"PERMANENT", "REACHABLE", "STALE", "DELAY", "PROBE"}
"""Neighbour states a sender sends with, without asking ARP first (NUD_VALID)."""
SIZES = {"icmp": 84, "icmpv6": 104, "tcp": 60, "udp": 39}
"""IP length of the packet nsnet's probe sends when no size is asked for (ping's 56 data bytes; a SYN)."""


class Stop(Exception):
    """The packet goes no further; ``fix`` says how to change that."""

    def __init__(self, outcome: str, reason: str, fix: Fix | None = None) -> None:
        self.outcome = outcome
        self.reason = reason
        self.fix = fix


def parse_proto(proto: str) -> tuple[str, int | None]:
    """``icmp``, ``tcp:PORT`` or ``udp:PORT`` -> (name, port)."""
    name, _, port = proto.partition(":")
    if name == "icmp" and not port:
        return "icmp", None
    if name in ("tcp", "udp") and port.isdigit() and 0 < int(port) < 65536:
        return name, int(port)
    raise ValueError(f"{proto!r} is not a protocol: use icmp, tcp:PORT or udp:PORT")


def _addresses(space: Space, dev: str | None = None) -> list[AddressView]:
    return [a for a in space.view.addresses or [] if dev is None or a.dev == dev]


def _links(space: Space) -> dict[str, LinkView]:
    return {link.name: link for link in space.view.links or []}


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


class Walker:
    """Explains one packet's fate over a :class:`Snapshot`."""

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
        self._size = 0

    def where(self, space: Space) -> str | None:
        """Where ``space`` is written in the topology file (``host``, ``hosts.A``, ``nodes.RED``); None: nowhere."""
        if space.node == HOST:
            return "host"
        if self.machines and space.node == UNDERLAY:
            return None  # nsnet makes the underlay switch from underlay: alone
        return f"hosts.{space.node}" if space.node in self.machines else f"nodes.{space.node}"

    # -- entry point ---------------------------------------------------------

    def explain(self, src: str, dst: str, proto: str = "icmp", size: int | None = None) -> Explanation:
        """The fate of a ``proto`` packet from ``src`` to ``dst``; ``size``: its IP length (icmp and udp)."""
        if src not in self.snap.spaces:
            raise ValueError(f"lab {self.snap.lab!r} has no node {src!r}; nodes: {', '.join(self.snap.spaces)}")
        source = self.snap.spaces[src]
        name, port = parse_proto(proto)
        if size is not None:
            if name == "tcp":
                raise ValueError("a size applies to icmp and udp, not to tcp (whose segments follow the MSS)")
            if not 28 <= size <= 65535:
                raise ValueError(f"size {size} is not an IP length: use 28 to 65535 bytes")
        address = self._destination_address(source, dst)
        family = ipaddress.ip_address(address).version
        proto_name = "icmpv6" if name == "icmp" and family == 6 else name
        self._size = size or SIZES[proto_name] + (20 if family == 6 and proto_name != "icmpv6" else 0)
        pkt = Packet(family, "", address, proto_name, EPHEMERAL_PORT if port else None, port, size=self._size)
        request = Leg(
            title=f"{proto} request {src} -> {dst}"
            + (f" ({address})" if address != dst else "")
            + (f", {size} bytes" if size else ""),
            src=src,
            dst=address,
        )
        legs = [request]
        fix: Fix | None = None
        try:
            arrived, pkt = self._send(request, source, pkt)
        except Stop as stop:
            request.outcome, request.reason, fix = stop.outcome, stop.reason, stop.fix
            return self._verdict(src, dst, proto, legs, fix, size)
        reply_pkt, answer = self._answer(request, arrived, pkt)
        if reply_pkt is None:
            return self._verdict(src, dst, proto, legs, None, size)
        reply = Leg(title=f"{answer} {arrived.node} -> {src} ({reply_pkt.dst})", src=arrived.node, dst=reply_pkt.dst)
        legs.append(reply)
        try:
            back, _ = self._send(reply, arrived, reply_pkt, src_fixed=True)
            if back.node != src:
                raise Stop("dropped", f"the {answer} reaches {back.node}, not {src}")
            reply.add(src, "deliver", f"{answer} delivered to {src}")
        except Stop as stop:
            reply.outcome, reply.reason, fix = stop.outcome, stop.reason, stop.fix
        return self._verdict(src, dst, proto, legs, fix, size)

    def _destination_address(self, source: Space, dst: str) -> str:
        if dst not in self.snap.spaces:
            try:
                return str(ipaddress.ip_address(dst))
            except ValueError:
                raise ValueError(f"{dst!r} is neither a node of lab {self.snap.lab!r} nor an address") from None
        target = self.snap.spaces[dst]
        candidates = [a for a in _addresses(target) if a.scope == "global" and a.address]
        if not candidates:
            raise ValueError(f"node {dst!r} has no global address to send to")
        mine = [ipaddress.ip_interface(f"{a.address}/{a.prefixlen}") for a in _addresses(source) if a.scope == "global"]
        for a in sorted(candidates, key=lambda a: a.family):
            ip = ipaddress.ip_address(a.address or "")
            if any(ip in m.network for m in mine):
                return str(a.address)
        return str(sorted(candidates, key=lambda a: a.family)[0].address)

    # -- the answer at the destination ----------------------------------------

    def _answer(self, leg: Leg, space: Space, pkt: Packet) -> tuple[Packet | None, str]:
        back = replace(pkt, src=pkt.dst, dst=pkt.src, sport=pkt.dport, dport=pkt.sport, ctstate="ESTABLISHED")
        # The answer is as long as the whole request (reassembled); the kernel's ICMP sends it without DF.
        back = replace(back, size=self._size, df=False) if pkt.proto in ("icmp", "icmpv6") else back
        if pkt.proto == "tcp":
            back = replace(back, size=60 if pkt.family == 4 else 80, df=True)
        if pkt.proto in ("icmp", "icmpv6"):
            leg.add(space.node, "deliver", f"echo request delivered to {space.node}, which answers with an echo reply")
            return back, "echo reply"
        assert pkt.dport is not None
        if (pkt.proto, pkt.dport) in space.listening:
            if pkt.proto == "tcp":
                leg.add(
                    space.node, "socket", f"a socket listens on tcp/{pkt.dport} in {space.node}: it answers SYN-ACK"
                )
                return back, "SYN-ACK"
            leg.add(
                space.node, "socket", f"a socket listens on udp/{pkt.dport} in {space.node}: the datagram is delivered"
            )
            leg.outcome = "delivered"
            return None, ""
        if pkt.proto == "tcp":
            leg.add(
                space.node, "socket", f"nothing listens on tcp/{pkt.dport} in {space.node}: it answers RST", ok=False
            )
            leg.outcome, leg.reason = "refused", f"nothing listens on tcp/{pkt.dport} in {space.node}"
            return back, "RST"
        leg.add(
            space.node,
            "socket",
            f"nothing listens on udp/{pkt.dport} in {space.node}: it answers ICMP port unreachable",
            ok=False,
        )
        leg.outcome, leg.reason = "refused", f"nothing listens on udp/{pkt.dport} in {space.node}"
        icmp = "icmp" if pkt.family == 4 else "icmpv6"
        error = replace(back, proto=icmp, sport=None, dport=None, ctstate="RELATED", size=min(576, 28 + self._size))
        return replace(error, df=False), "ICMP port unreachable"

    # -- sending and receiving --------------------------------------------------

    def _send(self, leg: Leg, space: Space, pkt: Packet, src_fixed: bool = False) -> tuple[Space, Packet]:
        """From ``space`` onwards until the packet is delivered somewhere; raises :class:`Stop`."""
        node = space.node
        if _has_address(space, pkt.dst):
            leg.add(node, "route", f"{pkt.dst} is an address of {node} itself: delivered locally")
            return space, pkt
        route = lookup(space, pkt.dst)
        if route is None:
            raise self._no_route(leg, space, pkt.dst)
        if route.type != "unicast":
            leg.add(node, "route", f"route {route.dst} is of type {route.type}", ok=False)
            raise Stop("dropped", f"{node}'s route to {pkt.dst} is a {route.type} route")
        if not src_fixed or not pkt.src:
            src = route.src or next(
                (a.address for a in _addresses(space, route.dev) if a.family == pkt.family and a.scope == "global"),
                None,
            )
            if src is None:
                leg.add(node, "route", f"no address on {route.dev} to send from", ok=False)
                raise Stop(
                    "dropped",
                    f"{node} has no address on {route.dev} to send from",
                    Fix(f"give {node}:{route.dev} an address"),
                )
            pkt = replace(pkt, src=src)
        leg.source = leg.source or pkt.src
        hop = route.gateway or pkt.dst
        leg.add(node, "route", f"route lookup for {pkt.dst}: {_route_text(route)} (from {pkt.src})")
        self._hook(leg, space, "OUTPUT", pkt, Context(out_iface=route.dev))
        self._hook(leg, space, "POSTROUTING", pkt, Context(out_iface=route.dev))
        assert route.dev is not None
        out = _links(space).get(route.dev)
        if out is not None and pkt.size > out.mtu:
            leg.add(
                node,
                "mtu",
                f"{pkt.size} bytes is more than {route.dev}'s MTU {out.mtu}: "
                f"{node} sends it in fragments of at most {out.mtu} bytes",
            )
            pkt = replace(pkt, size=out.mtu, df=False)
        return self._egress(leg, space, route.dev, hop, pkt)

    def _no_route(self, leg: Leg, space: Space, dst: str) -> Stop:
        node = space.node
        links = _links(space)
        for a in _addresses(space):
            iface = ipaddress.ip_interface(f"{a.address}/{a.prefixlen}")
            link = links.get(a.dev or "")
            if ipaddress.ip_address(dst) in iface.network and link and link.state != "up":
                leg.add(node, "route", f"no route to {dst}: {a.dev} holds {iface} but is down", ok=False)
                return Stop(
                    "dropped",
                    f"{node}:{a.dev} is down, so {node} has no route to {dst}",
                    self._link_up_fix(space, a.dev or ""),
                )
        leg.add(node, "route", f"no route to {dst} in {node}", ok=False)
        return Stop(
            "dropped",
            f"{node} has no route to {dst}",
            Fix(
                f"give {node} a route to {dst} (or an address in its subnet)",
                command=f"{_ip(space)} route add {dst} via GATEWAY",
                topology=_yaml_under(self.where(space), ["routes:", f"  - {{to: {dst}/32, via: GATEWAY}}"]),
            ),
        )

    def _hook(self, leg: Leg, space: Space, hook: str, pkt: Packet, ctx: Context) -> Decision:
        tables = space.view.firewall or []
        decision = evaluate(tables, hook, pkt, ctx)
        node = space.node
        if decision.by == "no rules":
            return decision
        text = f"netfilter {hook}: {decision.table}/{decision.chain} -> {decision.verdict} by {decision.by}"
        if decision.verdict == "UNKNOWN":
            leg.add(node, "netfilter", text, ok=False)
            raise Stop("unknown", f"in {node}, {decision.by}")
        if decision.verdict in ("DROP", "REJECT"):
            leg.add(node, "netfilter", text, ok=False)
            what = decision.by if decision.by.startswith("policy") else decision.by.replace(": ", " (", 1) + ")"
            raise Stop(
                "dropped" if decision.verdict == "DROP" else "rejected",
                f"{what} in {node}'s {decision.table} table {decision.verdict.lower()}s it",
                self._firewall_fix(space, hook, decision, pkt),
            )
        if decision.table:
            leg.add(node, "netfilter", text)
        return decision

    def _firewall_fix(self, space: Space, hook: str, decision: Decision, pkt: Packet) -> Fix:
        run = _run_in(space)
        tool = "iptables" if pkt.family == 4 else "ip6tables"
        if decision.by.startswith("policy"):
            source = self._source_net(pkt)
            return Fix(
                f"accept this traffic in {space.node}'s {hook} chain before the policy drops it",
                command=f"{run}{tool} -t filter -A {hook} -s {source} -j ACCEPT",
                topology=_yaml_under(
                    self.where(space),
                    ["firewall:", "  rules:", f"    - {{chain: {hook}, source: {source}, action: ACCEPT}}"],
                ),
            )
        rule_text = decision.by.split(": ", 1)[1] if ": " in decision.by else decision.by
        chain = rule_text.split()[1] if rule_text.startswith("-A ") else hook
        delete = "-D " + rule_text[3:] if rule_text.startswith("-A ") else rule_text
        owned = chain.startswith("NSNET-")
        block = self.where(space)
        return Fix(
            f"remove the rule that {decision.verdict.lower()}s it" + (" (it comes from the topology)" if owned else ""),
            command=f"{run}{tool} -t {decision.table} {delete}",
            topology=f"remove that rule from {block}.firewall.rules" if owned and block else None,
        )

    def _source_net(self, pkt: Packet) -> str:
        for space in self.snap.spaces.values():
            for a in _addresses(space):
                if a.address == pkt.src:
                    return str(ipaddress.ip_interface(f"{a.address}/{a.prefixlen}").network)
        return pkt.src

    # -- layer 2 ---------------------------------------------------------------------

    def _egress(self, leg: Leg, space: Space, dev: str, hop: str, pkt: Packet) -> tuple[Space, Packet]:
        links = _links(space)
        link = links.get(dev)
        node = space.node
        if link is None:
            raise Stop("unknown", f"{node} has no interface {dev}")
        if link.state != "up":
            leg.add(node, "link", f"{dev} is down", ok=False)
            raise Stop("dropped", f"{node}:{dev} is down", self._link_up_fix(space, dev))
        if link.kind == "bridge":
            return self._bridge(leg, space, link, None, hop, pkt, space)
        if link.kind != "veth" or link.peer is None or link.peer.node is None or link.peer.name is None:
            raise Stop("unknown", f"{node}:{dev} is a {link.kind} link whose other end nsnet cannot follow")
        peer_space = self.snap.spaces[link.peer.node]
        peer = _links(peer_space)[link.peer.name]
        leg.add(node, "veth", f"out of {dev} -> {peer_space.node}:{peer.name} (veth pair)")
        if peer.state != "up":
            leg.add(peer_space.node, "link", f"{peer.name} is down: {dev} has no carrier", ok=False)
            raise Stop(
                "dropped",
                f"the other end of {node}:{dev}, {peer_space.node}:{peer.name}, is down",
                self._link_up_fix(peer_space, peer.name),
            )
        self._veth_mtu(leg, space, link, peer_space, peer, pkt)
        if peer.master:
            bridge = _links(peer_space)[peer.master]
            return self._bridge(leg, peer_space, bridge, peer, hop, pkt, space)
        if _has_address(peer_space, hop, peer.name):
            leg.add(peer_space.node, "neigh", f"{peer_space.node}:{peer.name} has {hop}: ARP resolves")
            return self._receive(leg, peer_space, peer.name, pkt)
        raise self._no_owner(leg, space, hop, f"{peer_space.node}:{peer.name}")

    def _owner_port(
        self, space: Space, bridge: LinkView, hop: str, exclude: str | None
    ) -> tuple[LinkView, Space, LinkView] | None:
        """The port of ``bridge`` (not ``exclude``) whose veth's other end has ``hop``: (port, its space, that end)."""
        for out in space.view.links or []:
            if out.master != bridge.name or out.name == exclude:
                continue
            if out.peer is None or out.peer.node is None or out.peer.name is None:
                continue
            far_space = self.snap.spaces.get(out.peer.node)
            far = _links(far_space).get(out.peer.name) if far_space else None
            if far_space is None or far is None or not _has_address(far_space, hop, far.name):
                continue
            return out, far_space, far
        return None

    def _bridge(
        self, leg: Leg, space: Space, bridge: LinkView, port: LinkView | None, hop: str, pkt: Packet, sender: Space
    ) -> tuple[Space, Packet]:
        node = space.node
        if bridge.state != "up":
            leg.add(node, "bridge", f"bridge {bridge.name} is down", ok=False)
            raise Stop("dropped", f"bridge {node}:{bridge.name} is down", self._link_up_fix(space, bridge.name))
        if port is not None and _has_address(space, hop, bridge.name):
            leg.add(node, "bridge", f"{bridge.name} holds {hop} itself: the frame is for the bridge device")
            return self._receive(leg, space, bridge.name, pkt)
        found = self._owner_port(space, bridge, hop, port.name if port else None)
        if found is not None:
            out, far_space, far = found
            came = f"from port {port.name} " if port else ""
            leg.add(
                node, "bridge", f"{bridge.name} forwards {came}to port {out.name} ({_fdb_text(space, bridge, far.mac)})"
            )
            if out.state != "up":
                leg.add(node, "link", f"port {out.name} is down", ok=False)
                raise Stop("dropped", f"bridge port {node}:{out.name} is down", self._link_up_fix(space, out.name))
            if port is not None:
                self._bridged_netfilter(leg, space, bridge, port, out, pkt)
            pkt = self._bridge_mtu(leg, space, bridge, port, out, pkt)
            leg.add(far_space.node, "veth", f"{out.name} -> {far_space.node}:{far.name} (veth pair)")
            if far.state != "up":
                leg.add(far_space.node, "link", f"{far.name} is down", ok=False)
                raise Stop("dropped", f"{far_space.node}:{far.name} is down", self._link_up_fix(far_space, far.name))
            self._veth_mtu(leg, space, out, far_space, far, pkt)
            leg.add(far_space.node, "neigh", f"{far_space.node}:{far.name} has {hop}: ARP resolves")
            return self._receive(leg, far_space, far.name, pkt)
        over = self._overlay(leg, space, bridge, port, hop, pkt, sender)
        if over is not None:
            return over
        vnis = sorted({vx.vni for _, vx in self._vxlan_ports(space, bridge)})
        across = f" (nor across VXLAN {', '.join(map(str, vnis))})" if vnis else ""
        raise self._no_owner(leg, sender, hop, f"bridge {node}:{bridge.name}{across}", (space, bridge.name))

    def _bridged_netfilter(
        self, leg: Leg, space: Space, bridge: LinkView, port: LinkView, out: LinkView, pkt: Packet
    ) -> None:
        key = "net.bridge.bridge-nf-call-iptables" if pkt.family == 4 else "net.bridge.bridge-nf-call-ip6tables"
        value = (space.view.sysctls or {}).get(key)
        node = space.node
        if value != "1":
            why = f"{key}={value}" if value is not None else "br_netfilter is not loaded"
            leg.add(
                node,
                "netfilter",
                f"bridged traffic is not handed to iptables here ({why}): {node}'s FORWARD chain never sees it",
            )
            return
        leg.add(
            node,
            "netfilter",
            f"{key}=1: bridged IP traffic goes through {node}'s iptables as if routed "
            "(in and out interface: the bridge)",
        )
        ctx = Context(
            in_iface=bridge.name, out_iface=bridge.name, physdev_in=port.name, physdev_out=out.name, bridged=True
        )
        for hook in ("PREROUTING", "FORWARD", "POSTROUTING"):
            self._hook(leg, space, hook, pkt, ctx)

    def _no_owner(self, leg: Leg, sender: Space, hop: str, where: str, bridge: tuple[Space, str] | None = None) -> Stop:
        leg.add(
            sender.node,
            "neigh",
            f"ARP for {hop} gets no answer: nobody behind {where} has it{_evidence(sender, hop)}",
            ok=False,
        )
        detached = self._detached_owner(hop, bridge) if bridge else None
        if detached is not None:
            return detached
        return Stop(
            "dropped",
            f"no interface reachable from {where} has {hop}, so ARP fails",
            Fix(f"check the address: nothing on that segment has {hop}"),
        )

    def _detached_owner(self, hop: str, bridge: tuple[Space, str]) -> Stop | None:
        """The interface that has ``hop`` but whose veth end is not a port of ``bridge``, if any."""
        space, name = bridge
        for owner in self.snap.spaces.values():
            for link in owner.view.links or []:
                if link.peer is None or link.peer.node != space.node or not _has_address(owner, hop, link.name):
                    continue
                end = _links(space).get(link.peer.name or "")
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

    # -- MTU -------------------------------------------------------------------------

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
            self._mtu_fix(space, link, peer.mtu),
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
        overlay = any(link.name == out.name for link, _ in self._vxlan_ports(space, bridge))
        what = "the overlay's MTU" if overlay else "the MTU"
        raise Stop(
            "dropped",
            f"the {pkt.size}-byte packet is bigger than {what}: bridge port {node}:{out.name} takes {out.mtu} "
            f"({sender}), so bridge {node}:{bridge.name} drops it",
            self._mtu_fix(space, port if port is not None else bridge, out.mtu),
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

    # -- VXLAN -------------------------------------------------------------------------

    def _vxlan_ports(self, space: Space, bridge: LinkView) -> list[tuple[LinkView, VxlanView]]:
        """The VXLAN devices that are ports of ``bridge``, with their settings and entries."""
        devices = {vx.name: vx for vx in space.view.vxlans or []}
        return [
            (link, devices[link.name])
            for link in space.view.links or []
            if link.master == bridge.name and link.name in devices
        ]

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
                rb = _links(other).get(rv.master)
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
            for link, vx in self._vxlan_ports(space, bridge)
            if (target := self._across(space, vx, hop)) is not None
        ]
        if not found_over:
            return None
        link, vx, target = found_over[0]
        other, rv, rb, found = target
        node = space.node
        owner = f"{found[1].node}:{found[2].name}" if found else f"{other.node}:{rb.name}"
        true_mac = (found[2].mac if found else rb.mac) or "?"
        mac = self._overlay_arp(leg, space, link, vx, hop, sender, other, rv, owner, true_mac)
        came = f"from port {port.name} " if port else ""
        leg.add(node, "bridge", f"{bridge.name} forwards {came}to port {link.name} ({_fdb_text(space, bridge, mac)})")
        if link.state != "up":
            leg.add(node, "link", f"port {link.name} is down", ok=False)
            raise Stop("dropped", f"bridge port {node}:{link.name} is down", self._link_up_fix(space, link.name))
        if port is not None:
            self._bridged_netfilter(leg, space, bridge, port, link, pkt)
        pkt = self._bridge_mtu(leg, space, bridge, port, link, pkt)
        vtep = self._vxlan_target(leg, space, link, vx, mac, hop, other, rv)
        self._underlay(leg, space, link, vx, vtep, other, rv, pkt)
        return self._decapsulate(leg, other, rv, rb, found, hop, pkt)

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
                leg.add(node, "miss", f"{dev} reports an L3 miss for {hop} (l3miss): {_CONTROLLER}", ok=False)
                reason += f"; {_CONTROLLER}"
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

    def _neigh_fix(self, space: Space, dev: str, vx: VxlanView, hop: str, mac: str, owner: str) -> Fix:
        how = (
            f"start the controller (nsnet overlay serve {self.snap.lab}) to answer the miss, or write the entry by hand"
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
                leg.add(node, "miss", f"{dev} reports an L2 miss for {mac} (l2miss): {_CONTROLLER}", ok=False)
                reason += f"; {_CONTROLLER}"
                summary = (
                    f"start the controller (nsnet overlay serve {self.snap.lab}) to answer the miss, "
                    "or write the entry by hand"
                )
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
        under = _links(space).get(route.dev or "") if route else None
        if pkt.size and under is not None:
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
        remote = _links(other).get(rv.name)
        if remote is None or remote.state != "up":
            leg.add(other.node, "link", f"{rv.name} is down: nothing in {other.node} takes VXLAN {rv.vni}", ok=False)
            raise Stop(
                "dropped",
                f"{other.node}:{rv.name} is down: nothing in {other.node} takes VXLAN {rv.vni} on udp/{rv.port}",
                self._link_up_fix(other, rv.name),
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
        vlink = _links(other)[rv.name]
        leg.add(
            node,
            "vxlan",
            f"{rv.name} -> bridge {rb.name} -> {out.name} -> {far_space.node}:{far.name} "
            f"({_fdb_text(other, rb, far.mac)})",
        )
        if out.state != "up":
            leg.add(node, "link", f"port {out.name} is down", ok=False)
            raise Stop("dropped", f"bridge port {node}:{out.name} is down", self._link_up_fix(other, out.name))
        self._bridged_netfilter(leg, other, rb, vlink, out, pkt)
        pkt = self._bridge_mtu(leg, other, rb, vlink, out, pkt)
        if far.state != "up":
            leg.add(far_space.node, "link", f"{far.name} is down", ok=False)
            raise Stop("dropped", f"{far_space.node}:{far.name} is down", self._link_up_fix(far_space, far.name))
        self._veth_mtu(leg, other, out, far_space, far, pkt)
        return self._receive(leg, far_space, far.name, pkt)

    # -- routing -----------------------------------------------------------------------

    def _receive(self, leg: Leg, space: Space, iface: str, pkt: Packet) -> tuple[Space, Packet]:
        node = space.node
        self._arrived_on = (node, iface)
        decision = self._hook(leg, space, "PREROUTING", pkt, Context(in_iface=iface))
        if decision.nat and decision.nat.startswith("DNAT"):
            target = decision.nat.split("--to-destination", 1)[-1].strip()
            address, _, port = target.partition(":")
            pkt = replace(pkt, dst=address, dport=int(port) if port else pkt.dport)
            leg.add(node, "netfilter", f"DNAT: destination becomes {target}")
        if _has_address(space, pkt.dst):
            self._hook(leg, space, "INPUT", pkt, Context(in_iface=iface))
            return space, pkt
        forwarding = (space.view.sysctls or {}).get(
            "net.ipv4.ip_forward" if pkt.family == 4 else "net.ipv6.conf.all.forwarding"
        )
        if forwarding != "1":
            leg.add(node, "route", f"{pkt.dst} is not {node}'s and {node} does not forward (ip_forward=0)", ok=False)
            raise Stop(
                "dropped",
                f"{node} receives the packet for {pkt.dst} but does not route (ip_forward=0)",
                Fix(
                    f"turn on forwarding in {node}",
                    command=f"{_run_in(space)}sysctl -w net.ipv4.ip_forward=1",
                    topology=_yaml_under(self.where(space), ["sysctls:", "  net.ipv4.ip_forward: 1"]),
                ),
            )
        route = lookup(space, pkt.dst)
        if route is None:
            raise self._no_route(leg, space, pkt.dst)
        assert route.dev is not None
        leg.add(node, "route", f"{node} routes it: {_route_text(route)}")
        self._hook(leg, space, "FORWARD", pkt, Context(in_iface=iface, out_iface=route.dev))
        decision = self._hook(leg, space, "POSTROUTING", pkt, Context(in_iface=iface, out_iface=route.dev))
        if decision.nat and decision.nat.split()[0] in ("MASQUERADE", "SNAT"):
            new_src = next(
                (a.address for a in _addresses(space, route.dev) if a.family == pkt.family and a.address), pkt.src
            )
            if decision.nat.startswith("SNAT") and "--to-source" in decision.nat:
                new_src = decision.nat.split("--to-source", 1)[1].split()[0].split(":")[0]
            leg.add(node, "netfilter", f"{decision.nat.split()[0]}: source becomes {new_src}")
            pkt = replace(pkt, src=new_src)
        out = _links(space).get(route.dev)
        if out is not None and pkt.size > out.mtu:
            if pkt.df:
                leg.add(
                    node,
                    "mtu",
                    f"the {pkt.size}-byte packet has DF set and {route.dev}'s MTU is {out.mtu}: "
                    f"{node} drops it and answers ICMP fragmentation needed",
                    ok=False,
                )
                raise Stop(
                    "dropped",
                    f"the {pkt.size}-byte packet is bigger than {node}:{route.dev}'s MTU {out.mtu} and may not be "
                    "fragmented (DF)",
                    self._mtu_fix(space, _links(space)[iface], out.mtu),
                )
            leg.add(node, "mtu", f"{pkt.size} bytes is more than {route.dev}'s MTU {out.mtu}: {node} fragments it")
            pkt = replace(pkt, size=out.mtu)
        return self._egress(leg, space, route.dev, route.gateway or pkt.dst, pkt)

    def _link_up_fix(self, space: Space, dev: str) -> Fix:
        where = self.where(space)
        kinds = ("bridges", "vxlans") if space.node in self.machines else ("bridges",)
        other = ", ".join(f"{kind}.{dev}" for kind in kinds)
        return Fix(
            f"bring {space.node}:{dev} up",
            command=f"{_ip(space)} link set {dev} up",
            topology=f"remove `up: false` from {where}.interfaces.{dev} (or {other})" if where else None,
        )

    # -- verdict ---------------------------------------------------------------------

    def _verdict(
        self, src: str, dst: str, proto: str, legs: list[Leg], fix: Fix | None, size: int | None = None
    ) -> Explanation:
        request = legs[0]
        if request.outcome in ("dropped", "rejected", "unknown"):
            verdict = f"{src} cannot reach {dst} ({proto}): the request is {request.outcome}: {request.reason}"
            reachable = False
        elif request.outcome == "refused":
            reply_ok = len(legs) > 1 and legs[1].outcome == "delivered"
            verdict = f"{dst} is reachable from {src}, but {request.reason}" + (
                "" if reply_ok else f"; and the answer is lost: {legs[1].reason}"
            )
            reachable = False
        elif len(legs) > 1 and legs[1].outcome != "delivered":
            verdict = (
                f"{src} cannot reach {dst} ({proto}): the request arrives, "
                f"but the {legs[1].title.split(' ')[0]} reply is {legs[1].outcome}: {legs[1].reason}"
            )
            reachable = False
        else:
            verdict = f"{src} reaches {dst} ({proto}), and the answer comes back"
            reachable = True
        return Explanation(self.snap.lab, src, dst, proto, legs, reachable, verdict, fix, size)


def _route_text(route: RouteView) -> str:
    text = route.dst
    if route.gateway:
        text += f" via {route.gateway}"
    if route.dev:
        text += f" dev {route.dev}"
    return text


def _ip(space: Space) -> str:
    """``ip`` aimed at the space's namespace (plain ``ip`` for the root namespace)."""
    return f"ip -n {space.view.netns}" if space.view.netns else "ip"


def _run_in(space: Space) -> str:
    """The prefix that runs a command in the space's namespace."""
    return f"ip netns exec {space.view.netns} " if space.view.netns else ""


def _bridge_cmd(space: Space) -> str:
    """``bridge`` aimed at the space's namespace."""
    return f"bridge -n {space.view.netns}" if space.view.netns else "bridge"


_CONTROLLER = "the controller (nsnet overlay serve) has not answered this miss yet, or is not running"


def _evidence(sender: Space, hop: str) -> str:
    neigh: list[NeighbourView] = [n for n in sender.view.neighbours or [] if n.address == hop]
    return f" ({sender.node}'s neighbour entry for {hop}: {','.join(neigh[0].state)})" if neigh else ""


def _fdb_text(space: Space, bridge: LinkView, mac: str | None) -> str:
    """What the bridge's fdb says of ``mac``: learned on a port, or not yet (flooded)."""
    learned = [f for f in space.view.fdb or [] if f.mac == mac and f.bridge == bridge.name and f.kind == "learned"]
    return f"fdb: {mac} learned on {learned[0].port}" if learned else f"{mac} not in the fdb yet: flooded to every port"


def _yaml_under(where: str | None, lines: list[str]) -> str | None:
    """``lines`` placed under a block of a topology file (``host``, ``hosts.A``, ``nodes.RED``); None: nowhere."""
    if where is None:
        return None
    if where == "host":
        return "host:\n" + "\n".join("  " + line for line in lines)
    group, _, name = where.partition(".")
    return f"{group}:\n  {name}:\n" + "\n".join("    " + line for line in lines)
