"""ADD, DEL, CHECK, GC and STATUS of nsnet-cni's bridge network.

ADD records the attachment, asks the IPAM plugin for addresses, then makes
the bridge (if missing), the veth pair, the container's addresses and routes,
the bridge's gateway address, the rules and the traffic shaping; if any step
fails, what was done is undone and the addresses are released. DEL undoes
all of it from what it can find without the container: the node's end of
the veth (its name derives from the attachment), the rules (by comment), the
IPAM reservation; so it works, and keeps working, once the namespace is gone.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Callable, Iterator

from nsnet.cni import attach, rules, spawn, spec, state
from nsnet.cni import jsonc as json
from nsnet.cni.config import NetConf
from nsnet.cni.differences import differences
from nsnet.cni.ipam import Ipam
from nsnet.cni.record import record
from nsnet.cni.spec import CniError
from nsnet.kernel import rtnl

TYPE_CHECKING = False  # typing is not imported at run time: the plugin starts once per container
if TYPE_CHECKING:
    from typing import Any


@record
class Env:
    """The ``CNI_*`` variables of one invocation (and the whole environment, for delegates)."""

    command: str
    container_id: str
    netns: str
    ifname: str
    args: str
    path: str
    environ: dict[str, str]


def _attachment(conf: NetConf, env: Env) -> tuple[str, str, str]:
    return (
        attach.host_ifname(conf.name, env.container_id, env.ifname),
        attach.alias_for(conf.name, env.container_id, env.ifname),
        rules.comment_for(conf.name, env.container_id, env.ifname),
    )


# -- ADD -----------------------------------------------------------------------


@contextlib.contextmanager
def _sockets(netns: str) -> Iterator[tuple[int, rtnl.Socket, rtnl.Socket]]:
    """An fd of the container's namespace, and netlink sockets in the node and in the container."""
    with contextlib.ExitStack() as stack:
        fd = attach.open_netns(netns)
        stack.callback(os.close, fd)
        container = attach.socket_in(fd, netns)
        stack.callback(container.close)
        node = rtnl.Socket.open()
        stack.callback(node.close)
        yield fd, node, container


def add(conf: NetConf, env: Env) -> dict[str, Any]:
    with _sockets(env.netns) as (fd, node, container), state.network_lock(conf.name):
        return _add(conf, env, fd, node, container)


def _add(conf: NetConf, env: Env, fd: int, node: rtnl.Socket, container: rtnl.Socket) -> dict[str, Any]:
    host, alias, comment = _attachment(conf, env)
    if attach.get_link(container, env.ifname) is not None:
        raise CniError(spec.INTERNAL, f"the container already has an interface {env.ifname!r}")
    fresh = state.load(conf.name, env.container_id, env.ifname) is None  # else: rules may be left to replace
    record: dict[str, Any] = {
        "containerID": env.container_id,
        "ifname": env.ifname,
        "netns": env.netns,
        "hostInterface": host,
        "bridge": conf.bridge,
        "config": {k: v for k, v in conf.raw.items() if k != "prevResult"},
        "status": "adding",
    }
    state.save(conf.name, env.container_id, env.ifname, record)
    ipam: Ipam | None = None
    allocated = False
    try:
        if conf.ipam:
            ipam = Ipam(conf, env.environ)
            got = ipam.add()
            allocated = True
        else:
            got = {"ips": [], "routes": [], "dns": {}}
        result = _build(conf, env, fd, node, container, got, host, alias, comment, fresh)
        record.update(status="added", result=result)
        state.save(conf.name, env.container_id, env.ifname, record)
        return result
    except BaseException:
        _undo(conf, env, node, host, alias, comment, ipam if allocated else None)
        raise


def _undo(conf: NetConf, env: Env, node: rtnl.Socket, host: str, alias: str, comment: str, ipam: Ipam | None) -> None:
    """Best effort: remove what a failed ADD made (the error of the ADD is the one reported)."""
    steps: list[Callable[[], None]] = [
        lambda: _delete_host_end(node, host, alias),
        lambda: _remove_rules({comment}),
        lambda: ipam.delete() if ipam is not None else None,
        lambda: state.remove(conf.name, env.container_id, env.ifname),
    ]
    for step in steps:
        try:
            step()
        except Exception:  # the ADD's own error is what the runtime must see
            continue


def _build(
    conf: NetConf,
    env: Env,
    fd: int,
    node: rtnl.Socket,
    container: rtnl.Socket,
    got: dict[str, Any],
    host: str,
    alias: str,
    comment: str,
    fresh: bool,
) -> dict[str, Any]:
    bridge, host_link, inside = _plug(conf, env, fd, node, container, host, alias)
    prev = conf.prev_result or {"interfaces": [], "ips": [], "routes": []}
    ips, routes, gateways = _addressing(conf, got, len(prev["interfaces"]) + 2)
    _configure(conf, node, container, (bridge, inside), ips, routes, gateways)
    wanted = rules.desired(conf, [ip["address"] for ip in ips])
    if wanted:
        with state.node_lock():
            rules.install(wanted, comment, fresh)
    if conf.bandwidth is not None:
        _shape(conf, env, host)

    bridge = attach.get_link(node, conf.bridge) or bridge  # a bridge made by others may take its ports' MAC
    host_link = attach.get_link(node, host) or host_link
    ours: list[dict[str, Any]] = [
        {"name": bridge.name, "mac": bridge.mac},
        {"name": host_link.name, "mac": host_link.mac},
        {"name": inside.name, "mac": inside.mac, "sandbox": env.netns},
    ]
    if spec.at_least(conf.version, "1.1.0"):
        for entry, link in zip(ours, (bridge, host_link, inside), strict=True):
            if link.mtu:
                entry["mtu"] = link.mtu
    known = ("interfaces", "ips", "routes", "dns")
    result: dict[str, Any] = {k: v for k, v in got.items() if k not in known}  # fields unknown to nsnet
    result.update((k, v) for k, v in prev.items() if k not in known)
    result.update(
        interfaces=prev["interfaces"] + ours,
        ips=prev["ips"] + ips,
        routes=prev["routes"] + routes,
        dns=conf.dns or got.get("dns") or prev.get("dns") or {},
    )
    return spec.shape_result(result, conf.version)


def _configure(
    conf: NetConf,
    node: rtnl.Socket,
    container: rtnl.Socket,
    links: tuple[attach.Link, attach.Link],
    ips: list[dict[str, Any]],
    routes: list[dict[str, Any]],
    gateways: dict[int, str],
) -> None:
    """The container's addresses and routes, the gateways' addresses on the bridge, forwarding in the node."""
    bridge, inside = links
    for ip in ips:
        attach.add_address(container, inside, ip["address"])
    for route in routes:
        version = ipaddress.ip_network(route["dst"], strict=False).version
        attach.add_route(container, inside, route["dst"], route.get("gw") or gateways.get(version))
    if conf.is_gateway:
        for ip in ips:
            if ip.get("gateway"):
                prefix = ipaddress.ip_interface(ip["address"]).network.prefixlen
                attach.add_address(node, bridge, f"{ip['gateway']}/{prefix}")
    versions = {ipaddress.ip_interface(ip["address"]).version for ip in ips}
    if conf.is_gateway or conf.ip_masq or conf.port_mappings:
        if 4 in versions:
            attach.set_sysctl("net.ipv4.ip_forward", "1")
        if 6 in versions:
            attach.set_sysctl("net.ipv6.conf.all.forwarding", "1")


def _plug(
    conf: NetConf, env: Env, fd: int, node: rtnl.Socket, container: rtnl.Socket, host: str, alias: str
) -> tuple[attach.Link, attach.Link, attach.Link]:
    """The bridge, and a veth pair from it into the container, both ends up: (bridge, host end, container end)."""
    bridge = attach.ensure_bridge(node, conf.bridge, conf.mtu, conf.promisc, conf.name)
    stale = attach.get_link(node, host)
    if stale is not None:
        if stale.alias != alias:
            raise CniError(spec.INTERNAL, f"{host} exists in the node and is not this attachment's")
        attach.delete_link(node, host)  # left by an ADD that was killed
    attach.create_veth(node, host, fd, env.ifname, conf.mtu)
    host_link = attach.get_link(node, host)
    inside = attach.get_link(container, env.ifname)
    if host_link is None or inside is None:
        raise CniError(spec.INTERNAL, f"the veth pair {host} <-> {env.ifname} vanished just after it was made")
    attach.set_link(node, host_link, up=True, master=bridge.index, alias=alias)
    if conf.hairpin:
        attach.set_hairpin(node, host_link)
    attach.set_link(container, inside, up=True)
    return bridge, host_link, inside


def _addressing(
    conf: NetConf, got: dict[str, Any], index: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[int, str]]:
    """The IPAM result's addresses (on interface ``index`` of the result, with their gateways), its routes (and
    a default route with isDefaultGateway), and the gateway of each IP version."""
    ips = []
    gateways: dict[int, str] = {}
    for ip in got["ips"]:
        ip = dict(ip, interface=index)
        iface = ipaddress.ip_interface(ip["address"])
        if conf.is_gateway and not ip.get("gateway"):
            ip["gateway"] = str(next(iface.network.hosts()))  # as the reference plugin: the subnet's first address
        if ip.get("gateway"):
            gateways.setdefault(iface.version, ip["gateway"])
        ips.append(ip)
    routes = [dict(r) for r in got["routes"]]
    if conf.is_default_gateway:
        for version, gw in sorted(gateways.items()):
            default = "0.0.0.0/0" if version == 4 else "::/0"
            if not any(ipaddress.ip_network(r["dst"], strict=False) == ipaddress.ip_network(default) for r in routes):
                routes.append({"dst": default, "gw": gw})
    return ips, routes, gateways


def _shape(conf: NetConf, env: Env, host: str) -> None:
    """The ``bandwidth`` capability with ``tc``: a token bucket on each end of the veth."""
    bw = conf.bandwidth
    assert bw is not None
    tc = rules.tool("tc")
    steps = []
    if bw.ingress_rate:  # into the container: leaving the node's end
        steps.append([tc, "qdisc", "replace", "dev", host, "root", *_tbf(bw.ingress_rate, bw.ingress_burst)])
    if bw.egress_rate:  # out of the container: leaving its own end
        nsenter = rules.tool("nsenter")
        shaper = _tbf(bw.egress_rate, bw.egress_burst)
        steps.append([nsenter, f"--net={env.netns}", "--", tc, "qdisc", "replace", "dev", env.ifname, "root", *shaper])
    for argv in steps:
        proc = spawn.run(argv)
        if proc.code != 0:
            raise CniError(spec.INTERNAL, "cannot limit the bandwidth", proc.err.decode(errors="replace").strip())


def _tbf(rate: int, burst: int) -> list[str]:
    return ["tbf", "rate", f"{rate}bit", "burst", f"{max(burst // 8, 1)}b", "latency", "25ms"]


# -- DEL -----------------------------------------------------------------------


def _delete_host_end(node: rtnl.Socket, host: str, alias: str) -> None:
    link = attach.get_link(node, host)
    if link is not None and link.alias == alias:
        attach.delete_link(node, host)  # the container's end goes with it


def _remove_rules(comments: set[str], families: tuple[int, ...] = (4, 6)) -> None:
    with state.node_lock():
        rules.remove(comments=comments, families=families)


def _families(record: dict[str, Any] | None) -> tuple[int, ...]:
    """The address families of a recorded attachment's rules (both when unknown)."""
    result = (record or {}).get("result")
    if record is None or record.get("status") != "added" or not isinstance(result, dict):
        return (4, 6)
    try:
        found = {ipaddress.ip_interface(ip["address"]).version for ip in result.get("ips", [])}
    except (KeyError, TypeError, ValueError):
        return (4, 6)
    return tuple(sorted(found))


def delete(conf: NetConf, env: Env) -> None:
    """Remove the attachment; nothing there (already deleted, namespace gone) is fine."""
    host, alias, comment = _attachment(conf, env)
    node = rtnl.Socket.open()
    try:
        with state.network_lock(conf.name):
            _delete_host_end(node, host, alias)
            record = state.load(conf.name, env.container_id, env.ifname)
            _remove_rules({comment}, _families(record))
            if conf.ipam:
                Ipam(conf, env.environ).delete()
            state.remove(conf.name, env.container_id, env.ifname)
    finally:
        node.close()


# -- CHECK ---------------------------------------------------------------------


def check(conf: NetConf, env: Env) -> None:
    if not spec.at_least(conf.version, "0.4.0"):
        raise CniError(spec.INCOMPATIBLE_VERSION, f"CHECK is not defined in CNI {conf.version} (0.4.0 and later)")
    if conf.prev_result is None:
        raise CniError(spec.INVALID_CONFIG, "CHECK needs prevResult, the result of the ADD")
    host, alias, comment = _attachment(conf, env)
    with _sockets(env.netns) as (_, node, container), state.network_lock(conf.name):
        if conf.ipam:
            Ipam(conf, env.environ).check()
        problems = differences(conf, env, node, container, host, alias, comment)
    if problems:
        raise CniError(spec.CHECK_FAILED, "the container's network is not as ADD made it", "; ".join(problems))


# -- GC and STATUS ---------------------------------------------------------------


def gc(conf: NetConf, env: Env) -> None:
    """Remove every attachment of the network that is not in ``cni.dev/valid-attachments``.

    Attachments are found by their records and, should a record be lost, by their marks
    (the veth's alias, the rules' comments), whose addresses are then released with this
    configuration's IPAM.
    """
    if not spec.at_least(conf.version, "1.1.0"):
        raise CniError(spec.INCOMPATIBLE_VERSION, f"GC is not defined in CNI {conf.version} (1.1.0 and later)")
    if conf.valid_attachments is None:
        raise CniError(spec.INVALID_CONFIG, "GC needs cni.dev/valid-attachments")
    valid = conf.valid_attachments
    failures: list[str] = []
    node = rtnl.Socket.open()
    try:
        with state.network_lock(conf.name):
            done: set[tuple[str, str]] = set()
            for record in state.records(conf.name):
                key = (record["containerID"], record["ifname"])
                if key not in valid:
                    done.add(key)
                    try:
                        _collect(conf, env, node, record)
                    except CniError as exc:
                        failures.append(f"{key[0]}/{key[1]}: {exc.msg} {exc.details}".strip())
            marked: set[tuple[str, str]] = set()
            keep_aliases = {attach.alias_for(conf.name, c, i) for c, i in valid}
            for link in attach.list_links(node):
                parsed = attach.parse_alias(link.alias)
                hashed = (link.alias or "").startswith(f"{attach.ALIAS_PREFIX}:{conf.name}:veth")
                if ((parsed is not None and parsed[0] == conf.name) or hashed) and link.alias not in keep_aliases:
                    attach.delete_link(node, link.name)
                    if parsed is not None:
                        marked.add(parsed[1:])
            with state.node_lock():
                keep = {rules.comment_for(conf.name, c, i) for c, i in valid}
                marked |= rules.remove(network=conf.name, keep=keep)
            for cid, ifname in sorted(marked - done - valid):
                if conf.ipam:
                    environ = dict(env.environ, CNI_CONTAINERID=cid, CNI_IFNAME=ifname, CNI_NETNS="")
                    try:
                        Ipam(conf, environ).delete()
                    except CniError as exc:
                        failures.append(f"{cid}/{ifname}: {exc.msg}")
            if conf.ipam:
                try:
                    Ipam(conf, env.environ).gc()
                except CniError as exc:
                    failures.append(f"IPAM GC: {exc.msg}")
    finally:
        node.close()
    if failures:
        raise CniError(spec.INTERNAL, "GC could not remove everything", "; ".join(failures))


def _collect(conf: NetConf, env: Env, node: rtnl.Socket, record: dict[str, Any]) -> None:
    """DEL of a stale attachment, from its record (its own configuration, its IPAM)."""
    cid, ifname = record["containerID"], record["ifname"]
    _delete_host_end(node, attach.host_ifname(conf.name, cid, ifname), attach.alias_for(conf.name, cid, ifname))
    _remove_rules({rules.comment_for(conf.name, cid, ifname)})
    saved = record.get("config")
    if isinstance(saved, dict):
        from nsnet.cni.config import parse

        old = parse(json.dumps(saved).encode())
        if old.ipam:
            environ = dict(env.environ, CNI_CONTAINERID=cid, CNI_IFNAME=ifname, CNI_NETNS="")
            Ipam(old, environ).delete()
    state.remove(conf.name, cid, ifname)


def status(conf: NetConf, env: Env) -> None:
    """Ready for ADD: the IPAM plugin is there (and ready, if it can say), iptables too, the state writable."""
    if not spec.at_least(conf.version, "1.1.0"):
        raise CniError(spec.INCOMPATIBLE_VERSION, f"STATUS is not defined in CNI {conf.version} (1.1.0 and later)")
    if conf.ipam:
        try:
            ipam = Ipam(conf, env.environ)
        except CniError as exc:
            raise CniError(spec.NOT_AVAILABLE, exc.msg, exc.details) from None
        ipam.status()
    for name in ("iptables-save", "iptables-restore"):
        try:
            rules.tool(name)
        except CniError as exc:
            raise CniError(spec.NOT_AVAILABLE, exc.msg) from None
    try:
        os.makedirs(state.root(), exist_ok=True)
        writable = os.access(state.root(), os.W_OK)
    except OSError:
        writable = False
    if not writable:
        raise CniError(spec.NOT_AVAILABLE, f"the state directory {state.root()} is not writable")
