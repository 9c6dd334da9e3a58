"""Run a packet through one native nftables chain, expression by expression (pure).

The expressions are libnftables' JSON (``nft -j list ruleset``). Understood:
matches on ``ip``/``ip6``/``tcp``/``udp``/``th``/``icmp``/``icmpv6``
payload fields, ``meta`` (``iifname``, ``oifname``, ``iif``, ``oif``,
``l4proto``, ``nfproto``, ``protocol``, ``mark``), ``ct`` (``state``,
``status``, ``direction``, ``mark``), ``fib ... type``; prefixes, ranges,
anonymous and named sets, concatenations, ``&`` masks; verdicts (``accept``,
``drop``, ``reject``, ``return``, ``continue``, ``jump``, ``goto``), verdict
maps, and the NAT statements. ``counter``, ``log``, ``notrack`` and
``comment`` do not change the packet's fate. Anything else raises
:class:`NotEvaluated` naming the rule and the expression: no guess.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nsnet.views import NftChainView, NftRuleView, NftTableView

PROTOCOLS = {"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132, "gre": 47}
ICMP_CODES = {"port-unreachable": 3, "admin-prohibited": 13, "host-unreachable": 1, "net-unreachable": 0}
PASSIVE = {"counter", "log", "notrack", "comment", "quota", "flow", "synproxy"}
NAT = {"masquerade", "snat", "dnat", "redirect"}
_MISSING = object()
"""A field the packet does not have (``tcp dport`` of a UDP packet): the rule does not match, as in the kernel."""


class NotEvaluated(Exception):
    """An expression nsnet cannot evaluate: ``rule`` is the rule's text, ``why`` what stopped it."""

    def __init__(self, rule: str, why: str) -> None:
        super().__init__(f"{rule}: {why}")
        self.rule = rule
        self.why = why


@dataclass(frozen=True)
class Fields:
    """What native rules can look at: the packet, its interfaces, its connection."""

    family: int
    src: str
    dst: str
    proto: str
    sport: int | None
    dport: int | None
    ctstate: str
    ct_status: frozenset[str]
    direction: str
    icmp_type: str | None
    in_iface: str | None
    out_iface: str | None
    local: frozenset[str]


@dataclass(frozen=True)
class Outcome:
    """A chain's result: ``accept``, ``drop``, ``reject``, ``return`` (end of a regular chain) or a NAT."""

    verdict: str
    by: str
    nat: dict[str, Any] | None = None
    """The NAT statement that applied: ``{"kind": "dnat", "addr": ..., "port": ...}``."""
    chain: str = ""
    """The chain that decided (a jump's target, where the rule was)."""
    handle: int | None = None
    """The handle of the rule that decided; None: the chain's policy."""


def run_chain(table: NftTableView, chain: NftChainView, f: Fields, trail: list[str], depth: int = 0) -> Outcome:
    """The fate of the packet in ``chain`` of ``table``: a base chain ends in its policy."""
    if depth > 32:
        raise NotEvaluated(f"chain {chain.name}", "chains nested more than 32 deep")
    chains = {c.name: c for c in table.chains}
    for position, rule in enumerate(chain.rules, start=1):
        where = f"rule {position} of {table.family} {table.name} {chain.name}: {rule.text or _expr_text(rule)}"
        result = _rule(table, rule, where, f)
        if result is None:
            continue
        kind, value = result
        trail.append(where)
        if kind in ("jump", "goto"):
            target = chains.get(value)
            if target is None:
                raise NotEvaluated(where, f"the chain {value} is not in the ruleset")
            inner = run_chain(table, target, f, trail, depth + 1)
            if inner.verdict != "return":
                return inner
            if kind == "goto":
                return Outcome("return", where) if chain.hook is None else _policy(table, chain)
            continue
        if kind == "continue":
            continue
        if kind == "nat":
            return Outcome("accept", where, nat=value, chain=chain.name, handle=rule.handle)
        if kind == "return":
            return Outcome("return", where) if chain.hook is None else _policy(table, chain)
        return Outcome(kind, where, chain=chain.name, handle=rule.handle)
    if chain.hook is None:
        return Outcome("return", f"end of {chain.name}")
    return _policy(table, chain)


def _policy(table: NftTableView, chain: NftChainView) -> Outcome:
    policy = chain.policy or "accept"
    return Outcome(
        policy, f"policy {policy} of chain {chain.name} (table {table.family} {table.name})", chain=chain.name
    )


def _expr_text(rule: NftRuleView) -> str:
    return f"handle {rule.handle}"


def _rule(table: NftTableView, rule: NftRuleView, where: str, f: Fields) -> tuple[str, Any] | None:
    """None if the rule does not match (or matches without a verdict); else (kind, value)."""
    for expr in rule.expr:
        (key, body), *_ = expr.items()
        if key == "match":
            if not _match(table, body, where, f):
                return None
        elif key in PASSIVE:
            continue
        elif key in ("accept", "drop", "continue", "return"):
            return key, None
        elif key == "reject":
            return "reject", None
        elif key in ("jump", "goto"):
            return key, body["target"]
        elif key == "vmap":
            verdict = _lookup(table, body["data"], _value(body["key"], where, f), where)
            if verdict is _MISSING or verdict is None:
                return None
            (vkey, vbody), *_ = verdict.items()
            if vkey in ("jump", "goto"):
                return vkey, vbody["target"]
            return vkey, None
        elif key in NAT:
            return "nat", _nat(table, key, body or {}, where, f)
        else:
            raise NotEvaluated(where, f"the expression {key!r}")
    return None


def _nat(table: NftTableView, kind: str, body: dict[str, Any], where: str, f: Fields) -> dict[str, Any]:
    addr = body.get("addr")
    if isinstance(addr, dict) and "map" in addr:
        addr = _lookup(table, addr["map"]["data"], _value(addr["map"]["key"], where, f), where)
        if addr is _MISSING:
            raise NotEvaluated(where, "its NAT map has no entry for this packet")
    port = body.get("port")
    if isinstance(port, dict) and "range" in port:
        port = port["range"][0]
    if isinstance(addr, dict) and "range" in addr:
        addr = addr["range"][0]
    if isinstance(addr, dict) or isinstance(port, dict):
        raise NotEvaluated(where, f"the {kind} target {body}")
    return {"kind": kind, "addr": addr, "port": port}


def _match(table: NftTableView, body: dict[str, Any], where: str, f: Fields) -> bool:
    left = _value(body["left"], where, f)
    if left is _MISSING:
        return False
    op = body.get("op", "==")
    right = body["right"]
    if op == "in" or (op == "==" and isinstance(right, list) and not isinstance(left, tuple)):
        return _flags(left, right) if isinstance(left, frozenset) else _member(table, left, right, where)
    if op in ("==", "!="):
        hit = _flags(left, right) if isinstance(left, frozenset) else _member(table, left, right, where)
        return hit if op == "==" else not hit
    if op in ("<", ">", "<=", ">="):
        if not isinstance(left, int) or not isinstance(right, int):
            raise NotEvaluated(where, f"the comparison {op} {right!r}")
        return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op]
    raise NotEvaluated(where, f"the operator {op!r}")


def _flags(left: frozenset[str], right: Any) -> bool:
    """``ct state established,related``: any of the flags."""
    wanted = right if isinstance(right, list) else right.get("set", []) if isinstance(right, dict) else [right]
    return bool(left & {str(w) for w in wanted})


def _member(table: NftTableView, left: Any, right: Any, where: str) -> bool:
    """Whether ``left`` equals ``right`` or is in it (a prefix, a range, a set, ``@named``)."""
    if isinstance(right, str) and right.startswith("@"):
        named = _named(table, right[1:], where)
        return any(_equal(left, _elem_key(e), where) for e in named.elem)
    if isinstance(right, dict) and "set" in right:
        return any(_equal(left, _elem_key(e), where) for e in right["set"])
    if isinstance(right, list):
        return any(_equal(left, e, where) for e in right)
    return _equal(left, right, where)


def _elem_key(elem: Any) -> Any:
    """A set element's key: plain, ``{"elem": {"val": ...}}`` (with timeout/counter), or a map's [key, value]."""
    if isinstance(elem, list) and len(elem) == 2:
        elem = elem[0]
    if isinstance(elem, dict) and "elem" in elem:
        return elem["elem"]["val"]
    return elem


def _equal(left: Any, right: Any, where: str) -> bool:
    if isinstance(right, dict) and "elem" in right:
        right = right["elem"]["val"]
    if isinstance(left, tuple):
        parts = right.get("concat") if isinstance(right, dict) else None
        if not isinstance(parts, list) or len(parts) != len(left):
            return False
        return all(_equal(a, b, where) for a, b in zip(left, parts, strict=True))
    if isinstance(right, dict):
        if "prefix" in right:
            net = f"{right['prefix']['addr']}/{right['prefix']['len']}"
            return isinstance(left, str) and _in_net(left, net)
        if "range" in right:
            low, high = right["range"]
            return _in_range(left, low, high)
        raise NotEvaluated(where, f"the value {right}")
    if isinstance(left, int) and not isinstance(right, int):
        return left == PROTOCOLS.get(str(right), _port(right))
    if isinstance(left, str) and isinstance(right, str) and right.endswith("*") and not right.endswith("\\*"):
        return left.startswith(right[:-1])  # iifname "br*"
    if isinstance(left, str) and isinstance(right, str) and _is_address(left) and _is_address(right):
        return ipaddress.ip_address(left) == ipaddress.ip_address(right)
    return bool(left == (right.replace("\\*", "*") if isinstance(right, str) else right))


def _port(value: Any) -> int | None:
    names = {"http": 80, "https": 443, "ssh": 22, "domain": 53, "ntp": 123}
    try:
        return int(value)
    except (TypeError, ValueError):
        return names.get(str(value))


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _in_net(address: str, net: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(net, strict=False)
    except ValueError:
        return False


def _in_range(value: Any, low: Any, high: Any) -> bool:
    if isinstance(value, int):
        lo, hi = _port(low), _port(high)
        return lo is not None and hi is not None and lo <= value <= hi
    try:
        first, ip, last = (ipaddress.ip_address(v) for v in (low, value, high))
    except (TypeError, ValueError):
        return False
    return first.version == ip.version == last.version and int(first) <= int(ip) <= int(last)


def _named(table: NftTableView, name: str, where: str) -> Any:
    found = next((s for s in table.sets if s.name == name), None)
    if found is None:
        raise NotEvaluated(where, f"the set @{name} is not in table {table.name}")
    return found


def _lookup(table: NftTableView, data: Any, key: Any, where: str) -> Any:
    """The value a map (``@name`` or anonymous) holds for ``key``; _MISSING if none."""
    if key is _MISSING:
        return _MISSING
    elems = _named(table, data[1:], where).elem if isinstance(data, str) else data.get("set", [])
    for elem in elems:
        if isinstance(elem, list) and len(elem) == 2 and _equal(key, _elem_key(elem), where):
            return elem[1]
    return _MISSING


def _value(expr: Any, where: str, f: Fields) -> Any:
    """The packet's value for a left-hand expression."""
    if not isinstance(expr, dict):
        return expr
    (key, body), *_ = expr.items()
    if key == "payload":
        return _payload(body.get("protocol"), body.get("field"), where, f)
    if key == "meta":
        return _meta(body["key"], where, f)
    if key == "ct":
        return _ct(body["key"], where, f)
    if key == "fib":
        return _fib(body, where, f)
    if key == "concat":
        parts = tuple(_value(e, where, f) for e in body)
        return _MISSING if any(p is _MISSING for p in parts) else parts
    if key == "&":
        value, mask = (_value(e, where, f) for e in body)
        if value is _MISSING:
            return _MISSING
        if isinstance(value, int) and isinstance(mask, int):
            return value & mask
        if isinstance(value, frozenset):
            return value  # ct state & (new|...) != 0: the flags themselves
    raise NotEvaluated(where, f"the expression {key!r}")


def _payload(protocol: str | None, fld: str | None, where: str, f: Fields) -> Any:
    if protocol in ("ip", "ip6"):
        if (protocol == "ip") != (f.family == 4):
            return _MISSING
        if fld in ("saddr", "daddr"):
            return f.src if fld == "saddr" else f.dst
        if fld in ("protocol", "nexthdr"):
            return PROTOCOLS[f.proto]
    elif protocol in ("tcp", "udp", "sctp", "th"):
        carried = f.proto in ("tcp", "udp", "sctp") if protocol == "th" else f.proto == protocol
        if not carried:
            return _MISSING
        if fld in ("sport", "dport"):
            port = f.sport if fld == "sport" else f.dport
            return _MISSING if port is None else port
    elif protocol in ("icmp", "icmpv6"):
        if f.proto != protocol:
            return _MISSING
        if fld == "type":
            return f.icmp_type if f.icmp_type is not None else _MISSING
    raise NotEvaluated(where, f"the field {protocol} {fld}")


def _meta(key: str, where: str, f: Fields) -> Any:
    if key in ("iifname", "iif"):
        return f.in_iface if f.in_iface is not None else ""
    if key in ("oifname", "oif"):
        return f.out_iface if f.out_iface is not None else ""
    if key == "l4proto":
        return PROTOCOLS[f.proto]
    if key == "nfproto":
        return "ipv4" if f.family == 4 else "ipv6"
    if key == "protocol":
        return "ip" if f.family == 4 else "ip6"
    if key == "mark":
        return 0  # nothing in a lab's path marks packets unless a rule does (and that rule is not evaluated)
    raise NotEvaluated(where, f"meta {key}")


def _ct(key: str, where: str, f: Fields) -> Any:
    if key == "state":
        return frozenset({f.ctstate.lower()})
    if key == "status":
        return frozenset(f.ct_status)
    if key == "direction":
        return f.direction
    if key == "mark":
        return 0
    raise NotEvaluated(where, f"ct {key}")


def _fib(body: dict[str, Any], where: str, f: Fields) -> Any:
    flags = set(body.get("flags", []))
    if body.get("result") != "type" or not flags & {"daddr", "saddr"}:
        raise NotEvaluated(where, f"fib {' . '.join(sorted(flags))} {body.get('result')}")
    address = f.dst if "daddr" in flags else f.src
    if address in f.local:
        return "local"
    ip = ipaddress.ip_address(address)
    if ip.is_multicast:
        return "multicast"
    if ip.version == 4 and address.endswith(".255"):
        return "broadcast"
    return "unicast"


def base_chains(
    tables: list[NftTableView], families: set[str], hook: str
) -> Iterator[tuple[NftTableView, NftChainView]]:
    """The base chains of ``families`` on ``hook``, in the order the kernel runs them (priority, then creation)."""
    found = [
        (chain.prio or 0, table.handle, chain.handle, table, chain)
        for table in tables
        if table.family in families
        for chain in table.chains
        if chain.hook == hook
    ]
    for *_, table, chain in sorted(found, key=lambda item: item[:3]):
        yield table, chain
