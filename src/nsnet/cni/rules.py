"""iptables rules of an attachment: masquerade, forward, published ports (pure) and how they are applied.

Every rule goes into one of nsnet-cni's own chains, each reached by one jump
from the built-in chain (the jump commented ``nsnet-cni``)::

    filter FORWARD     -> NSNETCNI-FORWARD
    nat    PREROUTING  -> NSNETCNI-PREROUTING
    nat    OUTPUT      -> NSNETCNI-OUTPUT
    nat    POSTROUTING -> NSNETCNI-POSTROUTING

(not ``NSNET-*``, the chains of nsnet's labs, so the two never take each
other's rules for their own). Every rule carries the comment
``nsnet-cni:<network>:<container id>:<ifname>``: DEL and GC delete exactly
the rules of an attachment by that comment, from ``iptables-save``, without
needing the container, its namespace or its address. A chain left empty is
removed with its jump.

Rules are written in the form ``iptables-save`` prints them back, so CHECK
compares them as text. Changes are made by one ``iptables-restore
--noflush`` per family, under the node lock (:func:`nsnet.cni.state.node_lock`);
a new attachment's rules are appended without reading the ruleset when its
chains and jumps are in place (checked with ``-C`` in the same transaction).
"""

from __future__ import annotations

import ipaddress
import os

from nsnet.cni import spawn, spec
from nsnet.cni.config import NetConf
from nsnet.cni.record import record
from nsnet.cni.spec import CniError
from nsnet.kernel import iptsave
from nsnet.kernel.iptsave import RESTORE, TOOLS, restore_text

PREFIX = "NSNETCNI-"
JUMP_COMMENT = "nsnet-cni"
SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
_SAFE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@+-")
_COMMENT = r'-m comment --comment (?:"([^"]*)"|(\S+))'


def own_chain(hook: str) -> str:
    return PREFIX + hook


def comment_for(network: str, container_id: str, ifname: str) -> str:
    """The comment on every rule of an attachment (network names and ids hold no ``:``)."""
    text = f"{JUMP_COMMENT}:{network}:{container_id}:{ifname}"
    if len(text) <= 200 and ifname and set(ifname) <= _SAFE_CHARS:
        return text
    from nsnet.cni.attach import sha256_hex

    digest = sha256_hex(f"{network}\0{container_id}\0{ifname}".encode())[:32]
    return f"{JUMP_COMMENT}:{network[:100]}:#{digest}"


def parse_comment(comment: str) -> tuple[str, str, str] | None:
    """``(network, container id, ifname)`` of a rule's comment, if it is an attachment's."""
    parts = comment.split(":")
    if len(parts) != 4 or parts[0] != JUMP_COMMENT:
        return None
    return parts[1], parts[2], parts[3]


@record
class Rule:
    """One rule: ``<match> -m comment --comment "<comment>" -j <target>`` in ``table``/``hook``."""

    family: int
    table: str
    hook: str
    match: str
    target: str

    def text(self, comment: str) -> str:
        """The rule as ``iptables-save`` prints it."""
        match = f"{self.match} " if self.match else ""
        return f'-A {own_chain(self.hook)} {match}-m comment --comment "{comment}" -j {self.target}'


def _host(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return f"{ip}/{ip.max_prefixlen}"


def desired(conf: NetConf, addresses: list[str]) -> list[Rule]:
    """The rules of a container with ``addresses`` (``address/prefix``, from IPAM) on ``conf``'s bridge."""
    rules: list[Rule] = []
    br = conf.bridge
    for cidr in addresses:
        iface = ipaddress.ip_interface(cidr)
        family = iface.version
        me = _host(iface.ip)
        multicast = "224.0.0.0/4" if family == 4 else "ff00::/8"
        loopback = "127.0.0.0/8" if family == 4 else "::1/128"
        forward: list[str] = []
        if conf.forward:
            forward += [
                # Same-bridge traffic to it, through a FORWARD policy DROP (the seed's fix, per container).
                f"-d {me} -i {br} -o {br}",
                # Its traffic leaving the bridge, and the answers coming back.
                f"-s {me} -i {br} ! -o {br}",
                f"-d {me} ! -i {br} -o {br} -m conntrack --ctstate RELATED,ESTABLISHED",
                # Connections DNATed to it: its published ports, whoever publishes them (portmap too).
                f"-d {me} ! -i {br} -o {br} -m conntrack --ctstate DNAT",
            ]
            if family == 6:
                # Neighbour discovery between the bridge's ports (multicast solicitations, then
                # advertisements): IPv6's ARP, which bridged through ip6tables would die in a policy DROP.
                forward += [f"-i {br} -o {br} -p ipv6-icmp -m icmp6 --icmpv6-type {kind}" for kind in (135, 136)]
        rules += [Rule(family, "filter", "FORWARD", m, "ACCEPT") for m in forward]
        if conf.ip_masq:
            rules.append(Rule(family, "nat", "POSTROUTING", f"-s {me} ! -d {multicast} ! -o {br}", "MASQUERADE"))
        for p in conf.port_mappings:
            if p.host_ip is not None and ipaddress.ip_address(p.host_ip).version != family:
                continue
            port = f"-p {p.protocol} -m {p.protocol} --dport {p.host_port}"
            to = f"{iface.ip}:{p.container_port}" if family == 4 else f"[{iface.ip}]:{p.container_port}"
            dnat = f"DNAT --to-destination {to}"
            if p.host_ip is not None:
                where = f"-d {_host(ipaddress.ip_address(p.host_ip))} {port}"
                rules.append(Rule(family, "nat", "PREROUTING", where, dnat))
                rules.append(Rule(family, "nat", "OUTPUT", where, dnat))
            else:
                rules.append(Rule(family, "nat", "PREROUTING", f"{port} -m addrtype --dst-type LOCAL", dnat))
                rules.append(
                    Rule(family, "nat", "OUTPUT", f"! -d {loopback} {port} -m addrtype --dst-type LOCAL", dnat)
                )
            inside = f"-p {p.protocol} -m {p.protocol} --dport {p.container_port}"
            if not conf.forward:
                rules.append(Rule(family, "filter", "FORWARD", f"-d {me} -o {br} {inside}", "ACCEPT"))
                rules.append(
                    Rule(
                        family,
                        "filter",
                        "FORWARD",
                        f"-s {me} -i {br} -m conntrack --ctstate RELATED,ESTABLISHED",
                        "ACCEPT",
                    )
                )
            # Hairpin: a container of the bridge reaching this one through the node's address must be
            # answered through the node, so the request leaves the node with the node's address.
            subnet = str(iface.network)
            rules.append(
                Rule(
                    family,
                    "nat",
                    "POSTROUTING",
                    f"-s {subnet} -d {me} -o {br} {inside} -m conntrack --ctstate DNAT",
                    "MASQUERADE",
                )
            )
    return list(dict.fromkeys(rules))  # without duplicates, in order


# -- applying ----------------------------------------------------------------


@record
class Live:
    """What ``iptables-save`` shows of nsnet-cni in one family."""

    chains: set[tuple[str, str]]
    """(table, hook) whose own chain exists."""
    jumps: set[tuple[str, str]]
    rules: dict[tuple[str, str], list[tuple[str, str]]]
    """(table, hook) -> [(rule text after ``-A CHAIN ``, its comment)]."""


def tool(name: str) -> str:
    """A system tool, also where a runtime's short ``PATH`` may not look."""
    for directory in [*os.environ.get("PATH", "").split(os.pathsep), *SBIN]:
        candidate = os.path.join(directory, name)
        if directory and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise CniError(spec.INTERNAL, f"{name} is not installed")


def _run(argv: list[str], stdin: str | None = None) -> str:
    try:
        proc = spawn.run([tool(argv[0]), *argv[1:]], (stdin or "").encode())
    except (OSError, TimeoutError) as exc:
        raise CniError(spec.INTERNAL, f"{argv[0]} failed", str(exc) or "it did not finish in time") from None
    if proc.code != 0:
        raise CniError(spec.INTERNAL, f"{argv[0]} failed", (proc.err or proc.out).decode(errors="replace").strip())
    return proc.out.decode(errors="replace")


def read(family: int) -> Live:
    import re  # not on ADD's path, which appends without reading

    comment_re = re.compile(_COMMENT)
    live = Live(set(), set(), {})
    for table, kind, chain, rest in iptsave.entries(_run([TOOLS[family][0]])):
        if kind == ":":
            if chain.startswith(PREFIX):
                live.chains.add((table, chain[len(PREFIX) :]))
        elif chain.startswith(PREFIX):
            found = comment_re.search(rest)
            comment = (found.group(1) or found.group(2)) if found else ""
            live.rules.setdefault((table, chain[len(PREFIX) :]), []).append((rest, comment))
        elif rest == f'-m comment --comment "{JUMP_COMMENT}" -j {own_chain(chain)}' or rest == (
            f"-m comment --comment {JUMP_COMMENT} -j {own_chain(chain)}"
        ):
            live.jumps.add((table, chain))
    return live


def _jump(hook: str) -> str:
    return f'-m comment --comment "{JUMP_COMMENT}" -j {own_chain(hook)}'


def _restore(family: int, blocks: dict[str, list[str]]) -> None:
    text = restore_text(blocks)
    if text:
        _run([TOOLS[family][1], *RESTORE], text)


def _append(family: int, rules: list[Rule], comment: str) -> bool:
    """Append ``rules`` in one ``iptables-restore``, without reading the ruleset first, if their chains
    and jumps are all there (``-C``, in the same transaction); whether it was done (nothing is changed if not)."""
    blocks: dict[str, list[str]] = {}
    for table, hook in sorted({(r.table, r.hook) for r in rules}):
        blocks.setdefault(table, []).append(f"-C {hook} {_jump(hook)}")
    for r in rules:
        blocks[r.table].append(r.text(comment))
    try:
        proc = spawn.run([tool(TOOLS[family][1]), *RESTORE], restore_text(blocks).encode())
    except (OSError, TimeoutError):
        return False
    return proc.code == 0


def _removals(
    live: Live, doomed: set[tuple[str, str, str]], blocks: dict[str, list[str]], keep: set[tuple[str, str]]
) -> None:
    """``-D`` the live rules ``doomed`` names (table, hook, rule text); drop chains left empty unless kept."""
    for (table, hook), entries in sorted(live.rules.items()):
        lines = blocks.setdefault(table, [])
        remaining = 0
        for rest, _ in entries:
            if (table, hook, rest) in doomed:
                lines.append(f"-D {own_chain(hook)} {rest}")
            else:
                remaining += 1
        if not remaining and (table, hook) not in keep:
            _drop_chain(live, table, hook, lines)
    for table, hook in sorted(live.chains - set(live.rules) - keep):
        _drop_chain(live, table, hook, blocks.setdefault(table, []))


def _drop_chain(live: Live, table: str, hook: str, lines: list[str]) -> None:
    if (table, hook) in live.jumps:
        lines.append(f"-D {hook} {_jump(hook)}")
    lines.append(f"-X {own_chain(hook)}")


def install(rules: list[Rule], comment: str, fresh: bool = False) -> None:
    """Replace the rules carrying ``comment`` by ``rules`` (the caller holds the node lock).

    ``fresh``: no rule can carry ``comment`` yet (an attachment never seen before), so where the
    chains and jumps are in place the rules are only appended (one process instead of two, and no
    ruleset to read back: most of the time an ADD spends in iptables).
    """
    for family in sorted({r.family for r in rules}):
        mine = [r for r in rules if r.family == family]
        if fresh and _append(family, mine, comment):
            continue
        live = read(family)
        want = {(r.table, r.hook) for r in mine}
        blocks: dict[str, list[str]] = {}
        doomed = {(t, h, rest) for (t, h), entries in live.rules.items() for rest, c in entries if c == comment}
        _removals(live, doomed, blocks, keep=want)
        for table, hook in sorted(want):
            lines = blocks.setdefault(table, [])
            if (table, hook) not in live.chains:
                lines.insert(0, f":{own_chain(hook)} - [0:0]")
            if (table, hook) not in live.jumps:
                lines.append(f"-I {hook} 1 {_jump(hook)}")
        for r in mine:
            blocks.setdefault(r.table, []).append(r.text(comment))
        _restore(family, blocks)


def remove(
    comments: set[str] | None = None,
    network: str | None = None,
    keep: set[str] | None = None,
    families: tuple[int, ...] = (4, 6),
) -> set[tuple[str, str]]:
    """Delete the rules carrying one of ``comments`` (or, with ``network``, every attachment's of that
    network whose comment is not in ``keep``); chains left empty go too (the caller holds the node lock).

    Returns the attachments (container id, ifname) whose rules were deleted, as far as the comments say.
    """
    removed: set[tuple[str, str]] = set()
    for family in families:
        try:
            live = read(family)
        except CniError:
            if family == 6:
                continue  # no ip6tables here: nothing of ours there either
            raise
        doomed: set[tuple[str, str, str]] = set()
        for (table, hook), entries in live.rules.items():
            for rest, comment in entries:
                parsed = parse_comment(comment)
                if comments is not None and comment in comments:
                    doomed.add((table, hook, rest))
                elif network is not None and comment not in (keep or set()):
                    hashed = comment.startswith(f"{JUMP_COMMENT}:{network[:100]}:#")
                    if (parsed is not None and parsed[0] == network) or hashed:
                        doomed.add((table, hook, rest))
                    else:
                        continue
                else:
                    continue
                if parsed is not None:
                    removed.add(parsed[1:])
        if not doomed and not (live.chains - set(live.rules)):
            continue
        blocks: dict[str, list[str]] = {}
        _removals(live, doomed, blocks, keep=set())
        _restore(family, blocks)
    return removed


def missing(rules: list[Rule], comment: str) -> list[str]:
    """The rules of ``rules`` (and the jumps to their chains) that are not in the kernel, as text."""
    out = []
    for family in sorted({r.family for r in rules}):
        live = read(family)
        for r in rules:
            if r.family != family:
                continue
            rest = r.text(comment).split(" ", 2)[2]
            if rest not in [text for text, _ in live.rules.get((r.table, r.hook), [])]:
                out.append(f"{'ip6tables' if family == 6 else 'iptables'} -t {r.table} {r.text(comment)}")
            if (r.table, r.hook) not in live.jumps:
                out.append(f"the jump from {r.table} {r.hook} to {own_chain(r.hook)}")
    return sorted(set(out))
