"""The loader's checks of interfaces declared with ``kind:`` (one hook per namespace interface, one per lab)."""

from __future__ import annotations

import difflib
from typing import Any

from nsnet.kinds import KINDS, USER_KINDS, get
from nsnet.kinds.base import Problem
from nsnet.model import HOST, Endpoint, Link, Namespace


def declared(spec: Any, is_end: bool) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The :class:`~nsnet.model.Link` fields of an interface the file declares with ``kind:``, and its
    problems (paths below the interface). None and no problem: a veth end, as before kinds."""
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
    """Problems of the links that sit on a parent, as (namespace, interface, problem)."""
    out: list[tuple[str, str, Problem]] = []
    carried: dict[Endpoint, str] = {}
    for ns, space in spaces.items():
        for link in space.links.values():
            if link.parent is not None:
                problem = _parent_problem(link, link.parent, spaces, carried)
                if problem is not None:
                    out.append((ns, link.name, (("parent",), *problem)))
    return out


def _parent_problem(
    link: Link, at: Endpoint, spaces: dict[str, Namespace], carried: dict[Endpoint, str]
) -> tuple[str, str] | None:
    host = spaces.get(at.ns)
    if host is None:
        return (
            f"a {link.kind} sits on a device of the lab's host, and a lab of several hosts has none",
            "remove this interface, or hosts:",
        )
    parent = host.links.get(at.ifname)
    if parent is None:
        match = difflib.get_close_matches(at.ifname, list(host.links), n=1, cutoff=0.6)
        hint = f"did you mean {match[0]!r}?" if match else "declare it under the host's bridges: or interfaces:"
        return f"interface {at.ifname!r} does not exist in host", hint
    if parent.master:
        return (
            f"{at.ifname} is a port of bridge {parent.master}, which takes its frames first: "
            f"a {link.kind} cannot sit on it",
            f"use parent: {parent.master}",
        )
    if get(parent.kind).linked == "parent":
        return f"{at.ifname} is itself a {parent.kind}", "use the device it sits on"
    first = carried.setdefault(at, link.kind)
    if first != link.kind:
        return (
            f"{at.ifname} already carries a {first}; the kernel lets a device carry macvlans or ipvlans, not both",
            "use another parent",
        )
    return None
