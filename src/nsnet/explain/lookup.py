"""Route lookup over a snapshot, as ``fib_lookup`` does it (pure).

The rules (``ip rule``) in priority order, each naming a table (``local``
first, then ``main``, ``default``) or an action; a table without a match, or a
``throw`` route, hands the lookup to the next rule.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from nsnet.explain.base import _net
from nsnet.explain.verdict import Space
from nsnet.views import PolicyRuleView, RouteView

DEFAULT_RULES = tuple(
    PolicyRuleView(family, priority, "lookup", table)
    for family in (4, 6)
    for priority, table in ((0, "local"), (32766, "main"), (32767, "default"))
)
"""The kernel's own rules, for snapshots saved before rules were read."""
REFUSING = {"unreachable": "rejected", "prohibit": "rejected", "blackhole": "dropped"}
"""Route types and rule actions that stop a packet: the first two answer with an ICMP error, the last is silent."""


@dataclass(frozen=True)
class Lookup:
    """The result of a route lookup: the route (``None``: no route), or the rule that decided without one."""

    route: RouteView | None
    rule: PolicyRuleView | None
    """The rule whose table gave the route, or whose action (blackhole, unreachable, prohibit) decided."""
    path: tuple[str, ...] = ()
    """What the lookup went through (tables that had no match, throw routes), for the step's text."""


def conf(space: Space, family: int, dev: str, name: str) -> int:
    """A per-interface setting as the kernel applies it: ``max(all, dev)`` for IPv4's rp_filter, arp_ignore,
    arp_announce; callers needing "or" use it with values 0/1 (``max`` is "or" there)."""
    sysctls = space.view.sysctls or {}
    fam = "ipv4" if family == 4 else "ipv6"
    values = [sysctls.get(f"net.{fam}.conf.{where}.{name}") for where in ("all", dev)]
    return max((int(v) for v in values if v is not None and v.lstrip("-").isdigit()), default=0)


def _sysctl_dev(dev: str) -> str:
    """An interface name as ``sysctl`` writes it in a key (dots become slashes)."""
    return dev.replace(".", "/")


def _rule_matches(rule: PolicyRuleView, src: str, dst: str, iif: str | None, oif: str | None, mark: int = 0) -> bool:
    matched = True
    if rule.src and (not src or ipaddress.ip_address(src) not in ipaddress.ip_network(rule.src, strict=False)):
        matched = False
    if rule.dst and ipaddress.ip_address(dst) not in ipaddress.ip_network(rule.dst, strict=False):
        matched = False
    # A locally made packet comes "from lo" as far as rules are concerned.
    if rule.iif and rule.iif != (iif or "lo"):
        matched = False
    if rule.oif and rule.oif != oif:
        matched = False
    if rule.fwmark is not None and (rule.fwmark ^ mark) & (rule.fwmask if rule.fwmask is not None else 0xFFFFFFFF):
        matched = False
    return matched != rule.invert


def _table_lookup(space: Space, table: str, family: int, dst: str) -> RouteView | None:
    ip = ipaddress.ip_address(dst)
    best: RouteView | None = None
    for route in space.view.routes or []:
        if route.table != table or route.family != family or route.type in ("multicast", "anycast"):
            continue
        net = _net(route)
        if ip not in net:
            continue
        if (
            best is None
            or net.prefixlen > _net(best).prefixlen
            or (net.prefixlen == _net(best).prefixlen and (route.metric or 0) < (best.metric or 0))
        ):
            best = route
    return best


def route_lookup(space: Space, family: int, dst: str, src: str = "", iif: str | None = None) -> Lookup:
    """What ``fib_lookup`` finds in ``space`` for ``dst`` (from ``src``, arriving on ``iif``; None: made here)."""
    rules = [r for r in (space.view.rules or DEFAULT_RULES) if r.family == family]
    path: list[str] = []
    i = 0
    while i < len(rules):
        rule = rules[i]
        i += 1
        if not _rule_matches(rule, src, dst, iif, None):
            continue
        if rule.action in REFUSING:
            return Lookup(None, rule, tuple(path))
        if rule.action == "goto":
            i = next((j for j, r in enumerate(rules) if r.priority >= (rule.goto or 0)), len(rules))
            continue
        if rule.action != "lookup" or rule.table is None:
            continue
        route = _table_lookup(space, rule.table, family, dst)
        if route is None:
            if rule.table not in ("local", "default"):
                path.append(f"table {rule.table}: no match")
            continue
        if route.type == "throw":
            path.append(f"table {rule.table}: throw {route.dst}")
            continue
        return Lookup(route, rule, tuple(path))
    return Lookup(None, None, tuple(path))


def route_text(route: RouteView) -> str:
    text = route.dst if route.type in ("unicast", "local") else f"{route.type} {route.dst}"
    if route.gateway:
        text += f" via {route.gateway}"
    if route.dev:
        text += f" dev {route.dev}"
    if route.table != "main":
        text += f" table {route.table}"
    return text


def _rule_text(rule: PolicyRuleView) -> str:
    text = f"{rule.priority}: " + ("not " if rule.invert else "") + f"from {rule.src or 'all'}"
    for key, value in (("to", rule.dst), ("iif", rule.iif), ("oif", rule.oif)):
        if value:
            text += f" {key} {value}"
    if rule.fwmark is not None:
        text += f" fwmark {rule.fwmark:#x}"
    return text + (f" lookup {rule.table}" if rule.action == "lookup" else f" {rule.action}")
