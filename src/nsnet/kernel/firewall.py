"""iptables in a namespace: read with ``iptables-save``, change with ``iptables-restore --noflush``.

nsnet's rules live in its own chains (``NSNET-FORWARD`` ...), reached from
the built-in chain by one jump rule carrying the comment ``nsnet:<lab>``.
"""

from __future__ import annotations

import re
import subprocess

from ..errors import KernelError
from ..model import ROOT_NS, Firewall, Rule
from ..rules import OWN_PREFIX, POLICY_CHAINS
from ..views import ChainView, RuleView, TableView
from . import netns

TOOLS = {4: ("iptables-save", "iptables-restore"), 6: ("ip6tables-save", "ip6tables-restore")}
_JUMP_RE = re.compile(r'^-A (\S+) -m comment --comment "?nsnet:([^" ]+)"? -j (NSNET-\S+)$')


def in_ns(ns: str, argv: list[str]) -> list[str]:
    """``argv`` run inside ``ns`` (through nsenter, which only switches the network namespace)."""
    return argv if ns == ROOT_NS else ["nsenter", f"--net={netns.path(ns)}", "--", *argv]


def _run(ns: str, argv: list[str], stdin: str | None = None) -> str:
    try:
        proc = subprocess.run(in_ns(ns, argv), input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise KernelError(f"{argv[0]} is not installed (apt-get install iptables)") from exc
    if proc.returncode != 0:
        raise KernelError(f"{argv[0]} in {ns or 'root'} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def read(ns: str, lab: str, families: set[int]) -> Firewall:
    """Policies of the filter chains (IPv4) and nsnet's own chains, rules and jumps of ``lab``."""
    policies: dict[str, str] = {}
    rules: list[Rule] = []
    chains: set[tuple[int, str, str]] = set()
    jumps: set[tuple[int, str, str]] = set()
    for family in sorted(families):
        table = ""
        for line in _run(ns, [TOOLS[family][0]]).splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                name, policy = line[1:].split()[:2]
                if name.startswith(OWN_PREFIX):
                    chains.add((family, table, name[len(OWN_PREFIX) :]))
                elif family == 4 and table == "filter" and name in POLICY_CHAINS:
                    policies[name] = policy
            elif line.startswith("-A "):
                jump = _JUMP_RE.match(line)
                if jump:
                    if jump.group(2) == lab:
                        jumps.add((family, table, jump.group(1)))
                    continue
                chain, _, args = line[3:].partition(" ")
                if chain.startswith(OWN_PREFIX):
                    rules.append(Rule(family=family, table=table, chain=chain[len(OWN_PREFIX) :], args=args))
    return Firewall(policies=policies, rules=tuple(rules), chains=frozenset(chains), jumps=frozenset(jumps))


def restore(ns: str, family: int, text: str) -> None:
    if text:
        _run(ns, [TOOLS[family][1], "--noflush", "--wait"], stdin=text)


_COUNTED_RE = re.compile(r"^\[(\d+):(\d+)\] (-A (\S+) .*)$")


def read_tables(ns: str, lab: str | None, family: int) -> list[TableView]:
    """Every table, chain and rule with packet/byte counters (``iptables-save -c``).

    Chains and rules nsnet owns (its ``NSNET-*`` chains, and the jumps to them
    carrying ``nsnet:<lab>``) are flagged ``owned``.
    """
    tables: list[TableView] = []
    chains: dict[str, ChainView] = {}
    for line in _run(ns, [TOOLS[family][0], "-c"]).splitlines():
        if line.startswith("*"):
            chains = {}
            tables.append(TableView(family=family, table=line[1:], chains=[]))
        elif line.startswith(":"):
            name, policy, counters = line[1:].split()[:3]
            packets, _, size = counters.strip("[]").partition(":")
            chains[name] = ChainView(
                name=name,
                policy=None if policy == "-" else policy,
                packets=int(packets),
                bytes=int(size),
                owned=name.startswith(OWN_PREFIX),
            )
            tables[-1].chains.append(chains[name])
        elif match := _COUNTED_RE.match(line):
            rule, chain = match.group(3), match.group(4)
            jump = _JUMP_RE.match(rule)
            owned = chain.startswith(OWN_PREFIX) or bool(jump and jump.group(2) == lab)
            chains[chain].rules.append(
                RuleView(rule=rule, packets=int(match.group(1)), bytes=int(match.group(2)), owned=owned)
            )
    return tables
