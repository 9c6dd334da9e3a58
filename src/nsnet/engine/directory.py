"""The running-lab directory: which labs are up, their namespaces and nodes, read from their journals.

Every live reader (inspect, watch, reach, capture, graph, the web view) finds a
lab here; nothing in it writes to the kernel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from nsnet.engine.journal import Journal, scan
from nsnet.errors import LabNotFoundError, NsnetError
from nsnet.kernel import netns
from nsnet.model import HOST, ROOT_NS, Topology
from nsnet.names import no_node


def journal_of(lab: str) -> Journal:
    """The journal of ``lab``; :class:`LabNotFoundError` if it is not up."""
    journal = Journal.load(lab)
    if journal is None:
        raise LabNotFoundError(f"no lab named {lab!r} is up (see `nsnet ls`)")
    return journal


def state_of(lab: str) -> str:
    """In words, what state ``lab`` is in now (after an interrupted ``up`` or ``down``)."""
    try:
        journal = Journal.load(lab)
    except NsnetError as exc:
        return str(exc)
    if journal is None:
        return f"lab {lab} is not up (nothing of it was created, or all of it is removed)"
    there = [ns for ns in journal.namespaces if netns.exists(ns)]
    built = {"applying": "partly built", "removing": "partly removed", "up": "up"}.get(journal.status, journal.status)
    return f"lab {lab} is {built} (namespaces in place: {len(there)} of {len(journal.namespaces)})"


@dataclass(frozen=True)
class LabInfo:
    """A lab nsnet knows about (``nsnet ls``)."""

    name: str
    status: str
    source: str | None
    host: str
    nodes: dict[str, str]
    """Logical node name -> kernel namespace name."""
    missing: list[str]
    """Namespaces the journal lists that no longer exist."""
    problem: str | None = None
    """Why the lab's journal cannot be read (status ``unreadable``), if it cannot."""


def labs() -> list[LabInfo]:
    """Every lab that is up (or half-built), from the journals; a lab whose journal cannot be
    read is listed as ``unreadable``, with why, and does not hide the others."""
    good, bad = scan()
    out = [LabInfo(lab, "unreadable", None, "", {}, [], problem) for lab, problem in bad.items()]
    for j in good:
        host = "root" if j.host_mode == "root" else next((ns for ns, lbl in j.namespaces.items() if lbl == HOST), "")
        if j.hosts:
            host = ", ".join(ns for ns, lbl in j.namespaces.items() if lbl in j.hosts)
        nodes = {lbl: ns for ns, lbl in j.namespaces.items() if lbl != HOST and lbl not in j.hosts}
        missing = [ns for ns in j.namespaces if not netns.exists(ns)]
        out.append(LabInfo(j.lab, j.status, j.source, host, nodes, missing))
    return sorted(out, key=lambda info: info.name)


def lab_namespaces(lab: str) -> dict[str, str]:
    """Kernel namespace -> node label for every namespace of ``lab`` that exists (host last)."""
    journal = journal_of(lab)
    hosts = {HOST, *journal.hosts}
    spaces = {ns: label for ns, label in journal.namespaces.items() if netns.exists(ns) and label not in hosts}
    spaces.update({ns: label for ns, label in journal.namespaces.items() if netns.exists(ns) and label in hosts})
    if journal.host_mode == "root":
        spaces[ROOT_NS] = HOST
    return spaces


def lab_topology(lab: str) -> Topology | None:
    """The topology file ``lab`` was last brought up from, loaded again (None if it is gone)."""
    from nsnet.topology.cache import load  # the loader (and pydantic) only where a file is read

    journal = journal_of(lab)
    if not journal.source or not os.path.isfile(journal.source):
        return None
    if journal.machine:  # a machine's share of a lab across machines: what this machine has of it
        from nsnet.machines.local import share_of

        return share_of(load(journal.source), journal.machine)
    return load(journal.source)


def host_labels(lab: str) -> set[str]:
    """The labels of ``lab``'s host namespaces: ``host``, or the hosts and underlay of a multi-host lab."""
    return set(journal_of(lab).hosts) or {HOST}


def namespace_of(lab: str, node: str) -> str:
    """Kernel namespace of ``node`` (or ``host``) in ``lab``."""
    journal = journal_of(lab)
    if node == HOST and journal.host_mode == "root":
        return ROOT_NS
    for ns, label in journal.namespaces.items():
        if label == node:
            return ns
    known = sorted(set(journal.namespaces.values()) | ({HOST} if not journal.hosts else set()))
    raise LabNotFoundError(no_node(lab, node, known))


def gone(lab: str) -> list[str]:
    """In words, each namespace of ``lab`` that was deleted outside nsnet (``up`` makes it again)."""
    journal = journal_of(lab)
    return [
        f"node {label}'s namespace {ns} is gone (deleted outside nsnet): {up_again(journal)} makes it again"
        for ns, label in journal.namespaces.items()
        if not netns.exists(ns)
    ]


def up_again(journal: Journal) -> str:
    """The ``nsnet up`` command that brings the journal's lab in line with its file again, quoted."""
    if not journal.source:
        return "`nsnet up` of the lab's file"
    rename = f" --name {journal.lab}" if journal.topology and journal.topology != journal.lab else ""
    return f"`nsnet up {journal.source}{rename}`"
