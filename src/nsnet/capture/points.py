"""Capture points: ``NODE:IFACE`` (or ``NODE``, all its interfaces), resolved in a lab, with short tags.

Tags are the seed's: the first letter of the node (``R`` for RED, ``B`` for
BLUE) and ``~`` for the lab's host. Two nodes with the same first letter get
as many letters as tell them apart (``RE``, ``RO``); several interfaces of one
node are numbered in the order given (``~1``, ``~2``).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from nsnet.engine.directory import lab_namespaces
from nsnet.errors import LabNotFoundError, NsnetError
from nsnet.kernel import readers
from nsnet.kernel.netlink import Netlink
from nsnet.kernel.rtnl import LinkMsg
from nsnet.model import HOST, ROOT_NS, link_mark
from nsnet.names import no_node


@dataclass(frozen=True)
class Point:
    """Where to capture: an interface of a node (``host`` is the lab's host)."""

    node: str
    iface: str
    netns: str = ""
    tag: str = ""

    @property
    def name(self) -> str:
        return f"{self.node}:{self.iface}" if self.iface else self.node

    @classmethod
    def from_name(cls, name: str) -> Point:
        """A point as a capture file names it (``RED:reth0``)."""
        node, _, iface = name.rpartition(":") if ":" in name else (name, "", "")
        return cls(node=node, iface=iface)


POINT_RE = re.compile(r"^[A-Za-z0-9][\w.-]*:[\w.@-]+$")
"""What a capture point looks like: NODE:IFACE."""


def split_args(args: Sequence[str], nodes: set[str]) -> tuple[list[str], str]:
    """Split ``capture``'s arguments after the lab into point specs and a filter expression.

    Points come first: ``NODE:IFACE`` or ``NODE`` where NODE is a node of
    the lab (or ``host``); the first argument that is not one starts the
    filter, which runs to the end (one quoted argument or several words, as
    tcpdump takes it). A bare ``host`` followed by an address starts the
    filter (``host 11.11.11.3``); ``host:br0`` is never ambiguous.
    """

    def is_point(arg: str) -> bool:
        node, sep, iface = arg.partition(":")
        return bool(sep and iface and node in nodes) or (not sep and arg in nodes)

    specs: list[str] = []
    i = 0
    while i < len(args) and is_point(args[i]):
        if args[i] == HOST and i + 1 < len(args) and _address(args[i + 1]):
            break
        specs.append(args[i])
        i += 1
    if i < len(args):
        _refuse_unknown_point(args[i], nodes)
    return specs, " ".join(args[i:]).strip()


def _refuse_unknown_point(word: str, nodes: set[str]) -> None:
    """A ``NODE:IFACE`` word whose node the lab lacks is a mistyped point, not the start of a filter."""
    node, sep, iface = word.partition(":")
    if not (sep and iface and POINT_RE.match(word)) or _address(word):
        return
    close = difflib.get_close_matches(node, sorted(nodes), n=1)
    hint = f" (did you mean {close[0]}:{iface}?)" if close else ""
    raise LabNotFoundError(f"{word!r}: the lab has no node {node!r}{hint}; nodes: {', '.join(sorted(nodes))}")


def _address(word: str) -> bool:
    """Whether a filter word names a host (``11.11.11.3``, ``fd00::3``, ``web.example``)."""
    try:
        ipaddress.ip_address(word)
    except ValueError:
        return "." in word
    return True


def resolve(lab: str, specs: Sequence[str]) -> list[Point]:
    """The capture points of ``lab`` named by ``specs``, with their namespaces and tags.

    No spec: every interface of every node but ``lo``, and the host's bridges
    (the seed's three points on lab 2: ``RED:reth0``, ``BLUE:beth0``, ``host:br0``).
    """
    spaces = lab_namespaces(lab)
    by_label = {label: ns for ns, label in spaces.items()}
    points: list[Point] = []
    with Netlink() as nl:
        cache: dict[str, list[LinkMsg]] = {}

        def links(ns: str) -> list[LinkMsg]:
            if ns not in cache:
                found = nl.link_msgs(ns)
                if ns == ROOT_NS:  # the machine's own interfaces are not the lab's
                    found = [link for link in found if link.alias == link_mark(lab)]
                cache[ns] = found
            return cache[ns]

        def interfaces(node: str, ns: str, bridges_only: bool = False) -> list[Point]:
            return [
                Point(node, link.name, ns)
                for link in links(ns)
                if readers.link_kind(link) != "loopback" and (not bridges_only or link.kind == "bridge")
            ]

        if not specs:
            for ns, label in spaces.items():
                points += interfaces(label, ns, bridges_only=label == HOST)
            if not points:
                raise NsnetError(f"lab {lab!r} has no interface to capture on but lo: name one, e.g. NODE:lo")
        for spec in specs:
            node, _, iface = spec.partition(":")
            if node not in by_label:
                raise LabNotFoundError(no_node(lab, node, sorted(by_label)))
            ns = by_label[node]
            if not iface:
                found = interfaces(node, ns)
                if not found:
                    raise NsnetError(f"node {node} has no interface but lo: write {node}:lo to capture there")
                points += found
                continue
            names = [link.name for link in links(ns)]
            if ns == ROOT_NS and iface not in names and iface in {link.name for link in nl.link_msgs(ns)}:
                names.append(iface)  # named explicitly: a machine's own interface (its uplink, its underlay) too
            if iface not in names:
                raise LabNotFoundError(
                    f"node {node} of lab {lab!r} has no interface {iface!r}; interfaces: {', '.join(names) or 'none'}"
                )
            points.append(Point(node, iface, ns))
    unique: dict[tuple[str, str], Point] = {}
    for p in points:
        unique.setdefault((p.node, p.iface), p)
    return assign_tags(list(unique.values()))


def assign_tags(points: Sequence[Point]) -> list[Point]:
    """Short, unique tags: ``R``, ``B``, ``~``; longer prefixes where nodes share a letter; numbers per interface."""
    nodes = list(dict.fromkeys(p.node for p in points))
    base: dict[str, str] = {}
    others = [n for n in nodes if n != HOST]
    for node in others:
        upper = node.upper()
        for size in range(1, len(node) + 1):
            prefix = upper[:size]
            if not any(o != node and o.upper()[:size] == prefix for o in others) and prefix != "~":
                base[node] = prefix
                break
        else:
            base[node] = node
    if HOST in nodes:
        base[HOST] = "~"
    count = {n: sum(1 for p in points if p.node == n) for n in nodes}
    seen: dict[str, int] = {}
    out = []
    for p in points:
        tag = base[p.node]
        if count[p.node] > 1:
            seen[p.node] = seen.get(p.node, 0) + 1
            tag += str(seen[p.node])
        out.append(replace(p, tag=tag))
    # Numbered tags could meet a node's name (node "R1" next to RED's second interface): fall back to names.
    if len({p.tag for p in out}) != len(out):
        out = [replace(p, tag=p.name) for p in out]
    return out
