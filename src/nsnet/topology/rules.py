"""Firewall rules: from the topology's terms to iptables-save form.

The text produced here is exactly what ``iptables-save`` prints back for the
same rule, so a live chain compares equal to the desired one and a second
``up`` changes nothing (:mod:`nsnet.plan.firewall` writes the change).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from nsnet.model import PORT_PROTOCOLS, Rule

if TYPE_CHECKING:
    from nsnet.topology.schema import RuleSpec


def rule_family(spec: RuleSpec) -> int:
    """4 or 6: stated, or inferred from the rule's addresses and protocol."""
    if spec.family:
        return 4 if spec.family == "ipv4" else 6
    for value in (spec.source, spec.destination):
        if value:
            return ipaddress.ip_network(value).version
    return 6 if spec.protocol == "icmpv6" else 4


def _net(value: str) -> str:
    net = ipaddress.ip_network(value)
    if net.prefixlen == net.max_prefixlen:
        return f"{net.network_address}/{net.prefixlen}"
    return str(net)


def render_rule(spec: RuleSpec) -> Rule:
    """The :class:`Rule` for ``spec`` (which :mod:`nsnet.topology.loader` has validated)."""
    family = rule_family(spec)
    parts: list[str] = []
    if spec.source:
        parts += ["-s", _net(spec.source)]
    if spec.destination:
        parts += ["-d", _net(spec.destination)]
    if spec.in_:
        parts += ["-i", spec.in_]
    if spec.out:
        parts += ["-o", spec.out]
    if spec.protocol and spec.protocol != "all":
        proto = "ipv6-icmp" if spec.protocol == "icmpv6" else spec.protocol
        parts += ["-p", proto]
        if spec.protocol in PORT_PROTOCOLS and (spec.sport or spec.dport):
            parts += ["-m", spec.protocol]
            if spec.sport:
                parts += ["--sport", str(spec.sport)]
            if spec.dport:
                parts += ["--dport", str(spec.dport)]
    if spec.state:
        order = ["INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED"]
        states = sorted(set(spec.state), key=order.index)
        parts += ["-m", "conntrack", "--ctstate", ",".join(states)]
    parts += ["-j", spec.action]
    if spec.action == "REJECT":
        parts += ["--reject-with", "icmp-port-unreachable" if family == 4 else "icmp6-port-unreachable"]
    return Rule(family=family, table=spec.table, chain=spec.chain, args=" ".join(parts))
