"""The data explain works on and produces: a snapshot of the lab, steps, legs, the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

from nsnet.views import NamespaceView


@dataclass(frozen=True)
class Space:
    """One namespace as explain sees it: the inspect view plus listening sockets."""

    view: NamespaceView
    listening: frozenset[tuple[str, int]] = frozenset()
    """(``tcp``/``udp``, port) of sockets listening on any address."""

    @property
    def node(self) -> str:
        return self.view.node


@dataclass(frozen=True)
class Snapshot:
    """Every namespace of a lab, keyed by node label (``host`` for the lab's host)."""

    lab: str
    spaces: dict[str, Space]
    planned: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """The addresses the lab's topology gives each node's interfaces (node -> interface -> CIDRs), where known."""
    masters: dict[str, dict[str, str]] = field(default_factory=dict)
    """The bridge the lab's topology puts each bridge port on (node -> interface -> bridge), where known."""
    machine: str | None = None
    """A machine's share of a lab across machines: the machine this is (see :mod:`nsnet.machines`)."""
    remote: dict[str, str] = field(default_factory=dict)
    """A machine's share: the other machines, by VTEP address."""
    owners: dict[str, str] = field(default_factory=dict)
    """A machine's share: the overlay addresses of the other machines' nodes (IP -> ``NODE:IFACE``)."""


@dataclass(frozen=True)
class Step:
    """One thing that happens to the packet, in one namespace."""

    node: str
    what: str
    """``route``, ``neigh``, ``link``, ``veth``, ``bridge``, ``netfilter``, ``deliver``, ``socket``, ``mtu``,
    ``vxlan`` (a VXLAN device: its forwarding entries, the crossing of the underlay) or ``miss`` (an L2/L3 miss
    a controller is to answer)."""
    text: str
    ok: bool = True


@dataclass
class Leg:
    """The packet's way in one direction."""

    title: str
    src: str
    dst: str
    source: str = ""
    """The source address the packet leaves with."""
    steps: list[Step] = field(default_factory=list)
    outcome: str = "delivered"
    """``delivered``, ``dropped``, ``rejected``, ``unknown``, or ``left`` (this machine, for another's share)."""
    reason: str = ""

    def add(self, node: str, what: str, text: str, ok: bool = True) -> None:
        self.steps.append(Step(node, what, text, ok))


@dataclass(frozen=True)
class Fix:
    """A concrete change that would let the packet through."""

    summary: str
    command: str | None = None
    """Shell command(s), run as root."""
    topology: str | None = None
    """The same change, in the topology file."""


@dataclass
class Explanation:
    """Where a packet goes and why: the request, the reply, the verdict and a fix."""

    lab: str
    src: str
    dst: str
    proto: str
    legs: list[Leg]
    reachable: bool
    verdict: str
    fix: Fix | None = None
    size: int | None = None
    """The request's IP length in bytes, when asked for (``--size``)."""
