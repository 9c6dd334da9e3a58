"""Read a lab's namespaces from the kernel into a :class:`~nsnet.model.State`.

The links come from the same reader as ``inspect``'s (:mod:`nsnet.kernel.readers`):
one listing per namespace, veth peers resolved across the namespaces read.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import replace
from typing import Literal

from nsnet import kinds
from nsnet.engine import servers
from nsnet.engine.journal import Journal
from nsnet.kernel import firewall, netns, readers, rtnl, sysctl
from nsnet.kernel.netlink import Netlink, kind_fields
from nsnet.model import ROOT_NS, Endpoint, Firewall, Link, Namespace, Route, State

UNKNOWN_PEER = Endpoint("?", "?")
"""The peer of a veth whose other end is in none of the namespaces read."""


def observe(
    nl: Netlink, lab: str, wanted: State, journal: Journal | None, extra: dict[str, str] | None = None
) -> State:
    """The live state of every namespace in ``wanted``, the journal and ``extra`` that exists.

    Sysctls are read for the keys ``wanted`` sets and those the journal
    remembers; the firewall only where either uses one. While the lab is being
    removed (``down``: journal status ``removing``, nothing wanted but perhaps
    the root namespace), a namespace it does not want is read
    only for what deciding its removal needs: its mark and its server (it goes
    whole, links and all). An empty file left
    under /run/netns by a creation cut short counts as absent where the lab
    wants the namespace (it is made again) and as an unmarked, empty namespace
    elsewhere (it is removed).
    """
    labels: dict[str, str] = {}
    if journal:
        labels.update(journal.namespaces)
        if journal.host_mode == "root":
            labels[ROOT_NS] = "host"
    labels.update(extra or {})
    labels.update({ns: space.label for ns, space in wanted.namespaces.items()})
    removing = journal is not None and journal.status == "removing" and set(wanted.namespaces) <= {ROOT_NS}

    msgs: dict[str, list[rtnl.LinkMsg]] = {}
    spaces: dict[str, Namespace] = {}
    for ns, label in labels.items():
        if not netns.exists(ns):
            continue
        want = wanted.namespaces.get(ns)
        role: Literal["node", "host"] = want.role if want else "host" if label == "host" else "node"
        if ns != ROOT_NS and netns.is_stale(ns):
            if want is None:
                spaces[ns] = Namespace(name=ns, label=label, role=role, stale=True)
            continue
        if removing and want is None and ns != ROOT_NS:
            spaces[ns] = Namespace(name=ns, label=label, role=role, mark=nl.lo_alias(ns), server=_server(journal, ns))
            continue
        msgs[ns] = nl.link_msgs(ns)
        spaces[ns] = _namespace(nl, lab, ns, label, role, want, journal, msgs[ns])
    links = readers.Links(nl, msgs)
    for ns in msgs:
        spaces[ns] = replace(spaces[ns], links=_links(nl, ns, links))
    return State(lab=lab, namespaces=spaces)


def _namespace(
    nl: Netlink,
    lab: str,
    ns: str,
    label: str,
    role: Literal["node", "host"],
    want: Namespace | None,
    journal: Journal | None,
    msgs: list[rtnl.LinkMsg],
) -> Namespace:
    """A namespace read whole (its links are added once every namespace is read: they name each other)."""
    keys = sorted(set(want.sysctls if want else ()) | set(journal.sysctls.get(ns, {}) if journal else ()))
    families = _firewall_families(ns, want, journal)
    mark = next((m.alias for m in msgs if m.index == rtnl.LOOPBACK_IFINDEX), None)
    return Namespace(
        name=ns,
        label=label,
        role=role,
        links={},
        routes=frozenset(_static_routes(nl, ns, {m.index: m.name for m in msgs})),
        sysctls={k: v for k, v in sysctl.read(ns, keys).items() if v is not None} if keys else {},
        firewall=firewall.read(ns, lab, families) if families else Firewall(),
        mark=None if ns == ROOT_NS else mark,
        server=_server(journal, ns),
    )


def _firewall_families(ns: str, want: Namespace | None, journal: Journal | None) -> set[int]:
    """The IP versions whose firewall is read: those the lab sets, or set before (as the journal says)."""
    families = set(want.firewall.families if want else ())
    if want and want.firewall.policies:
        families.add(4)
    if journal and ns in journal.firewall:
        families |= {4, 6}
    return families


def _server(journal: Journal | None, ns: str) -> int | None:
    """The port of nsnet's HTTP server in ``ns``, if the journal has one that still runs."""
    entry = journal.servers.get(ns) if journal else None
    return entry[1] if entry and servers.running(ns, entry) else None


def _links(nl: Netlink, ns: str, links: readers.Links) -> dict[str, Link]:
    """Every link of ``ns`` but ``lo``, with its global addresses, its veth peer and its VXLAN entries."""
    names = links.names[ns]
    ips = _addresses(nl, ns, names)
    out: dict[str, Link] = {}
    for m in links.msgs[ns]:
        if m.name == "lo":
            continue
        link = _link(m, names, frozenset(ips.get(m.index, ())))
        linked = kinds.get(m.kind).linked  # what IFLA_LINK names: a veth's peer, a macvlan's parent
        if linked and m.peer_index is not None:
            found = links.peer(ns, m) if linked == "peer" else links.parent(ns, m)
            end = Endpoint(*found) if found else UNKNOWN_PEER
            link = replace(link, peer=end) if linked == "peer" else replace(link, parent=end)
        out[m.name] = link
    vxlans = {m.index: m.name for m in links.msgs[ns] if m.kind == "vxlan"}
    if vxlans:
        fdb, neigh = readers.overlay_entries(nl, ns, vxlans)
        for name in vxlans.values():
            out[name] = replace(out[name], fdb=frozenset(fdb[name]), neighbours=frozenset(neigh[name]))
    return out


def _link(m: rtnl.LinkMsg, names: dict[int, str], ips: frozenset[str]) -> Link:
    """A link as the model holds it; its kind reads its own settings (bridge, VXLAN, macvlan ...)."""
    link = Link(
        name=m.name,
        kind=m.kind or "other",  # type: ignore[arg-type]
        master=names.get(m.master) if m.master else None,
        mtu=m.mtu,
        mac=m.mac,
        up=bool(m.flags & rtnl.IFF_UP),
        addresses=ips,
        alias=m.alias,
    )
    return replace(link, **kind_fields(m.kind, m.data, names)) if kinds.get(m.kind).params else link


def _addresses(nl: Netlink, ns: str, names: dict[int, str]) -> dict[int, list[str]]:
    """Link index -> its addresses (CIDR), IPv6 link-local ones left out; ``lo``'s too."""
    out: dict[int, list[str]] = {}
    for a in readers.address_msgs(nl, ns):
        if a.address is None or names.get(a.index, "lo") == "lo":
            continue
        if a.family == socket.AF_INET:  # as ipaddress would write it
            out.setdefault(a.index, []).append(f"{a.address}/{a.prefixlen}")
            continue
        ip = ipaddress.ip_interface(f"{a.address}/{a.prefixlen}")
        if not ip.is_link_local:
            out.setdefault(a.index, []).append(str(ip))
    return out


def _static_routes(nl: Netlink, ns: str, names: dict[int, str]) -> set[Route]:
    """Static routes (``proto static``) of the main table."""
    routes: set[Route] = set()
    for r in readers.route_msgs(nl, ns, rtnl.RT_TABLE_MAIN, rtnl.RTPROT_STATIC):
        if r.family not in (socket.AF_INET, socket.AF_INET6):
            continue
        dst = r.dst or ("0.0.0.0" if r.family == socket.AF_INET else "::")
        routes.add(
            Route(
                to=str(ipaddress.ip_network(f"{dst}/{r.dst_len}")),
                via=r.gateway,
                dev=names.get(r.oif) if r.oif else None,
                metric=r.priority,
            )
        )
    return routes
