"""Read a lab into a :class:`Snapshot` for explain: inspect's view plus listening sockets."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict
from typing import Any

from nsnet.engine.journal import Journal
from nsnet.errors import NsnetError
from nsnet.explain.verdict import Snapshot, Space
from nsnet.inspect import inspect
from nsnet.kernel import netns
from nsnet.model import Topology
from nsnet.topology.loader import load
from nsnet.views import NamespaceView, from_dict

_PROC = {"tcp": ("/proc/net/tcp", "/proc/net/tcp6"), "udp": ("/proc/net/udp", "/proc/net/udp6")}
_LISTEN = "0A"


def listening(ns: str) -> frozenset[tuple[str, int]]:
    """(protocol, port) of TCP sockets listening and UDP sockets bound in ``ns``."""
    found: set[tuple[str, int]] = set()
    with netns.entered(ns):
        for proto, files in _PROC.items():
            for path in files:
                try:
                    with open(path) as f:
                        lines = f.readlines()[1:]
                except OSError:
                    continue
                for line in lines:
                    fields = line.split()
                    if len(fields) < 4 or (proto == "tcp" and fields[3] != _LISTEN):
                        continue
                    found.add((proto, int(fields[1].rsplit(":", 1)[1], 16)))
    return frozenset(found)


def snapshot(lab: str) -> Snapshot:
    """Everything explain needs to know about ``lab``, read from the kernel now."""
    view = inspect(lab)
    topology = _topology(lab)
    journal = Journal.load(lab)
    machine = journal.machine if journal else None
    whole, topology = (topology, _share(topology, machine)) if machine and topology else (None, topology)
    return Snapshot(
        lab=lab,
        spaces={v.node: Space(view=v, listening=listening(v.netns)) for v in view.namespaces},
        planned=planned(lab, topology),
        masters=planned_masters(topology),
        machine=machine,
        remote={m.address: n for n, m in whole.machines.items() if n != machine} if whole else {},
        owners=_owners(whole, machine) if whole else {},
    )


def _share(topology: Topology, machine: str) -> Topology | None:
    from nsnet.machines.share import share

    try:
        return share(topology, machine, topology.overlay.mtu if topology.overlay else 1500)
    except NsnetError:
        return None


def _owners(topology: Topology, machine: str | None) -> dict[str, str]:
    """The overlay addresses of the nodes on the other machines: IP -> ``NODE:IFACE on machine M``."""
    from nsnet.machines.share import placement

    try:
        where = placement(topology)
    except NsnetError:
        return {}
    return {
        str(ipaddress.ip_interface(cidr).ip): f"{node}:{name} on machine {host}"
        for node, host in where.items()
        if host != machine
        for name, link in topology.namespaces[node].links.items()
        for cidr in link.addresses
    }


def _topology(lab: str) -> Topology | None:
    """The lab's topology, read from its file again (None if the file is gone or invalid)."""
    journal = Journal.load(lab)
    if journal is None or not journal.source:
        return None
    try:
        return load(journal.source)
    except (NsnetError, OSError):
        return None


def planned(lab: str, topology: Topology | None = None) -> dict[str, dict[str, list[str]]]:
    """The addresses the lab's topology file gives each interface (empty if the file is gone or invalid)."""
    topology = topology or _topology(lab)
    if topology is None:
        return {}
    return {
        space.label: {name: sorted(link.addresses) for name, link in space.links.items() if link.addresses}
        for space in topology.namespaces.values()
    }


def planned_masters(topology: Topology | None) -> dict[str, dict[str, str]]:
    """The bridge the topology puts each port on (node -> interface -> bridge)."""
    if topology is None:
        return {}
    return {
        space.label: {name: link.master for name, link in space.links.items() if link.master}
        for space in topology.namespaces.values()
        if any(link.master for link in space.links.values())
    }


def to_json(snap: Snapshot) -> dict[str, Any]:
    """A snapshot as plain data (``from_json`` reads it back): explain without root, on saved state."""
    data: dict[str, Any] = {
        "lab": snap.lab,
        "spaces": [{"view": _view(s.view), "listening": sorted(s.listening)} for s in snap.spaces.values()],
    }
    if snap.planned:
        data["planned"] = snap.planned
    if snap.masters:
        data["masters"] = snap.masters
    if snap.machine:
        data.update(machine=snap.machine, remote=snap.remote, owners=snap.owners)
    return data


def _view(view: NamespaceView) -> dict[str, Any]:
    data = asdict(view)
    # Not read (or not a bridge port): saved as before these were known, so older snapshots round-trip.
    for key in ("vxlans", "nftables", "rules"):
        if data.get(key) is None:
            data.pop(key, None)
    for link in data.get("links") or []:
        if link.get("port") is None:
            link.pop("port", None)
    return data


def from_json(data: dict[str, Any]) -> Snapshot:
    spaces = {}
    for item in data["spaces"]:
        view = from_dict(NamespaceView, item["view"])
        spaces[view.node] = Space(view=view, listening=frozenset((p, int(n)) for p, n in item["listening"]))
    return Snapshot(
        lab=data["lab"],
        spaces=spaces,
        planned=data.get("planned") or {},
        masters=data.get("masters") or {},
        machine=data.get("machine"),
        remote=data.get("remote") or {},
        owners=data.get("owners") or {},
    )
