"""Follow a packet through a lab snapshot, hop by hop, as the kernel would (pure).

The request leaves the source (route lookup, OUTPUT), crosses veth pairs and
bridges (fdb or flood, and the host's iptables when bridged traffic is
handed to it), is routed by any namespace on the way (ip_forward, FORWARD),
and is delivered (PREROUTING, INPUT, a listening socket). Then the reply
takes the way back. The first thing that stops the packet ends the leg,
with the reason and a fix.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from ..views import AddressView, LinkView, RouteView
from .model import Explanation, Fix, Leg, Snapshot, Space
from .netfilter import Context, Decision, Packet, evaluate

EPHEMERAL_PORT = 40000


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

    # -- entry point ---------------------------------------------------------

    def explain(self, src: str, dst: str, proto: str = "icmp") -> Explanation:
        if src not in self.snap.spaces:
            raise ValueError(f"lab {self.snap.lab!r} has no node {src!r}; nodes: {', '.join(self.snap.spaces)}")
        source = self.snap.spaces[src]
        name, port = parse_proto(proto)
        address = self._destination_address(source, dst)
        family = ipaddress.ip_address(address).version
        proto_name = "icmpv6" if name == "icmp" and family == 6 else name
        pkt = Packet(family, "", address, proto_name, EPHEMERAL_PORT if port else None, port)
        request = Leg(
            title=f"{proto} request {src} -> {dst}" + (f" ({address})" if address != dst else ""), src=src, dst=address
        )
        legs = [request]
        fix: Fix | None = None
        try:
            arrived, pkt = self._send(request, source, pkt)
        except Stop as stop:
            request.outcome, request.reason, fix = stop.outcome, stop.reason, stop.fix
            return self._verdict(src, dst, proto, legs, fix)
        reply_pkt, answer = self._answer(request, arrived, pkt)
        if reply_pkt is None:
            return self._verdict(src, dst, proto, legs, None)
        reply = Leg(title=f"{answer} {arrived.node} -> {src} ({reply_pkt.dst})", src=arrived.node, dst=reply_pkt.dst)
        legs.append(reply)
        try:
            back, _ = self._send(reply, arrived, reply_pkt, src_fixed=True)
            if back.node != src:
                raise Stop("dropped", f"the {answer} reaches {back.node}, not {src}")
            reply.add(src, "deliver", f"{answer} delivered to {src}")
        except Stop as stop:
            reply.outcome, reply.reason, fix = stop.outcome, stop.reason, stop.fix
        return self._verdict(src, dst, proto, legs, fix)

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
        return replace(back, proto=icmp, sport=None, dport=None, ctstate="RELATED"), "ICMP port unreachable"

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
                    _link_up_fix(space, a.dev or ""),
                )
        leg.add(node, "route", f"no route to {dst} in {node}", ok=False)
        return Stop(
            "dropped",
            f"{node} has no route to {dst}",
            Fix(
                f"give {node} a route to {dst} (or an address in its subnet)",
                command=f"{_ip(space)} route add {dst} via GATEWAY",
                topology=_yaml_under(node, ["routes:", f"  - {{to: {dst}/32, via: GATEWAY}}"]),
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
                    space.node, ["firewall:", "  rules:", f"    - {{chain: {hook}, source: {source}, action: ACCEPT}}"]
                ),
            )
        rule_text = decision.by.split(": ", 1)[1] if ": " in decision.by else decision.by
        chain = rule_text.split()[1] if rule_text.startswith("-A ") else hook
        delete = "-D " + rule_text[3:] if rule_text.startswith("-A ") else rule_text
        owned = chain.startswith("NSNET-")
        block = "host" if space.node == "host" else f"nodes.{space.node}"
        return Fix(
            f"remove the rule that {decision.verdict.lower()}s it" + (" (it comes from the topology)" if owned else ""),
            command=f"{run}{tool} -t {decision.table} {delete}",
            topology=f"remove that rule from {block}.firewall.rules" if owned else None,
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
            raise Stop("dropped", f"{node}:{dev} is down", _link_up_fix(space, dev))
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
                _link_up_fix(peer_space, peer.name),
            )
        if peer.master:
            bridge = _links(peer_space)[peer.master]
            return self._bridge(leg, peer_space, bridge, peer, hop, pkt, space)
        if _has_address(peer_space, hop, peer.name):
            leg.add(peer_space.node, "neigh", f"{peer_space.node}:{peer.name} has {hop}: ARP resolves")
            return self._receive(leg, peer_space, peer.name, pkt)
        raise self._no_owner(leg, space, hop, f"{peer_space.node}:{peer.name}")

    def _bridge(
        self, leg: Leg, space: Space, bridge: LinkView, port: LinkView | None, hop: str, pkt: Packet, sender: Space
    ) -> tuple[Space, Packet]:
        node = space.node
        if bridge.state != "up":
            leg.add(node, "bridge", f"bridge {bridge.name} is down", ok=False)
            raise Stop("dropped", f"bridge {node}:{bridge.name} is down", _link_up_fix(space, bridge.name))
        if port is not None and _has_address(space, hop, bridge.name):
            leg.add(node, "bridge", f"{bridge.name} holds {hop} itself: the frame is for the bridge device")
            return self._receive(leg, space, bridge.name, pkt)
        ports = [
            link
            for link in space.view.links or []
            if link.master == bridge.name and (port is None or link.name != port.name)
        ]
        for out in ports:
            if out.peer is None or out.peer.node is None or out.peer.name is None:
                continue
            far_space = self.snap.spaces[out.peer.node]
            far = _links(far_space).get(out.peer.name)
            if far is None or not _has_address(far_space, hop, far.name):
                continue
            learned = [
                f for f in space.view.fdb or [] if f.mac == far.mac and f.bridge == bridge.name and f.kind == "learned"
            ]
            how = (
                f"fdb: {far.mac} learned on {learned[0].port}"
                if learned
                else f"{far.mac} not in the fdb yet: flooded to every port"
            )
            came = f"from port {port.name} " if port else ""
            leg.add(node, "bridge", f"{bridge.name} forwards {came}to port {out.name} ({how})")
            if out.state != "up":
                leg.add(node, "link", f"port {out.name} is down", ok=False)
                raise Stop("dropped", f"bridge port {node}:{out.name} is down", _link_up_fix(space, out.name))
            if port is not None:
                self._bridged_netfilter(leg, space, bridge, port, out, pkt)
            leg.add(far_space.node, "veth", f"{out.name} -> {far_space.node}:{far.name} (veth pair)")
            if far.state != "up":
                leg.add(far_space.node, "link", f"{far.name} is down", ok=False)
                raise Stop("dropped", f"{far_space.node}:{far.name} is down", _link_up_fix(far_space, far.name))
            leg.add(far_space.node, "neigh", f"{far_space.node}:{far.name} has {hop}: ARP resolves")
            return self._receive(leg, far_space, far.name, pkt)
        raise self._no_owner(leg, sender, hop, f"bridge {node}:{bridge.name}", (space, bridge.name))

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
        neigh = [n for n in sender.view.neighbours or [] if n.address == hop]
        evidence = f" ({sender.node}'s neighbour entry for {hop}: {','.join(neigh[0].state)})" if neigh else ""
        leg.add(sender.node, "neigh", f"ARP for {hop} gets no answer: nobody behind {where} has it{evidence}", ok=False)
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
                where = "host" if space.node == "host" else f"nodes.{space.node}"
                attached = f"attached to {end.master}" if end.master else "not attached to any bridge"
                return Stop(
                    "dropped",
                    f"{owner.node}:{link.name} has {hop}, but its other end {space.node}:{end.name} is {attached}, "
                    f"not to {name}",
                    Fix(
                        f"attach {space.node}:{end.name} to {name}",
                        command=f"{_ip(space)} link set {end.name} master {name}",
                        topology=f"set master: {name} in {where}.interfaces.{end.name}",
                    ),
                )
        return None

    def _receive(self, leg: Leg, space: Space, iface: str, pkt: Packet) -> tuple[Space, Packet]:
        node = space.node
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
                    topology=_yaml_under(node, ["sysctls:", "  net.ipv4.ip_forward: 1"]),
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
        return self._egress(leg, space, route.dev, route.gateway or pkt.dst, pkt)

    # -- verdict ---------------------------------------------------------------------

    def _verdict(self, src: str, dst: str, proto: str, legs: list[Leg], fix: Fix | None) -> Explanation:
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
        return Explanation(self.snap.lab, src, dst, proto, legs, reachable, verdict, fix)


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


def _yaml_under(node: str, lines: list[str]) -> str:
    """``lines`` placed under the node's (or the host's) block of a topology file."""
    if node == "host":
        return "host:\n" + "\n".join("  " + line for line in lines)
    return f"nodes:\n  {node}:\n" + "\n".join("    " + line for line in lines)


def _link_up_fix(space: Space, dev: str) -> Fix:
    where = "host" if space.node == "host" else f"nodes.{space.node}"
    return Fix(
        f"bring {space.node}:{dev} up",
        command=f"{_ip(space)} link set {dev} up",
        topology=f"remove `up: false` from {where}.interfaces.{dev} (or bridges.{dev})",
    )
