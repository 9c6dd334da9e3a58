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


def conclude(
    lab: str, src: str, dst: str, proto: str, legs: list[Leg], fix: Fix | None, size: int | None = None
) -> Explanation:
    """The explanation of a walk: its legs and the verdict they come to."""
    request = legs[0]
    if request.outcome == "left":  # a machine's share: the rest of the way is another machine's
        verdict = f"{src} -> {dst} ({proto}): {request.reason}"
        reachable = False
    elif request.outcome in ("dropped", "rejected", "unknown"):
        verdict = f"{src} cannot reach {dst} ({proto}): the request is {request.outcome}: {request.reason}"
        reachable = False
    elif request.outcome == "refused":
        reply_ok = len(legs) > 1 and legs[1].outcome == "delivered"
        verdict = f"{dst} is reachable from {src}, but {request.reason}" + (
            "" if reply_ok else f"; and the answer is lost: {legs[1].reason}"
        )
        reachable = False
    elif len(legs) > 1 and legs[1].outcome != "delivered":
        verdict = (
            f"{src} cannot reach {dst} ({proto}): the request arrives, "
            f"but the {legs[1].title.split(' ')[0]} reply is {legs[1].outcome}: {legs[1].reason}"
        )
        reachable = False
    else:
        verdict = f"{src} reaches {dst} ({proto}), and the answer comes back"
        reachable = True
    return Explanation(lab, src, dst, proto, legs, reachable, verdict, fix, size)
