"""Which rule or policy decides a packet's fate in one netfilter hook (pure).

Rules are taken as ``iptables-save`` prints them. The matches nsnet writes
and the common ones are understood (-s -d -i -o -p, --sport/--dport,
-m conntrack --ctstate, -m state --state, -m physdev, -m comment, -m
addrtype is not); anything else makes the verdict "cannot evaluate" rather
than a guess.
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass, field

from ..views import ChainView, TableView

HOOK_TABLES: dict[str, tuple[str, ...]] = {
    "PREROUTING": ("raw", "mangle", "nat"),
    "INPUT": ("mangle", "nat", "filter"),
    "FORWARD": ("mangle", "filter"),
    "OUTPUT": ("raw", "mangle", "nat", "filter"),
    "POSTROUTING": ("mangle", "nat"),
}
PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132}
TERMINAL = {"ACCEPT", "DROP", "REJECT", "MASQUERADE", "SNAT", "DNAT", "REDIRECT"}
CONTINUE = {"LOG", "NFLOG", "TRACE", "MARK", "CONNMARK", "CT", "NOTRACK", "CHECKSUM", "TCPMSS", "CLASSIFY"}


@dataclass(frozen=True)
class Packet:
    """What the rules look at."""

    family: int
    src: str
    dst: str
    proto: str
    """``icmp``, ``icmpv6``, ``tcp`` or ``udp``."""
    sport: int | None = None
    dport: int | None = None
    ctstate: str = "NEW"
    size: int = 0
    """Its IP length in bytes, for the MTU checks (0: not checked)."""
    df: bool = True
    """Don't Fragment: set on packets that fit the sender's MTU (path MTU discovery); fragments have it clear."""


@dataclass(frozen=True)
class Context:
    """Interfaces at the hook: ``in``/``out`` as iptables sees them, bridge ports for -m physdev."""

    in_iface: str | None = None
    out_iface: str | None = None
    physdev_in: str | None = None
    physdev_out: str | None = None
    bridged: bool = False
    local: frozenset[str] = frozenset()
    """The namespace's own addresses (``-m addrtype --dst-type LOCAL``, ``fib daddr type local``)."""


@dataclass(frozen=True)
class Decision:
    """The outcome of a hook: ACCEPT, DROP, REJECT, or UNKNOWN (a rule nsnet cannot evaluate)."""

    verdict: str
    table: str
    chain: str
    by: str
    """``policy DROP`` or ``rule N: -A CHAIN ...``."""
    nat: str | None = None
    """A NAT target that applied (``DNAT --to-destination ...``), if any."""
    trail: tuple[str, ...] = field(default=())
    """Rules that matched on the way (jumps, logs), in order."""


class _Unknown(Exception):
    def __init__(self, rule: str, why: str) -> None:
        self.rule = rule
        self.why = why


def _iface_match(pattern: str, name: str | None) -> bool:
    if name is None:
        return False
    if pattern.endswith("+"):
        return name.startswith(pattern[:-1])
    return name == pattern


def _in_net(address: str, net: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(net, strict=False)
    except ValueError:
        return False


def _port_match(spec: str, port: int | None) -> bool:
    if port is None:
        return False
    low, _, high = spec.partition(":")
    return int(low or 0) <= port <= int(high or low or 65535)


ADDRESS_TYPES = {
    "UNSPEC",
    "UNICAST",
    "LOCAL",
    "BROADCAST",
    "ANYCAST",
    "MULTICAST",
    "BLACKHOLE",
    "UNREACHABLE",
    "PROHIBIT",
    "THROW",
    "NAT",
    "XRESOLVE",
}
"""The types ``-m addrtype`` knows (the kernel's route types)."""
_LOOPBACK = {4: ipaddress.ip_network("127.0.0.0/8"), 6: ipaddress.ip_network("::1/128")}


def address_type(address: str, local: frozenset[str]) -> str:
    """The type ``-m addrtype`` gives ``address`` in a namespace whose own addresses are ``local``.

    As the kernel classifies it: 0.0.0.0/8 and 255.255.255.255 are BROADCAST
    (``::`` is UNSPEC), multicast is MULTICAST, the namespace's own addresses
    and the loopback network (the ``local`` routes) are LOCAL, anything else
    UNICAST. A subnet's directed broadcast is a ``broadcast`` route of the local
    table, which the context does not carry: it counts as UNICAST here.
    """
    ip = ipaddress.ip_address(address)
    if ip.version == 4 and (int(ip) >> 24 == 0 or ip == ipaddress.IPv4Address("255.255.255.255")):
        return "BROADCAST"
    if ip.version == 6 and ip.is_unspecified:
        return "UNSPEC"
    if ip.is_multicast:
        return "MULTICAST"
    if address in local or str(ip) in local or ip in _LOOPBACK[ip.version]:
        return "LOCAL"
    return "UNICAST"


def _addrtype_match(rule: str, spec: str, address: str, ctx: Context) -> bool:
    wanted = set(spec.upper().split(","))
    unknown = wanted - ADDRESS_TYPES
    if unknown:
        raise _Unknown(rule, f"the address type {', '.join(sorted(unknown))}")
    routed = wanted - {"UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "MULTICAST"}
    if routed:  # types that only a route of that type in the local table gives
        raise _Unknown(rule, f"-m addrtype {', '.join(sorted(routed))} (it depends on the local routing table)")
    try:
        return address_type(address, ctx.local) in wanted
    except ValueError:
        raise _Unknown(rule, f"-m addrtype for the address {address!r}") from None


def rule_matches(rule: str, pkt: Packet, ctx: Context) -> tuple[bool, str | None]:
    """Whether ``rule`` (``-A CHAIN ...``) matches; returns (match, target-with-options)."""
    words = shlex.split(rule)
    i = 2  # skip "-A CHAIN"
    target: str | None = None
    negate = False
    module = None
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else ""
        if word == "!":
            negate = True
            i += 1
            continue
        ok: bool | None = None
        if word in ("-s", "--source"):
            ok = _in_net(pkt.src, value)
        elif word in ("-d", "--destination"):
            ok = _in_net(pkt.dst, value)
        elif word in ("-i", "--in-interface"):
            ok = _iface_match(value, ctx.in_iface)
        elif word in ("-o", "--out-interface"):
            ok = _iface_match(value, ctx.out_iface)
        elif word in ("-p", "--protocol"):
            ok = value == "all" or PROTOCOLS.get(value, -1) == PROTOCOLS.get(pkt.proto, -2)
        elif word == "-m":
            module = value
            known = ("tcp", "udp", "sctp", "conntrack", "state", "physdev", "comment", "icmp", "icmp6", "addrtype")
            if module not in known:
                raise _Unknown(rule, f"the match -m {module}")
            i += 2
            continue
        elif word in ("--sport", "--source-port"):
            ok = _port_match(value, pkt.sport)
        elif word in ("--dport", "--destination-port"):
            ok = _port_match(value, pkt.dport)
        elif word in ("--ctstate", "--state"):
            ok = pkt.ctstate in value.split(",")
        elif word == "--physdev-in":
            ok = _iface_match(value, ctx.physdev_in)
        elif word == "--physdev-out":
            ok = _iface_match(value, ctx.physdev_out)
        elif word == "--physdev-is-bridged":
            ok = ctx.bridged
            i -= 1
        elif word == "--src-type":
            ok = _addrtype_match(rule, value, pkt.src, ctx)
        elif word == "--dst-type":
            ok = _addrtype_match(rule, value, pkt.dst, ctx)
        elif word in ("--limit-iface-in", "--limit-iface-out"):
            # The type would be looked up on that interface alone: the context's addresses carry no interface.
            raise _Unknown(rule, f"-m addrtype {word}")
        elif word == "--comment":
            ok = True
        elif word == "--icmp-type" or word == "--icmpv6-type":
            raise _Unknown(rule, f"{word} {value}")
        elif word in ("-j", "--jump", "-g", "--goto"):
            target = " ".join(words[i + 1 :])
            break
        else:
            raise _Unknown(rule, f"the option {word}")
        if ok is not None and ok == negate:
            return False, None
        negate = False
        i += 2
    return True, target


def evaluate(tables: list[TableView], hook: str, pkt: Packet, ctx: Context) -> Decision:
    """Run ``pkt`` through every table of ``hook``; the first DROP/REJECT ends it."""
    trail: list[str] = []
    nat: str | None = None
    last = Decision("ACCEPT", "", hook, "no rules", trail=())
    for table_name in HOOK_TABLES[hook]:
        if table_name == "nat" and pkt.ctstate != "NEW":
            continue  # NAT rules see only the first packet of a connection
        table = next((t for t in tables if t.table == table_name and t.family == pkt.family), None)
        if table is None:
            continue
        chains = {c.name: c for c in table.chains}
        if hook not in chains or (not chains[hook].rules and chains[hook].policy == "ACCEPT"):
            continue  # an empty chain that accepts decides nothing
        try:
            verdict, by, target = _walk(chains, chains[hook], pkt, ctx, trail, depth=0)
            if verdict == "RETURN":  # RETURN from a built-in chain: its policy decides
                policy = chains[hook].policy or "ACCEPT"
                verdict, by = policy, f"policy {policy} of {hook}"
        except _Unknown as exc:
            return Decision(
                "UNKNOWN", table_name, hook, f"{exc.rule} (nsnet cannot evaluate {exc.why})", trail=tuple(trail)
            )
        if target and target.split()[0] in ("DNAT", "SNAT", "MASQUERADE", "REDIRECT"):
            nat = target
        last = Decision(verdict, table_name, hook, by, nat=nat, trail=tuple(trail))
        if verdict in ("DROP", "REJECT"):
            return last
    return Decision(last.verdict, last.table, hook, last.by, nat=nat, trail=tuple(trail))


def _walk(
    chains: dict[str, ChainView], chain: ChainView, pkt: Packet, ctx: Context, trail: list[str], depth: int
) -> tuple[str, str, str | None]:
    if depth > 32:
        raise _Unknown(f"chain {chain.name}", "chains nested more than 32 deep")
    for position, rule in enumerate(chain.rules, start=1):
        matched, target = rule_matches(rule.rule, pkt, ctx)
        if not matched or target is None:
            if matched:
                trail.append(f"{chain.name} rule {position}: {rule.rule} (no target)")
            continue
        name = target.split()[0]
        where = f"rule {position} of {chain.name}: {rule.rule}"
        if name in TERMINAL:
            trail.append(where)
            verdict = "ACCEPT" if name in ("ACCEPT", "MASQUERADE", "SNAT", "DNAT", "REDIRECT") else name
            return verdict, where, target
        if name == "RETURN":
            trail.append(where)
            return "RETURN", where, None
        if name in CONTINUE:
            trail.append(where)
            continue
        if name in chains:
            trail.append(where)
            verdict, by, inner = _walk(chains, chains[name], pkt, ctx, trail, depth + 1)
            if verdict != "RETURN":
                return verdict, by, inner
            continue
        raise _Unknown(rule.rule, f"the target {name}")
    if chain.policy is None:
        return "RETURN", f"end of {chain.name}", None
    return chain.policy, f"policy {chain.policy} of {chain.name}", None
