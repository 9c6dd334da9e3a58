"""Firewall rules: from the topology's terms to iptables-save form.

The text produced here is exactly what ``iptables-save`` prints back for the
same rule, so a live chain compares equal to the desired one and a second
``up`` changes nothing.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from .model import Firewall, Rule

if TYPE_CHECKING:
    from .schema import RuleSpec

BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
}
POLICY_CHAINS = BUILTIN_CHAINS["filter"]
PORT_PROTOCOLS = ("tcp", "udp", "sctp")
OWN_PREFIX = "NSNET-"


def own_chain(chain: str) -> str:
    """The nsnet chain that a built-in chain jumps to (``FORWARD`` -> ``NSNET-FORWARD``)."""
    return OWN_PREFIX + chain


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
    """The :class:`Rule` for ``spec`` (which :mod:`nsnet.loader` has validated)."""
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


def restore_text(lab: str, desired: Firewall, live: Firewall, family: int, policies: dict[str, str]) -> str:
    """The ``iptables-restore --noflush`` input that turns ``live`` into ``desired`` for one family.

    ``policies`` are the filter policies to set (already resolved against the
    originals to restore). Empty text means nothing to do.
    """
    want: dict[tuple[str, str], list[str]] = {}
    for r in desired.rules:
        if r.family == family:
            want.setdefault((r.table, r.chain), []).append(r.args)
    have: dict[tuple[str, str], list[str]] = {}
    for r in live.rules:
        if r.family == family:
            have.setdefault((r.table, r.chain), []).append(r.args)
    for fam, table, chain in live.chains:
        if fam == family:
            have.setdefault((table, chain), [])
    blocks: dict[str, list[str]] = {}
    for key in sorted(set(want) | set(have)):
        table, chain = key
        own = own_chain(chain)
        jump = f'-m comment --comment "nsnet:{lab}" -j {own}'
        jumped = (family, table, chain) in live.jumps
        lines = blocks.setdefault(table, [])
        if key in want:
            if have.get(key) == want[key] and jumped:
                continue
            lines.append(f":{own} - [0:0]")
            lines += [f"-A {own} {args}" for args in want[key]]
            if not jumped:
                lines.append(f"-I {chain} 1 {jump}")
        else:
            lines.append(f":{own} - [0:0]")
            if jumped:
                lines.append(f"-D {chain} {jump}")
            lines.append(f"-X {own}")
    if family == 4:
        for chain, policy in policies.items():
            if live.policies.get(chain) != policy:
                blocks.setdefault("filter", []).insert(0, f":{chain} {policy} [0:0]")
    text = ""
    for table, lines in blocks.items():
        if lines:
            text += f"*{table}\n" + "\n".join(lines) + "\nCOMMIT\n"
    return text
