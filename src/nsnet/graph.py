"""Drawing a lab: a :class:`~nsnet.picture.Picture` as Graphviz (DOT, SVG, PNG) or Mermaid.

The picture shows namespaces as boxes, interfaces in them, veth pairs as
wires; VXLAN devices of the same VNI and UDP port on different hosts are
joined by a dashed edge labelled ``VXLAN <vni>``: the overlay, drawn over the
underlay that carries it (whose switch and veth pairs are drawn like any other).

A picture is built from a topology (:func:`from_topology`) or from a live lab
(:func:`from_lab`), both in :mod:`nsnet.picture`. It is then drawn as a
``graphviz.Graph`` (:func:`to_graphviz`: DOT source, SVG, PNG) or as Mermaid
flowchart text (:func:`to_mermaid`, no graphviz needed). :func:`render` does
either by format.
"""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import graphviz

from nsnet.errors import NsnetError
from nsnet.model import HOST
from nsnet.picture import Box as Box
from nsnet.picture import Interface as Interface
from nsnet.picture import LinkState as LinkState
from nsnet.picture import Picture as Picture
from nsnet.picture import Tunnel as Tunnel
from nsnet.picture import Wire as Wire
from nsnet.picture import from_lab as from_lab
from nsnet.picture import from_topology as from_topology

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


FIREWALL = "#a04000"
"""The colour of firewall lines in a box."""
DROP = "#c0392b"
"""The colour of the mark where explain says the packet dies."""


def _box_label(box: Box) -> str:
    sub = box.title + (" (missing)" if box.missing else "")
    lines = [f"<b>{_esc(box.label)}</b>", f'<font point-size="10">{_esc(sub)}</font>']
    lines += [f'<font point-size="9" color="{FIREWALL}">{_esc(line)}</font>' for line in _wall(box)]
    if box.mark:
        lines.append(f'<font point-size="11" color="{DROP}"><b>✗ {_esc(box.mark)}</b></font>')
    return "<" + "<br/>".join(lines) + ">"


def _wall(box: Box) -> list[str]:
    return [f"firewall: {line}" if i == 0 else line for i, line in enumerate(box.firewall)]


def legend(picture: Picture) -> list[tuple[str, str]]:
    """What the picture's shapes mean, for those it has: (the shape, in words; what it stands for)."""
    ifaces = [i for box in picture.boxes for i in box.interfaces]
    rows = [("box", "a network namespace: a node, or the host (its title: the kernel's name)")]
    rows.append(("rounded white box", "an interface, its addresses (live: its MAC)"))
    if any(i.kind == "bridge" for i in ifaces):
        rows.append(("yellow box, thin lines", "a bridge, and the ports hanging on it"))
    if any(not w.label for w in picture.wires):
        rows.append(("thick line", "a veth pair: a cable between two namespaces"))
    if any(w.label for w in picture.wires):
        rows.append(("dotted line", "a link (macvlan, ipvlan, VXLAN) on its parent device"))
    if picture.tunnels:
        rows.append(("dashed purple line", "a VXLAN tunnel: the overlay, carried by the underlay"))
    if any(not i.passes for i in ifaces) or any(box.missing for box in picture.boxes):
        rows.append(("dashed grey", "down, no carrier or missing: no traffic passes"))
    if any(box.firewall for box in picture.boxes):
        rows.append(("brown text", "the firewall: filter policies that are not ACCEPT, nsnet's rules"))
    if any(box.summary for box in picture.boxes):
        rows.append(("one box for many", "nodes on one bridge, summed up (--full draws them all)"))
    if any(box.mark for box in picture.boxes):
        rows.append(("red ✗", "where explain says the packet dies, and why"))
    return rows


def _legend_label(picture: Picture) -> str:
    cells = ['<tr><td align="left" colspan="2"><b>legend</b></td></tr>']
    cells += [
        f'<tr><td align="left"><font point-size="9">{_esc(shape)}</font></td>'
        f'<td align="left"><font point-size="9">{_esc(meaning)}</font></td></tr>'
        for shape, meaning in legend(picture)
    ]
    cells += [
        f'<tr><td align="left" colspan="2"><font point-size="9"><i>{_esc(note)}</i></font></td></tr>'
        for note in picture.notes
    ]
    return '<<table border="0" cellborder="0" cellspacing="1">' + "".join(cells) + "</table>>"


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
        with g.subgraph(name=f"cluster_{i}") as c:
            _cluster(c, box, *colours[box.label])
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
    with g.subgraph(name="cluster_legend") as c:
        c.attr(label="", style="rounded", color="#cccccc", margin="8")
        c.node("legend", label=_legend_label(picture), shape="plaintext", style="")
    return g


def _cluster(c: graphviz.Graph, box: Box, fill: str, border: str) -> None:
    """A namespace's box: its interfaces, and its bridges below their ports."""
    c.attr(
        label=_box_label(box),
        style="rounded,filled" + (",dashed" if box.missing else ""),
        fillcolor=fill,
        color=GREY if box.missing else border,
        penwidth="1.5",
        fontname=FONT,
        fontsize="13",
        margin="14",
        # The host's title at its foot: the wires from the nodes above come in at its top.
        labelloc="b" if box.role == HOST else "t",
    )
    if box.mark:
        c.attr(color=DROP, penwidth="3")
    if not box.interfaces:
        c.node(f"{box.label}/", label="(no interfaces)", shape="plaintext", style="", fontcolor="#777777")
    for iface in box.interfaces:
        attrs = {"label": _iface_label(iface), "fillcolor": "white", "color": "#333333"}
        if iface.kind == "bridge":
            attrs.update(shape="box", style="filled", fillcolor="#fff3c4", height="0.5", penwidth="1.5")
        if not iface.passes:
            attrs.update(style=attrs.get("style", "rounded,filled") + ",dashed", color=GREY, fontcolor="#777777")
        c.node(node_id(iface.key), **attrs)
    # The ports of each bridge sit above it, the bridge below them.
    for iface in box.interfaces:
        if iface.master and any(b.name == iface.master for b in box.interfaces):
            bridge = next(b for b in box.interfaces if b.name == iface.master)
            attrs = {"penwidth": "1.2"}
            if not (iface.passes and bridge.passes):
                attrs.update(style="dashed", color=GREY)
            c.edge(node_id(iface.key), node_id(bridge.key), **attrs)


def _mermaid_text(text: str) -> str:
    return html.escape(text, quote=False).replace('"', "#quot;")


def to_mermaid(picture: Picture) -> str:
    """Mermaid flowchart text: a subgraph per namespace, veth pairs as thick links, down ones dotted.

    VXLAN tunnels are dotted links labelled ``VXLAN <vni>``.
    """
    idents = _Idents()
    title = f"lab {picture.lab}" + (" (live)" if picture.live else "")
    lines = ["---", f"title: {title}", "---", "flowchart TB"]
    down: list[str] = []
    for box in picture.boxes:
        lines += _mermaid_box(box, idents, down)
    ids = idents.of_interface
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
    lines += _mermaid_legend(picture, idents)
    if down:
        lines.append(f"  classDef down stroke-dasharray: 5 5,stroke:{GREY},color:#777777")
        lines.append(f"  class {','.join(down)} down")
    return "\n".join(lines) + "\n"


def _mermaid_legend(picture: Picture, idents: _Idents) -> list[str]:
    """The legend as a subgraph of its own, the notes under it; the box where the packet dies in red."""
    rows = [f"{_mermaid_text(shape)}: {_mermaid_text(meaning)}" for shape, meaning in legend(picture)]
    rows = [r.replace("thick line", "thick line (===)").replace("dotted line", "dotted line (-.-)") for r in rows]
    rows += [f"<i>{_mermaid_text(note)}</i>" for note in picture.notes]
    lines = ["  subgraph legend_box[legend]", f'    legend["{"<br/>".join(rows)}"]', "  end"]
    marked = [idents.of_box[box.label] for box in picture.boxes if box.mark]
    if marked:
        lines.append(f"  style {','.join(marked)} stroke:{DROP},stroke-width:3px")
    return lines


class _Idents:
    """Mermaid node names, each used once."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.of_interface: dict[tuple[str, str], str] = {}
        self.of_box: dict[str, str] = {}

    def __call__(self, prefix: str, *parts: str) -> str:
        base = prefix + "_".join(re.sub(r"\W", "_", p) for p in parts)
        name, n = base, 2
        while name in self.used:
            name, n = f"{base}_{n}", n + 1
        self.used.add(name)
        return name


def _mermaid_box(box: Box, ident: _Idents, down: list[str]) -> list[str]:
    """A namespace's subgraph and its interfaces (those that pass no traffic are added to ``down``)."""
    sub = box.title + (" (missing)" if box.missing else "")
    title = [f"<b>{_mermaid_text(box.label)}</b>", _mermaid_text(sub), *map(_mermaid_text, _wall(box))]
    if box.mark:
        title.append(f"✗ {_mermaid_text(box.mark)}")
    ident.of_box[box.label] = ident("ns_", box.label)
    lines = [f'  subgraph {ident.of_box[box.label]}["{"<br/>".join(title)}"]']
    if not box.interfaces:
        lines.append(f'    {ident("empty_", box.label)}["<i>(no interfaces)</i>"]')
    for iface in box.interfaces:
        node = ident.of_interface[iface.key] = ident("", iface.ns, iface.name)
        name = f"<b>{_mermaid_text(iface.name)}</b>" + (f" (VXLAN {iface.vni})" if iface.vni is not None else "")
        name += f" ({_mermaid_text(iface.detail)})" if iface.detail else ""
        text = [name, *iface.addresses]
        if iface.mac:
            text.append(iface.mac)
        state = _state_text(iface)
        if state:
            text.append(f"<i>{state}</i>")
        opening, closing = ("[[", "]]") if iface.kind == "bridge" else ("(", ")")
        lines.append(f'    {node}{opening}"{"<br/>".join(text)}"{closing}')
        if not iface.passes:
            down.append(node)
    lines.append("  end")
    return lines


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
