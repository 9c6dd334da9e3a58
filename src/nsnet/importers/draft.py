"""What an importer builds: a topology in the file's own shape, and a note for every line it did not take."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from nsnet.names import NAME_RE
from nsnet.topology.values import IFNAME_MAX

NOTE_KINDS = ("kept", "unsupported", "not applicable")
"""``kept``: run as is in the node after ``up`` (``nsnet exec``); ``unsupported``: nsnet does not do it;
``not applicable``: meaningless without containers (images, memory, binds)."""


@dataclass(frozen=True)
class Note:
    """A line of the imported lab that is not in the topology, and why."""

    file: str
    line: int | None
    kind: str
    text: str
    why: str

    def describe(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.kind}: {self.text.strip()} ({self.why})"


@dataclass
class Node:
    """One namespace being built (a node, or the lab's host)."""

    interfaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    bridges: dict[str, dict[str, Any]] = field(default_factory=dict)
    routes: list[dict[str, Any]] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    policies: dict[str, str] = field(default_factory=dict)
    rules: list[dict[str, Any]] = field(default_factory=list)
    exec: list[str] = field(default_factory=list)
    """Commands kept as they are, run in the node after ``up``."""

    def interface(self, name: str) -> dict[str, Any]:
        """The interface ``name`` (a bridge if there is one by that name)."""
        if name in self.bridges:
            return self.bridges[name]
        return self.interfaces.setdefault(name, {})

    def add_address(self, name: str, cidr: str) -> None:
        addresses = self.interface(name).setdefault("addresses", [])
        if cidr not in addresses:
            addresses.append(cidr)

    def spec(self) -> dict[str, Any]:
        """The node as the topology file writes it (empty parts left out)."""
        out: dict[str, Any] = {}
        if self.bridges:
            out["bridges"] = {name: dict(b) for name, b in self.bridges.items()}
        if self.interfaces:
            out["interfaces"] = {name: dict(i) for name, i in self.interfaces.items()}
        if self.routes:
            out["routes"] = list(self.routes)
        if self.sysctls:
            out["sysctls"] = dict(self.sysctls)
        if self.policies or self.rules:
            out["firewall"] = {k: v for k, v in (("policies", self.policies), ("rules", self.rules)) if v}
        return out


@dataclass
class Draft:
    """A lab being imported: nodes, the host, links, notes."""

    name: str
    source: str
    nodes: dict[str, Node] = field(default_factory=dict)
    host: Node = field(default_factory=Node)
    links: list[list[str]] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    comment: list[str] = field(default_factory=list)
    """Lines written at the top of the topology file (the lab's description, author...)."""

    def node(self, name: str) -> Node:
        return self.nodes.setdefault(name, Node())

    def note(self, file: str, line: int | None, kind: str, text: str, why: str) -> None:
        self.notes.append(Note(file, line, kind, text, why))

    def topology(self) -> dict[str, Any]:
        """The topology as plain data (what ``nsnet validate`` reads)."""
        data: dict[str, Any] = {"name": self.name}
        host = self.host.spec()
        if host:
            data["host"] = host
        data["nodes"] = {name: node.spec() for name, node in self.nodes.items()}
        if self.links:
            data["links"] = [list(link) for link in self.links]
        return data

    def exec_commands(self) -> dict[str, list[str]]:
        return {name: list(node.exec) for name, node in self.nodes.items() if node.exec}


def lab_name(text: str) -> str:
    """A valid lab name from a directory or lab name (letters, digits, ``_.-``; at most 32)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "imported"
    if not name[0].isalnum():
        name = "lab" + name
    return name[:32]


def node_name(text: str) -> str | None:
    """``text`` if it is a valid node name, else None."""
    return text if NAME_RE.match(text) and len(text) <= 64 else None


def ifname(*parts: str) -> str:
    """An interface name from ``parts`` (joined, cleaned), shortened with a hash to fit Linux's 15 bytes."""
    text = re.sub(r"[^A-Za-z0-9_.-]+", "", "-".join(parts)) or "if"
    if len(text) <= IFNAME_MAX:
        return text
    digest = hashlib.sha1(text.encode()).hexdigest()[:4]
    return f"{text[: IFNAME_MAX - 5]}-{digest}"
