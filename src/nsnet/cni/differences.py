"""CHECK: what of an attachment is not as ADD made it (the bridge, the veth pair, addresses, routes, rules)."""

from __future__ import annotations

import ipaddress

from nsnet.cni import attach, rules
from nsnet.cni.config import NetConf
from nsnet.kernel import rtnl

TYPE_CHECKING = False  # typing is not imported at run time: the plugin starts once per container
if TYPE_CHECKING:
    from typing import Any

    from nsnet.cni.bridge import Env


def differences(
    conf: NetConf, env: Env, node: rtnl.Socket, container: rtnl.Socket, host: str, alias: str, comment: str
) -> list[str]:
    """What is not as ADD made it, in words (nothing: all is)."""
    prev = conf.prev_result
    assert prev is not None
    mine = [
        i
        for i, iface in enumerate(prev["interfaces"])
        if iface.get("name") == env.ifname and iface.get("sandbox") == env.netns
    ]
    if not mine:
        return [f"prevResult lists no interface {env.ifname} in {env.netns}"]
    expected = prev["interfaces"][mine[0]]
    inside = attach.get_link(container, env.ifname)
    bridge = attach.get_link(node, conf.bridge)
    problems = _link_problems(conf, env, node, host, alias, bridge, inside)
    if inside is None:
        return problems
    if expected.get("mac") and inside.mac != str(expected["mac"]).lower():
        problems.append(f"{env.ifname} has MAC {inside.mac}, not {expected['mac']}")
    ips = [ip for ip in prev["ips"] if ip.get("interface") == mine[0]]
    problems += _address_problems(conf, env, node, container, bridge, inside, ips)
    problems += _route_problems(env, container, inside, ips, prev["routes"])
    problems += [
        f"rule missing: {r}" for r in rules.missing(rules.desired(conf, [ip["address"] for ip in ips]), comment)
    ]
    return problems


def _link_problems(
    conf: NetConf,
    env: Env,
    node: rtnl.Socket,
    host: str,
    alias: str,
    bridge: attach.Link | None,
    inside: attach.Link | None,
) -> list[str]:
    """The bridge, the veth pair between it and the container, up."""
    problems = []
    host_link = attach.get_link(node, host)
    if bridge is None or bridge.kind != "bridge":
        problems.append(f"bridge {conf.bridge} is missing")
    if host_link is None or host_link.alias != alias:
        problems.append(f"the node's end of the veth pair, {host}, is missing")
    elif bridge is not None and host_link.master != bridge.index:
        problems.append(f"{host} is not a port of {conf.bridge}")
    if inside is None:
        problems.append(f"interface {env.ifname} is missing in {env.netns}")
        return problems
    if host_link is not None and inside.peer_index != host_link.index:
        problems.append(f"{env.ifname} is not the peer of {host}")
    if not inside.flags & rtnl.IFF_UP:
        problems.append(f"{env.ifname} is down")
    return problems


def _address_problems(
    conf: NetConf,
    env: Env,
    node: rtnl.Socket,
    container: rtnl.Socket,
    bridge: attach.Link | None,
    inside: attach.Link,
    ips: list[dict[str, Any]],
) -> list[str]:
    """The container's addresses, and (isGateway) the gateways' on the bridge."""
    problems = []
    have = attach.addresses(container, inside)
    for ip in ips:
        if str(ipaddress.ip_interface(ip["address"])) not in have:
            problems.append(f"address {ip['address']} is missing on {env.ifname}")
    if conf.is_gateway and bridge is not None:
        on_bridge = attach.addresses(node, bridge)
        for ip in ips:
            if ip.get("gateway"):
                gw_cidr = f"{ip['gateway']}/{ipaddress.ip_interface(ip['address']).network.prefixlen}"
                if str(ipaddress.ip_interface(gw_cidr)) not in on_bridge:
                    problems.append(f"the gateway address {gw_cidr} is missing on {conf.bridge}")
    return problems


def _route_problems(
    env: Env, container: rtnl.Socket, inside: attach.Link, ips: list[dict[str, Any]], routes: list[dict[str, Any]]
) -> list[str]:
    """The routes of the result that go through this plugin's interface."""
    problems = []
    gateways = {ipaddress.ip_interface(ip["address"]).version: ip.get("gateway") for ip in ips if ip.get("gateway")}
    subnets = [ipaddress.ip_interface(ip["address"]).network for ip in ips]
    live_routes = attach.routes(container, inside)
    for route in routes:
        dst = str(ipaddress.ip_network(route["dst"], strict=False))
        gw = route.get("gw") or gateways.get(ipaddress.ip_network(dst).version)
        if gw is None or not any(ipaddress.ip_address(gw) in net for net in subnets):
            continue  # not a route through this plugin's interface (a previous plugin's)
        if (dst, gw) not in live_routes:
            problems.append(f"route {dst} via {gw} is missing in {env.netns}")
    return problems
