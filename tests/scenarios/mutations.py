"""The catalogue of mutations: raw commands that change a lab by hand, each with its undo and its words.

A builder looks at the flow (what it crosses) and the lab's baseline state (routes, rules, sysctls), and
makes one :class:`Mutation`: the shell commands that make it (``ip -n``, ``ip netns exec NS iptables``,
``nft``, ``sysctl``, ``bridge -n``), the commands that undo exactly that, and the words explain's failing
step (or the reason) must contain when the traffic dies: each entry of ``words`` is a set of alternatives,
and every entry must be met (whole words, any case).
"""

from __future__ import annotations

import random
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from .labs import BaseLab, Flow
from .state import NsState, route_spec


@dataclass(frozen=True)
class Mutation:
    kind: str
    """The category the agreement table groups by."""
    desc: str
    apply: tuple[str, ...]
    revert: tuple[str, ...]
    words: tuple[tuple[str, ...], ...] = ()
    harmless: bool = False
    """The traffic must still pass (a mutation off the packet's way, or one the kernel ignores for it)."""
    size: int | None = None
    """The IP length to send (MTU scenarios)."""


@dataclass
class Ctx:
    """What a builder may look at: the lab, its namespaces, its baseline, the flow, a seeded random."""

    lab: BaseLab
    ns: dict[str, str]
    """Node label -> kernel namespace name."""
    base: dict[str, NsState]
    flow: Flow
    rng: random.Random
    uid: int = 0
    """A number unique to the scenario (names of nft tables, rule priorities)."""
    extra: dict[str, str] = field(default_factory=dict)

    def ip(self, node: str) -> str:
        return f"ip -n {self.ns[node]}"

    def run(self, node: str) -> str:
        return f"ip netns exec {self.ns[node]} "

    @property
    def v6(self) -> bool:
        return self.flow.family == 6

    @property
    def ipt(self) -> str:
        return "ip6tables" if self.v6 else "iptables"

    def path(self) -> list[tuple[str, str]]:
        return [(e.split(":", 1)[0], e.split(":", 1)[1]) for e in self.flow.path]

    def is_port(self, node: str, dev: str) -> bool:
        return self.base[node].links.get(dev, (None, None))[1] is not None

    def is_bridge(self, node: str, dev: str) -> bool:
        return any(link[1] == dev for link in self.base[node].links.values())

    def addr_of(self, node: str, dev: str) -> str:
        """``dev``'s address (CIDR) of the flow's family in the baseline."""
        for d, cidr in sorted(self.base[node].addrs):
            if d == dev and (":" in cidr) == self.v6:
                return cidr
        raise LookupError(f"{node}:{dev} has no address")

    def src_addr(self) -> str:
        return self.addr_of(*self.path()[0]).split("/")[0]

    def dst_end(self) -> tuple[str, str]:
        """The node and interface that hold the flow's address (after the base lab's DNAT, the last hop)."""
        for node, state in self.base.items():
            for dev, cidr in state.addrs:
                if cidr.split("/")[0] == self.flow.addr:
                    return node, dev
        return self.path()[-1]

    def l3_nodes(self) -> list[str]:
        """Nodes on the way that look at the packet at layer 3 (sender, routers, receiver), in order."""
        seen = [self.path()[0][0], *self.flow.forwarders, self.path()[-1][0]]
        return [n for i, n in enumerate(seen) if n not in seen[:i]]

    def path_nodes(self) -> list[str]:
        out: list[str] = []
        for node, _ in self.path():
            if node not in out:
                out.append(node)
        return out

    def dev_routes(self, node: str, dev: str) -> list[str]:
        """Commands that put back the baseline's static routes through ``dev`` (the kernel drops them on down)."""
        state = self.base[node]
        return [
            f"{self.ip(node)} -{r['family']} route replace {route_spec(r)}"
            for key, r in sorted(state.routes.items(), key=str)
            if r.get("dev") == dev and r.get("protocol") != "kernel"
        ]

    def dev_addrs(self, node: str, dev: str) -> list[str]:
        return [
            f"{self.ip(node)} addr replace {cidr} dev {dev}" + (" nodad" if ":" in cidr else "")
            for d, cidr in sorted(self.base[node].addrs)
            if d == dev
        ]


Builder = Callable[[Ctx], Mutation]
ON_OFF = {True: "on", False: "off"}


def _sysctl(ctx: Ctx, node: str, key: str, value: str) -> str:
    return f"{ctx.run(node)}sysctl -q -w {key}={value}"


def _base_sysctl(ctx: Ctx, node: str, key: str, default: str = "0") -> str:
    return ctx.base[node].sysctls.get(key, default)


# -- links, ports, addresses ----------------------------------------------------------------------------


def link_down(ctx: Ctx) -> Mutation:
    node, dev = ctx.rng.choice(ctx.path())
    kind = "bridge-down" if ctx.is_bridge(node, dev) else "port-down" if ctx.is_port(node, dev) else "link-down"
    back = [f"{ctx.ip(node)} link set {dev} up", *ctx.dev_addrs(node, dev), *ctx.dev_routes(node, dev)]
    return Mutation(kind, f"{node}:{dev} down", (f"{ctx.ip(node)} link set {dev} down",), tuple(back), ((dev,),))


def port_detached(ctx: Ctx) -> Mutation:
    ports = [(n, d) for n, d in ctx.path() if ctx.is_port(n, d)]
    node, dev = ctx.rng.choice(ports)
    master = ctx.base[node].links[dev][1]
    others = sorted({m[1] for m in ctx.base[node].links.values() if m[1] and m[1] != master})
    if others and ctx.rng.random() < 0.5:
        return Mutation(
            "port-detached",
            f"{node}:{dev} moved from {master} to {others[0]}",
            (f"{ctx.ip(node)} link set {dev} master {others[0]}",),
            (f"{ctx.ip(node)} link set {dev} master {master}",),
            ((dev,),),
        )
    return Mutation(
        "port-detached",
        f"{node}:{dev} taken out of {master}",
        (f"{ctx.ip(node)} link set {dev} nomaster",),
        (f"{ctx.ip(node)} link set {dev} master {master}",),
        ((dev,),),
    )


def _addr_target(ctx: Ctx) -> tuple[str, str, str]:
    node, dev = ctx.dst_end() if ctx.rng.random() < 0.6 else ctx.path()[0]
    return node, dev, ctx.addr_of(node, dev)


def addr_removed(ctx: Ctx) -> Mutation:
    node, dev, cidr = _addr_target(ctx)
    back = [*ctx.dev_addrs(node, dev), *ctx.dev_routes(node, dev)]
    return Mutation(
        "addr-removed",
        f"{cidr} removed from {node}:{dev}",
        (f"{ctx.ip(node)} addr del {cidr} dev {dev}",),
        tuple(back),
        ((cidr.split("/")[0], dev),),
    )


def mask_wrong(ctx: Ctx) -> Mutation:
    node, dev, cidr = _addr_target(ctx)
    ip = cidr.split("/")[0]
    host = f"{ip}/{128 if ':' in ip else 32}"
    nodad = " nodad" if ":" in ip else ""
    back = [f"{ctx.ip(node)} addr del {host} dev {dev}", *ctx.dev_addrs(node, dev), *ctx.dev_routes(node, dev)]
    return Mutation(
        "mask-wrong",
        f"{node}:{dev} has {host} instead of {cidr}",
        (f"{ctx.ip(node)} addr del {cidr} dev {dev}", f"{ctx.ip(node)} addr add {host} dev {dev}{nodad}"),
        tuple(back),
        ((ip, dev),),
    )


def addr_wrong(ctx: Ctx) -> Mutation:
    node, dev = ctx.dst_end()
    cidr = ctx.addr_of(node, dev)
    ip, plen = cidr.split("/")
    wrong = (ip.rsplit(":", 1)[0] + ":77" if ":" in ip else ip.rsplit(".", 1)[0] + ".77") + f"/{plen}"
    nodad = " nodad" if ":" in ip else ""
    back = [f"{ctx.ip(node)} addr del {wrong} dev {dev}", *ctx.dev_addrs(node, dev), *ctx.dev_routes(node, dev)]
    return Mutation(
        "addr-wrong",
        f"{node}:{dev} has {wrong} instead of {cidr}",
        (f"{ctx.ip(node)} addr del {cidr} dev {dev}", f"{ctx.ip(node)} addr add {wrong} dev {dev}{nodad}"),
        tuple(back),
        ((ip, dev),),
    )


# -- routes ------------------------------------------------------------------------------------------


def _lookup(state: NsState, addr: str, family: int) -> dict[str, object] | None:
    import ipaddress

    ip = ipaddress.ip_address(addr)
    best: tuple[int, dict[str, object]] | None = None
    for r in state.routes.values():
        if r["family"] != family or r.get("table", "main") != "main" or r.get("type", "unicast") != "unicast":
            continue
        dst = str(r["dst"])
        net = ipaddress.ip_network(
            "0.0.0.0/0"
            if dst == "default" and family == 4
            else "::/0"
            if dst == "default"
            else dst
            if "/" in dst
            else f"{dst}/{ip.max_prefixlen}"
        )
        if ip in net and (best is None or net.prefixlen > best[0]):
            best = (net.prefixlen, r)
    return best[1] if best else None


def _route_sites(ctx: Ctx) -> list[tuple[str, str]]:
    """(node, address) pairs: each L3 node on the way and the address it must route (request, then reply)."""
    nodes = ctx.l3_nodes()
    sites = [(n, ctx.flow.addr) for n in nodes[:-1]]
    sites += [(n, ctx.src_addr()) for n in nodes[1:]]
    return [(n, a) for n, a in sites if _lookup(ctx.base[n], a, ctx.flow.family) is not None]


def route_removed(ctx: Ctx) -> Mutation:
    node, addr = ctx.rng.choice(_route_sites(ctx))
    route = _lookup(ctx.base[node], addr, ctx.flow.family)
    assert route is not None
    spec = route_spec(route)
    fam = f"-{ctx.flow.family}"
    return Mutation(
        "route-removed",
        f"{node}'s route {route['dst']} (used for {addr}) deleted",
        (f"{ctx.ip(node)} {fam} route del {spec}",),
        (f"{ctx.ip(node)} {fam} route replace {spec}",),
        ((node,), ("route", "routes", str(route["dst"]))),
    )


def route_wrong(ctx: Ctx) -> Mutation:
    sites = [(n, a) for n, a in _route_sites(ctx) if (_lookup(ctx.base[n], a, ctx.flow.family) or {}).get("gateway")]
    node, addr = ctx.rng.choice(sites)
    route = _lookup(ctx.base[node], addr, ctx.flow.family)
    assert route is not None
    gw = str(route["gateway"])
    wrong = gw.rsplit(":", 1)[0] + ":99" if ":" in gw else gw.rsplit(".", 1)[0] + ".99"
    fam = f"-{ctx.flow.family}"
    bad = dict(route, gateway=wrong)
    return Mutation(
        "route-wrong-gateway",
        f"{node}'s route {route['dst']} via {wrong} instead of {gw}",
        (f"{ctx.ip(node)} {fam} route replace {route_spec(bad)}",),
        (f"{ctx.ip(node)} {fam} route replace {route_spec(route)}",),
        ((wrong,),),
    )


def route_type(ctx: Ctx) -> Mutation:
    node, addr = ctx.rng.choice([(n, a) for n, a in _route_sites(ctx)] or [(ctx.path()[0][0], ctx.flow.addr)])
    kind = ctx.rng.choice(["blackhole", "prohibit", "unreachable"])
    host = f"{addr}/{128 if ctx.v6 else 32}"
    fam = f"-{ctx.flow.family}"
    return Mutation(
        "route-type",
        f"{kind} route to {host} in {node}",
        (f"{ctx.ip(node)} {fam} route add {kind} {host}",),
        (f"{ctx.ip(node)} {fam} route del {kind} {host}",),
        ((kind,),),
    )


def policy_rule(ctx: Ctx) -> Mutation:
    node, addr = ctx.rng.choice(_route_sites(ctx) or [(ctx.path()[0][0], ctx.flow.addr)])
    fam = f"-{ctx.flow.family}"
    choice = ctx.rng.choice(["blackhole", "prohibit", "unreachable", "empty-table", "other-address"])
    if choice == "empty-table":
        return Mutation(
            "policy-rule (harmless)",
            f"rule 100 in {node}: to {addr} lookup empty table 100",
            (f"{ctx.ip(node)} {fam} rule add pref 100 to {addr} lookup 100",),
            (f"{ctx.ip(node)} {fam} rule del pref 100",),
            harmless=True,
        )
    if choice == "other-address":
        other = "fd00:99::9" if ctx.v6 else "192.0.2.99"
        return Mutation(
            "policy-rule (harmless)",
            f"rule 100 in {node}: to {other} prohibit",
            (f"{ctx.ip(node)} {fam} rule add pref 100 to {other} prohibit",),
            (f"{ctx.ip(node)} {fam} rule del pref 100",),
            harmless=True,
        )
    return Mutation(
        "policy-rule",
        f"rule 100 in {node}: to {addr} {choice}",
        (f"{ctx.ip(node)} {fam} rule add pref 100 to {addr} {choice}",),
        (f"{ctx.ip(node)} {fam} rule del pref 100",),
        ((choice,), ("rule",)),
    )


# -- netfilter -----------------------------------------------------------------------------------------

CHAINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
}


def _match(ctx: Ctx, rng: random.Random) -> str:
    name, _, port = ctx.flow.proto.partition(":")
    proto = "ipv6-icmp" if name == "icmp" and ctx.v6 else name
    return rng.choice(
        [
            "",
            f"-d {ctx.flow.addr}",
            f"-s {ctx.src_addr()}",
            f"-s {ctx.flow.addr}",
            f"-p {proto}" + (f" --dport {port}" if port else ""),
        ]
    )


def ipt_rule(ctx: Ctx) -> Mutation:
    nodes = ctx.path_nodes()
    node = ctx.rng.choice(nodes)
    table = ctx.rng.choice(["filter", "filter", "mangle", "raw"])
    chain = ctx.rng.choice(CHAINS[table])
    target = "REJECT" if table == "filter" and ctx.rng.random() < 0.4 else "DROP"
    match = _match(ctx, ctx.rng)
    spec = f"{chain} {match} -j {target}".replace("  ", " ")
    return Mutation(
        f"{ctx.ipt} {target} rule",
        f"{ctx.ipt} -t {table} -I {spec} in {node}",
        (f"{ctx.run(node)}{ctx.ipt} -t {table} -I {chain} 1 {match} -j {target}",),
        (f"{ctx.run(node)}{ctx.ipt} -t {table} -D {spec}",),
        ((chain,), (table,)),
    )


def ipt_policy(ctx: Ctx) -> Mutation:
    node = ctx.rng.choice(ctx.path_nodes())
    raw = ctx.base[node].ip6t if ctx.v6 else ctx.base[node].ipt
    chains = [c for c in CHAINS["filter"] if f":{c} DROP" not in raw]
    chain = ctx.rng.choice(chains)
    return Mutation(
        f"{ctx.ipt} policy",
        f"{ctx.ipt} -P {chain} DROP in {node}",
        (f"{ctx.run(node)}{ctx.ipt} -t filter -P {chain} DROP",),
        (f"{ctx.run(node)}{ctx.ipt} -t filter -P {chain} ACCEPT",),
        ((chain,), ("policy",)),
    )


HOOKS = ("prerouting", "input", "forward", "output", "postrouting")
PRIORITIES = (-300, -200, -150, -10, 0, 10, 100, 300)


def nft_chain(ctx: Ctx) -> Mutation:
    node = ctx.rng.choice(ctx.path_nodes())
    bridges = [d for n, d in ctx.path() if n == node and ctx.is_bridge(n, d)]
    family = ctx.rng.choice(["inet", "ip6" if ctx.v6 else "ip"] + (["bridge"] if bridges else []))
    hook = ctx.rng.choice(HOOKS)
    prio = ctx.rng.choice(PRIORITIES)
    table, chain = f"scfw{ctx.uid}", f"scc{ctx.uid}"
    how = ctx.rng.choice(["policy drop", "policy drop", "rule drop", "policy accept", "rule accept"])
    l3 = "ip6" if ctx.v6 else "ip"
    body = f"type filter hook {hook} priority {prio}; policy {'drop' if how == 'policy drop' else 'accept'};"
    if how.startswith("rule"):
        body += (
            f" {l3} daddr {ctx.flow.addr} {how.split()[1]};"
            if ctx.rng.random() < 0.5
            else (f" {l3} saddr {ctx.src_addr()} {how.split()[1]};")
        )
    ruleset = f"table {family} {table} {{ chain {chain} {{ {body} }}; }}"
    accept = how.endswith("accept")
    return Mutation(
        "nft accept chain (harmless)" if accept else "nft drop chain",
        f"in {node}: {ruleset}",
        (f"{ctx.run(node)}nft {shlex.quote(ruleset)}",),
        (f"{ctx.run(node)}nft delete table {family} {table}",),
        () if accept else ((table,), (chain,)),
        harmless=accept,
    )


def _forwarding_node(ctx: Ctx) -> str | None:
    """A node that routes the request, or else the host that bridges it (where FORWARD sees bridged traffic)."""
    if ctx.flow.forwarders:
        return ctx.flow.forwarders[0]
    bridged = [b.split(":")[0] for b in ctx.flow.bridges]
    return bridged[0] if bridged else None


def nft_accept_then_ipt_drop(ctx: Ctx) -> Mutation:
    node = _forwarding_node(ctx)
    assert node is not None
    table, chain = f"scfw{ctx.uid}", f"scc{ctx.uid}"
    prio = ctx.rng.choice((-300, -10))
    ruleset = (
        f"table inet {table} {{ chain {chain} {{ type filter hook forward priority {prio}; policy accept; "
        "accept; }; }"
    )
    return Mutation(
        "nft accept + iptables drop",
        f"in {node}: {ruleset}, then {ctx.ipt} -I FORWARD 1 -d {ctx.flow.addr} -j DROP",
        (
            f"{ctx.run(node)}nft {shlex.quote(ruleset)}",
            f"{ctx.run(node)}{ctx.ipt} -I FORWARD 1 -d {ctx.flow.addr} -j DROP",
        ),
        (
            f"{ctx.run(node)}{ctx.ipt} -D FORWARD -d {ctx.flow.addr} -j DROP",
            f"{ctx.run(node)}nft delete table inet {table}",
        ),
        (("FORWARD",), ("filter",)),
    )


def nat_removed(ctx: Ctx) -> Mutation:
    node = ctx.flow.nat[0]
    lines = [
        x
        for x in ctx.base[node].ipt_raw.splitlines()
        if x.startswith("-A NSNET-") and ("MASQUERADE" in x or "DNAT" in x)
    ]
    relevant = [x for x in lines if ctx.flow.addr in x or ("MASQUERADE" in x and "! -o" in x and ctx.flow.forwarders)]
    line = ctx.rng.choice(relevant or lines)
    words = shlex.split(line)
    chain = words[1]
    pos = [x for x in ctx.base[node].ipt_raw.splitlines() if x.startswith(f"-A {chain} ")].index(line) + 1
    rest = line.split(" ", 2)[2]
    target = "MASQUERADE" if "MASQUERADE" in line else "DNAT"
    return Mutation(
        f"nat rule removed ({target})",
        f"in {node}: iptables -t nat -D {line[3:]}",
        (f"{ctx.run(node)}iptables -t nat -D {line[3:]}",),
        (f"{ctx.run(node)}iptables -t nat -I {chain} {pos} {rest}",),
        ((target, "NAT", "nat"),),
    )


# -- sysctls -------------------------------------------------------------------------------------------


def ip_forward_off(ctx: Ctx) -> Mutation:
    if ctx.flow.forwarders and ctx.rng.random() < 0.75:
        node, harmless = ctx.flow.forwarders[0], False
    else:
        node, harmless = ctx.rng.choice([n for n in ctx.path_nodes() if n not in ctx.flow.forwarders]), True
    key = "net.ipv6.conf.all.forwarding" if ctx.v6 else "net.ipv4.ip_forward"
    before = _base_sysctl(ctx, node, key)
    return Mutation(
        "forwarding off (not a router: harmless)" if harmless else "forwarding off",
        f"{key}=0 in {node}",
        (_sysctl(ctx, node, key, "0"),),
        (_sysctl(ctx, node, key, before),),
        () if harmless else (("ip_forward", "forwarding"),),
        harmless=harmless,
    )


def iface_forwarding_off(ctx: Ctx) -> Mutation:
    node = ctx.flow.forwarders[0]
    ins = [d for n, d in ctx.path() if n == node and not ctx.is_port(n, d)]
    dev = ins[0]
    key = f"net.ipv4.conf.{dev}.forwarding"
    return Mutation(
        "per-interface forwarding off",
        f"{key}=0 in {node}",
        (_sysctl(ctx, node, key, "0"),),
        (_sysctl(ctx, node, key, _base_sysctl(ctx, node, key, "1")),),
        ((dev,), ("forwarding",)),
    )


def br_nf_off(ctx: Ctx) -> Mutation:
    node, br = ctx.flow.bridges[0].split(":")
    key = "net.bridge.bridge-nf-call-ip6tables" if ctx.v6 else "net.bridge.bridge-nf-call-iptables"
    return Mutation(
        "bridge-nf-call off + FORWARD drop (harmless)",
        f"{key}=0 and {ctx.ipt} -I FORWARD 1 -i {br} -o {br} -j DROP in {node}",
        (_sysctl(ctx, node, key, "0"), f"{ctx.run(node)}{ctx.ipt} -I FORWARD 1 -i {br} -o {br} -j DROP"),
        (
            f"{ctx.run(node)}{ctx.ipt} -D FORWARD -i {br} -o {br} -j DROP",
            _sysctl(ctx, node, key, _base_sysctl(ctx, node, key, "1")),
        ),
        harmless=True,
    )


def br_nf_on_drop(ctx: Ctx) -> Mutation:
    node, br = ctx.flow.bridges[0].split(":")
    key = "net.bridge.bridge-nf-call-ip6tables" if ctx.v6 else "net.bridge.bridge-nf-call-iptables"
    before = _base_sysctl(ctx, node, key, "1")
    return Mutation(
        "bridge-nf-call on + FORWARD drop",
        f"{key}=1 and {ctx.ipt} -I FORWARD 1 -i {br} -o {br} -j DROP in {node}",
        (_sysctl(ctx, node, key, "1"), f"{ctx.run(node)}{ctx.ipt} -I FORWARD 1 -i {br} -o {br} -j DROP"),
        (f"{ctx.run(node)}{ctx.ipt} -D FORWARD -i {br} -o {br} -j DROP", _sysctl(ctx, node, key, before)),
        (("FORWARD",), ("filter",)),
    )


def rp_filter(ctx: Ctx) -> Mutation:
    node = ctx.rng.choice(ctx.l3_nodes()[1:] or ctx.l3_nodes())
    value = ctx.rng.choice(["1", "2"])
    keys = ["net.ipv4.conf.all.rp_filter"] + [
        f"net.ipv4.conf.{d}.rp_filter" for n, d in ctx.path() if n == node and not ctx.is_port(n, d)
    ]
    return Mutation(
        "rp_filter on symmetric paths (harmless)",
        f"rp_filter={value} in {node}",
        tuple(_sysctl(ctx, node, k, value) for k in keys),
        tuple(_sysctl(ctx, node, k, _base_sysctl(ctx, node, k)) for k in keys),
        harmless=True,
    )


def _arp_site(ctx: Ctx) -> tuple[str, str, str]:
    node, dev, addr = ctx.rng.choice(ctx.flow.arp).split("|")
    return node, dev, addr


def _owner(ctx: Ctx, addr: str) -> tuple[str, str]:
    for node, state in ctx.base.items():
        for dev, cidr in state.addrs:
            if cidr.split("/")[0] == addr:
                return node, dev
    raise LookupError(addr)


def neigh_wrong(ctx: Ctx) -> Mutation:
    node, dev, addr = _arp_site(ctx)
    mac = "02:00:5e:00:53:99"
    nud = ctx.rng.choice(["permanent", "noarp"])
    return Mutation(
        "neighbour entry wrong",
        f"{node}: {addr} lladdr {mac} dev {dev} nud {nud}",
        (f"{ctx.ip(node)} neigh replace {addr} lladdr {mac} dev {dev} nud {nud}",),
        (f"{ctx.ip(node)} neigh del {addr} dev {dev}",),
        ((addr,),),
    )


def arp_ignore(ctx: Ctx) -> Mutation:
    asker, dev, addr = _arp_site(ctx)
    owner, odev = _owner(ctx, addr)
    value = ctx.rng.choice(["8", "8", "1"])
    keys = ["net.ipv4.conf.all.arp_ignore", f"net.ipv4.conf.{odev}.arp_ignore"]
    harmless = value == "1"
    return Mutation(
        "arp_ignore=1 (harmless)" if harmless else "arp_ignore=8",
        f"arp_ignore={value} in {owner}",
        (*(_sysctl(ctx, owner, k, value) for k in keys), f"{ctx.ip(asker)} neigh flush dev {dev}"),
        tuple(_sysctl(ctx, owner, k, _base_sysctl(ctx, owner, k)) for k in keys),
        () if harmless else (("arp_ignore",),),
        harmless=harmless,
    )


def icmp_echo_ignore(ctx: Ctx) -> Mutation:
    node, _ = ctx.dst_end()
    key = "net.ipv6.icmp.echo_ignore_all" if ctx.v6 else "net.ipv4.icmp_echo_ignore_all"
    harmless = not ctx.flow.proto.startswith("icmp")
    return Mutation(
        "icmp echo_ignore_all (not icmp: harmless)" if harmless else "icmp echo_ignore_all",
        f"{key}=1 in {node}",
        (_sysctl(ctx, node, key, "1"),),
        (_sysctl(ctx, node, key, _base_sysctl(ctx, node, key)),),
        () if harmless else (("icmp_echo_ignore_all", "echo_ignore_all"),),
        harmless=harmless,
    )


# -- bridge ports, MTU --------------------------------------------------------------------------------------


def _bridge_ports(ctx: Ctx) -> tuple[str, str | None, str]:
    """(host node, ingress port or None, egress port) of a bridge the flow crosses; a routed side is no port:
    then the one port next to the bridge is both."""
    node, br = ctx.rng.choice(ctx.flow.bridges).split(":")
    path = ctx.path()
    i = path.index((node, br))
    pin = path[i - 1][1] if ctx.is_port(*path[i - 1]) else None
    pout = path[i + 1][1] if ctx.is_port(*path[i + 1]) else pin
    assert pout is not None
    return node, pin if pin != pout else None, pout


def _fdb_forget(ns: str, port: str) -> str:
    """Forget what the bridge learned on ``port`` (this kernel has no ``bridge fdb flush``)."""
    return (
        f"for m in $(bridge -n {ns} fdb show dev {port} | awk '/master/ && !/permanent/ {{print $1}}'); "
        f"do bridge -n {ns} fdb del $m dev {port} master; done"
    )


def port_flags(ctx: Ctx) -> Mutation:
    node, pin, pout = _bridge_ports(ctx)
    b = f"bridge -n {ctx.ns[node]} link set dev"
    choice = ctx.rng.choice(
        ["learning-flood", "learning-flood", "isolated-both", "isolated-one", "learning-only", "state"]
    )
    if pin is None and choice == "isolated-both":
        choice = "learning-flood"
    flush = _fdb_forget(ctx.ns[node], pout)
    if choice == "learning-flood":
        return Mutation(
            "bridge port learning+flood off",
            f"{node}:{pout} learning off flood off",
            (f"{b} {pout} learning off flood off", flush),
            (f"{b} {pout} learning on flood on",),
            ((pout,), ("learning", "flood", "flooded", "flooding")),
        )
    if choice == "isolated-both":
        return Mutation(
            "bridge ports isolated",
            f"{node}:{pin} and {pout} isolated on",
            (f"{b} {pin} isolated on", f"{b} {pout} isolated on"),
            (f"{b} {pin} isolated off", f"{b} {pout} isolated off"),
            ((pin, pout), ("isolated",)),
        )
    if choice == "isolated-one":
        return Mutation(
            "bridge port flags (harmless)",
            f"{node}:{pout} isolated on (one port only)",
            (f"{b} {pout} isolated on",),
            (f"{b} {pout} isolated off",),
            harmless=True,
        )
    if choice == "learning-only":
        return Mutation(
            "bridge port flags (harmless)",
            f"{node}:{pout} learning off (flood on)",
            (f"{b} {pout} learning off", flush),
            (f"{b} {pout} learning on",),
            harmless=True,
        )
    return Mutation(
        "bridge port state disabled",
        f"{node}:{pout} state disabled",
        (f"{b} {pout} state 0",),
        (f"{b} {pout} state 3",),
        ((pout,), ("state", "disabled", "blocking")),
    )


def mtu(ctx: Ctx) -> Mutation:
    small = 1280 if ctx.v6 else 1000
    choice = ctx.rng.choice(["small", "small", "small", "big-enough", "size-only"])
    path = ctx.path()
    node, dev = ctx.rng.choice(path[1:-1] or path)
    base = ctx.base[node].links[dev][2]
    if choice == "size-only":
        return Mutation(
            "size 1400, no MTU change (harmless)",
            "1400-byte packet, MTUs as they are",
            (),
            (),
            harmless=True,
            size=1400,
        )
    if choice == "big-enough":
        return Mutation(
            "MTU 1450 at default size (harmless)",
            f"{node}:{dev} mtu 1450",
            (f"{ctx.ip(node)} link set {dev} mtu 1450",),
            (f"{ctx.ip(node)} link set {dev} mtu {base}",),
            harmless=True,
        )
    revert = [f"{ctx.ip(node)} link set {dev} mtu {base}"]
    if small < 1280 and not any(d == dev and a.startswith("fe80:") for d, a in ctx.base[node].addrs):
        # Below 1280 the device loses IPv6; back above it, the kernel gives it a link-local address it had not.
        revert.append(f"{ctx.ip(node)} -6 addr flush dev {dev} scope link")
    return Mutation(
        "MTU smaller than the packet (--size)",
        f"{node}:{dev} mtu {small}, 1400-byte packet",
        (f"{ctx.ip(node)} link set {dev} mtu {small}",),
        tuple(revert),
        ((dev,),),
        size=1400,
    )


def unrelated(ctx: Ctx) -> Mutation:
    node = ctx.rng.choice(list(ctx.ns))
    other = "fd00:99::9" if ctx.v6 else "192.0.2.99"
    choice = ctx.rng.choice(["drop", "route", "nft"])
    if choice == "drop":
        return Mutation(
            "unrelated change (harmless)",
            f"{ctx.ipt} -I FORWARD 1 -d {other} -j DROP in {node}",
            (f"{ctx.run(node)}{ctx.ipt} -I FORWARD 1 -d {other} -j DROP",),
            (f"{ctx.run(node)}{ctx.ipt} -D FORWARD -d {other} -j DROP",),
            harmless=True,
        )
    if choice == "route":
        fam = f"-{ctx.flow.family}"
        return Mutation(
            "unrelated change (harmless)",
            f"blackhole route to {other} in {node}",
            (f"{ctx.ip(node)} {fam} route add blackhole {other}",),
            (f"{ctx.ip(node)} {fam} route del blackhole {other}",),
            harmless=True,
        )
    table = f"scfw{ctx.uid}"
    ruleset = (
        f"table inet {table} {{ chain c {{ type filter hook forward priority 0; policy accept; "
        f"{'ip6' if ctx.v6 else 'ip'} daddr {other} drop; }}; }}"
    )
    return Mutation(
        "unrelated change (harmless)",
        f"in {node}: {ruleset}",
        (f"{ctx.run(node)}nft {shlex.quote(ruleset)}",),
        (f"{ctx.run(node)}nft delete table inet {table}",),
        harmless=True,
    )


# -- the catalogue ---------------------------------------------------------------------------------------


def _has_ports(lab: BaseLab, f: Flow) -> bool:
    return bool(f.bridges)


CATALOGUE: list[tuple[str, Builder, int, Callable[[BaseLab, Flow], bool]]] = [
    ("link_down", link_down, 3, lambda lab, f: True),
    ("port_detached", port_detached, 2, _has_ports),
    ("addr_removed", addr_removed, 2, lambda lab, f: True),
    ("mask_wrong", mask_wrong, 1, lambda lab, f: True),
    ("addr_wrong", addr_wrong, 1, lambda lab, f: not f.nat),
    ("route_removed", route_removed, 2, lambda lab, f: True),
    ("route_wrong", route_wrong, 1, lambda lab, f: bool(f.forwarders) or lab.key in ("routed", "v6", "lab4")),
    ("route_type", route_type, 2, lambda lab, f: True),
    ("policy_rule", policy_rule, 2, lambda lab, f: True),
    ("ipt_rule", ipt_rule, 5, lambda lab, f: True),
    ("ipt_policy", ipt_policy, 2, lambda lab, f: True),
    ("nft_chain", nft_chain, 5, lambda lab, f: True),
    ("nft_accept_then_ipt_drop", nft_accept_then_ipt_drop, 1, lambda lab, f: bool(f.forwarders or f.bridges)),
    ("nat_removed", nat_removed, 3, lambda lab, f: bool(f.nat)),
    ("ip_forward_off", ip_forward_off, 2, lambda lab, f: True),
    ("iface_forwarding_off", iface_forwarding_off, 1, lambda lab, f: bool(f.forwarders) and f.family == 4),
    ("br_nf_off", br_nf_off, 1, lambda lab, f: bool(f.bridges) and lab.bridge_nf),
    ("br_nf_on_drop", br_nf_on_drop, 1, lambda lab, f: bool(f.bridges) and lab.bridge_nf),
    ("rp_filter", rp_filter, 1, lambda lab, f: f.family == 4),
    ("neigh_wrong", neigh_wrong, 2, lambda lab, f: bool(f.arp)),
    ("arp_ignore", arp_ignore, 2, lambda lab, f: bool(f.arp) and f.family == 4),
    ("icmp_echo_ignore", icmp_echo_ignore, 1, lambda lab, f: True),
    ("port_flags", port_flags, 3, _has_ports),
    ("mtu", mtu, 2, lambda lab, f: not f.proto.startswith("tcp")),
    ("unrelated", unrelated, 1, lambda lab, f: True),
]
BUILDERS = {name: builder for name, builder, _, _ in CATALOGUE}
