"""iptables tables in memory: what ``iptables-restore --noflush`` and ``iptables-save`` do, for the fake kernel.

Rules are kept as the text they were given (nsnet writes them in
``iptables-save`` form already); a table changes only at its ``COMMIT``, and
only if every line of it applied.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

from nsnet.errors import KernelError
from nsnet.model import BUILTIN_CHAINS, OWN_PREFIX, POLICY_CHAINS, Firewall, Rule, policy_key

_JUMP = re.compile(r'^-m comment --comment "?nsnet:([^" ]+)"? -j (NSNET-\S+)$')
_TARGET = re.compile(r"-j (\S+)")
CHECKED_TARGETS = (OWN_PREFIX, "DOCKER")
"""Jump targets that must be chains of the table (others are taken as the kernel's own targets)."""


@dataclass
class Chain:
    """A chain: built-in ones have a policy, user-defined ones None."""

    policy: str | None
    rules: list[str] = field(default_factory=list)


Tables = dict[str, dict[str, Chain]]
"""Table name -> chain name -> chain."""


def new_table(table: str) -> dict[str, Chain]:
    return {name: Chain("ACCEPT") for name in BUILTIN_CHAINS.get(table, ())}


def restore(tables: Tables, text: str) -> Tables:
    """The tables after ``iptables-restore --noflush`` of ``text``; :class:`KernelError` if it fails (no change)."""
    out = copy.deepcopy(tables)
    name: str | None = None
    work: dict[str, Chain] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            if line.startswith("*"):
                name = line[1:]
                work = copy.deepcopy(out[name]) if name in out else new_table(name)
            elif name is None:
                raise KernelError("no table given")
            elif line == "COMMIT":
                out[name], name = work, None
            else:
                _apply(work, line)
        except KernelError as exc:
            raise KernelError(f"iptables-restore: line {number} failed ({line}): {exc}") from None
    if name is not None:
        raise KernelError(f"iptables-restore: table {name} has no COMMIT")
    return out


def _apply(chains: dict[str, Chain], line: str) -> None:
    if line.startswith(":"):
        chain, policy = line[1:].split()[:2]
        if chain in chains and chains[chain].policy is not None:
            if policy != "-":
                chains[chain].policy = policy
        else:
            chains[chain] = Chain(None)  # declared: made, or flushed if it was there
        return
    op, _, rest = line.partition(" ")
    chain, _, args = rest.partition(" ")
    if op == "-N":
        if chain in chains:
            raise KernelError(f"chain {chain} already exists")
        chains[chain] = Chain(None)
        return
    if chain not in chains:
        raise KernelError(f"no chain {chain}")
    rules = chains[chain].rules
    if op in ("-A", "-I"):
        position = 0
        if op == "-I" and args.split(" ", 1)[0].isdigit():
            first, _, args = args.partition(" ")
            position = int(first) - 1
        target = _TARGET.search(args)
        if target and target.group(1).startswith(CHECKED_TARGETS) and target.group(1) not in chains:
            raise KernelError(f"no chain/target {target.group(1)}")
        rules.insert(len(rules) if op == "-A" else position, args)
    elif op == "-D":
        if args not in rules:
            raise KernelError("Bad rule (does a matching rule exist in that chain?)")
        rules.remove(args)
    elif op == "-F":
        rules.clear()
    elif op == "-X":
        referenced = any(_TARGET.search(r) and f"-j {chain}" in r for c in chains.values() for r in c.rules)
        if chains[chain].policy is not None or rules or referenced:
            raise KernelError(f"cannot delete chain {chain}: built-in, not empty or referenced")
        del chains[chain]
    else:
        raise KernelError(f"unknown command {op}")


def read(by_family: dict[int, Tables], lab: str, families: set[int]) -> Firewall:
    """What :func:`nsnet.kernel.firewall.read` reads from ``iptables-save``."""
    policies: dict[str, str] = {}
    rules: list[Rule] = []
    chains: set[tuple[int, str, str]] = set()
    jumps: set[tuple[int, str, str]] = set()
    for family in sorted(families):
        for table, table_chains in by_family.get(family, {}).items():
            for name, chain in table_chains.items():
                if name.startswith(OWN_PREFIX):
                    own = name[len(OWN_PREFIX) :]
                    chains.add((family, table, own))
                    rules += [Rule(family=family, table=table, chain=own, args=args) for args in chain.rules]
                    continue
                if table == "filter" and name in POLICY_CHAINS and chain.policy:
                    policies[policy_key(family, name)] = chain.policy
                for args in chain.rules:
                    jump = _JUMP.match(args)
                    if jump and jump.group(1) == lab:
                        jumps.add((family, table, name))
    return Firewall(policies=policies, rules=tuple(rules), chains=frozenset(chains), jumps=frozenset(jumps))


def render(by_family: dict[int, Tables]) -> list[str]:
    """Every chain that differs from a fresh namespace's (a policy other than ACCEPT, a rule, a chain of its own)."""
    out = []
    for family in sorted(by_family):
        for table in sorted(by_family[family]):
            for name, chain in sorted(by_family[family][table].items()):
                if chain.policy in (None, "ACCEPT") and not chain.rules and chain.policy is not None:
                    continue
                out.append(f"{family} {table} {name} {chain.policy or '-'}")
                out += [f"{family} {table} -A {name} {args}" for args in chain.rules]
    return out
