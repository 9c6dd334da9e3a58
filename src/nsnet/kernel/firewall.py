"""iptables in a namespace: read with ``iptables-save``, change with ``iptables-restore --noflush``.

nsnet's rules live in its own chains (``NSNET-FORWARD`` ...), reached from
the built-in chain by one jump rule carrying the comment ``nsnet:<lab>``.
"""

from __future__ import annotations

import re
import socket
import struct
import subprocess
from collections.abc import Sequence

from nsnet.errors import KernelError
from nsnet.kernel import iptsave, netns, rtnl
from nsnet.kernel.iptsave import TOOLS
from nsnet.model import OWN_PREFIX, POLICY_CHAINS, ROOT_NS, Firewall, Rule, policy_key
from nsnet.views import ChainView, RuleView, TableView

_JUMP_RE = re.compile(r'^-A (\S+) -m comment --comment "?nsnet:([^" ]+)"? -j (NSNET-\S+)$')


def in_ns(ns: str, argv: list[str]) -> list[str]:
    """``argv`` run inside ``ns`` (through nsenter, which only switches the network namespace)."""
    return argv if ns == ROOT_NS else ["nsenter", f"--net={netns.path(ns)}", "--", *argv]


def _start(ns: str, argv: list[str], stdin: str | None = None) -> subprocess.Popen[str]:
    """Start ``argv`` in ``ns``: forked from this thread while it is inside ``ns`` (no ``nsenter``)."""
    try:
        with netns.entered(ns):
            return subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
    except FileNotFoundError as exc:
        raise KernelError(f"{argv[0]} is not installed (apt-get install iptables)") from exc


def _finish(ns: str, argv: list[str], proc: subprocess.Popen[str], stdin: str | None = None) -> str:
    out, err = proc.communicate(stdin)
    if proc.returncode != 0:
        raise KernelError(f"{argv[0]} in {ns or 'root'} failed: {err.strip() or out.strip()}")
    return out


def _run(ns: str, argv: list[str], stdin: str | None = None) -> str:
    return _finish(ns, argv, _start(ns, argv, stdin), stdin)


NFT_GETTABLE = (10 << 8) | 1  # NFNL_SUBSYS_NFTABLES, NFT_MSG_GETTABLE
LEGACY_NAMES = {4: "ip_tables_names", 6: "ip6_tables_names"}
NFPROTO = {4: 2, 6: 10}


def has_tables(ns: str, family: int) -> bool:
    """Whether ``ns`` may hold iptables tables of ``family``; False only when sure it holds none.

    Then ``iptables-save`` would print nothing, and is not run: most namespaces
    of a lab (its nodes) have no firewall at all. Both backends are asked: nftables
    (the tables of the family) and the legacy one (its list under /proc).
    """
    try:
        with netns.entered(ns):
            try:
                with open(f"/proc/thread-self/net/{LEGACY_NAMES[family]}") as f:
                    if f.read().strip():
                        return True
            except FileNotFoundError:
                pass
            sock = rtnl.Socket.open(rtnl.NETLINK_NETFILTER)
        try:
            tables = sock.dump(NFT_GETTABLE, struct.pack("=BBH", socket.AF_UNSPEC, 0, 0))
        finally:
            sock.close()
    except (OSError, KernelError):
        return True  # cannot tell: ask iptables-save
    return any(len(t) and t[0] == NFPROTO[family] for t in tables)


def read(ns: str, lab: str, families: set[int]) -> Firewall:
    """Policies of the filter chains and nsnet's own chains, rules and jumps of ``lab``."""
    policies: dict[str, str] = {}
    rules: list[Rule] = []
    chains: set[tuple[int, str, str]] = set()
    jumps: set[tuple[int, str, str]] = set()
    argvs = {family: [TOOLS[family][0]] for family in sorted(families) if has_tables(ns, family)}
    procs = {family: _start(ns, argv) for family, argv in argvs.items()}  # both families at once
    for family, proc in procs.items():
        for table, kind, chain, rest in iptsave.entries(_finish(ns, argvs[family], proc)):
            if kind == ":":
                if chain.startswith(OWN_PREFIX):
                    chains.add((family, table, chain[len(OWN_PREFIX) :]))
                elif table == "filter" and chain in POLICY_CHAINS:
                    policies[policy_key(family, chain)] = rest.split()[0]
                continue
            jump = _JUMP_RE.match(f"-A {chain} {rest}")
            if jump:
                if jump.group(2) == lab:
                    jumps.add((family, table, jump.group(1)))
            elif chain.startswith(OWN_PREFIX):
                rules.append(Rule(family=family, table=table, chain=chain[len(OWN_PREFIX) :], args=rest))
    return Firewall(policies=policies, rules=tuple(rules), chains=frozenset(chains), jumps=frozenset(jumps))


def restore(ns: str, family: int, text: str) -> None:
    if text:
        _run(ns, [TOOLS[family][1], *iptsave.RESTORE], stdin=text)


def restore_many(changes: Sequence[tuple[str, int, str]]) -> list[KernelError | None]:
    """``(ns, family, text)`` changes, one ``iptables-restore`` each, run side by side; per change, its error."""
    started: list[tuple[str, list[str], subprocess.Popen[str] | KernelError, str] | None] = []
    for ns, family, text in changes:
        if not text:
            started.append(None)
            continue
        argv = [TOOLS[family][1], *iptsave.RESTORE]
        try:
            started.append((ns, argv, _start(ns, argv, text), text))
        except KernelError as exc:
            started.append((ns, argv, exc, text))
    out: list[KernelError | None] = []
    for item in started:
        if item is None:
            out.append(None)
            continue
        ns, argv, proc, text = item
        if isinstance(proc, KernelError):
            out.append(proc)
            continue
        try:
            _finish(ns, argv, proc, text)
            out.append(None)
        except KernelError as exc:
            out.append(exc)
    return out


_COUNTED_RE = re.compile(r"^\[(\d+):(\d+)\] (-A (\S+) .*)$")


def read_tables(ns: str, lab: str | None, family: int) -> list[TableView]:
    """Every table, chain and rule with packet/byte counters (``iptables-save -c``).

    Chains and rules nsnet owns (its ``NSNET-*`` chains, and the jumps to them
    carrying ``nsnet:<lab>``) are flagged ``owned``.
    """
    tables: list[TableView] = []
    chains: dict[str, ChainView] = {}
    if not has_tables(ns, family):
        return tables
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
