"""Where the page draws things: a lab's :class:`~nsnet.picture.Picture` with positions, as plain JSON.

The tutorial's picture: the nodes' boxes in rows above, the host's box below
with its bridges, every interface a card in its box, veth pairs as wires.
Boxes of many interfaces wrap them onto several rows, and many nodes wrap
onto several rows of boxes, so a lab of hundreds of nodes stays a grid the
browser can draw at once. Positions are computed here, in linear time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from nsnet.picture import Box, Interface, Picture
from nsnet.views import FdbView, LabView, NeighbourView

CARD_W = 236
CARD_H = 64
ENTRY_H = 13
ENTRY_LINES = 3
"""Neighbour or fdb entries shown under a card (more are counted)."""
CELL_H = CARD_H + ENTRY_H * (ENTRY_LINES + 1) + 6
GAP = 14
PAD = 12
TITLE_H = 42
BOX_GAP = 40
ROW_GAP = 90


def _columns(n: int) -> int:
    """Interfaces per row in a box: up to 4, then about as wide as tall."""
    if n <= 4:
        return max(n, 1)
    return max(4, math.ceil(math.sqrt(n * 2.5)))


def _order(box: Box) -> list[Interface]:
    """Bridges first, then their ports, then the rest, each in the topology's order."""
    bridges = [i for i in box.interfaces if i.kind == "bridge"]
    rest = [i for i in box.interfaces if i.kind != "bridge"]
    ports = sorted(rest, key=lambda i: (i.master is None, i.master or ""))
    return bridges + ports


def _box(box: Box) -> dict[str, Any]:
    ifaces = _order(box)
    cols = _columns(len(ifaces))
    rows = max(1, math.ceil(len(ifaces) / cols))
    width = PAD * 2 + cols * CARD_W + (cols - 1) * GAP
    height = TITLE_H + PAD + rows * CELL_H + (rows - 1) * GAP
    cards = []
    for k, iface in enumerate(ifaces):
        r, c = divmod(k, cols)
        cards.append(
            {
                "name": iface.name,
                "key": f"{box.label}/{iface.name}",
                "kind": iface.kind,
                "addresses": list(iface.addresses),
                "mac": iface.mac,
                "state": iface.state,
                "master": iface.master,
                "vni": iface.vni,
                "x": PAD + c * (CARD_W + GAP),
                "y": TITLE_H + r * (CELL_H + GAP),
                "w": CARD_W,
                "h": CARD_H,
            }
        )
    return {
        "label": box.label,
        "netns": box.netns,
        "title": box.title,
        "role": box.role,
        "missing": box.missing,
        "w": width,
        "h": height,
        "ifaces": cards,
    }


def _rows(boxes: list[dict[str, Any]], max_width: int) -> list[list[dict[str, Any]]]:
    rows: list[list[dict[str, Any]]] = [[]]
    width = 0
    for b in boxes:
        if rows[-1] and width + BOX_GAP + b["w"] > max_width:
            rows.append([])
            width = 0
        width += (BOX_GAP if rows[-1] else 0) + b["w"]
        rows[-1].append(b)
    return [r for r in rows if r]


def _place(rows: list[list[dict[str, Any]]], y: int, width: int) -> int:
    """Centre each row horizontally from ``y`` down; return the y below the last row."""
    for row in rows:
        row_w = sum(b["w"] for b in row) + BOX_GAP * (len(row) - 1)
        x = (width - row_w) // 2
        for b in row:
            b["x"], b["y"] = x, y
            x += b["w"] + BOX_GAP
        y += max(b["h"] for b in row) + ROW_GAP
    return y


def layout(picture: Picture, view: LabView | None = None) -> dict[str, Any]:
    """The picture as JSON with positions; ``view`` (neighbours and fdb, from inspect) fills the tables."""
    nodes = [_box(b) for b in picture.boxes if b.role != "host"]
    hosts = [_box(b) for b in picture.boxes if b.role == "host"]
    widest_host = max((b["w"] for b in hosts), default=0)
    per_row = max(2, math.ceil(math.sqrt(len(nodes) * 1.5))) if nodes else 1
    node_w = max((b["w"] for b in nodes), default=0)
    max_width = max(widest_host, per_row * (node_w + BOX_GAP))
    node_rows = _rows(nodes, max_width)
    host_rows = _rows(hosts, max_width)
    width = max(
        [sum(b["w"] for b in r) + BOX_GAP * (len(r) - 1) for r in node_rows + host_rows] or [CARD_W],
    )
    width += 2 * BOX_GAP
    y = _place(node_rows, BOX_GAP, width)
    height = _place(host_rows, y, width) - ROW_GAP + BOX_GAP
    return {
        "lab": picture.lab,
        "source": picture.source,
        "width": width,
        "height": max(height, 200),
        "boxes": nodes + hosts,
        "wires": [{"a": "/".join(w.a), "b": "/".join(w.b)} for w in picture.wires],
        "tunnels": [{"a": "/".join(t.a), "b": "/".join(t.b), "vni": t.vni} for t in picture.tunnels],
        **tables(view),
    }


def tables(view: LabView | None) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Neighbour entries per interface (``RED/reth0``) and fdb entries per bridge port (``host/reth1``)."""
    neigh: dict[str, list[dict[str, Any]]] = {}
    fdb: dict[str, list[dict[str, Any]]] = {}
    for ns in view.namespaces if view else ():
        for n in ns.neighbours or ():
            if n.dev:
                neigh.setdefault(f"{ns.node}/{n.dev}", []).append(neigh_entry(n))
        for f in _shown(ns.fdb or ()):
            fdb.setdefault(f"{ns.node}/{f.port}", []).append(
                {"mac": f.mac, "kind": f.kind, "bridge": f.bridge, "vlan": f.vlan}
            )
    return {"neigh": neigh, "fdb": fdb}


def neigh_entry(n: NeighbourView) -> dict[str, Any]:
    return {"address": n.address, "mac": n.mac, "state": "|".join(n.state) or "NONE"}


def _shown(entries: Iterable[FdbView]) -> Iterable[FdbView]:
    """The entries a bridge learned or was given: not the ports' own MACs, nor the devices' own multicast."""
    return (f for f in entries if f.port and f.mac and not f.self and f.kind != "permanent")
