"""Desugaring pass: ``hosts:`` (a lab of several hosts) becomes an underlay.

Each host gets ``eth0`` on the underlay with an address there (its own or the
next free one) and a port on the underlay's switch (the ``underlay``
namespace, bridge ``ul0``); the result is the lab's :class:`~nsnet.model.Overlay`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

from nsnet.model import HOST, UNDERLAY, Overlay
from nsnet.overlay.build import UNDERLAY_IFACE
from nsnet.topology import ipcache
from nsnet.topology.report import Report
from nsnet.topology.schema import (
    NAME_RE,
    BridgeSpec,
    HostSpec,
    InterfaceSpec,
    LinkSpec,
    MachineSpec,
    NamespaceSpec,
    OverlaySpec,
    TopologySpec,
    UnderlaySpec,
)
from nsnet.topology.source import Loc
from nsnet.topology.values import IFNAME_MAX


def desugar(report: Report, spec: TopologySpec) -> tuple[TopologySpec, Overlay | None]:
    """``hosts:``: each host gets ``eth0`` on the underlay, an address there, and a port on its switch."""
    if not spec.hosts:
        for key in ("underlay", "overlay"):
            if getattr(spec, key) is not None:
                report.add((key,), f"{key}: belongs to a lab of several hosts", "declare them under hosts:")
        return spec, None
    report.hosts = set(spec.hosts)
    if spec.host != HostSpec():
        report.add(
            ("host",),
            "a lab with hosts: has no single host:",
            "move these settings under one of hosts:, or remove hosts:",
        )
    if spec.outside is not None:
        report.add(("outside",), "an outside joins a single host", "remove outside: (or hosts:)")
        spec = spec.model_copy(update={"outside": None})
    under = spec.underlay or UnderlaySpec()
    net = ipaddress.IPv4Network(under.subnet)
    taken: set[ipaddress.IPv4Address] = set()
    vteps: dict[str, str] = {}
    explicit = {ipcache.ip_interface(o.address).ip for o in spec.hosts.values() if o and o.address}
    pool = (a for a in net.hosts() if a not in explicit)
    hosts: dict[str, MachineSpec] = {}
    for h, h_spec in spec.hosts.items():
        loc: Loc = ("hosts", h)
        h_spec = h_spec or MachineSpec()
        if not _host_ok(report, loc, h, h_spec):
            continue
        address = _host_address(report, loc, h_spec, net, pool, explicit)
        if address is None:
            continue
        taken.add(address)
        vteps[h] = str(address)
        eth0 = InterfaceSpec(addresses=[f"{address}/{net.prefixlen}"], mtu=under.mtu)
        hosts[h] = h_spec.model_copy(update={"interfaces": {UNDERLAY_IFACE: eth0, **h_spec.interfaces}})
    links = [*spec.links, *(LinkSpec(endpoints=[f"{h}:{UNDERLAY_IFACE}", f"{UNDERLAY}:{h}"]) for h in hosts)]
    o = spec.overlay or OverlaySpec()
    switch = _switch_address(report, under, taken)
    registry = o.registry or (f"http://{ipcache.ip_interface(switch).ip}:2379" if switch else None)
    overlay = Overlay(mode=o.mode, subnet=str(net), mtu=under.mtu, vteps=vteps, address=switch, registry=registry)
    return spec.model_copy(update={"hosts": hosts, "links": links}), overlay


def _host_ok(report: Report, loc: Loc, h: str, h_spec: MachineSpec) -> bool:
    """Whether ``h`` can name a host, and leaves the underlay interface's name to nsnet."""
    if h in (HOST, "root", UNDERLAY) or not NAME_RE.match(h) or len(h.encode()) > IFNAME_MAX:
        report.add(
            loc,
            f"host name {h!r} is not allowed",
            f"use up to {IFNAME_MAX} letters, digits, _ . - (it names the host's port on the underlay), "
            "other than host, root and underlay",
        )
        return False
    if UNDERLAY_IFACE in h_spec.interfaces or UNDERLAY_IFACE in h_spec.bridges or UNDERLAY_IFACE in h_spec.vxlans:
        report.add(
            (*loc, "interfaces", UNDERLAY_IFACE),
            f"{UNDERLAY_IFACE} is the host's underlay interface, which nsnet makes",
            "give your interface another name",
        )
        return False
    return True


def _host_address(
    report: Report,
    loc: Loc,
    h_spec: MachineSpec,
    net: ipaddress.IPv4Network,
    pool: Iterator[ipaddress.IPv4Address],
    explicit: set[Any],
) -> ipaddress.IPv4Address | None:
    """A host's underlay address: its own, or the next one of the subnet nobody asked for."""
    if h_spec.address is None:
        address = next(pool, None)
        if address is None:
            report.add(loc, f"the underlay {net} has no address left for this host", "use a larger underlay.subnet")
        return address
    ip = ipcache.ip_interface(h_spec.address)
    if not isinstance(ip, ipaddress.IPv4Interface) or ip.ip not in net:
        report.add((*loc, "address"), f"{h_spec.address} is not in the underlay {net}", f"use an address of {net}")
        return None
    return ip.ip


def _switch_address(report: Report, under: UnderlaySpec, taken: set[ipaddress.IPv4Address]) -> str | None:
    net = ipaddress.IPv4Network(under.subnet)
    if under.address is None:
        last = net.broadcast_address - 1 if net.prefixlen < 31 else net.broadcast_address
        return None if last in taken else f"{last}/{net.prefixlen}"
    ip = ipcache.ip_interface(under.address)
    if ip.version != 4 or ip.ip not in net:
        report.add(("underlay", "address"), f"{under.address} is not in the underlay {net}", f"use an address of {net}")
        return None
    return f"{ip.ip}/{net.prefixlen}"


def space(overlay: Overlay) -> NamespaceSpec:
    """The underlay namespace: its switch ``ul0`` (with the switch's address) and a port per host."""
    bridge = BridgeSpec(addresses=[overlay.address] if overlay.address else [], mtu=overlay.mtu)
    ports: dict[str, InterfaceSpec | None] = {h: InterfaceSpec(master="ul0", mtu=overlay.mtu) for h in overlay.vteps}
    return NamespaceSpec(bridges={"ul0": bridge}, interfaces=ports)
