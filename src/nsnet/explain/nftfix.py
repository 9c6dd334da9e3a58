"""Fixes for a packet a native nftables chain drops: commands for ``nft``, never the topology (pure).

Such a table is not nsnet's (nsnet writes iptables chains of its own), so the
fix is a command against that table, and the topology file cannot say it.
"""

from __future__ import annotations

from nsnet.explain.netfilter import Decision
from nsnet.explain.verdict import Fix, Space


def native_fix(space: Space, hook: str, decision: Decision, source: str, family: int) -> Fix:
    """The ``nft`` command that lets the packet through the chain that dropped it."""
    assert decision.native is not None
    fam, table, chain, handle = decision.native
    run = f"ip netns exec {space.view.netns} " if space.view.netns else ""
    if handle is not None:
        return Fix(
            f"delete the rule that {decision.verdict.lower()}s it from chain {chain} of table {fam} {table} "
            "(a table nsnet did not make)",
            command=f"{run}nft delete rule {fam} {table} {chain} handle {handle}",
        )
    match = f"{'ip' if family == 4 else 'ip6'} saddr {source}"
    return Fix(
        f"accept this traffic in chain {chain} of table {fam} {table} ({hook}, a table nsnet did not make) "
        "before its policy drops it",
        command=f"{run}nft add rule {fam} {table} {chain} {match} accept",
    )
