"""Desugaring passes for the outside world: the ``outside:`` node, gateways, NAT, published ports, isolation.

:func:`add_outside` runs first, on the schema: ``outside:`` becomes a node
named outside linked to the host by the uplink. :func:`connect` runs once the
namespaces are built: ``gateway: true`` becomes a default route, and the host
gets the rules and the forwarding that :mod:`nsnet.topology.outside` derives.
"""

from __future__ import annotations

from dataclasses import replace

from nsnet.model import HOST, Namespace, Route
from nsnet.topology import ipcache, outside, values
from nsnet.topology.report import Report, suggest
from nsnet.topology.schema import InterfaceSpec, LinkSpec, NamespaceSpec, NodeSpec, TopologySpec

OUTSIDE6 = "2001:db8::2/64"
HOST_OUTSIDE6 = "2001:db8::1/64"
"""The outside's and the host's IPv6 uplink addresses when the lab has IPv6 (a documentation range, RFC 3849)."""


def _has_ipv6(spec: TopologySpec) -> bool:
    """Whether an address of the file is IPv6 (the host's, a bridge's, a node's)."""
    spaces = [spec.host, *(n for n in spec.nodes.values() if n is not None)]
    specs = [i for s in spaces for i in [*s.interfaces.values(), *s.bridges.values()] if i is not None]
    return any(":" in a for i in specs for a in i.addresses)


def add_outside(report: Report, spec: TopologySpec) -> TopologySpec:
    """``outside:`` is a node named outside, linked to the host by the uplink."""
    if spec.outside is None:
        return spec
    o = spec.outside
    if spec.host.mode == "root":
        report.add(
            ("outside",),
            "an outside namespace stands in for the world only in a sandbox lab",
            "with host: root the machine's real uplink is the outside; remove outside:",
        )
        return spec
    if "outside" in spec.nodes:
        report.add(
            ("nodes", "outside"),
            "the name 'outside' is taken by the outside: block",
            "rename the node or remove outside:",
        )
        return spec
    ipv6 = _has_ipv6(spec)
    address6 = o.address6 or (OUTSIDE6 if ipv6 else None)
    host6 = o.host_address6 or (HOST_OUTSIDE6 if ipv6 else None)
    nodes = dict(spec.nodes)
    nodes["outside"] = NodeSpec(interfaces={"eth0": InterfaceSpec(addresses=[o.address, *filter(None, [address6])])})
    interfaces = dict(spec.host.interfaces)
    interfaces[o.uplink] = InterfaceSpec(addresses=[o.host_address, *filter(None, [host6])])
    host = spec.host.model_copy(update={"interfaces": interfaces})
    links = [*spec.links, LinkSpec(endpoints=["outside:eth0", f"host:{o.uplink}"])]
    return spec.model_copy(update={"nodes": nodes, "host": host, "links": links})


def connect(report: Report, spec: TopologySpec, spaces: dict[str, Namespace]) -> dict[str, Namespace]:
    """Gateways, NAT, published ports, isolation and forwarding (see :mod:`nsnet.topology.outside`)."""
    gateways = _gateways(report, spec, spaces)
    if HOST not in spaces:  # a multi-host lab: its hosts take no NAT or published ports (yet)
        return spaces
    host = spaces[HOST]
    published = _published(report, spec, spaces)
    allowed = _allowed(report, spec, host)
    if spec.host.docker and host.firewall.policies:
        report.add(
            ("host", "firewall", "policies"),
            f"with docker: {str(spec.host.docker).lower()} the host's policies are Docker's",
            "remove firewall.policies from the host",
        )
    rules = outside.firewall_rules(host, published, allowed)
    sysctls = dict(host.sysctls)
    if outside.needs_forwarding(host, published, gateways, spec.outside is not None):
        sysctls.setdefault("net.ipv4.ip_forward", "1")
        if outside.has_ipv6(host):
            sysctls.setdefault("net.ipv6.conf.all.forwarding", "1")
    for p in published:
        if p.family == 6:
            sysctls.setdefault("net.ipv6.conf.all.forwarding", "1")
        if p.loopback:  # as Docker without its userland proxy: packets from 127.0.0.1 may leave through the bridge
            sysctls.setdefault(f"net.ipv4.conf.{p.bridge}.route_localnet", "1")
    spaces[HOST] = replace(
        host,
        firewall=replace(host.firewall, rules=host.firewall.rules + tuple(rules)),
        sysctls=sysctls,
        docker=bool(spec.host.docker),
        docker_backend="nftables" if spec.host.docker == "nftables" else "iptables",
    )
    if spec.outside is not None and "outside" in spaces:
        spaces["outside"] = replace(spaces["outside"], server=spec.outside.serve)
    return spaces


def _gateways(report: Report, spec: TopologySpec, spaces: dict[str, Namespace]) -> bool:
    """Give each interface with ``gateway: true`` its default route (in ``spaces``); whether any has one."""
    gateways = False
    for name, space in list(spaces.items()):
        node_spec = spec.host if name == HOST else spec.hosts.get(name) or spec.nodes.get(name) or NamespaceSpec()
        extra: list[Route] = []
        for ifname, if_spec in node_spec.interfaces.items():
            if if_spec is None or not if_spec.gateway:
                continue
            routes = _gateway_routes(report, spaces, name, ifname)
            extra += routes
            gateways = gateways or bool(routes)
        if extra:
            spaces[name] = replace(space, routes=space.routes | frozenset(extra))
    return gateways


def _gateway_routes(report: Report, spaces: dict[str, Namespace], name: str, ifname: str) -> list[Route]:
    """The default routes (IPv4, IPv6) through the host bridge at the other end of ``name:ifname``: one per IP
    version the bridge has an address of (an IPv6 one only where the node has an address in its subnet)."""
    loc = report.base(name)
    bridge = outside.bridge_of(spaces, name, ifname)
    gw = {
        v: [i for i in sorted(bridge.addresses) if ipcache.ip_interface(i).version == v] if bridge else []
        for v in (4, 6)
    }
    if not gw[4] and not gw[6]:
        report.add(
            (*loc, "interfaces", ifname, "gateway"),
            "gateway: true needs the other end of this link to be a port of a host bridge that has an address",
            "give the bridge an address, e.g. addresses: [10.0.0.1/24]",
        )
        return []
    assert bridge is not None
    link = spaces[name].links.get(ifname)
    mine = [ipcache.ip_interface(a) for a in sorted(link.addresses)] if link else []
    routes = []
    for version, default in ((4, "0.0.0.0/0"), (6, "::/0")):
        on_link = [g for g in gw[version] if any(a.ip in ipcache.ip_interface(g).network for a in mine)]
        if on_link:
            routes.append(Route(to=default, via=str(ipcache.ip_interface(on_link[0]).ip)))
        elif gw[version] and (version == 4 or not gw[4]):
            kind = f"IPv{version}"
            has = ", ".join(str(a) for a in mine if a.version == version) or f"no {kind} address"
            report.add(
                (*loc, "interfaces", ifname, "gateway"),
                f"gateway: true routes through bridge {bridge.name} ({', '.join(gw[version])}), but {ifname} "
                f"has {has}, outside the bridge's subnet: the gateway would not be reachable",
                f"give {ifname} an address in {ipcache.ip_interface(gw[version][0]).network}, "
                f"or the bridge one in {ifname}'s subnet",
            )
    return routes


def _published(report: Report, spec: TopologySpec, spaces: dict[str, Namespace]) -> list[outside.Published]:
    """The host's ``publish:`` entries, each resolved to the node's address behind a host bridge."""
    published: list[outside.Published] = []
    for i, p in enumerate(spec.host.publish):
        loc = ("host", "publish", i)
        if p.node not in spaces or p.node == HOST:
            report.add((*loc, "node"), f"node {p.node!r} does not exist", suggest(p.node, spaces) or "")
            continue
        family = ipcache.ip_interface(p.host_ip).version if p.host_ip else 4
        if p.host_ip and not _host_ip_ok(report, spec, spaces[HOST], loc, p.host_ip):
            continue
        behind = outside.node_behind_bridge(spaces, p.node, family)
        if behind is None:
            report.add(
                (*loc, "node"),
                f"{p.node} has no IPv{family} address on a link to a host bridge",
                "publish a node that sits behind one of the host's bridges",
            )
            continue
        first, last = values.port_range(p.host_port)
        port = values.port_range(p.port)[0]
        entry = outside.Published(
            first, p.node, behind[0], port, p.proto, behind[1].name, last if last != first else None, p.host_ip
        )
        if any(_clash(q, entry) for q in published):
            report.add(
                (*loc, "host_port"),
                f"host port {p.host_port}/{p.proto} is published twice",
                "use another host port",
            )
            continue
        published.append(entry)
    return published


def _clash(a: outside.Published, b: outside.Published) -> bool:
    """Whether two published ports would catch the same packets."""
    overlap = a.host_port <= b.host_port + b.length and b.host_port <= a.host_port + a.length
    same_ip = a.host_ip is None or b.host_ip is None or a.host_ip == b.host_ip
    return overlap and same_ip and a.proto == b.proto and a.family == b.family


def _host_ip_ok(report: Report, spec: TopologySpec, host: Namespace, loc: tuple[str | int, ...], ip: str) -> bool:
    """A published port's host address: one of the host's (a sandbox's are all known), or 127.0.0.1."""
    address = ipcache.ip_interface(ip).ip
    if address.is_loopback and address.version == 6:
        report.add(
            (*loc, "host_ip"),
            "the kernel does not forward from ::1 (IPv6 has no route_localnet)",
            "publish on one of the host's IPv6 addresses",
        )
        return False
    mine = {ipcache.ip_interface(a).ip for link in host.links.values() for a in link.addresses}
    if spec.host.mode == "sandbox" and not address.is_loopback and address not in mine:
        report.add(
            (*loc, "host_ip"),
            f"{ip} is not an address of the host: nothing would reach the published port there",
            f"use one of: {', '.join(sorted(map(str, mine))) or 'the host has no addresses yet'}, or 127.0.0.1",
        )
        return False
    return True


def _allowed(report: Report, spec: TopologySpec, host: Namespace) -> set[frozenset[str]]:
    """The pairs of host bridges that ``allow:`` lets talk to each other."""
    bridges = {n for n, link in host.links.items() if link.kind == "bridge"}
    allowed = set()
    for i, pair in enumerate(spec.host.allow):
        if len(pair) != 2 or not set(pair) <= bridges:
            report.add(
                ("host", "allow", i),
                f"{pair} is not a pair of the host's bridges",
                f"write two of: {', '.join(sorted(bridges)) or 'no bridges yet'}",
            )
            continue
        allowed.add(frozenset(pair))
    return allowed
