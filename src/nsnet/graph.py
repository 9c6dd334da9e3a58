"""Pictures of a lab: namespaces as boxes, interfaces in them, veth pairs as wires.

VXLAN devices of the same VNI and UDP port on different hosts are joined by
a dashed edge labelled ``VXLAN <vni>``: the overlay, drawn over the underlay
that carries it (whose switch and veth pairs are drawn like any other).

A :class:`Picture` is built from a topology (:func:`from_topology`) or from a
live lab (:func:`from_lab`: the lab's topology file for the layout, the kernel
for link state, addresses and MACs). It is then drawn as a ``graphviz.Graph``
(:func:`to_graphviz`: DOT source, SVG, PNG) or as Mermaid flowchart text
(:func:`to_mermaid`, no graphviz needed). :func:`render` does either by format.
"""

from __future__ import annotations

import functools
import html
import ipaddress
import itertools
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import graphviz

from nsnet import kinds
from nsnet.engine import preflight
from nsnet.engine.journal import Journal
from nsnet.engine.observe import observe
from nsnet.engine.seam import LiveKernel
from nsnet.errors import LabNotFoundError, NsnetError, TopologyError
from nsnet.model import HOST, ROOT_NS, Link, Namespace, State, Topology, link_mark, netns_names
from nsnet.topology.loader import load

Format = Literal["svg", "png", "dot", "mermaid"]
FORMATS: tuple[Format, ...] = ("svg", "png", "dot", "mermaid")
SUFFIXES: dict[str, Format] = {
    ".svg": "svg",
    ".png": "png",
    ".dot": "dot",
    ".gv": "dot",
    ".mmd": "mermaid",
    ".mermaid": "mermaid",
}
NAMED_FORMATS: dict[str, Format] = {f: f for f in FORMATS}
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

    @property
    def title(self) -> str:
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
    return _picture(lab, topology, names, state, source)


def _picture(
    lab: str, topology: Topology | None, names: dict[str, str], live: State | None, source: str | None
) -> Picture:
    logical_of = {ns: label for label, ns in names.items()}
    desired = dict(topology.namespaces) if topology else {}
    observed = {space.label: space for space in live.namespaces.values()} if live else {}
    order = list(desired) + [label for label in observed if label not in desired]
    order.sort(key=lambda label: label == HOST)  # nodes first, the host last (stable)

    boxes: list[Box] = []
    pairs: dict[frozenset[tuple[str, str]], Wire] = {}
    for label in order:
        want = desired.get(label)
        have = observed.get(label)
        links: dict[str, Link] = dict(want.links) if want else {}
        if have is not None:
            extra = {n: lk for n, lk in sorted(have.links.items()) if n not in links}
            if names.get(label) == ROOT_NS:  # of the machine's own links, only the lab's
                extra = {n: lk for n, lk in extra.items() if lk.alias == link_mark(lab)}
            links.update(extra)
        interfaces = []
        for name, link in links.items():
            interfaces.append(_interface(label, link, have, live is not None))
            # A link of the file names its peer's namespace logically; one seen only live, by kernel name.
            from_file = want is not None and name in want.links
            peer = link.peer or link.parent
            peer_label = (peer.ns if from_file else logical_of.get(peer.ns)) if peer else None
            if peer is None or peer_label is None:
                continue
            ends = ((label, name), (peer_label, peer.ifname))
            pairs.setdefault(
                frozenset(ends), Wire(*ends, label=kinds.get(link.kind).detail(link) if link.parent else "")
            )
        role = want.role if want else (have.role if have else "node")
        if role == "host" and not interfaces:
            continue  # a host with nothing in it (lab 1) is not drawn
        boxes.append(
            Box(label, names.get(label, label), role, tuple(interfaces), missing=live is not None and have is None)
        )
    picture = Picture(lab, tuple(boxes), (), live is not None, source)
    wires = tuple(w for w in pairs.values() if picture.interface(w.a) and picture.interface(w.b))
    picture = Picture(lab, picture.boxes, wires, picture.live, source, _tunnels(picture.boxes))
    return _with_carrier(picture) if live is not None else picture


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
        )
        for box in picture.boxes
    )
    return replace(picture, boxes=boxes)


def _sorted(addresses: Iterable[str]) -> tuple[str, ...]:
    def key(a: str) -> tuple[int, int]:
        ip = ipaddress.ip_interface(a)
        return (ip.version, int(ip))

    return tuple(sorted(addresses, key=key))


# -- drawing ----------------------------------------------------------------

FONT = "Helvetica"
GREY = "#9a9a9a"
OVERLAY = "#7b3fb5"
"""The colour of VXLAN tunnels."""
HOST_FILL = "#eeeeee"
# Nodes named after a colour (the seed's RED and BLUE) get a light shade of it.
SHADES = {
    "red": "#fde2df",
    "blue": "#dde9fb",
    "green": "#dff3e0",
    "yellow": "#fdf6d3",
    "orange": "#fde9d3",
    "purple": "#ece2f6",
    "pink": "#fbe1ee",
    "grey": "#eeeeee",
    "gray": "#eeeeee",
}
PALETTE = ("#dde9fb", "#dff3e0", "#fdf6d3", "#ece2f6", "#fde9d3", "#e0f3f3")
BORDERS = {"red": "#c0392b", "blue": "#2e6bc4", "green": "#2e8b3e"}


def node_id(key: tuple[str, str]) -> str:
    """The DOT node name of an interface: ``RED/reth0``."""
    return f"{key[0]}/{key[1]}"


def _colours(boxes: Iterable[Box]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    spare = iter(PALETTE * 100)
    for box in boxes:
        word = box.label.lower()
        if box.role == "host":
            out[box.label] = (HOST_FILL, "#555555")
        elif word in SHADES:
            out[box.label] = (SHADES[word], BORDERS.get(word, "#555555"))
        else:
            out[box.label] = (next(spare), "#555555")
    return out


def _esc(text: str) -> str:
    """Text for a Graphviz HTML-like label."""
    return html.escape(text, quote=False)


def _state_text(iface: Interface) -> str | None:
    return None if iface.state in (None, "up") else iface.state


def _iface_label(iface: Interface) -> str:
    lines = [f"<b>{_esc(iface.name)}</b>"]
    if iface.kind == "bridge":
        lines[0] += ' <font point-size="9">(bridge)</font>'
    if iface.vni is not None:
        lines[0] += f' <font point-size="9">(VXLAN {iface.vni})</font>'
    if iface.detail:
        lines[0] += f' <font point-size="9">({_esc(iface.detail)})</font>'
    lines += [f'<font point-size="10">{_esc(a)}</font>' for a in iface.addresses]
    if iface.mac:
        lines.append(f'<font point-size="8" color="#666666">{_esc(iface.mac)}</font>')
    state = _state_text(iface)
    if state:
        lines.append(f'<font point-size="9" color="#b03a2e"><i>{state}</i></font>')
    return "<" + "<br/>".join(lines) + ">"


def _box_label(box: Box) -> str:
    sub = box.title + (" (missing)" if box.missing else "")
    return f'<<b>{_esc(box.label)}</b><br/><font point-size="10">{_esc(sub)}</font>>'


def to_graphviz(picture: Picture) -> graphviz.Graph:
    """A ``graphviz.Graph``: a cluster per namespace, a node per interface, veth pairs and bridge ports as edges.

    Interfaces and links that cannot pass traffic (live: down, no carrier,
    missing) are drawn dashed and grey.
    """
    title = f"lab {picture.lab}" + (" (live)" if picture.live else "")
    g = graphviz.Graph(
        name=picture.lab,
        graph_attr={
            "label": title,
            "labelloc": "t",
            "fontname": FONT,
            "fontsize": "16",
            "rankdir": "TB",
            "nodesep": "0.5",
            "ranksep": "0.7",
            "newrank": "true",
            "bgcolor": "white",
        },
        node_attr={
            "fontname": FONT,
            "fontsize": "12",
            "shape": "box",
            "style": "rounded,filled",
            "margin": "0.15,0.06",
        },
        edge_attr={"fontname": FONT, "fontsize": "10", "color": "#333333"},
    )
    colours = _colours(picture.boxes)
    for i, box in enumerate(picture.boxes):
        fill, border = colours[box.label]
        with g.subgraph(name=f"cluster_{i}") as c:
            c.attr(
                label=_box_label(box),
                style="rounded,filled" + (",dashed" if box.missing else ""),
                fillcolor=fill,
                color=GREY if box.missing else border,
                penwidth="1.5",
                fontname=FONT,
                fontsize="13",
                margin="14",
            )
            if not box.interfaces:
                c.node(f"{box.label}/", label="(no interfaces)", shape="plaintext", style="", fontcolor="#777777")
            for iface in box.interfaces:
                attrs = {"label": _iface_label(iface), "fillcolor": "white", "color": "#333333"}
                if iface.kind == "bridge":
                    attrs.update(shape="box", style="filled", fillcolor="#fff3c4", height="0.5", penwidth="1.5")
                if not iface.passes:
                    attrs.update(
                        style=attrs.get("style", "rounded,filled") + ",dashed", color=GREY, fontcolor="#777777"
                    )
                c.node(node_id(iface.key), **attrs)
            # The ports of each bridge sit above it, the bridge below them.
            for iface in box.interfaces:
                if iface.master and any(b.name == iface.master for b in box.interfaces):
                    bridge = next(b for b in box.interfaces if b.name == iface.master)
                    attrs = {"penwidth": "1.2"}
                    if not (iface.passes and bridge.passes):
                        attrs.update(style="dashed", color=GREY)
                    c.edge(node_id(iface.key), node_id(bridge.key), **attrs)
    roles = {box.label: box.role for box in picture.boxes}
    for wire in picture.wires:
        a, b = wire.a, wire.b
        if roles.get(a[0]) == HOST and roles.get(b[0]) != HOST:
            a, b = b, a  # the node's end above, the host's end below
        ia, ib = picture.interface(a), picture.interface(b)
        attrs = {"penwidth": "2.2", "tooltip": f"{wire.label or 'veth'} {a[0]}:{a[1]} - {b[0]}:{b[1]}"}
        if wire.label:
            attrs.update(label=wire.label, style="dotted", penwidth="1.6")
        if HOST not in (roles.get(a[0]), roles.get(b[0])):
            attrs["constraint"] = "false"  # two nodes side by side
        if ia is None or ib is None or not (ia.passes and ib.passes):
            attrs.update(style="dashed", color=GREY)
        g.edge(node_id(a), node_id(b), **attrs)
    for tunnel in picture.tunnels:
        ia, ib = picture.interface(tunnel.a), picture.interface(tunnel.b)
        up = ia is not None and ib is not None and ia.passes and ib.passes
        g.edge(
            node_id(tunnel.a),
            node_id(tunnel.b),
            label=f"VXLAN {tunnel.vni}",
            style="dashed",
            color=OVERLAY if up else GREY,
            fontcolor=OVERLAY if up else "#777777",
            penwidth="1.8",
            constraint="false",  # the hosts side by side, the overlay across them
            tooltip=f"VXLAN {tunnel.vni} {tunnel.a[0]}:{tunnel.a[1]} - {tunnel.b[0]}:{tunnel.b[1]}",
        )
    return g


def _mermaid_text(text: str) -> str:
    return html.escape(text, quote=False).replace('"', "#quot;")


def to_mermaid(picture: Picture) -> str:
    """Mermaid flowchart text: a subgraph per namespace, veth pairs as thick links, down ones dotted.

    VXLAN tunnels are dotted links labelled ``VXLAN <vni>``.
    """
    ids: dict[tuple[str, str], str] = {}
    used: set[str] = set()

    def ident(prefix: str, *parts: str) -> str:
        base = prefix + "_".join(re.sub(r"\W", "_", p) for p in parts)
        name, n = base, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        return name

    title = f"lab {picture.lab}" + (" (live)" if picture.live else "")
    lines = ["---", f"title: {title}", "---", "flowchart TB"]
    down: list[str] = []
    for box in picture.boxes:
        sub = box.title + (" (missing)" if box.missing else "")
        lines.append(
            f'  subgraph {ident("ns_", box.label)}["<b>{_mermaid_text(box.label)}</b><br/>{_mermaid_text(sub)}"]'
        )
        if not box.interfaces:
            lines.append(f'    {ident("empty_", box.label)}["<i>(no interfaces)</i>"]')
        for iface in box.interfaces:
            ids[iface.key] = ident("", iface.ns, iface.name)
            name = f"<b>{_mermaid_text(iface.name)}</b>" + (f" (VXLAN {iface.vni})" if iface.vni is not None else "")
            name += f" ({_mermaid_text(iface.detail)})" if iface.detail else ""
            text = [name, *iface.addresses]
            if iface.mac:
                text.append(iface.mac)
            state = _state_text(iface)
            if state:
                text.append(f"<i>{state}</i>")
            opening, closing = ("[[", "]]") if iface.kind == "bridge" else ("(", ")")
            lines.append(f'    {ids[iface.key]}{opening}"{"<br/>".join(text)}"{closing}')
            if not iface.passes:
                down.append(ids[iface.key])
        lines.append("  end")
    roles = {box.label: box.role for box in picture.boxes}
    for wire in picture.wires:
        a, b = wire.a, wire.b
        if roles.get(a[0]) == HOST and roles.get(b[0]) != HOST:
            a, b = b, a
        ia, ib = picture.interface(a), picture.interface(b)
        ok = ia is not None and ib is not None and ia.passes and ib.passes
        if wire.label:
            lines.append(f"  {ids[a]} -.-|{_mermaid_text(wire.label)}| {ids[b]}")
        else:
            lines.append(f"  {ids[a]} {'===' if ok else '-.-'} {ids[b]}")
    for box in picture.boxes:
        names = {i.name: i for i in box.interfaces}
        for iface in box.interfaces:
            bridge = names.get(iface.master) if iface.master else None
            if bridge is not None:
                ok = iface.passes and bridge.passes
                lines.append(f"  {ids[iface.key]} {'---' if ok else '-.-'} {ids[bridge.key]}")
    for tunnel in picture.tunnels:  # dotted and labelled, across the hosts
        lines.append(f"  {ids[tunnel.a]} -.-|VXLAN {tunnel.vni}| {ids[tunnel.b]}")
    if down:
        lines.append(f"  classDef down stroke-dasharray: 5 5,stroke:{GREY},color:#777777")
        lines.append(f"  class {','.join(down)} down")
    return "\n".join(lines) + "\n"


# -- output -----------------------------------------------------------------


def format_for(output: str | None, fmt: str | None = None) -> Format:
    """The output format: ``fmt`` if given, else from the suffix of ``output``; DOT for standard output."""
    if fmt:
        named = NAMED_FORMATS.get(fmt)
        if named is None:
            raise NsnetError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
        return named
    if output in (None, "-"):
        return "dot"
    suffix = Path(output).suffix.lower()
    if suffix not in SUFFIXES:
        raise NsnetError(f"cannot tell the format from {output!r}: name it .svg, .png, .dot or .mmd, or give --format")
    return SUFFIXES[suffix]


def render(picture: Picture, fmt: Format) -> bytes:
    """The picture in ``fmt``; SVG and PNG need the ``dot`` tool of graphviz."""
    if fmt == "mermaid":
        return to_mermaid(picture).encode()
    g = to_graphviz(picture)
    if fmt == "dot":
        return str(g.source).encode()
    if shutil.which("dot") is None:
        raise NsnetError(f"drawing {fmt.upper()} needs the `dot` tool: install graphviz: apt-get install graphviz")
    if fmt == "png":
        g.graph_attr["dpi"] = "144"
    try:
        data: bytes = g.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise NsnetError(
            f"drawing {fmt.upper()} needs the `dot` tool: install graphviz: apt-get install graphviz"
        ) from None
    except graphviz.CalledProcessError as exc:
        raise NsnetError(f"graphviz failed to draw the picture: {exc.stderr!r}") from None
    return data
