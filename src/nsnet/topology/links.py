"""Pass: the veth links of ``links:``, each end checked, as the peer of every interface that has one."""

from __future__ import annotations

import re

from nsnet.model import Endpoint
from nsnet.topology.report import Report, suggest
from nsnet.topology.schema import NamespaceSpec, TopologySpec
from nsnet.topology.source import Loc
from nsnet.topology.values import IFNAME_MAX

LINK_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+\Z")


def endpoints(report: Report, spec: TopologySpec, spaces: dict[str, NamespaceSpec]) -> dict[str, dict[str, Endpoint]]:
    """Veth ends per namespace: {ns: {ifname: peer}}."""
    ends: dict[str, dict[str, Endpoint]] = {}
    for i, link in enumerate(spec.links):
        parsed: list[Endpoint] = []
        for j, text in enumerate(link.endpoints):
            long_form = ("links", i, "endpoints") in report.lines
            loc: Loc = ("links", i, "endpoints", j) if long_form else ("links", i, j)
            ns, sep, ifname = text.partition(":")
            if not sep or not ns or not ifname:
                report.add(loc, f"endpoint {text!r} is not NODE:IFACE", "write it like RED:reth0 or host:reth1")
                continue
            report.named_in_links.add((ns, ifname))
            if ns not in spaces:
                report.add(
                    loc,
                    f"endpoint {text!r} names node {ns!r}, which does not exist",
                    suggest(ns, spaces) or f"nodes are: {', '.join(spaces)}",
                )
                continue
            if not ifname_ok(report, loc, ifname):
                continue
            if ifname in ends.get(ns, {}) or ifname in spaces[ns].bridges:
                report.add(loc, f"interface {ifname!r} appears twice in {ns}", "give each end its own name")
                continue
            parsed.append(Endpoint(ns, ifname))
        if len(parsed) == 2:
            a, b = parsed
            if a.ns == b.ns:
                report.add(
                    ("links", i),
                    f"both ends of this link are in {a.ns}",
                    "a veth link joins two different namespaces (node or host)",
                )
                continue
            ends.setdefault(a.ns, {})[a.ifname] = b
            ends.setdefault(b.ns, {})[b.ifname] = a
    return ends


def ifname_ok(report: Report, loc: Loc, name: str) -> bool:
    """Whether ``name`` can name an interface (else a problem at ``loc``)."""
    if len(name.encode()) > IFNAME_MAX:
        report.add(
            loc,
            f"interface name {name!r} is {len(name.encode())} bytes long; Linux allows {IFNAME_MAX}",
            "use a shorter name",
        )
        return False
    if name == "lo" or not LINK_NAME_RE.match(name) or name in (".", ".."):
        report.add(loc, f"interface name {name!r} is not allowed", "use letters, digits and _ . - (not 'lo')")
        return False
    return True
