"""Pass: a namespace's ``firewall:``: policies of built-in chains, and rules rendered as iptables arguments."""

from __future__ import annotations

from nsnet.model import BUILTIN_CHAINS, POLICY_CHAINS, PORT_PROTOCOLS, Firewall, policy_key
from nsnet.topology import ipcache
from nsnet.topology.report import Report, suggest
from nsnet.topology.rules import render_rule
from nsnet.topology.schema import NamespaceSpec
from nsnet.topology.source import Loc


def firewall(report: Report, base: Loc, space: NamespaceSpec) -> Firewall:
    """The policies and rules of ``space``'s ``firewall:`` (at ``base`` in the file), each checked."""
    loc0: Loc = (*base, "firewall")
    policies: dict[str, str] = {}
    for family, key, given in ((4, "policies", space.firewall.policies), (6, "policies6", space.firewall.policies6)):
        for chain, policy in given.items():
            if chain not in POLICY_CHAINS:
                report.add(
                    (*loc0, key, chain),
                    f"{chain!r} is not a built-in filter chain",
                    suggest(chain.upper(), POLICY_CHAINS) or f"use one of {', '.join(POLICY_CHAINS)}",
                )
            else:
                policies[policy_key(family, chain)] = policy
    rules = []
    for i, r in enumerate(space.firewall.rules):
        loc = (*loc0, "rules", i)
        chains = BUILTIN_CHAINS[r.table]
        if r.chain not in chains:
            report.add(
                (*loc, "chain"),
                f"{r.chain!r} is not a built-in chain of the {r.table} table",
                suggest(r.chain.upper(), chains) or f"use one of {', '.join(chains)}",
            )
            continue
        if r.action == "MASQUERADE" and (r.table, r.chain) != ("nat", "POSTROUTING"):
            report.add(
                (*loc, "action"),
                "MASQUERADE works only in table nat, chain POSTROUTING",
                "set table: nat and chain: POSTROUTING",
            )
            continue
        if (r.sport or r.dport) and r.protocol not in PORT_PROTOCOLS:
            report.add(loc, "ports need a protocol that has them", "set protocol: tcp, udp or sctp")
            continue
        families = {ipcache.ip_network(a).version for a in (r.source, r.destination) if a}
        if r.family:
            families.add(4 if r.family == "ipv4" else 6)
        if r.protocol in ("icmp", "icmpv6"):
            families.add(4 if r.protocol == "icmp" else 6)
        if len(families) > 1:
            report.add(
                loc,
                "this rule mixes IPv4 and IPv6 (addresses, family or protocol)",
                "split it into one rule per IP version",
            )
            continue
        rules.append(render_rule(r))
    return Firewall(policies=policies, rules=tuple(rules))
