"""What a picture of a lab holds: namespaces as boxes, interfaces in them, veth pairs and links on their
parents as wires (no drawing).

A :class:`Picture` is built from a topology (:func:`from_topology`) or from a
live lab (:func:`from_lab`: the lab's topology file for the layout, the kernel
for link state, addresses and MACs). VXLAN devices of the same VNI and UDP
port on different hosts are joined by a :class:`Tunnel`. :mod:`nsnet.graph`
draws a picture; the web page lays it out (:mod:`nsnet.web.layout`).
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from nsnet import kinds, picture_firewall
from nsnet.engine import preflight
from nsnet.engine.journal import Journal
from nsnet.engine.observe import observe
from nsnet.engine.seam import LiveKernel
from nsnet.errors import LabNotFoundError, TopologyError
from nsnet.kernel import firewall, netns
from nsnet.model import HOST, ROOT_NS, Link, Namespace, State, Topology, link_mark, netns_names
from nsnet.topology.loader import load

LinkState = Literal["up", "down", "no carrier", "missing"]


@dataclass(frozen=True)
class Interface:
    """One interface drawn in its namespace's box."""

    ns: str
    """Logical name of its namespace (``RED``, ``host``)."""
    name: str
    kind: str
    addresses: tuple[str, ...] = ()
    master: str | None = None
    mac: str | None = None
    state: LinkState | None = None
    """Live only: ``up``; ``down`` (set down); ``no carrier`` (a veth whose peer is down); ``missing``."""
    vni: int | None = None
    """VXLAN devices: their VNI."""
    vxlan_port: int | None = None
    """VXLAN devices: their UDP port."""
    detail: str = ""
    """The kind's own words, for kinds without a shape of their own (``macvlan bridge``, ``dummy``)."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.ns, self.name)

    @property
    def passes(self) -> bool:
        """Whether traffic can pass (always, when not drawn live)."""
        return self.state in (None, "up")


@dataclass(frozen=True)
class Box:
    """One network namespace."""

    label: str
    """Logical name: a node, or ``host``."""
    netns: str
    """Kernel namespace name (``ROOT_NS`` for the root namespace)."""
    role: Literal["node", "host"]
    interfaces: tuple[Interface, ...]
    missing: bool = False
    """Live only: the namespace does not exist."""
    firewall: tuple[str, ...] = ()
    """Its firewall in a few lines (:mod:`nsnet.picture_firewall`): policies not ACCEPT, nsnet's rules."""
    summary: str = ""
    """A box that stands for several nodes (:mod:`nsnet.picture_summary`): what they are."""
    mark: str = ""
    """Where ``explain`` says the packet dies in this namespace: why."""

    @property
    def title(self) -> str:
        if self.summary:
            return self.summary
        return "root namespace" if self.netns == ROOT_NS else f"netns {self.netns}"


@dataclass(frozen=True)
class Wire:
    """A veth pair: its two ends; or (``label`` set) a link and the parent device it sits on."""

    a: tuple[str, str]
    b: tuple[str, str]
    label: str = ""


@dataclass(frozen=True)
class Tunnel:
    """Two VXLAN devices of the same VNI and UDP port on different hosts: one overlay network between them."""

    a: tuple[str, str]
    b: tuple[str, str]
    vni: int


@dataclass(frozen=True)
class Picture:
    """What is drawn: a lab's namespaces, their interfaces, the veth pairs and the VXLAN tunnels between them."""

    lab: str
    boxes: tuple[Box, ...]
    wires: tuple[Wire, ...]
    live: bool = False
    source: str | None = None
    tunnels: tuple[Tunnel, ...] = ()
    notes: tuple[str, ...] = ()
    """What the picture leaves out or sums up, and what was marked on it, in words."""

    def interface(self, key: tuple[str, str]) -> Interface | None:
        return self._interfaces.get(key)

    @functools.cached_property
    def _interfaces(self) -> dict[tuple[str, str], Interface]:
        """Every interface by key, built once (a lab of hundreds of nodes asks for thousands)."""
        found: dict[tuple[str, str], Interface] = {}
        for box in self.boxes:
            for iface in box.interfaces:
                found.setdefault(iface.key, iface)
        return found


# -- building a picture -----------------------------------------------------


def from_topology(topology: Topology, lab: str | None = None) -> Picture:
    """The picture of ``topology`` as it would be brought up under lab name ``lab``."""
    lab = lab or topology.name
    return _picture(lab, topology, netns_names(topology, lab), None, topology.source)


def from_lab(lab: str, topology: Topology | None = None) -> Picture:
    """The picture of lab ``lab`` as it is in the kernel now (needs root).

    The layout follows ``topology``, or else the file the lab was brought up
    from (as the journal records it); link state, addresses and MACs are read
    from the kernel, and interfaces the file does not name are drawn too.
    """
    journal = Journal.load(lab)
    if journal is None:
        raise LabNotFoundError(f"no lab named {lab!r} is up (see `nsnet ls`)")
    preflight.require_root("read the lab's namespaces")
    source = topology.source if topology else journal.source
    if topology is None and journal.source:
        try:
            topology = load(journal.source)
        except TopologyError:
            topology = None  # the file is gone or no longer valid: draw what the kernel holds
    names = {label: ns for ns, label in journal.namespaces.items()}
    if journal.host_mode == "root":
        names[HOST] = ROOT_NS
    if topology is not None:
        for logical, ns in netns_names(topology, lab).items():
            names.setdefault(logical, ns)
    with LiveKernel() as nl:
        state = observe(nl, lab, State(lab, {}), None, extra={ns: label for label, ns in names.items()})
    walled = {ns for ns in journal.firewall} | {
        names[label] for label, space in (topology.namespaces.items() if topology else ()) if _walled(space)
    }
    walls = {
        label: picture_firewall.from_tables(t for family in (4, 6) for t in firewall.read_tables(ns, lab, family))
        for label, ns in names.items()
        if ns in walled and (ns == ROOT_NS or netns.exists(ns))
    }
    return _picture(lab, topology, names, state, source, walls)


def _walled(space: Namespace) -> bool:
    return bool(space.firewall.policies or space.firewall.rules or space.docker)


def _picture(
    lab: str,
    topology: Topology | None,
    names: dict[str, str],
    live: State | None,
    source: str | None,
    walls: dict[str, tuple[str, ...]] | None = None,
) -> Picture:
    logical_of = {ns: label for label, ns in names.items()}
    desired = dict(topology.namespaces) if topology else {}
    observed = {space.label: space for space in live.namespaces.values()} if live else {}
    order = list(desired) + [label for label in observed if label not in desired]
    order.sort(key=lambda label: label == HOST)  # nodes first, the host last (stable)

    boxes: list[Box] = []
    pairs: dict[frozenset[tuple[str, str]], Wire] = {}
    for label in order:
        want, have = desired.get(label), observed.get(label)
        interfaces = []
        for name, link in _links(lab, names.get(label), want, have).items():
            interfaces.append(_interface(label, link, have, live is not None))
            wire = _wire((label, name), link, want is not None and name in want.links, logical_of)
            if wire is not None:
                pairs.setdefault(frozenset((wire.a, wire.b)), wire)
        role = want.role if want else (have.role if have else "node")
        if role == "host" and not interfaces:
            continue  # a host with nothing in it (lab 1) is not drawn
        wall = walls.get(label, ()) if walls is not None else _wanted_wall(want)
        missing = live is not None and have is None
        boxes.append(Box(label, names.get(label, label), role, tuple(interfaces), missing=missing, firewall=wall))
    picture = Picture(lab, tuple(boxes), (), live is not None, source)
    wires = tuple(w for w in pairs.values() if picture.interface(w.a) and picture.interface(w.b))
    picture = Picture(lab, picture.boxes, wires, picture.live, source, _tunnels(picture.boxes))
    return _with_carrier(picture) if live is not None else picture


def _wanted_wall(want: Namespace | None) -> tuple[str, ...]:
    if want is None:
        return ()
    lines = picture_firewall.from_model(want.firewall)
    if want.docker and not any("FORWARD policy" in line for line in lines):
        lines = ("filter FORWARD policy DROP (as Docker leaves it)", *lines)
    return lines


def _wire(end: tuple[str, str], link: Link, from_file: bool, logical_of: dict[str, str]) -> Wire | None:
    """The wire from ``link`` (at ``end``) to its veth peer or to the parent it sits on, if that end is known."""
    # A link of the file names its peer's namespace logically; one seen only live, by kernel name.
    peer = link.peer or link.parent
    peer_label = (peer.ns if from_file else logical_of.get(peer.ns)) if peer else None
    if peer is None or peer_label is None:
        return None
    label_text = kinds.get(link.kind).detail(link) if link.parent else ""
    return Wire(end, (peer_label, peer.ifname), label=label_text)


def _links(lab: str, netns: str | None, want: Namespace | None, have: Namespace | None) -> dict[str, Link]:
    """The links drawn in a namespace: the file's, then those only the kernel has (in the root namespace,
    only the lab's)."""
    links: dict[str, Link] = dict(want.links) if want else {}
    if have is not None:
        extra = {n: lk for n, lk in sorted(have.links.items()) if n not in links}
        if netns == ROOT_NS:  # of the machine's own links, only the lab's
            extra = {n: lk for n, lk in extra.items() if lk.alias == link_mark(lab)}
        links.update(extra)
    return links


def _tunnels(boxes: Iterable[Box]) -> tuple[Tunnel, ...]:
    """Every pair of VXLAN devices in different namespaces that share a VNI and a UDP port."""
    devices = [i for box in boxes for i in box.interfaces if i.vni is not None]
    return tuple(
        Tunnel(a.key, b.key, a.vni)
        for a, b in itertools.combinations(devices, 2)
        if a.vni is not None and a.ns != b.ns and (a.vni, a.vxlan_port) == (b.vni, b.vxlan_port)
    )


def _interface(label: str, link: Link, have: Namespace | None, live: bool) -> Interface:
    vni, port = (link.vxlan.vni, link.vxlan.port) if link.vxlan else (None, None)
    kind = kinds.get(link.kind)
    detail = kind.detail(link) if kind.user else ""
    if not live:
        return Interface(
            label, link.name, link.kind, _sorted(link.addresses), link.master, vni=vni, vxlan_port=port, detail=detail
        )
    seen = have.links.get(link.name) if have else None
    if seen is None:
        return Interface(
            label, link.name, link.kind, _sorted(link.addresses), link.master, state="missing", vni=vni, vxlan_port=port
        )
    return Interface(
        label,
        link.name,
        seen.kind,
        _sorted(seen.addresses),
        seen.master,
        seen.mac,
        "up" if seen.up else "down",
        vni=seen.vxlan.vni if seen.vxlan else None,
        vxlan_port=seen.vxlan.port if seen.vxlan else None,
        detail=detail,
    )


def _with_carrier(picture: Picture) -> Picture:
    """An end of a veth pair that is up has no carrier when the other end is not."""
    quiet = set()
    for wire in picture.wires:
        a, b = picture.interface(wire.a), picture.interface(wire.b)
        assert a is not None and b is not None
        if wire.label:  # a link on its parent: the link loses its carrier with the parent, not the reverse
            if a.state == "up" and not b.passes:
                quiet.add(a.key)
            continue
        if a.state == "up" and not b.passes:
            quiet.add(a.key)
        if b.state == "up" and not a.passes:
            quiet.add(b.key)
    boxes = tuple(
        Box(
            box.label,
            box.netns,
            box.role,
            tuple(replace(i, state="no carrier") if i.key in quiet else i for i in box.interfaces),
            box.missing,
            box.firewall,
        )
        for box in picture.boxes
    )
    return replace(picture, boxes=boxes)


def _sorted(addresses: Iterable[str]) -> tuple[str, ...]:
    def key(a: str) -> tuple[int, int]:
        ip = ipaddress.ip_interface(a)
        return (ip.version, int(ip))

    return tuple(sorted(addresses, key=key))
