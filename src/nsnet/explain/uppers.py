"""The walk across links of their own kind (pure): a macvlan or ipvlan and the parent device it sits
on, and a dummy, which leads nowhere.

A macvlan in ``bridge`` mode hands a frame for a sibling (another macvlan on the
same parent) straight to it; anything else leaves through the parent, as if
the parent's namespace had sent it there. A frame that reaches the parent for a
macvlan's MAC is handed up to that macvlan. The parent's own namespace is never
reached through the parent: the kernel sends the frame out of the parent, not
up into its stack. ipvlan in ``l2`` mode is walked the same way; other ipvlan
modes and macvlan ``vepa``/``passthru`` are stated as beyond what explain follows.
"""

from __future__ import annotations

from nsnet.explain.base import Stop, WalkerBase, _has_address
from nsnet.explain.netfilter import Packet
from nsnet.explain.verdict import Fix, Leg, Space
from nsnet.views import LinkView

FOLLOWED = {("macvlan", "bridge"), ("macvlan", "private"), ("ipvlan", "l2")}
"""(kind, mode) the walk follows."""


class UpperMixin(WalkerBase):
    """The walker's way across macvlan, ipvlan and dummy links."""

    def _own_kind_out(self, leg: Leg, space: Space, link: LinkView, hop: str, pkt: Packet) -> tuple[Space, Packet]:
        """A packet sent out of ``link``, a dummy or a link on a parent, towards ``hop``."""
        node = space.node
        if link.kind == "dummy":
            leg.add(node, "dummy", f"{link.name} is a dummy: what is sent out of it goes nowhere", ok=False)
            raise Stop("dropped", f"{node}:{link.name} is a dummy interface, which leads nowhere")
        mode = link.mode or ""
        if link.parent is None or link.parent.node is None or (link.kind, mode) not in FOLLOWED:
            raise Stop(
                "unknown", f"{node}:{link.name} is a {link.kind} ({mode or 'unknown mode'}) explain cannot follow"
            )
        parent_space = self.snap.spaces.get(link.parent.node)
        parent = self._links(parent_space).get(link.parent.name or "") if parent_space else None
        if parent_space is None or parent is None:
            raise Stop("unknown", f"the parent of {node}:{link.name} is not in this lab")
        on = f"{parent_space.node}:{parent.name}"
        if parent.state != "up":
            leg.add(parent_space.node, "link", f"{parent.name}, the parent of {link.name}, is down", ok=False)
            raise Stop("dropped", f"{on}, which {node}:{link.name} sits on, is down")
        sibling = self._sibling(space, link, hop)
        if sibling is not None:
            far_space, far = sibling
            if link.kind == "macvlan" and "private" in (mode, far.mode):
                leg.add(node, link.kind, f"{link.name} and {far_space.node}:{far.name} are private macvlans", ok=False)
                raise Stop(
                    "dropped",
                    f"macvlans in private mode never talk to each other ({node}:{link.name}, "
                    f"{far_space.node}:{far.name} on {on})",
                    Fix("use mode: bridge on both", topology=f"set mode: bridge on {far.name} and {link.name}"),
                )
            leg.add(node, link.kind, f"out of {link.name} -> {far_space.node}:{far.name} ({link.kind} {mode} on {on})")
            if far.state != "up":
                leg.add(far_space.node, "link", f"{far.name} is down", ok=False)
                raise Stop("dropped", f"{far_space.node}:{far.name} is down")
            return self._receive(leg, far_space, far.name, pkt)
        if _has_address(parent_space, hop):
            leg.add(node, link.kind, f"{hop} is {parent_space.node}'s own: a {link.kind} never reaches it", ok=False)
            raise Stop(
                "dropped",
                f"{node}:{link.name} sits on {on}, and a {link.kind} sends out of its parent, never up into "
                f"{parent_space.node}'s own stack",
                Fix(f"give {parent_space.node} an address on a {link.kind} of its own on {parent.name}, or use a veth"),
            )
        leg.add(node, link.kind, f"out of {link.name} through its parent {on}")
        if parent.kind == "bridge":
            return self._bridge(leg, parent_space, parent, None, hop, pkt, space)
        raise Stop("unknown", f"{on} is a {parent.kind}: explain follows a {link.kind} only on a bridge")

    def _sibling(self, space: Space, link: LinkView, hop: str) -> tuple[Space, LinkView] | None:
        """The link of the same kind on the same parent that holds ``hop``."""
        assert link.parent is not None
        for other in self.snap.spaces.values():
            for far in other.view.links or []:
                if far.kind != link.kind or far.parent is None or (other.node, far.name) == (space.node, link.name):
                    continue
                same = (far.parent.node, far.parent.name) == (link.parent.node, link.parent.name)
                if same and _has_address(other, hop, far.name):
                    return other, far
        return None

    def _upper_of(self, leg: Leg, space: Space, bridge: LinkView, hop: str, pkt: Packet) -> tuple[Space, Packet] | None:
        """A frame on ``bridge`` for a macvlan or ipvlan sitting on it: handed up to that link."""
        for other in self.snap.spaces.values():
            for far in other.view.links or []:
                parent = far.parent
                if parent is None or (parent.node, parent.name) != (space.node, bridge.name):
                    continue
                if not _has_address(other, hop, far.name):
                    continue
                if (far.kind, far.mode or "") not in FOLLOWED:
                    raise Stop("unknown", f"{hop} is on {other.node}:{far.name}, a {far.kind} explain cannot follow")
                leg.add(space.node, far.kind, f"{bridge.name} hands it up to {other.node}:{far.name} ({far.kind})")
                if far.state != "up":
                    leg.add(other.node, "link", f"{far.name} is down", ok=False)
                    raise Stop("dropped", f"{other.node}:{far.name} is down")
                return self._receive(leg, other, far.name, pkt)
        return None
