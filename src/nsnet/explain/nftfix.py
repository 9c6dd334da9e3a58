"""Fixes for a packet a native nftables chain drops: commands for ``nft``, never the topology (pure).

Such a table is not nsnet's (nsnet writes iptables chains of its own), so the
fix is a command against that table, and the topology file cannot say it.

Docker's own tables (``docker-bridges``, its nftables firewall backend) are
the exception: Docker owns them and puts them back, and it has no
``DOCKER-USER`` chain. An accept in a table of one's own does not overrule
them either: in nftables an accept ends only its own base chain, and every
other base chain of the hook (Docker's ``filter-FORWARD`` among them) still
runs and may drop. So the fix says what Docker documents instead.
"""

from __future__ import annotations

from nsnet.explain.netfilter import Decision
from nsnet.explain.verdict import Fix, Space

DOCKER_TABLE = "docker-bridges"
"""The tables (``ip`` and ``ip6``) of Docker's nftables firewall backend."""


def native_fix(space: Space, hook: str, decision: Decision, source: str, family: int) -> Fix:
    """The ``nft`` command that lets the packet through the chain that dropped it."""
    assert decision.native is not None
    fam, table, chain, handle = decision.native
    run = f"ip netns exec {space.view.netns} " if space.view.netns else ""
    if table == DOCKER_TABLE:
        return _docker_fix(run, fam, chain, handle)
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


def _docker_fix(run: str, fam: str, chain: str, handle: int | None) -> Fix:
    """Docker's nftables backend drops it: no DOCKER-USER, and an accept elsewhere is not final."""
    not_final = (
        "an accept in a table of your own would not help: nftables runs every base chain of the hook, "
        f"and Docker's {chain} still drops it"
    )
    if handle is None:
        return Fix(
            f"Docker's {fam} {DOCKER_TABLE} {chain} policy drops it (Docker's nftables backend has no DOCKER-USER; "
            f"{not_final}). Docker sets this policy to drop when it turns forwarding on itself: turn forwarding on "
            "before dockerd starts and it leaves the policy accept; until then, set it to accept (or start dockerd "
            "with --bridge-accept-fwmark and set that mark on this traffic in a forward chain of your own at "
            "priority filter - 1)",
            command=f"{run}nft chain {fam} {DOCKER_TABLE} {chain} '{{ policy accept; }}'",
        )
    return Fix(
        f"a rule of Docker's {fam} {DOCKER_TABLE} table (chain {chain}) drops it; Docker owns that table and puts "
        f"its rules back, and {not_final}: publish the port the traffic is for, or start dockerd with "
        "--bridge-accept-fwmark and set that mark on this traffic in a forward chain of your own at priority "
        "filter - 1",
    )
