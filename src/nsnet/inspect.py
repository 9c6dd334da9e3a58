"""Everything the kernel holds for a lab's namespaces, side by side: ``nsnet inspect``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from nsnet.engine.directory import lab_namespaces
from nsnet.errors import LabNotFoundError, NsnetError
from nsnet.kernel import conntrack, firewall, nftables, readers, sysctl
from nsnet.kernel.netlink import Netlink
from nsnet.kernel.readers import vendor
from nsnet.model import link_mark
from nsnet.names import no_node
from nsnet.views import LabView, NamespaceView

__all__ = ["SECTIONS", "SYSCTLS", "inspect", "vendor"]

SECTIONS = ("links", "addr", "route", "neigh", "fdb", "overlay", "fw", "sysctl", "conntrack")
SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.ipv6.conf.all.forwarding",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.ipv4.icmp_echo_ignore_all",
    "net.ipv4.icmp_echo_ignore_broadcasts",
    "net.ipv6.icmp.echo_ignore_all",
)


def inspect(lab: str, nodes: Sequence[str] = (), what: Iterable[str] = SECTIONS) -> LabView:
    """Read the lab's namespaces (or only ``nodes``; ``host`` names the lab's host)."""
    sections = set(what)
    unknown = sections - set(SECTIONS)
    if unknown:
        raise NsnetError(f"unknown section {', '.join(sorted(unknown))}: choose from {', '.join(SECTIONS)}")
    spaces = lab_namespaces(lab)  # kernel namespace -> node label
    if nodes:
        by_label = {label: ns for ns, label in spaces.items()}
        missing = [n for n in nodes if n not in by_label]
        if missing:
            raise LabNotFoundError(
                no_node(lab, missing[0], sorted(by_label))
                if len(missing) == 1
                else f"lab {lab!r} has no node {', '.join(map(repr, missing))}; nodes: {', '.join(sorted(by_label))}"
            )
        chosen = {by_label[n]: n for n in nodes}
    else:
        chosen = spaces
    with Netlink() as nl:
        # Every namespace's links, when shown: a veth's peer may be in any of them.
        links = readers.Links.read(nl, list(spaces)) if sections & {"links", "overlay"} else None
        vteps = readers.vteps(links, spaces) if links is not None and "overlay" in sections else {}
        views = [_namespace(nl, lab, ns, label, spaces, links, vteps, sections) for ns, label in chosen.items()]
    return LabView(lab=lab, namespaces=views)


def _namespace(
    nl: Netlink,
    lab: str,
    ns: str,
    label: str,
    spaces: dict[str, str],
    links: readers.Links | None,
    vteps: dict[str, str],
    sections: set[str],
) -> NamespaceView:
    # The links, when read already, name the indexes: no second listing.
    names = links.names[ns] if links is not None else {m.index: m.name for m in nl.link_msgs(ns)}
    found: dict[str, Any] = {}
    if links is not None and "links" in sections:
        found["links"] = readers.link_views(links, ns, spaces, link_mark(lab))
        found["bridges"] = readers.bridges(links.msgs[ns])
    if "addr" in sections:
        found["addresses"] = readers.addresses(nl, ns, names)
    if "route" in sections:
        found["routes"] = readers.routes(nl, ns, names)
        found["rules"] = readers.rules(nl, ns)
    if "neigh" in sections:
        found["neighbours"] = readers.neighbours(nl, ns, names)
    if "fdb" in sections:
        found["fdb"] = readers.fdb(nl, ns, names)
    if links is not None and "overlay" in sections:
        found["vxlans"] = readers.vxlans(nl, ns, links, vteps)
    if "fw" in sections:
        found["firewall"] = [t for family in (4, 6) for t in firewall.read_tables(ns, lab, family)]
        found["nftables"] = nftables.read(ns)
    if "sysctl" in sections:
        found["sysctls"] = {k: v for k, v in sysctl.read(ns, list(SYSCTLS)).items() if v is not None}
        found["sysctls"].update(sysctl.read_conf(ns))
    if "conntrack" in sections:
        found["conntrack"] = conntrack.read(ns)
    return NamespaceView(node=label, netns=ns, **found)
