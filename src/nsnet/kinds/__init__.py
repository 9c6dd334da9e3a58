"""Link kinds: one module each, behind :class:`~nsnet.kinds.base.Kind`, registered here (one line per kind).

A kind says how its links are made (one :class:`~nsnet.kinds.base.LinkSpec`,
from which both the ``ip link add`` text and the netlink request come), what
it reads back from the kernel's IFLA_LINKINFO, and how inspect and graph name
it. See docs/link-kinds.md.
"""

from __future__ import annotations

import difflib
from typing import Any

from nsnet.kinds import bridge, dummy, ipvlan, macvlan, veth, vxlan
from nsnet.kinds.base import Kind, Problem
from nsnet.model import HOST, Endpoint, Namespace

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


def declared(spec: Any, is_end: bool) -> tuple[dict[str, Any] | None, list[Problem]]:
    """For the loader: the :class:`~nsnet.model.Link` fields of an interface the file declares with
    ``kind:``, and its problems (paths below the interface). None and no problem: a veth end, as before."""
    name = getattr(spec, "kind", None)
    if name is None or name == "veth":
        return None, []
    kind = KINDS.get(name)
    if kind is None or not kind.user:
        choices = ["veth", *USER_KINDS]
        match = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
        hint = f"did you mean {match[0]!r}?" if match else f"use one of {', '.join(choices)}"
        return None, [(("kind",), f"{name!r} is not a kind of interface nsnet makes", hint)]
    problems = kind.check(spec)
    if is_end:
        problems.append(((), f"this interface is an end of a link under links:, not a {name}", "remove one of them"))
    parent = Endpoint(HOST, spec.parent) if getattr(spec, "parent", None) else None
    return {"kind": name, "parent": parent, "mode": spec.mode or (kind.modes[0] if kind.modes else None)}, problems


def lab_problems(spaces: dict[str, Namespace]) -> list[tuple[str, str, Problem]]:
    """For the loader: problems of the links that sit on a parent, as (namespace, interface, problem)."""
    out: list[tuple[str, str, Problem]] = []
    uppers: dict[Endpoint, set[str]] = {}
    for ns, space in spaces.items():
        for link in space.links.values():
            if link.parent is None:
                continue
            host = spaces.get(link.parent.ns)
            if host is None:
                out.append(
                    (
                        ns,
                        link.name,
                        (
                            ("parent",),
                            f"a {link.kind} sits on a device of the lab's host, and a lab of several hosts has none",
                            "remove this interface, or hosts:",
                        ),
                    )
                )
                continue
            parent = host.links.get(link.parent.ifname)
            if parent is None:
                match = difflib.get_close_matches(link.parent.ifname, list(host.links), n=1, cutoff=0.6)
                hint = f"did you mean {match[0]!r}?" if match else "declare it under the host's bridges: or interfaces:"
                out.append(
                    (ns, link.name, (("parent",), f"interface {link.parent.ifname!r} does not exist in host", hint))
                )
            elif parent.master:
                out.append(
                    (
                        ns,
                        link.name,
                        (
                            ("parent",),
                            f"{link.parent.ifname} is a port of bridge {parent.master}, "
                            f"which takes its frames first: a {link.kind} cannot sit on it",
                            f"use parent: {parent.master}",
                        ),
                    )
                )
            elif get(parent.kind).linked == "parent":
                out.append(
                    (
                        ns,
                        link.name,
                        (("parent",), f"{link.parent.ifname} is itself a {parent.kind}", "use the device it sits on"),
                    )
                )
            else:
                uppers.setdefault(link.parent, set()).add(link.kind)
                if len(uppers[link.parent]) > 1:
                    out.append(
                        (
                            ns,
                            link.name,
                            (
                                ("parent",),
                                f"{link.parent.ifname} already carries a "
                                f"{next(k for k in uppers[link.parent] if k != link.kind)}; the kernel lets a device "
                                "carry macvlans or ipvlans, not both",
                                "use another parent",
                            ),
                        )
                    )
    return out
