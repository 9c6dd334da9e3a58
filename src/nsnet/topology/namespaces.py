"""Passes: the lab's namespaces, declared (nodes, host or hosts, underlay) and then built.

:func:`declared` checks the node names and gathers every namespace's
description; :func:`build` makes one :class:`~nsnet.model.Namespace` of a
description and the veth ends :mod:`nsnet.topology.links` found for it: its
bridges, VXLAN devices, veths, links of their own kind (macvlan, dummy ...,
checked by :mod:`nsnet.kinds.checks`), routes, sysctls and firewall.
"""

from __future__ import annotations

from typing import Literal

from nsnet.kinds import checks as kind_checks
from nsnet.model import HOST, UNDERLAY, Endpoint, Link, Namespace, Overlay, Route, Vxlan
from nsnet.topology import ipcache, shaping, underlay
from nsnet.topology.firewall import firewall
from nsnet.topology.links import ifname_ok
from nsnet.topology.report import Report, suggest
from nsnet.topology.schema import (
    NAME_RE,
    BridgeSpec,
    MachineSpec,
    NamespaceSpec,
    TopologySpec,
)
from nsnet.topology.source import Loc
from nsnet.topology.values import SYSCTL_RE, SYSCTL_VALUE_RE

NODE_NAME_MAX = 48


def declared(report: Report, spec: TopologySpec, overlay: Overlay | None) -> dict[str, NamespaceSpec]:
    """Every namespace of the lab and its description: the nodes, then the host (or the hosts and the underlay)."""
    spaces: dict[str, NamespaceSpec] = {}
    reserved = (HOST, "root", UNDERLAY)
    for node, node_spec in spec.nodes.items():
        loc: Loc = ("nodes", node)
        if node in reserved or node in spec.hosts:
            what = "a host of this lab" if node in spec.hosts else "reserved for the lab's host"
            what += " (underlay)" if node == UNDERLAY else ""
            report.add(loc, f"{node!r} is {what}", "give the node another name")
            continue
        if not NAME_RE.match(node) or len(node) > NODE_NAME_MAX:
            report.add(
                loc,
                f"node name {node!r} is not allowed",
                f"use up to {NODE_NAME_MAX} letters, digits, _ . -, starting with a letter or digit",
            )
        # Under the lab's own name a node's namespace is its name, a host's `<lab>-<host>`.
        taken = next((h for h in (HOST, UNDERLAY, *spec.hosts) if node == f"{spec.name}-{h}"), None)
        if taken is not None:
            report.add(
                loc,
                f"node {node!r} would be the same network namespace as the lab's "
                f"{'host' if taken == HOST else taken} ({node})",
                "give the node another name",
            )
            continue
        spaces[node] = node_spec or NamespaceSpec()
    if overlay is None:
        spaces[HOST] = spec.host
    else:
        spaces.update({h: h_spec or MachineSpec() for h, h_spec in spec.hosts.items()})
        spaces[UNDERLAY] = underlay.space(overlay)
    return spaces


def build(report: Report, name: str, space: NamespaceSpec, ends: dict[str, Endpoint]) -> Namespace:
    """Namespace ``name`` as ``space`` describes it, ``ends`` being its veth ends and their peers."""
    base = report.base(name)
    role: Literal["node", "host"] = "host" if name in (HOST, UNDERLAY) or name in report.hosts else "node"
    links = _bridges(report, base, space)
    _vxlans(report, name, base, space, ends, links)
    for ifname, peer in ends.items():
        links[ifname] = Link(name=ifname, kind="veth", peer=peer)
    _interfaces(report, name, base, space, ends, links)
    routes = _routes(report, base, space, links)
    return Namespace(
        name=name,
        label=name,
        role=role,
        links=links,
        routes=frozenset(routes),
        sysctls=_sysctls(report, base, space),
        firewall=firewall(report, base, space),
    )


def _bridges(report: Report, base: Loc, space: NamespaceSpec) -> dict[str, Link]:
    links: dict[str, Link] = {}
    for br, br_spec in space.bridges.items():
        loc = (*base, "bridges", br)
        if not ifname_ok(report, loc, br):
            continue
        b = br_spec or BridgeSpec()
        links[br] = Link(
            name=br,
            kind="bridge",
            mtu=b.mtu,
            mac=b.mac,
            up=b.up,
            addresses=_addresses(b.addresses),
            stp=b.stp,
            ageing=b.ageing,
            masquerade=b.masquerade,
            forward=b.forward,
            link_local=_link_local(report, loc, b.link_local, b.up),
        )
    return links


def _vxlans(
    report: Report, name: str, base: Loc, space: NamespaceSpec, ends: dict[str, Endpoint], links: dict[str, Link]
) -> None:
    """Add the VXLAN devices of ``space`` (a host's) to ``links``."""
    for vx, vx_spec in getattr(space, "vxlans", {}).items():
        loc = (*base, "vxlans", vx)
        if not ifname_ok(report, loc, vx):
            continue
        if vx in space.bridges or vx in ends:
            report.add(
                loc, f"{vx!r} is already the name of another interface here", "give the VXLAN device its own name"
            )
            continue
        if vx_spec.master is not None and vx_spec.master not in space.bridges:
            report.add(
                (*loc, "master"),
                f"bridge {vx_spec.master!r} does not exist in {name}",
                suggest(vx_spec.master, space.bridges) or "declare it under bridges:",
            )
            continue
        same = next(
            (o for o, v in links.items() if v.vxlan and (v.vxlan.vni, v.vxlan.port) == (vx_spec.vni, vx_spec.port)),
            None,
        )
        if same is not None:
            report.add(
                (*loc, "vni"),
                f"VNI {vx_spec.vni} on port {vx_spec.port} is already {same}'s here; the kernel allows one",
                "attach that device to every bridge that needs the network, or use another VNI",
            )
            continue
        settings = Vxlan(vni=vx_spec.vni, port=vx_spec.port, remote=vx_spec.remote, learning=vx_spec.learning)
        links[vx] = Link(name=vx, kind="vxlan", master=vx_spec.master, mtu=vx_spec.mtu, vxlan=settings)


def _interfaces(
    report: Report, name: str, base: Loc, space: NamespaceSpec, ends: dict[str, Endpoint], links: dict[str, Link]
) -> None:
    """Set the veths of ``links`` as ``interfaces:`` describes them; add the links of their own kind it
    declares (macvlan, dummy ...)."""
    for ifname, if_spec in space.interfaces.items():
        loc = (*base, "interfaces", ifname)
        own, problems = kind_checks.declared(if_spec, ifname in ends)
        for sub, message, hint in problems:
            report.add((*loc, *sub), message, hint)
        if problems or (own is not None and not _own_link_ok(report, loc, ifname, space)):
            continue
        if ifname not in ends and own is None:
            if ifname in space.bridges:
                report.add(loc, f"{ifname!r} is a bridge; set its addresses under bridges.{ifname}")
            elif (name, ifname) not in report.named_in_links:  # else its link's problem is reported
                report.add(
                    loc,
                    f"interface {ifname!r} is not an end of any link in {name}",
                    suggest(ifname, ends) or f"add a link [{name}:{ifname}, OTHER:IFACE] or remove it",
                )
            continue
        if if_spec is None:
            continue
        master = if_spec.master
        if master is not None and master not in space.bridges:
            report.add(
                (*loc, "master"),
                f"bridge {master!r} does not exist in {name}",
                suggest(master, space.bridges) or "declare it under bridges:",
            )
            master = None  # reported; no subnet checks against a bridge that does not exist
        links[ifname] = Link(
            name=ifname,
            **(own or {"kind": "veth", "peer": ends[ifname]}),
            master=master,
            mtu=if_spec.mtu,
            mac=if_spec.mac,
            up=if_spec.up,
            addresses=_addresses(if_spec.addresses),
            shaping=shaping.qdisc(if_spec.rate, if_spec.delay, if_spec.loss),
            link_local=_link_local(report, loc, if_spec.link_local, if_spec.up),
        )


def _link_local(report: Report, loc: Loc, wanted: bool, up: bool) -> bool:
    """``link_local: true``: the kernel makes the address when the link comes up, so the link must be up."""
    if wanted and not up:
        report.add(
            (*loc, "link_local"),
            "link_local: true needs the link up: the kernel makes the link-local address when it comes up",
            "remove up: false, or link_local",
        )
        return False
    return wanted


def _own_link_ok(report: Report, loc: Loc, ifname: str, space: NamespaceSpec) -> bool:
    if not ifname_ok(report, loc, ifname):
        return False
    if ifname in space.bridges or ifname in getattr(space, "vxlans", {}):
        report.add(loc, f"{ifname!r} is already the name of another interface here", "give the interface its own name")
        return False
    return True


def _addresses(addresses: list[str]) -> frozenset[str]:
    return frozenset(str(ipcache.ip_interface(a)) for a in addresses)


def _routes(report: Report, base: Loc, space: NamespaceSpec, links: dict[str, Link]) -> list[Route]:
    routes: list[Route] = []
    subnets = [ipcache.ip_interface(a).network for link in links.values() for a in link.addresses]
    for i, r in enumerate(space.routes):
        loc = (*base, "routes", i)
        family = ipcache.ip_address(r.via).version if r.via else 4
        to = ("0.0.0.0/0" if family == 4 else "::/0") if r.to == "default" else r.to
        if r.via and ipcache.ip_network(to).version != family:
            report.add((*loc, "via"), f"gateway {r.via} and destination {r.to} are of different IP versions")
            continue
        if r.dev is not None and r.dev not in links:
            report.add(
                (*loc, "dev"),
                f"interface {r.dev!r} does not exist here",
                suggest(r.dev, links) or f"interfaces here: {', '.join(links) or 'none'}",
            )
            continue
        if r.via and r.dev is None and not any(ipcache.ip_address(r.via) in n for n in subnets):
            report.add(
                (*loc, "via"),
                f"gateway {r.via} is not in any subnet of this namespace's interfaces",
                "add an address in the gateway's subnet, or name the interface with dev:",
            )
            continue
        route = Route(to=str(ipcache.ip_network(to)), via=r.via, dev=r.dev, metric=r.metric)
        if route in routes:
            report.add(loc, f"route {route} is listed twice", "remove one")
            continue
        routes.append(route)
    return routes


def _sysctls(report: Report, base: Loc, space: NamespaceSpec) -> dict[str, str]:
    sysctls: dict[str, str] = {}
    for key, value in space.sysctls.items():
        loc = (*base, "sysctls", key)
        if not SYSCTL_RE.match(key):
            report.add(
                loc,
                f"sysctl {key!r} is not a per-namespace network setting",
                "only net.* keys such as net.ipv4.ip_forward can be set per namespace",
            )
        elif not SYSCTL_VALUE_RE.match(value):
            report.add(loc, f"value {value!r} is not allowed", "use a number or a simple word")
        else:
            sysctls[key] = value
    return sysctls
