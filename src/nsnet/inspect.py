"""Everything the kernel holds for a lab's namespaces, side by side: ``nsnet inspect``."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import netaddr

from nsnet.engine.directory import lab_namespaces
from nsnet.errors import LabNotFoundError, NsnetError
from nsnet.kernel import firewall, nftables, readers, sysctl
from nsnet.kernel.netlink import Netlink
from nsnet.model import HOST, link_mark
from nsnet.views import BridgeView, LabView, LinkView, NamespaceView, PeerView, VtepEntryView, VxlanView

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


@functools.lru_cache(maxsize=4096)
def vendor(mac: str | None) -> str | None:
    """The maker registered for a MAC's OUI (IEEE registry), or ``None``."""
    if not mac or mac == "00:00:00:00:00:00":
        return None
    try:
        eui = netaddr.EUI(mac)
        if int(eui) >> 41 & 1:  # locally administered: random, no maker (veths, bridges)
            return None
        return str(eui.oui.registration().org)
    except (netaddr.AddrFormatError, netaddr.NotRegisteredError, IndexError, ValueError):
        return None


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
                f"lab {lab!r} has no node {', '.join(map(repr, missing))}; nodes: {', '.join(sorted(by_label))}"
            )
        chosen = {by_label[n]: n for n in nodes}
    else:
        chosen = spaces
    with Netlink() as nl:
        all_links = {ns: readers.links(nl, ns) for ns in spaces} if sections & {"links", "overlay"} else {}
        vteps = _vteps(spaces, all_links) if "overlay" in sections else {}
        # The host holds most peers: ask about it first.
        order = sorted(spaces, key=lambda other: spaces[other] != HOST)
        names = {ns: {raw["index"]: raw["name"] for raw in links} for ns, links in all_links.items()}
        views = [
            _namespace(nl, lab, ns, label, spaces, order, names, all_links, vteps, sections)
            for ns, label in chosen.items()
        ]
    return LabView(lab=lab, namespaces=views)


def _vteps(spaces: dict[str, str], all_links: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """VTEP address -> the host (label) whose VXLAN devices send from it."""
    return {
        raw["vxlan"]["local"]: spaces[ns]
        for ns, links in all_links.items()
        for raw in links
        if raw["vxlan"] and raw["vxlan"]["local"]
    }


def _vxlans(
    nl: Netlink, ns: str, names: dict[int, str], links: list[dict[str, Any]], vteps: dict[str, str]
) -> list[VxlanView]:
    devices = [raw for raw in links if raw["vxlan"]]
    if not devices:
        return []
    entries = readers.vxlan_entries(nl, ns, names)
    neighbours = readers.neighbours(nl, ns, names)
    out = []
    for raw in devices:
        vx = raw["vxlan"]
        out.append(
            VxlanView(
                name=raw["name"],
                **vx,  # vni, port, local, remote, dev, learning, proxy, l2miss, l3miss
                master=raw["master"],
                mtu=raw["mtu"],
                entries=[
                    VtepEntryView(mac, vtep, vteps.get(vtep), "permanent" if permanent else "learned")
                    for dev, mac, vtep, permanent in entries
                    if dev == raw["name"]
                ],
                neighbours=[n for n in neighbours if n.dev == raw["name"]],
            )
        )
    return out


def _namespace(
    nl: Netlink,
    lab: str,
    ns: str,
    label: str,
    spaces: dict[str, str],
    order: list[str],
    all_names: dict[str, dict[int, str]],
    all_links: dict[str, list[dict[str, Any]]],
    vteps: dict[str, str],
    sections: set[str],
) -> NamespaceView:
    # The links, when read already, name the indexes: no second listing.
    names = all_names[ns] if ns in all_names else readers.index_names(nl, ns)
    found: dict[str, Any] = {}
    if "links" in sections:
        links = all_links[ns]
        wanted = {raw["peer_nsid"] for raw in links if raw["peer_nsid"] is not None}
        nsids = readers.netnsids(nl, ns, order, wanted) if wanted else {}
        found["links"] = [_link(lab, ns, raw, nsids, spaces, all_names) for raw in links]
        found["bridges"] = [
            BridgeView(
                name=raw["name"],
                stp=bool(raw["stp"]),
                ageing_time=int(raw["ageing"] or 0),
                ports=sorted(link["name"] for link in links if link["master"] == raw["name"]),
            )
            for raw in links
            if raw["kind"] == "bridge"
        ]
    if "addr" in sections:
        found["addresses"] = readers.addresses(nl, ns, names)
    if "route" in sections:
        found["routes"] = readers.routes(nl, ns, names)
        found["rules"] = readers.rules(nl, ns)
    if "neigh" in sections:
        found["neighbours"] = readers.neighbours(nl, ns, names)
    if "fdb" in sections:
        found["fdb"] = readers.fdb(nl, ns, names)
    if "overlay" in sections:
        found["vxlans"] = _vxlans(nl, ns, names, all_links[ns], vteps)
    if "fw" in sections:
        found["firewall"] = [t for family in (4, 6) for t in firewall.read_tables(ns, lab, family)]
        found["nftables"] = nftables.read(ns)
    if "sysctl" in sections:
        found["sysctls"] = {k: v for k, v in sysctl.read(ns, list(SYSCTLS)).items() if v is not None}
        found["sysctls"].update(sysctl.read_conf(ns))
    if "conntrack" in sections:
        found["conntrack"] = readers.conntrack(ns)
    return NamespaceView(node=label, netns=ns, **found)


def _link(
    lab: str,
    ns: str,
    raw: dict[str, Any],
    nsids: dict[int, str],
    spaces: dict[str, str],
    all_names: dict[str, dict[int, str]],
) -> LinkView:
    peer = None
    if raw["peer_index"] is not None:
        where = ns if raw["peer_nsid"] is None else nsids.get(raw["peer_nsid"])
        name = None
        if where is not None:
            name = all_names.get(where, {}).get(raw["peer_index"])
        # The root namespace's key is "": a namespace like any other, not a missing one.
        node = spaces.get(where) if where is not None else None
        peer = PeerView(node=node, netns=where, name=name, index=raw["peer_index"])
    parent, peer = (peer, None) if raw.get("linked") == "parent" else (None, peer)
    return LinkView(
        name=raw["name"],
        index=raw["index"],
        kind=raw["kind"],
        state="up" if raw["up"] else "down",
        operstate=raw["operstate"],
        mtu=raw["mtu"],
        mac=raw["mac"],
        vendor=vendor(raw["mac"]),
        master=raw["master"],
        peer=peer,
        alias=raw["alias"],
        owned=raw["alias"] == link_mark(lab),
        port=raw.get("port"),
        parent=parent,
        mode=raw.get("mode"),
    )
