"""The text of ``iptables-save``, shared by nsnet's firewall and ``nsnet-cni`` (so, standard library only, light).

Both keep their rules in chains of their own, reached by a commented jump,
and both read them back from ``iptables-save`` and write them with one
``iptables-restore --noflush`` per family.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time (nsnet-cni starts once per container)
if TYPE_CHECKING:
    from collections.abc import Iterator

TOOLS = {4: ("iptables-save", "iptables-restore"), 6: ("ip6tables-save", "ip6tables-restore")}
"""Per family: the program that prints the ruleset, the one that changes it."""
RESTORE = ("--noflush", "--wait")
"""``iptables-restore`` arguments: change only the chains named, waiting for the xtables lock."""


def entries(save: str) -> Iterator[tuple[str, str, str, str]]:
    """``(table, kind, chain, rest)`` of each chain (kind ``:``, rest its policy and counters) and rule
    (kind ``-A``, rest the rule after ``-A CHAIN``) of ``iptables-save`` output (without ``-c``)."""
    table = ""
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            chain, _, rest = line[1:].partition(" ")
            yield table, ":", chain, rest
        elif line.startswith("-A "):
            chain, _, rest = line[3:].partition(" ")
            yield table, "-A", chain, rest


def restore_text(blocks: dict[str, list[str]]) -> str:
    """``iptables-restore`` input changing each table of ``blocks`` (table -> lines) in one transaction."""
    return "".join(f"*{table}\n" + "\n".join(lines) + "\nCOMMIT\n" for table, lines in blocks.items() if lines)
