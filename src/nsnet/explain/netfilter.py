"""Which rule or policy decides a packet's fate in one netfilter hook (pure).

With the namespace's nftables ruleset (``nft -j list ruleset``) every base
chain of the hook runs in priority order, native nftables chains and
iptables-nft ones alike, as the kernel runs them: an accept ends one base
chain only, a drop or reject ends the packet, NAT chains see only a
connection's first packet and the first NAT that applies wins. Chains that
iptables made are evaluated on ``iptables-save``'s text (so the explanation
quotes the rule as iptables prints it); native ones by :mod:`.nft`.

iptables rules: -s -d -i -o -p, --sport/--dport, -m conntrack --ctstate,
-m state --state, -m physdev, -m comment, -m icmp --icmp-type, -m addrtype;
anything else makes the verdict "cannot evaluate" rather than a guess.
Without a ruleset (a saved snapshot of an older nsnet) the iptables tables
are run in their usual order.
"""

from __future__ import annotations

import ipaddress
import itertools
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from nsnet.explain.nft import Fields, NotEvaluated, base_chains, run_chain
from nsnet.views import ChainView, NftChainView, NftTableView, TableView, made_by_iptables

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
    icmp_type: str | None = None
    """``echo-request``, ``echo-reply`` or ``destination-unreachable`` (ICMP packets); NDP's
    ``nd-neighbor-solicit`` and ``nd-neighbor-advert`` (nft's names)."""
    ct_status: frozenset[str] = frozenset()
    """Conntrack status flags of its connection so far: ``dnat``, ``snat``."""
    direction: str = "original"
    """``original`` (the request's way) or ``reply``."""


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
class Nat:
    """A NAT that applied: ``DNAT``/``SNAT`` to ``address``[:``port``], ``MASQUERADE`` or ``REDIRECT``."""

    kind: str
    address: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        to = self.address or ""
        if self.port:
            to = f"[{to}]:{self.port}" if ":" in to else f"{to}:{self.port}"
        return f"{self.kind} to {to}" if to else self.kind


@dataclass(frozen=True)
class Decision:
    """The outcome of a hook: ACCEPT, DROP, REJECT, or UNKNOWN (a rule nsnet cannot evaluate)."""

    verdict: str
    table: str
    chain: str
    by: str
    """``policy DROP`` or ``rule N: -A CHAIN ...``."""
    nat: Nat | None = None
    """The NAT that applied, if any."""
    trail: tuple[str, ...] = field(default=())
    """Rules that matched on the way (jumps, logs), in order."""
    native: tuple[str, str, str, int | None] | None = None
    """Where a native nftables chain decided: (family, table, chain, rule handle or None for its policy)."""
    before: tuple[Decision, ...] = ()
    """The base chains of the hook that accepted the packet before this one decided, in order."""


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


Matcher = Callable[[str, str, "Packet", "Context"], bool]
"""Whether a packet matches an option's value: (rule, value, packet, context) -> match."""
_MATCHERS: dict[str, Matcher] = {
    **dict.fromkeys(("-s", "--source"), lambda rule, value, pkt, ctx: _in_net(pkt.src, value)),
    **dict.fromkeys(("-d", "--destination"), lambda rule, value, pkt, ctx: _in_net(pkt.dst, value)),
    **dict.fromkeys(("-i", "--in-interface"), lambda rule, value, pkt, ctx: _iface_match(value, ctx.in_iface)),
    **dict.fromkeys(("-o", "--out-interface"), lambda rule, value, pkt, ctx: _iface_match(value, ctx.out_iface)),
    **dict.fromkeys(
        ("-p", "--protocol"),
        lambda rule, value, pkt, ctx: value == "all" or PROTOCOLS.get(value, -1) == PROTOCOLS.get(pkt.proto, -2),
    ),
    **dict.fromkeys(("--sport", "--source-port"), lambda rule, value, pkt, ctx: _port_match(value, pkt.sport)),
    **dict.fromkeys(("--dport", "--destination-port"), lambda rule, value, pkt, ctx: _port_match(value, pkt.dport)),
    **dict.fromkeys(("--ctstate", "--state"), lambda rule, value, pkt, ctx: pkt.ctstate in value.split(",")),
    "--physdev-in": lambda rule, value, pkt, ctx: _iface_match(value, ctx.physdev_in),
    "--physdev-out": lambda rule, value, pkt, ctx: _iface_match(value, ctx.physdev_out),
    "--src-type": lambda rule, value, pkt, ctx: _addrtype_match(rule, value, pkt.src, ctx),
    "--dst-type": lambda rule, value, pkt, ctx: _addrtype_match(rule, value, pkt.dst, ctx),
    "--comment": lambda rule, value, pkt, ctx: True,
    **dict.fromkeys(("--icmp-type", "--icmpv6-type"), lambda rule, value, pkt, ctx: _icmp_type_match(value, pkt)),
}
"""The options nsnet models, each taking one value."""
MODULES = ("tcp", "udp", "sctp", "conntrack", "state", "physdev", "comment", "icmp", "icmp6", "addrtype")
"""The matches (``-m``) whose options :data:`_MATCHERS` knows."""
JUMPS = ("-j", "--jump", "-g", "--goto")


def rule_matches(rule: str, pkt: Packet, ctx: Context) -> tuple[bool, str | None]:
    """Whether ``rule`` (``-A CHAIN ...``) matches; returns (match, target-with-options)."""
    words = shlex.split(rule)
    i = 2  # skip "-A CHAIN"
    negate = False
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else ""
        if word == "!":
            negate = True
            i += 1
            continue
        if word == "-m":
            if value not in MODULES:
                raise _Unknown(rule, f"the match -m {value}")
            i += 2
            continue
        if word in JUMPS:
            return True, " ".join(words[i + 1 :])
        if word == "--physdev-is-bridged":  # a flag: no value follows
            ok, i = ctx.bridged, i + 1
        elif word in ("--limit-iface-in", "--limit-iface-out"):
            # The type would be looked up on that interface alone: the context's addresses carry no interface.
            raise _Unknown(rule, f"-m addrtype {word}")
        elif word in _MATCHERS:
            ok, i = _MATCHERS[word](rule, value, pkt, ctx), i + 2
        else:
            raise _Unknown(rule, f"the option {word}")
        if ok == negate:
            return False, None
        negate = False
    return True, None


ICMP_TYPES = {
    4: {"echo-reply": 0, "destination-unreachable": 3, "echo-request": 8},
    6: {
        "destination-unreachable": 1,
        "echo-request": 128,
        "echo-reply": 129,
        "nd-neighbor-solicit": 135,
        "nd-neighbor-advert": 136,
    },
}
ICMP_ALIASES = {
    "neighbour-solicitation": "nd-neighbor-solicit",
    "neighbor-solicitation": "nd-neighbor-solicit",
    "neighbour-advertisement": "nd-neighbor-advert",
    "neighbor-advertisement": "nd-neighbor-advert",
}
"""ip6tables' names of the NDP types, and the names nft (and :attr:`Packet.icmp_type`) gives them."""
IPTABLES_PRIORITY = {"raw": -300, "mangle": -150, "filter": 0, "security": 50}
NAT_PRIORITY = {"PREROUTING": -100, "OUTPUT": -100, "INPUT": 100, "POSTROUTING": 100}


def _icmp_type_match(spec: str, pkt: Packet) -> bool:
    """``--icmp-type 8``, ``echo-request``, ``3/3`` or ``any`` against the packet's ICMP type."""
    if pkt.icmp_type is None:
        return False
    kind = spec.split("/", 1)[0]
    if kind == "any":
        return True
    number = ICMP_TYPES[pkt.family].get(pkt.icmp_type)
    return ICMP_ALIASES.get(kind, kind) == pkt.icmp_type or (kind.isdigit() and int(kind) == number)


def _iptables_nat(target: str | None) -> Nat | None:
    """The NAT an iptables target does (``DNAT --to-destination 11.11.11.2:80``), or None."""
    if not target:
        return None
    words = target.split()
    kind = words[0]
    if kind not in ("DNAT", "SNAT", "MASQUERADE", "REDIRECT"):
        return None
    address, port = None, None
    for flag, value in itertools.pairwise(words):
        if flag in ("--to-destination", "--to-source"):
            host, _, rest = value.rpartition(":") if value.count(":") == 1 or value.startswith("[") else (value, "", "")
            address = (host or value).strip("[]").split("-")[0]
            port = int(rest.split("-")[0]) if rest else None
        elif flag == "--to-ports":
            port = int(value.split("-")[0])
    return Nat(kind, address, port)


def evaluate(
    tables: list[TableView],
    hook: str,
    pkt: Packet,
    ctx: Context,
    ruleset: list[NftTableView] | None = None,
    layer: str = "ip",
) -> Decision:
    """Run ``pkt`` through every base chain of ``hook``; the first DROP/REJECT ends it.

    ``layer`` is ``ip`` (the IPv4/IPv6 hooks, bridged traffic included when
    br_netfilter hands it over) or ``bridge`` (the bridge family's own chains).
    """
    trail: list[str] = []
    nat: Nat | None = None
    last = Decision("ACCEPT", "", hook, "no rules", trail=())
    decided: list[Decision] = []
    for run in _runs(tables, ruleset, hook, pkt.family, layer):
        if run.nat_chain and (pkt.ctstate != "NEW" or nat is not None):
            continue  # NAT chains see a connection's first packet only; the first NAT that applies wins
        try:
            verdict, by, applied, native = run.go(pkt, ctx, trail)
        except (_Unknown, NotEvaluated) as exc:
            why = f"{exc.rule} (nsnet cannot evaluate {exc.why})"
            return Decision("UNKNOWN", run.table, run.chain, why, trail=tuple(trail), before=tuple(decided))
        nat = nat or applied
        last = Decision(
            verdict, run.table, run.chain, by, nat=nat, trail=tuple(trail), native=native, before=tuple(decided)
        )
        if verdict in ("DROP", "REJECT"):
            return last
        decided.append(last)
    return replace(last, nat=nat, trail=tuple(trail))


_Go = Callable[[Packet, Context, list[str]], tuple[str, str, Nat | None, tuple[str, str, str, int | None] | None]]


@dataclass(frozen=True)
class _Run:
    """One base chain to run on a hook: its table and chain names as the trace names them."""

    table: str
    chain: str
    nat_chain: bool
    go: _Go


def _runs(
    tables: list[TableView], ruleset: list[NftTableView] | None, hook: str, family: int, layer: str
) -> list[_Run]:
    """The base chains of ``hook`` in the order the kernel runs them."""
    iptables = {t.table: t for t in tables if t.family == family} if layer == "ip" else {}
    found: list[tuple[int, int, _Run]] = []
    made_by_nft: set[str] = set()
    if ruleset is not None:
        families = {"bridge"} if layer == "bridge" else {"ip" if family == 4 else "ip6", "inet"}
        for order, (table, chain) in enumerate(base_chains(ruleset, families, hook.lower())):
            ipt = iptables.get(table.name) if table.family in ("ip", "ip6") else None
            if ipt is not None and made_by_iptables(ipt, table):
                made_by_nft.add(table.name)
                run = _iptables_run(ipt, hook)
            else:
                run = _native_run(table, chain, layer)
            if run is not None:
                found.append((chain.prio or 0, order, run))
    for name, ipt in iptables.items():
        if name in made_by_nft or (ruleset and name not in _legacy_names(ruleset, family)):
            continue
        run = _iptables_run(ipt, hook)  # iptables-legacy tables (or no ruleset read): the usual priorities
        if run is not None:
            prio = NAT_PRIORITY.get(hook, 0) if name == "nat" else IPTABLES_PRIORITY.get(name, 0)
            found.append((prio, 1000, run))
    return [run for *_, run in sorted(found, key=lambda item: item[:2])]


def _legacy_names(ruleset: list[NftTableView], family: int) -> set[str]:
    """iptables tables nftables does not hold (the legacy backend)."""
    names = {t.name for t in ruleset if t.family == ("ip" if family == 4 else "ip6")}
    return {"raw", "mangle", "nat", "filter", "security"} - names


def _iptables_run(ipt: TableView, hook: str) -> _Run | None:
    chains = {c.name: c for c in ipt.chains}
    if hook not in chains or (not chains[hook].rules and chains[hook].policy == "ACCEPT"):
        return None  # an empty chain that accepts decides nothing

    def go(
        pkt: Packet, ctx: Context, trail: list[str]
    ) -> tuple[str, str, Nat | None, tuple[str, str, str, int | None] | None]:
        verdict, by, target = _walk(chains, chains[hook], pkt, ctx, trail, depth=0)
        if verdict == "RETURN":  # RETURN from a built-in chain: its policy decides
            policy = chains[hook].policy or "ACCEPT"
            verdict, by = policy, f"policy {policy} of {hook}"
        return verdict, by, _iptables_nat(target), None

    return _Run(ipt.table, hook, ipt.table == "nat", go)


def _native_run(table: NftTableView, chain: NftChainView, layer: str) -> _Run | None:
    if chain.type not in (None, "filter", "nat", "route"):
        return None
    if not chain.rules and (chain.policy or "accept") == "accept":
        return None

    def go(
        pkt: Packet, ctx: Context, trail: list[str]
    ) -> tuple[str, str, Nat | None, tuple[str, str, str, int | None] | None]:
        bridge = layer == "bridge"
        fields = Fields(
            family=pkt.family,
            src=pkt.src,
            dst=pkt.dst,
            proto=pkt.proto,
            sport=pkt.sport,
            dport=pkt.dport,
            ctstate=pkt.ctstate,
            ct_status=pkt.ct_status,
            direction=pkt.direction,
            icmp_type=pkt.icmp_type,
            in_iface=ctx.physdev_in if bridge else ctx.in_iface,
            out_iface=ctx.physdev_out if bridge else ctx.out_iface,
            local=ctx.local,
        )
        outcome = run_chain(table, chain, fields, trail)
        nat = None
        if outcome.nat is not None:
            n = outcome.nat
            port = n.get("port")
            nat = Nat(n["kind"].upper(), n.get("addr"), int(port) if port is not None else None)
        verdict = "ACCEPT" if outcome.verdict in ("accept", "return") else outcome.verdict.upper()
        return verdict, outcome.by, nat, (table.family, table.name, outcome.chain or chain.name, outcome.handle)

    return _Run(table.name, chain.name, chain.type == "nat", go)


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
