"""The walk's layer-3 decisions: policy rules and route types, forwarding, reverse path filtering and the
fixes for a missing route (pure). The lookup itself is :mod:`nsnet.explain.lookup`'s."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from nsnet.explain.base import Stop, WalkerBase, _addresses, _has_address, _ip, _run_in, _yaml_under
from nsnet.explain.lookup import REFUSING, _rule_text, _sysctl_dev, conf, route_lookup, route_text
from nsnet.explain.netfilter import Packet
from nsnet.explain.verdict import Fix, Leg, Space
from nsnet.views import AddressView, RouteView


class RoutingMixin(WalkerBase):
    """Route lookups with their rules and types, forwarding, rp_filter, and the no-route fix."""

    # -- route lookup --------------------------------------------------------------

    def _route(self, leg: Leg, space: Space, pkt: Packet, iif: str | None = None) -> RouteView:
        """The route ``space`` takes for ``pkt`` (``iif``: the interface it came in by; None: made here).

        Raises :class:`Stop` where there is none or the route or a rule refuses it; a ``local`` route is
        returned (the caller delivers locally)."""
        node = space.node
        found = route_lookup(space, pkt.family, pkt.dst, pkt.src, iif)
        via = "; ".join(found.path)
        if found.route is None and found.rule is not None:
            rule = found.rule
            outcome = REFUSING[rule.action]
            leg.add(node, "route", f"policy rule {_rule_text(rule)} decides: {pkt.dst} is {rule.action}", ok=False)
            raise Stop(
                outcome,
                f"{node}'s policy rule {rule.priority} ({rule.action}) refuses the packet to {pkt.dst}"
                + (" (an ICMP error goes back)" if outcome == "rejected" else " (silently)"),
                Fix(
                    f"delete the {rule.action} rule {rule.priority} in {node}",
                    command=f"{_ip(space, pkt.family)} rule del pref {rule.priority}",
                ),
            )
        if found.route is None:
            raise self._no_route(leg, space, pkt.dst, pkt.family)
        route = found.route
        if route.type in REFUSING:
            outcome = REFUSING[route.type]
            leg.add(
                node,
                "route",
                f"route lookup for {pkt.dst}: {route_text(route)}"
                + (f" ({via})" if via else "")
                + f": {_a(route.type)} route "
                + ("drops it without a word" if route.type == "blackhole" else "answers with an ICMP error"),
                ok=False,
            )
            raise Stop(
                outcome,
                f"{node}'s route to {pkt.dst} is {_a(route.type)} route ({route_text(route)})",
                self._refusing_route_fix(space, route, pkt),
            )
        if route.type not in ("unicast", "local"):
            leg.add(node, "route", f"route lookup for {pkt.dst}: {route_text(route)}", ok=False)
            raise Stop("unknown", f"{node}'s route to {pkt.dst} is of type {route.type}, which explain does not model")
        if via:
            leg.add(node, "route", f"policy routing: {via}; then {route_text(route)}")
        return route

    def _refusing_route_fix(self, space: Space, route: RouteView, pkt: Packet) -> Fix:
        table = "" if route.table == "main" else f" table {route.table}"
        delete = f"{_ip(space, pkt.family)} route del {route.type} {route.dst}{table}"
        rest = [r for r in space.view.routes or [] if r is not route]
        without = replace(space, view=replace(space.view, routes=rest))
        after = route_lookup(without, pkt.family, pkt.dst, pkt.src)
        if after.route is not None and after.route.type in ("unicast", "local"):
            return Fix(f"delete the {route.type} route {route.dst} in {space.node}", command=delete)
        more = self._route_fix(space, pkt.dst, pkt.family)
        return Fix(
            f"delete the {route.type} route {route.dst} in {space.node} and route {pkt.dst} instead",
            command=f"{delete} && {more.command}" if more.command else delete,
            topology=more.topology,
        )

    # -- forwarding and the reverse path ------------------------------------------------

    def _forwarding(self, leg: Leg, space: Space, iface: str, pkt: Packet) -> None:
        """A packet not for ``space`` is routed on only if forwarding is on: for IPv4 the interface it came in by
        decides (``net.ipv4.conf.IN.forwarding``; ``ip_forward`` sets every interface's), for IPv6 the global
        ``net.ipv6.conf.all.forwarding``."""
        node = space.node
        sysctls = space.view.sysctls or {}
        glob_key = "net.ipv4.ip_forward" if pkt.family == 4 else "net.ipv6.conf.all.forwarding"
        glob = sysctls.get(glob_key)
        dev_key = f"net.ipv4.conf.{iface}.forwarding"
        dev = sysctls.get(dev_key) if pkt.family == 4 else None
        on = dev == "1" if dev is not None else glob == "1"
        if on:
            return
        lost = self._lost_owner(pkt.dst)
        if lost is not None and lost[0].node == node:
            leg.add(node, "route", f"{pkt.dst} is not (or no longer) an address of {node}", ok=False)
            fix = self._lost_address_fix(pkt.dst)
            raise Stop("dropped", f"{node} receives the packet for {pkt.dst} but no longer has that address", fix)
        if dev is not None and glob == "1":
            what = f"{dev_key}=0: {node} does not route what comes in by {iface}"
            key = f"net.ipv4.conf.{_sysctl_dev(iface)}.forwarding"
        else:
            what = f"{glob_key}={glob or 0}: {node} does not route"
            key = "net.ipv4.ip_forward" if pkt.family == 4 else "net.ipv6.conf.all.forwarding"
        leg.add(node, "route", f"{pkt.dst} is not {node}'s and {what}", ok=False)
        raise Stop(
            "dropped",
            f"{node} receives the packet for {pkt.dst} on {iface} but does not route it ({what.split(':')[0]})",
            Fix(
                f"turn on forwarding in {node}" + (f" for {iface}" if ".conf." in key else ""),
                command=f"{_run_in(space)}sysctl -w {key}=1",
                topology=_yaml_under(self.where(space), ["sysctls:", f"  {key}: 1"]),
            ),
        )

    def _reverse_path(self, leg: Leg, space: Space, iface: str, pkt: Packet) -> None:
        """The source check of a received IPv4 packet (``fib_validate_source``): a source that is an address of
        ``space`` is a martian (but with accept_local); with rp_filter (max of all and the interface) the route back
        to the source must exist, and with strict mode (1) go out ``iface``."""
        if pkt.family != 4 or not pkt.src:
            return
        node = space.node
        mode = conf(space, 4, iface, "rp_filter")
        accept_local = conf(space, 4, iface, "accept_local")
        if _has_address(space, pkt.src) and not accept_local:
            leg.add(node, "route", f"the source {pkt.src} is an address of {node} itself: a martian", ok=False)
            raise Stop(
                "dropped",
                f"{node} drops the packet from {pkt.src} on {iface}: that source is one of its own addresses",
                Fix(
                    f"let {node} accept packets from its own address on {iface}",
                    command=f"{_run_in(space)}sysctl -w net.ipv4.conf.{_sysctl_dev(iface)}.accept_local=1",
                ),
            )
        if mode == 0:
            return
        back = route_lookup(space, 4, pkt.src, pkt.dst, None)
        route = back.route
        usable = route is not None and (route.type == "unicast" or (route.type == "local" and accept_local))
        strict_ok = usable and route is not None and route.dev == iface
        name = "strict" if mode == 1 else "loose"
        if usable and (mode != 1 or strict_ok):
            leg.add(
                node,
                "route",
                f"rp_filter={mode} ({name}): the way back to {pkt.src} "
                + (f"leaves by {iface}" if strict_ok else f"exists ({route_text(route)})" if route else ""),
            )
            return
        if not usable:
            why = f"{node} has no route back to {pkt.src}"
        else:
            assert route is not None
            why = f"the route back to {pkt.src} leaves by {route.dev}, not by {iface} where it came in"
        leg.add(node, "route", f"rp_filter={mode} ({name}) on {iface}: {why}", ok=False)
        raise self._rp_filter_stop(space, iface, pkt, mode, why, 2 if usable else 0)

    def _rp_filter_stop(self, space: Space, iface: str, pkt: Packet, mode: int, why: str, value: int) -> Stop:
        """The reverse path filter drops the packet: the fix sets rp_filter to ``value`` (2: loose, 0: off)
        wherever it is set (all, the interface)."""
        node = space.node
        keys = [
            f"net.ipv4.conf.{where}.rp_filter"
            for where in ("all", _sysctl_dev(iface))
            if int((space.view.sysctls or {}).get(f"net.ipv4.conf.{where.replace('/', '.')}.rp_filter", "0") or 0)
        ]
        return Stop(
            "dropped",
            f"{node}'s reverse path filter drops the packet from {pkt.src} on {iface}: {why} (rp_filter={mode})",
            Fix(
                f"make {node}'s reverse path filter {'loose' if value == 2 else 'off'} on {iface}",
                command=f"{_run_in(space)}sysctl -w " + " ".join(f"{k}={value}" for k in keys),
                topology=_yaml_under(self.where(space), ["sysctls:", *(f"  {k}: {value}" for k in keys)]),
            ),
        )

    # -- no route -------------------------------------------------------------------

    def _no_route(self, leg: Leg, space: Space, dst: str, family: int | None = None) -> Stop:
        node = space.node
        links = self._links(space)
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
        narrowed = self._narrowed_address(space, dst)
        if narrowed is not None:
            leg.add(node, "route", f"no route to {dst} in {node}", ok=False)
            return narrowed
        leg.add(node, "route", f"no route to {dst} in {node}", ok=False)
        lost = self._lost_address(space)
        if lost is not None and ipaddress.ip_address(lost).version == ipaddress.ip_address(dst).version:
            return self._lost_source(space, dst, lost)
        return Stop("dropped", f"{node} has no route to {dst}", self._route_fix(space, dst, family))

    def _narrowed_address(self, space: Space, dst: str) -> Stop | None:
        """``space`` holds a planned address with another prefix length than the topology's (``/32`` for ``/24``):
        the kernel made no route for the subnet, and removed the routes through it."""
        family = ipaddress.ip_address(dst).version
        for dev, cidrs in self.snap.planned.get(space.node, {}).items():
            for cidr in cidrs:
                planned = ipaddress.ip_interface(cidr)
                if planned.version != family or planned.ip.is_link_local:
                    continue
                held = next(
                    (a for a in _addresses(space, dev) if a.address == str(planned.ip)),
                    None,
                )
                if held is None or held.prefixlen == planned.network.prefixlen:
                    continue
                ip = _ip(space, family)
                command = f"{ip} addr del {held.address}/{held.prefixlen} dev {dev} && {ip} addr add {cidr} dev {dev}"
                restored = replace(
                    space,
                    view=replace(
                        space.view,
                        addresses=[
                            *(a for a in space.view.addresses or [] if a is not held),
                            replace(held, prefixlen=planned.network.prefixlen),
                        ],
                        routes=[
                            *(space.view.routes or []),
                            RouteView(
                                family,
                                "main",
                                "unicast",
                                str(planned.network),
                                None,
                                dev,
                                "kernel",
                                "link",
                                str(planned.ip),
                                None,
                            ),
                        ],
                    ),
                )
                route = (
                    self._concrete_route(restored, dst) if ipaddress.ip_address(dst) not in planned.network else None
                )
                if route:
                    command += f" && {route}"
                where = self.where(space)
                return Stop(
                    "dropped",
                    f"{space.node}:{dev} holds {held.address}/{held.prefixlen}, not {cidr} as the topology says: "
                    f"{space.node} has no route for {planned.network}, nor through it, so none to {dst}",
                    Fix(
                        f"give {space.node}:{dev} its address with the right prefix length, {cidr}",
                        command=command,
                        topology=f"{where} gives {dev} {cidr}: `nsnet up` puts it back" if where else None,
                    ),
                )
        return None

    def _lost_source(self, space: Space, dst: str, lost: str) -> Stop:
        """``space`` has no route to ``dst`` because it lost its address ``lost`` (and the routes through it)."""
        found = self._lost_owner(lost)
        put_back = self._lost_address_fix(lost)
        if found is None or put_back is None:
            return Stop("dropped", f"{space.node} has no route to {dst}", self._route_fix(space, dst))
        _, dev, length = found
        family = ipaddress.ip_address(lost).version
        restored_address = AddressView(dev, family, lost, length, "global")
        restored = replace(space, view=replace(space.view, addresses=[*(space.view.addresses or []), restored_address]))
        net = ipaddress.ip_interface(f"{lost}/{length}").network
        command = put_back.command or ""
        route = self._concrete_route(restored, dst) if ipaddress.ip_address(dst) not in net else None
        if route:
            command += f" && {route}"
        return Stop(
            "dropped",
            f"{space.node} has no route to {dst}: {space.node}:{dev} lost its address {lost}/{length}",
            Fix(put_back.summary, command=command, topology=put_back.topology),
        )

    def _route_fix(self, space: Space, dst: str, family: int | None = None) -> Fix:
        """A route to ``dst`` via the router on one of ``space``'s segments that forwards and reaches ``dst``."""
        family = family or ipaddress.ip_address(dst).version
        onlink = self._on_link(space, dst, family)
        if onlink is not None:
            return onlink
        gateway = self._gateway(space, dst, family)
        via, dev = gateway if gateway else ("GATEWAY", None)
        target = dst if "/" in dst else f"{dst}/{32 if family == 4 else 128}"
        to = self._network_of(dst) or target
        dev_part = f" dev {dev}" if dev else ""
        return Fix(
            f"give {space.node} a route to {to} via {via}"
            + ("" if gateway else " (a router on its segment; or an address in its subnet)"),
            command=f"{_ip(space, family)} route add {to} via {via}{dev_part}",
            topology=_yaml_under(self.where(space), ["routes:", f"  - {{to: {to}, via: {via}}}"]),
        )

    def _on_link(self, space: Space, dst: str, family: int) -> Fix | None:
        """The subnet route back on the interface whose address covers ``dst`` (someone deleted it)."""
        if "/" in dst:
            return None
        for a in _addresses(space):
            net = _network(a)
            if net is None or a.family != family or a.scope != "global" or ipaddress.ip_address(dst) not in net:
                continue
            return Fix(
                f"give {space.node} its route to {net} on {a.dev} back (the subnet of its address {a.address})",
                command=f"{_ip(space, family)} route add {net} dev {a.dev} proto kernel scope link"
                + (f" src {a.address}" if family == 4 else ""),
            )
        return None

    def _network_of(self, dst: str) -> str | None:
        """The subnet ``dst`` is on, where a namespace of the lab holds an address in it."""
        ip = ipaddress.ip_address(dst)
        for other in self.snap.spaces.values():
            for a in _addresses(other):
                net = _network(a)
                if net is not None and ip in net and a.scope == "global":
                    return str(net)
        return None

    def _gateway(self, space: Space, dst: str, family: int) -> tuple[str, str] | None:
        """(address, our interface) of the one neighbour on ``space``'s segments that forwards and has a route to
        ``dst`` (or holds it): the router the user means by GATEWAY."""
        found: list[tuple[str, str, str]] = []
        for mine in _addresses(space):
            net = _network(mine)
            if net is None or mine.family != family or mine.scope != "global":
                continue
            for other in self.snap.spaces.values():
                if other.node == space.node or not self._forwards(other, family):
                    continue
                for theirs in _addresses(other):
                    if theirs.family != family or not theirs.address:
                        continue
                    if ipaddress.ip_address(theirs.address) not in net:
                        continue
                    route = route_lookup(other, family, dst, theirs.address).route
                    if route is not None and route.type in ("unicast", "local") and route.dev != theirs.dev:
                        found.append((other.node, theirs.address, mine.dev or ""))
        # One router, maybe on several of our segments: its address on the first one.
        if not found:
            found = self._gateway_candidates(space, dst, family)
        if not found or len({node for node, _, _ in found}) > 1:
            return None
        return found[0][1], found[0][2]

    def _gateway_candidates(self, space: Space, dst: str, family: int) -> list[tuple[str, str, str]]:
        """(node, its address, our interface) of the neighbours on ``space``'s segments that also hold an address
        on ``dst``'s subnet: the router meant, even if it does not forward yet or lacks the route (the next
        explain shows what it still needs)."""
        target = ipaddress.ip_address(dst)
        found = []
        for mine in _addresses(space):
            net = _network(mine)
            if net is None or mine.family != family or mine.scope != "global":
                continue
            for other in self.snap.spaces.values():
                if other.node == space.node:
                    continue
                theirs = [a for a in _addresses(other) if a.family == family and a.scope == "global"]
                here = next((a for a in theirs if a.address and ipaddress.ip_address(a.address) in net), None)
                there = any(target in n for a in theirs if (n := _network(a)) is not None and n != net)
                if here is not None and there:
                    found.append((other.node, here.address or "", mine.dev or ""))
        return found

    def _forwards(self, space: Space, family: int) -> bool:
        key = "net.ipv4.ip_forward" if family == 4 else "net.ipv6.conf.all.forwarding"
        return (space.view.sysctls or {}).get(key) == "1"


def _network(a: AddressView) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not a.address:
        return None
    return ipaddress.ip_interface(f"{a.address}/{a.prefixlen}").network


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word
