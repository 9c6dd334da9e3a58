"""A namespace's firewall in a few lines for its box in a picture: the filter policies that are not ACCEPT and
nsnet's rules, in iptables-save words, abbreviated; for a live lab, with the kernel's packet counters."""

from __future__ import annotations

from collections.abc import Iterable

from nsnet.model import Firewall
from nsnet.views import TableView

BUILT_IN = ("INPUT", "FORWARD", "OUTPUT")
MOST = 6
"""Lines of rules shown in a box at most; the rest are counted."""
WIDTH = 60


def _short(text: str) -> str:
    return text if len(text) <= WIDTH else text[: WIDTH - 1] + "…"


def _capped(policies: list[str], rules: list[str]) -> tuple[str, ...]:
    if len(rules) > MOST:
        rules = [*rules[: MOST - 1], f"… and {len(rules) - MOST + 1} more rules (nsnet inspect shows them)"]
    return tuple(policies + rules)


def _packets(n: int) -> str:
    return f"{n} packet{'' if n == 1 else 's'}"


def _order(chain: str) -> int:
    return BUILT_IN.index(chain) if chain in BUILT_IN else len(BUILT_IN)


def from_model(firewall: Firewall) -> tuple[str, ...]:
    """The lines of a firewall as a topology wants it (no counters)."""
    policies = [
        f"filter {chain} policy {policy}"
        for chain, policy in sorted(
            firewall.policies.items(), key=lambda kv: BUILT_IN.index(kv[0]) if kv[0] in BUILT_IN else 9
        )
        if policy != "ACCEPT"
    ]
    rules = [_short(f"{'' if r.table == 'filter' else f'-t {r.table} '}-A {r.chain} {r.args}") for r in firewall.rules]
    return _capped(policies, rules)


def from_tables(tables: Iterable[TableView]) -> tuple[str, ...]:
    """The lines of a live firewall (``iptables-save -c``): policies not ACCEPT with the packets they took,
    nsnet's rules with the packets that matched them."""
    policies: list[str] = []
    rules: list[str] = []
    for table in tables:
        for chain in table.chains:
            if table.table == "filter" and chain.name in BUILT_IN and chain.policy not in (None, "ACCEPT"):
                policies.append(f"filter {chain.name} policy {chain.policy}: {_packets(chain.packets)}")
            for rule in chain.rules:
                if rule.owned and not rule.rule.split()[-1].startswith(
                    "NSNET-"
                ):  # the jumps to nsnet's chains say little
                    where = "" if table.table == "filter" else f"-t {table.table} "
                    rules.append(f"{_short(where + rule.rule)}: {_packets(rule.packets)}")
    return _capped(policies, rules)
