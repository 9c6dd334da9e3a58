"""A machine's share, on the machine itself: ``nsnet up/down/plan FILE --machine A``.

The share (:mod:`nsnet.machines.share`) is built like a ``host: root`` lab
under the lab's own name. The topology file a driver streams in is kept in
the state directory (``machines/<lab>.yaml``): the share's journal names it,
so that ``down``, ``inspect``, ``explain`` and ``overlay serve`` find the
lab's whole topology again; ``down`` removes it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import replace
from pathlib import Path

from nsnet import statedir
from nsnet.engine import lifecycle, preflight
from nsnet.engine.directory import journal_of, lab_namespaces
from nsnet.engine.journal import Journal, check_lab_name
from nsnet.errors import NsnetError
from nsnet.kernel import readers
from nsnet.kernel.netlink import Netlink
from nsnet.machines.share import machine_view, share
from nsnet.model import ROOT_NS, Machine, Topology
from nsnet.overlay.endpoints import HostView
from nsnet.plan.actions import Plan


def underlay_mtu(machine: Machine) -> int:
    """The MTU of ``machine``'s underlay interface, here; :class:`NsnetError` unless it exists with its address."""
    iface = machine.interface
    try:
        index = socket.if_nametoindex(iface)
        mtu = int(Path(f"/sys/class/net/{iface}/mtu").read_text())
    except OSError:
        raise NsnetError(
            f"machine {machine.name}'s underlay interface {iface} is not on this machine: "
            f"is this machine {machine.name}? (machines: underlay.interface)"
        ) from None
    with Netlink() as nl:
        mine = {a.local or a.address for a in readers.address_msgs(nl, ROOT_NS) if a.index == index}
    if machine.address not in mine:
        raise NsnetError(
            f"machine {machine.name}'s underlay address {machine.address} is not on {iface} here "
            f"({', '.join(sorted(a for a in mine if a)) or 'no address'}): is this machine {machine.name}?"
        )
    return mtu


def share_of(topology: Topology, machine: str) -> Topology:
    """``machine``'s share of ``topology``, for this machine's underlay interface as it is now."""
    if machine not in topology.machines:
        known = ", ".join(topology.machines) or "none: the file has no machines:"
        raise NsnetError(f"lab {topology.name} has no machine {machine!r} (machines: {known})")
    return share(topology, machine, underlay_mtu(topology.machines[machine]))


def stored(lab: str) -> Path:
    """Where the topology file of ``lab`` streamed in by a driver is kept."""
    check_lab_name(lab)
    return statedir.STATE_DIR / "machines" / f"{lab}.yaml"


def store(lab: str, text: str) -> Path:
    """Keep ``text`` (a topology file) as ``lab``'s, atomically; its path."""
    path = stored(lab)
    statedir.directory("machines", 0o755)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    with open(statedir.open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def up(topology: Topology, machine: str, lab: str | None = None, **hooks: object) -> Plan:
    """Bring ``machine``'s share of ``topology`` up here (``hooks``: those of :func:`nsnet.engine.lifecycle.up`)."""
    preflight.require_root()
    part = share_of(topology, machine)
    return lifecycle.up(part, lab, **hooks)  # type: ignore[arg-type]


def plan(topology: Topology, machine: str, lab: str | None = None, fresh: bool = False) -> Plan:
    """What :func:`up` would do now."""
    if fresh:
        part = share(topology, machine, topology.overlay.mtu if topology.overlay else 1500)
    else:
        preflight.require_root("read this machine's underlay interface")
        part = share_of(topology, machine)
    return lifecycle.plan_up(part, lab, fresh=fresh)


def machine_of(lab: str) -> str | None:
    """The machine this is in ``lab`` (None: the lab is not a machine's share)."""
    journal = Journal.load(lab)
    return journal.machine if journal else None


def forget(lab: str) -> None:
    """After ``down``: the file a driver streamed in for ``lab`` goes too."""
    with contextlib.suppress(FileNotFoundError, NsnetError):
        stored(lab).unlink()


def check_machine(lab: str, machine: str) -> None:
    """:class:`NsnetError` unless ``lab`` is up here as ``machine``'s share."""
    journal = journal_of(lab)
    if journal.machine != machine:
        what = f"machine {journal.machine}'s share" if journal.machine else "a lab of this machine alone"
        raise NsnetError(f"lab {lab} is up here as {what}, not machine {machine}'s")


def machine_views(lab: str, machine: str) -> tuple[dict[str, HostView], str | None]:
    """What ``nsnet overlay serve LAB --machine M`` serves now: M's host view, and the lab's registry URL.

    Nothing (and no URL) while the lab is not up here as M's share: the controller waits for it.
    """
    journal = Journal.load(lab)
    if journal is None or journal.machine != machine or not journal.source or not os.path.isfile(journal.source):
        return {}, None
    from nsnet.topology.cache import load  # pydantic only where a file is read

    topology = load(journal.source)
    if machine not in topology.machines or topology.overlay is None:
        return {}, None
    built = set(lab_namespaces(lab).values())
    view = machine_view(topology, machine)
    view = replace(view, local=tuple(e for e in view.local if e.node in built))
    return {machine: view}, topology.overlay.registry
