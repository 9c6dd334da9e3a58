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

The VXLAN part is in :mod:`.overlay`, the MTU checks in :mod:`.mtu`, what they share in :mod:`.base`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from nsnet import kinds
from nsnet.errors import ExplainError
from nsnet.explain import fixes
from nsnet.explain.addressing import AddressingMixin
from nsnet.explain.base import Stop, _addresses, _fdb_text, _has_address
from nsnet.explain.bridging import BridgingMixin
from nsnet.explain.conntrack import ConntrackMixin
from nsnet.explain.icmp import IcmpMixin
from nsnet.explain.lookup import route_text as _route_text
from nsnet.explain.mtu import MtuMixin
from nsnet.explain.ndp import NdpMixin
from nsnet.explain.neighbour import NeighbourMixin
from nsnet.explain.netfilter import Context, Decision, Packet, evaluate
from nsnet.explain.nftfix import native_fix
from nsnet.explain.overlay import OverlayMixin, _vxlan_ports
from nsnet.explain.uppers import UpperMixin
from nsnet.explain.verdict import Explanation, Fix, Leg, Space, conclude
from nsnet.names import no_node
from nsnet.views import LinkView

UNMODELLED = (KeyError, IndexError, AssertionError, ValueError, TypeError, AttributeError)
"""What a walk into a state explain does not model raises: reported as ``unknown``, never a traceback."""
EPHEMERAL_PORT = 40000
SIZES = {"icmp": 84, "icmpv6": 104, "tcp": 60, "udp": 39}
"""IP length of the packet nsnet's probe sends when no size is asked for (ping's 56 data bytes; a SYN)."""


def parse_proto(proto: str) -> tuple[str, int | None]:
    """``icmp``, ``tcp:PORT`` or ``udp:PORT`` -> (name, port)."""
    name, _, port = proto.partition(":")
    if name == "icmp" and not port:
        return "icmp", None
    if name in ("tcp", "udp") and port.isdigit() and 0 < int(port) < 65536:
        return name, int(port)
    raise ExplainError(f"{proto!r} is not a protocol: use icmp, tcp:PORT or udp:PORT")


class Walker(
    ConntrackMixin,
    NeighbourMixin,
    NdpMixin,
    BridgingMixin,
    IcmpMixin,
    AddressingMixin,
    OverlayMixin,
    UpperMixin,
    MtuMixin,
):
    """Explains one packet's fate over a :class:`Snapshot`."""

    # -- entry point ---------------------------------------------------------

    def explain(self, src: str, dst: str, proto: str = "icmp", size: int | None = None) -> Explanation:
        """The fate of a ``proto`` packet from ``src`` to ``dst``; ``size``: its IP length (icmp and udp)."""
        if src not in self.snap.spaces:
            raise ExplainError(no_node(self.snap.lab, src, self.snap.spaces))
        source = self.snap.spaces[src]
        name, port = parse_proto(proto)
        if size is not None:
            if name == "tcp":
                raise ExplainError("a size applies to icmp and udp, not to tcp (whose segments follow the MSS)")
            if not 28 <= size <= 65535:
                raise ExplainError(f"size {size} is not an IP length: use 28 to 65535 bytes")
        address = self._destination_address(source, dst)
        family = ipaddress.ip_address(address).version
        proto_name = "icmpv6" if name == "icmp" and family == 6 else name
        self._size = size or SIZES[proto_name] + (20 if family == 6 and proto_name != "icmpv6" else 0)
        self._forget_connections()
        pkt = Packet(
            family,
            "",
            address,
            proto_name,
            EPHEMERAL_PORT if port else None,
            port,
            size=self._size,
            icmp_type="echo-request" if name == "icmp" else None,
        )
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
            self._echo_policy(request, arrived, pkt)
        except Stop as stop:
            request.outcome, request.reason, fix = stop.outcome, stop.reason, stop.fix
            return conclude(self.snap.lab, src, dst, proto, legs, fix, size)
        except UNMODELLED as exc:
            request.outcome, request.reason = "unknown", _unmodelled(exc)
            return conclude(self.snap.lab, src, dst, proto, legs, None, size)
        reply_pkt, answer = self._answer(request, arrived, pkt)
        if reply_pkt is None:
            return conclude(self.snap.lab, src, dst, proto, legs, None, size)
        reply = Leg(title=f"{answer} {arrived.node} -> {src} ({reply_pkt.dst})", src=arrived.node, dst=reply_pkt.dst)
        legs.append(reply)
        try:
            back, _ = self._send(reply, arrived, reply_pkt, src_fixed=True)
            if back.node != src:
                raise Stop("dropped", f"the {answer} reaches {back.node}, not {src}")
            reply.add(src, "deliver", f"{answer} delivered to {src}")
        except Stop as stop:
            reply.outcome, reply.reason, fix = stop.outcome, stop.reason, stop.fix
        except UNMODELLED as exc:
            reply.outcome, reply.reason = "unknown", _unmodelled(exc)
        return conclude(self.snap.lab, src, dst, proto, legs, fix, size)

    def _destination_address(self, source: Space, dst: str) -> str:
        if dst not in self.snap.spaces:
            try:
                return str(ipaddress.ip_address(dst))
            except ValueError:
                raise ExplainError(f"{dst!r} is neither a node of lab {self.snap.lab!r} nor an address") from None
        target = self.snap.spaces[dst]
        candidates = [a for a in _addresses(target) if a.scope == "global" and a.address]
        lost = self._lost_address(target)
        if lost is not None and all(ipaddress.ip_address(lost).version <= a.family for a in candidates):
            return lost  # the topology's address it lost, not another family's instead
        if not candidates and target is source:
            # A node reaching itself needs no address of the lab's: its loopback is one of its own.
            loopback = [a.address for a in _addresses(target) if a.dev == "lo" and a.address and a.scope == "host"]
            if loopback:
                return str(sorted(loopback, key=lambda a: ":" in a)[0])
        if not candidates:
            raise ExplainError(f"node {dst!r} has no global address to send to")
        mine = [ipaddress.ip_interface(f"{a.address}/{a.prefixlen}") for a in _addresses(source) if a.scope == "global"]
        for a in sorted(candidates, key=lambda a: a.family):
            ip = ipaddress.ip_address(a.address or "")
            if any(ip in m.network for m in mine):
                return str(a.address)
        return str(sorted(candidates, key=lambda a: a.family)[0].address)

    # -- the answer at the destination ----------------------------------------

    def _answer(self, leg: Leg, space: Space, pkt: Packet) -> tuple[Packet | None, str]:
        back = replace(
            pkt,
            src=pkt.dst,
            dst=pkt.src,
            sport=pkt.dport,
            dport=pkt.sport,
            ctstate="ESTABLISHED",
            direction="reply",
            icmp_type="echo-reply" if pkt.icmp_type == "echo-request" else None,
        )
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
            # A UDP service answers what it receives (DNS, NTP, a probe's echo): the answer takes the way back.
            leg.add(
                space.node,
                "socket",
                f"a socket listens on udp/{pkt.dport} in {space.node}: the datagram is delivered, and the service "
                "answers",
            )
            return back, "UDP answer"
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
        error = replace(
            back,
            proto=icmp,
            sport=None,
            dport=None,
            ctstate="RELATED",
            size=min(576, 28 + self._size),
            icmp_type="destination-unreachable",
        )
        return replace(error, df=False), "ICMP port unreachable"

    # -- sending and receiving --------------------------------------------------

    def _send(self, leg: Leg, space: Space, pkt: Packet, src_fixed: bool = False) -> tuple[Space, Packet]:
        """From ``space`` onwards until the packet is delivered somewhere; raises :class:`Stop`."""
        node = space.node
        if _has_address(space, pkt.dst):
            leg.add(node, "route", f"{pkt.dst} is an address of {node} itself: delivered locally (over lo)")
            return space, replace(pkt, src=pkt.src or pkt.dst)
        route = self._route(leg, space, pkt)
        if route.type == "local":
            leg.add(node, "route", f"{pkt.dst} is local to {node} ({_route_text(route)}): delivered locally")
            return space, replace(pkt, src=pkt.src or pkt.dst)
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
        decision = self._hook(leg, space, "OUTPUT", pkt, Context(out_iface=route.dev))
        translated = self._nat(leg, space, "OUTPUT", decision, pkt, route.dev)
        if translated.dst != pkt.dst:
            pkt = translated
            if _has_address(space, pkt.dst):
                leg.add(node, "route", f"{pkt.dst} is an address of {node} itself: delivered locally")
                return space, pkt
            route = self._route(leg, space, pkt)  # the kernel routes a packet whose destination changed again
            if route.type == "local" or route.dev is None:
                leg.add(node, "route", f"{pkt.dst} is local to {node} ({_route_text(route)}): delivered locally")
                return space, pkt
            leg.add(node, "route", f"route lookup for {pkt.dst} again: {_route_text(route)}")
        pkt = translated
        decision = self._hook(leg, space, "POSTROUTING", pkt, Context(out_iface=route.dev))
        pkt = self._nat(leg, space, "POSTROUTING", decision, pkt, route.dev)
        assert route.dev is not None
        out = self._links(space).get(route.dev)
        if out is not None and pkt.size > out.mtu:
            leg.add(
                node,
                "mtu",
                f"{pkt.size} bytes is more than {route.dev}'s MTU {out.mtu}: "
                f"{node} sends it in fragments of at most {out.mtu} bytes",
            )
            pkt = replace(pkt, size=out.mtu, df=False)
        self._hop_route = (node, route, pkt.dst)
        return self._egress(leg, space, route.dev, hop, pkt)

    def _hook(self, leg: Leg, space: Space, hook: str, pkt: Packet, ctx: Context, layer: str = "ip") -> Decision:
        tables = space.view.firewall or []
        ctx = replace(ctx, local=frozenset(a.address for a in _addresses(space) if a.address))
        decision = evaluate(tables, hook, pkt, ctx, space.view.nftables, layer)
        node = space.node
        if decision.by == "no rules":
            return decision
        name = f"bridge {hook.lower()}" if layer == "bridge" else hook
        for passed in decision.before:  # earlier base chains of the hook: an accept there is not final
            leg.add(node, "netfilter", f"netfilter {name}: {passed.table}/{passed.chain} -> ACCEPT by {passed.by}")
        text = f"netfilter {name}: {decision.table}/{decision.chain} -> {decision.verdict} by {decision.by}"
        if decision.verdict == "UNKNOWN":
            leg.add(node, "netfilter", text, ok=False)
            raise Stop("unknown", f"in {node}, {decision.by}")
        if decision.verdict in ("DROP", "REJECT"):
            leg.add(node, "netfilter", text, ok=False)
            outcome = "dropped" if decision.verdict == "DROP" else "rejected"
            if decision.native is not None:
                raise Stop(
                    outcome,
                    f"{decision.by} in {node} {decision.verdict.lower()}s it",
                    native_fix(space, name, decision, self._source_net(pkt), pkt.family),
                )
            what = decision.by if decision.by.startswith("policy") else decision.by.replace(": ", " (", 1) + ")"
            raise Stop(
                outcome,
                f"{what} in {node}'s {decision.table} table {decision.verdict.lower()}s it",
                self._firewall_fix(space, hook, decision, pkt),
            )
        if decision.table:
            leg.add(node, "netfilter", text)
        return decision

    def _firewall_fix(self, space: Space, hook: str, decision: Decision, pkt: Packet) -> Fix:
        return fixes.firewall_fix(space, self.where(space), hook, decision, pkt, self._source_net(pkt))

    def _source_net(self, pkt: Packet) -> str:
        for space in self.snap.spaces.values():
            for a in _addresses(space):
                if a.address == pkt.src:
                    return str(ipaddress.ip_interface(f"{a.address}/{a.prefixlen}").network)
        return pkt.src

    # -- layer 2 ---------------------------------------------------------------------

    def _egress(self, leg: Leg, space: Space, dev: str, hop: str, pkt: Packet) -> tuple[Space, Packet]:
        links = self._links(space)
        link = links.get(dev)
        node = space.node
        if link is None:
            raise Stop("unknown", f"{node} has no interface {dev}")
        if link.state != "up":
            leg.add(node, "link", f"{dev} is down", ok=False)
            raise Stop("dropped", f"{node}:{dev} is down", self._link_up_fix(space, dev, leg.source))
        if link.kind == "bridge":
            return self._bridge(leg, space, link, None, hop, pkt, space)
        if kinds.get(link.kind).user:  # macvlan, ipvlan, dummy
            return self._own_kind_out(leg, space, link, hop, pkt)
        if link.kind != "veth" or link.peer is None or link.peer.node is None or link.peer.name is None:
            raise Stop("unknown", f"{node}:{dev} is a {link.kind} link whose other end nsnet cannot follow")
        peer_space = self.snap.spaces[link.peer.node]
        peer = self._links(peer_space)[link.peer.name]
        leg.add(node, "veth", f"out of {dev} -> {peer_space.node}:{peer.name} (veth pair)")
        if peer.state != "up":
            leg.add(peer_space.node, "link", f"{peer.name} is down: {dev} has no carrier", ok=False)
            raise Stop(
                "dropped",
                f"the other end of {node}:{dev}, {peer_space.node}:{peer.name}, is down",
                self._link_up_fix(peer_space, peer.name, leg.source),
            )
        self._veth_mtu(leg, space, link, peer_space, peer, pkt)
        if peer.master:
            bridge = self._links(peer_space)[peer.master]
            return self._bridge(leg, peer_space, bridge, peer, hop, pkt, space)
        entry = self._wrong_mac(leg, space, dev, hop, peer.mac)
        if entry is not None:
            stop = self._misdelivered(leg, space, dev, hop, entry, f"{peer_space.node}:{peer.name}", None)
            raise self._misplaced_port(peer_space, peer) or stop
        if self._entry(space, dev, hop) is None:
            if not self._holds(peer_space, peer.name, hop, pkt.family) and not self._proxies(
                peer_space, peer.name, hop, pkt.family
            ):
                stop = self._no_owner(leg, space, hop, f"{peer_space.node}:{peer.name}")
                raise self._misplaced_port(peer_space, peer) or stop
            if self._arp_check(leg, space, dev, peer_space, peer.name, hop, pkt):
                leg.add(peer_space.node, "neigh", f"{peer_space.node}:{peer.name} has {hop}: ARP resolves")
        return self._receive(leg, peer_space, peer.name, pkt)

    def _bridge(
        self, leg: Leg, space: Space, bridge: LinkView, port: LinkView | None, hop: str, pkt: Packet, sender: Space
    ) -> tuple[Space, Packet]:
        node = space.node
        if bridge.state != "up":
            leg.add(node, "bridge", f"bridge {bridge.name} is down", ok=False)
            raise Stop("dropped", f"bridge {node}:{bridge.name} is down", self._link_up_fix(space, bridge.name))
        self._port_in(leg, space, bridge, port)
        if port is not None and _has_address(space, hop, bridge.name):
            self._bridge_neighbour(leg, space, bridge, port, hop, pkt, sender, space, bridge)
            leg.add(node, "bridge", f"{bridge.name} holds {hop} itself: the frame is for the bridge device")
            return self._receive(leg, space, bridge.name, pkt)
        found = self._owner_port(space, bridge, hop, port.name if port else None)
        if found is not None:
            out, far_space, far = found
            came = f"from port {port.name} " if port else ""
            asks = self._bridge_neighbour(leg, space, bridge, port, hop, pkt, sender, far_space, far)
            if asks and pkt.family == 6 and port is not None:
                self._ndp_across(leg, space, bridge, port, out, hop, pkt, sender)
            self._port_out(leg, space, bridge, port, out, far.mac, pkt, asks)
            leg.add(
                node, "bridge", f"{bridge.name} forwards {came}to port {out.name} ({_fdb_text(space, bridge, far.mac)})"
            )
            pkt = self._out_of_port(leg, space, bridge, port, out, pkt)
            leg.add(far_space.node, "veth", f"{out.name} -> {far_space.node}:{far.name} (veth pair)")
            self._into_peer(leg, space, out, far_space, far, pkt)
            if _has_address(far_space, hop):
                leg.add(far_space.node, "neigh", f"{far_space.node}:{far.name} has {hop}: ARP resolves")
            return self._receive(leg, far_space, far.name, pkt)
        over = self._overlay(leg, space, bridge, port, hop, pkt, sender) or self._upper_of(leg, space, bridge, hop, pkt)
        if over is not None:
            return over
        vnis = sorted({vx.vni for _, vx in _vxlan_ports(space, bridge)})
        across = f" (nor across VXLAN {', '.join(map(str, vnis))})" if vnis else ""
        stop = self._no_owner(leg, sender, hop, f"bridge {node}:{bridge.name}{across}", (space, bridge.name))
        raise (self._misplaced_port(space, port) if port is not None else None) or stop

    def _out_of_port(
        self, leg: Leg, space: Space, bridge: LinkView, port: LinkView | None, out: LinkView, pkt: Packet
    ) -> Packet:
        """A frame the bridge sends out of port ``out``: the port must be up, bridged netfilter and MTUs pass."""
        if out.state != "up":
            leg.add(space.node, "link", f"port {out.name} is down", ok=False)
            raise Stop(
                "dropped",
                f"bridge port {space.node}:{out.name} is down",
                self._link_up_fix(space, out.name, leg.source),
            )
        if port is not None:
            self._bridged_netfilter(leg, space, bridge, port, out, pkt)
        return self._bridge_mtu(leg, space, bridge, port, out, pkt)

    def _into_peer(self, leg: Leg, space: Space, out: LinkView, far_space: Space, far: LinkView, pkt: Packet) -> None:
        """A frame crossing the veth ``out`` to ``far``: the far end must be up, and take the frame's size."""
        if far.state != "up":
            leg.add(far_space.node, "link", f"{far.name} is down", ok=False)
            raise Stop(
                "dropped", f"{far_space.node}:{far.name} is down", self._link_up_fix(far_space, far.name, leg.source)
            )
        self._veth_mtu(leg, space, out, far_space, far, pkt)

    # -- routing -----------------------------------------------------------------------

    def _receive(self, leg: Leg, space: Space, iface: str, pkt: Packet) -> tuple[Space, Packet]:
        node = space.node
        self._arrived_on = (node, iface)
        decision = self._hook(leg, space, "PREROUTING", pkt, Context(in_iface=iface))
        pkt = self._nat(leg, space, "PREROUTING", decision, pkt, iface)
        if _has_address(space, pkt.dst):
            self._reverse_path(leg, space, iface, pkt)
            decision = self._hook(leg, space, "INPUT", pkt, Context(in_iface=iface))
            return space, self._nat(leg, space, "INPUT", decision, pkt, iface)
        self._forwarding(leg, space, iface, pkt)
        route = self._route(leg, space, pkt, iface)
        self._reverse_path(leg, space, iface, pkt)
        if route.type == "local" or route.dev is None:
            leg.add(node, "route", f"{pkt.dst} is local to {node} ({_route_text(route)}): delivered locally")
            decision = self._hook(leg, space, "INPUT", pkt, Context(in_iface=iface))
            return space, self._nat(leg, space, "INPUT", decision, pkt, iface)
        leg.add(node, "route", f"{node} routes it: {_route_text(route)}")
        self._hook(leg, space, "FORWARD", pkt, Context(in_iface=iface, out_iface=route.dev))
        decision = self._hook(leg, space, "POSTROUTING", pkt, Context(in_iface=iface, out_iface=route.dev))
        pkt = self._nat(leg, space, "POSTROUTING", decision, pkt, route.dev)
        out = self._links(space).get(route.dev)
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
                    self._mtu_fix(space, self._links(space)[iface], out.mtu),
                )
            leg.add(node, "mtu", f"{pkt.size} bytes is more than {route.dev}'s MTU {out.mtu}: {node} fragments it")
            pkt = replace(pkt, size=out.mtu)
        self._hop_route = (node, route, pkt.dst)
        return self._egress(leg, space, route.dev, route.gateway or pkt.dst, pkt)


def _unmodelled(exc: BaseException) -> str:
    return f"explain does not model this state ({type(exc).__name__}: {exc})"
