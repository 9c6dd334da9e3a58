"""Link kinds: one module each, behind :class:`~nsnet.kinds.base.Kind`, registered here (one line per kind).

A kind says how its links are made (one :class:`~nsnet.kinds.base.LinkSpec`,
from which both the ``ip link add`` text and the netlink request come), what
it reads back from the kernel's IFLA_LINKINFO, and how inspect and graph name
it. See docs/link-kinds.md.
"""

from __future__ import annotations

from nsnet.kinds import bridge, dummy, ipvlan, macvlan, veth, vxlan
from nsnet.kinds.base import Kind

KINDS: dict[str, Kind] = {
    "veth": veth.KIND,
    "bridge": bridge.KIND,
    "vxlan": vxlan.KIND,
    "macvlan": macvlan.KIND,
    "ipvlan": ipvlan.KIND,
    "dummy": dummy.KIND,
}

USER_KINDS = tuple(name for name, kind in KINDS.items() if kind.user)
"""The kinds a topology declares with ``kind:`` under ``interfaces``."""

OTHER = Kind()
"""What nsnet knows of a kind it does not manage (read back, never made)."""


def get(name: str | None) -> Kind:
    """The kind called ``name`` (an unknown one: :data:`OTHER`)."""
    return KINDS.get(name or "", OTHER)
