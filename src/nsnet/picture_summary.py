"""A large lab's picture made readable: the nodes that hang on the same bridge by one veth each are drawn
as one box that says how many they are, their names and their addresses (``--full`` draws them all)."""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from dataclasses import replace

from nsnet.picture import Box, Interface, Picture, Wire

LIMIT = 40
"""Pictures of more namespaces than this are summarized."""
GROUP = 4
"""Nodes on one bridge are drawn as one box from this many on."""


def _natural(label: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", label)]


def _span(addresses: list[str]) -> str:
    ips = sorted({ipaddress.ip_interface(a).ip for a in addresses}, key=lambda ip: (ip.version, int(ip)))
    if not ips:
        return "no addresses"
    return str(ips[0]) if len(ips) == 1 else f"{ips[0]}-{ips[-1]}"


def _leaves(picture: Picture) -> dict[tuple[str, str], list[tuple[Box, Wire]]]:
    """Node boxes with a single wire, to a bridge port in another box, by that bridge (box label, bridge name)."""
    touching: dict[str, list[Wire]] = defaultdict(list)
    for wire in picture.wires:
        touching[wire.a[0]].append(wire)
        if wire.b[0] != wire.a[0]:
            touching[wire.b[0]].append(wire)
    groups: dict[tuple[str, str], list[tuple[Box, Wire]]] = defaultdict(list)
    for box in picture.boxes:
        wires = touching.get(box.label, [])
        if box.role != "node" or len(wires) != 1 or wires[0].label:
            continue
        wire = wires[0]
        far = wire.b if wire.a[0] == box.label else wire.a
        port = picture.interface(far)
        if far[0] != box.label and port is not None and port.master:
            groups[(far[0], port.master)].append((box, wire))
    return groups


def summarize(picture: Picture, limit: int = LIMIT) -> Picture:
    """``picture`` with the nodes on each bridge drawn as one box, if it has more than ``limit`` namespaces;
    :attr:`Picture.notes` says what was summarized."""
    if len(picture.boxes) <= limit:
        return picture
    gone_boxes: set[str] = set()
    gone_ports: set[tuple[str, str]] = set()
    boxes: list[Box] = []
    wires: list[Wire] = []
    notes: list[str] = []
    for (host, bridge), members in sorted(_leaves(picture).items()):
        if len(members) < GROUP:
            continue
        members.sort(key=lambda m: _natural(m[0].label))
        labels = [box.label for box, _ in members]
        addresses = [a for box, _ in members for i in box.interfaces for a in i.addresses]
        name = f"{labels[0]}..{labels[-1]}"
        text = f"{len(members)} nodes on {bridge}"
        iface = Interface(name, text, "summary", (_span(addresses),))
        boxes.append(Box(name, "", "node", (iface,), summary=f"{len(members)} nodes, one veth each"))
        wires.append(Wire(iface.key, (host, bridge)))
        gone_boxes.update(labels)
        gone_ports.update(w.b if w.a[0] == box.label else w.a for box, w in members)
        notes.append(f"{name}: {text} in {host}, {_span(addresses)}")
    if not notes:
        return picture
    kept = [
        replace(box, interfaces=tuple(i for i in box.interfaces if i.key not in gone_ports))
        for box in picture.boxes
        if box.label not in gone_boxes
    ]
    kept_wires = [w for w in picture.wires if w.a[0] not in gone_boxes and w.b[0] not in gone_boxes]
    nodes = [b for b in kept if b.role == "node"]
    hosts = [b for b in kept if b.role != "node"]
    notes.append("summarized: nodes hanging on one bridge by one veth are drawn as one box; --full draws every node")
    return replace(
        picture,
        boxes=tuple(nodes + boxes + hosts),
        wires=tuple(kept_wires + wires),
        notes=(*picture.notes, *notes),
    )
