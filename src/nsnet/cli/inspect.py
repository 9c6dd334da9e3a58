"""The ``nsnet inspect`` command: every namespace of a lab side by side."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict

import click
from rich.console import Console
from rich.text import Text

from nsnet.cli import complete
from nsnet.cli._common import emit_json, err, guard, main, out
from nsnet.cli.panels import Panel, side_by_side
from nsnet.engine import directory, preflight
from nsnet.inspect import SECTIONS, SYSCTLS, inspect
from nsnet.views import BridgePortView, LabView, NamespaceView, PolicyRuleView, native_tables

TITLES = {
    "links": "links (ip link)",
    "addr": "addresses (ip address)",
    "route": "routes (ip route show table all)",
    "neigh": "neighbours (ip neigh)",
    "fdb": "bridge fdb (bridge fdb)",
    "overlay": "overlay (ip -d link show type vxlan, bridge fdb, ip neigh)",
    "fw": "firewall (iptables-save -c; native tables: nft list ruleset)",
    "sysctl": "sysctls",
    "conntrack": "conntrack",
}


def _table(v: NamespaceView, *columns: str) -> Panel:
    return Panel(f"[{v.node}] {v.netns or 'root'}", *columns)


def _links(v: NamespaceView) -> Panel:
    t = _table(v, "IF", "STATE", "MTU", "MAC", "MASTER", "PEER")
    for link in v.links or []:
        peer = ""
        if link.peer:
            where = link.peer.node or link.peer.netns or "?"
            peer = f"{where}:{link.peer.name or '?'} (@if{link.peer.index})"
        elif link.parent:  # a macvlan or ipvlan: the device it sits on, and its mode
            where = link.parent.node or link.parent.netns or "?"
            peer = f"{link.kind} {link.mode or ''} on {where}:{link.parent.name or '?'}"
        elif link.kind == "dummy":
            peer = "dummy"
        mac = link.mac or ""
        if link.vendor:
            mac += f" ({link.vendor})"
        name = f"{link.name}@if{link.peer.index}" if link.peer else link.name
        t.add_row(
            f"{link.index}: {name}", f"{link.state}/{link.operstate}", str(link.mtu), mac, link.master or "", peer
        )
    for link in v.links or []:
        flags = _port_flags(link.port)
        if flags:
            t.add_row(f"port {link.name}", flags, "", "", link.master or "", "")
    for bridge in v.bridges or []:
        t.add_row(
            f"bridge {bridge.name}",
            f"stp {'on' if bridge.stp else 'off'}",
            "",
            f"ageing {bridge.ageing_time}s",
            "",
            "ports: " + " ".join(bridge.ports),
        )
    return t


def _port_flags(port: BridgePortView | None) -> str:
    """A bridge port's settings that differ from a new port's, as ``bridge link set`` writes them."""
    if port is None:
        return ""
    changed = [] if port.state == "forwarding" else [f"state {port.state}"]
    for name, value, default in (
        ("learning", port.learning, True),
        ("flood", port.flood, True),
        ("mcast_flood", port.mcast_flood, True),
        ("bcast_flood", port.bcast_flood, True),
        ("hairpin", port.hairpin, False),
        ("isolated", port.isolated, False),
        ("neigh_suppress", port.neigh_suppress, False),
        ("proxy_arp", port.proxy_arp, False),
    ):
        if value != default:
            changed.append(f"{name} {'on' if value else 'off'}")
    return " ".join(changed)


def _addr(v: NamespaceView) -> Panel:
    t = _table(v, "IF", "ADDRESS", "SCOPE")
    for a in v.addresses or []:
        t.add_row(a.dev or "", f"{a.address}/{a.prefixlen}", a.scope)
    return t


def _route(v: NamespaceView) -> Panel:
    t = _table(v, "TABLE", "ROUTE")
    for r in v.routes or []:
        if r.table == "local":
            continue
        text = r.dst if r.type == "unicast" else f"{r.type} {r.dst}"
        for key, value in (
            ("via", r.gateway),
            ("dev", r.dev),
            ("proto", r.proto),
            ("scope", r.scope),
            ("src", r.src),
            ("metric", r.metric),
        ):
            if value is not None and not (key == "scope" and value == "global"):
                text += f" {key} {value}"
        t.add_row(r.table, text)
    for rule in v.rules or []:
        if _default_rule(rule):
            continue
        t.add_row("rule", _rule_text(rule))
    return t


def _default_rule(rule: PolicyRuleView) -> bool:
    """One of the kernel's own rules (0: local, 32766: main, 32767: default)."""
    plain = not (rule.src or rule.dst or rule.iif or rule.oif or rule.invert) and rule.fwmark is None
    return plain and (rule.priority, rule.table) in ((0, "local"), (32766, "main"), (32767, "default"))


def _rule_text(rule: PolicyRuleView) -> str:
    """A rule as ``ip rule`` prints it."""
    text = f"{rule.priority}: " + ("not " if rule.invert else "") + f"from {rule.src or 'all'}"
    for key, value in (("to", rule.dst), ("iif", rule.iif), ("oif", rule.oif)):
        if value:
            text += f" {key} {value}"
    if rule.fwmark is not None:
        text += f" fwmark {rule.fwmark:#x}" + (f"/{rule.fwmask:#x}" if rule.fwmask not in (None, 0xFFFFFFFF) else "")
    action = f"lookup {rule.table}" if rule.action == "lookup" else rule.action
    if rule.action == "goto":
        action += f" {rule.goto}"
    return f"{text} {action}" + (" (ipv6)" if rule.family == 6 else "")


def _neigh(v: NamespaceView) -> Panel:
    t = _table(v, "ADDRESS", "DEV", "MAC", "STATE")
    for n in v.neighbours or []:
        t.add_row(n.address or "", n.dev or "", n.mac or "", ",".join(n.state))
    return t


def _fdb(v: NamespaceView) -> Panel:
    t = _table(v, "MAC", "PORT", "BRIDGE", "KIND", "USED")
    for f in v.fdb or []:
        kind = f.kind + (" self" if f.self else "")
        used = f"{f.used:.0f}s ago" if f.used is not None else ""
        vlan = f" vlan {f.vlan}" if f.vlan else ""
        t.add_row(f.mac or "", (f.port or "") + vlan, f.bridge or "", kind, used)
    return t


def _fw(v: NamespaceView) -> Panel:
    t = _table(v, "CHAIN", "POLICY/RULE", "PKTS", "BYTES", "")
    for table in v.firewall or []:
        family = "" if table.family == 4 else " (ipv6)"
        for chain in table.chains:
            if chain.policy is None and not chain.rules and not chain.owned:
                continue
            name = f"{table.table}/{chain.name}{family}"
            t.add_row(
                name,
                f"policy {chain.policy}" if chain.policy else "",
                str(chain.packets),
                str(chain.bytes),
                "nsnet" if chain.owned else "",
            )
            for rule in chain.rules:
                t.add_row("", rule.rule, str(rule.packets), str(rule.bytes), "nsnet" if rule.owned else "")
    for nft in native_tables(v.firewall or [], v.nftables or []):
        for c in nft.chains:
            hook = f" ({c.type} hook {c.hook} priority {c.prio})" if c.hook else ""
            t.add_row(
                f"nft {nft.family} {nft.name}/{c.name}{hook}", f"policy {c.policy}" if c.policy else "", "", "", ""
            )
            for r in c.rules:
                t.add_row("", f"{r.text}  # handle {r.handle}", "", "", "")
        for named in nft.sets:
            t.add_row(f"nft {nft.family} {nft.name} @{named.name}", f"{len(named.elem)} elements", "", "", "")
    return t


def _sysctl(v: NamespaceView) -> Panel:
    """The global sysctls, and the per-interface ones that are set (non-zero, or forwarding unlike the global)."""
    t = _table(v, "SYSCTL", "VALUE")
    sysctls = v.sysctls or {}
    for key, value in sysctls.items():
        if ".conf." in key and key not in SYSCTLS:
            family = key.split(".")[1]
            glob = sysctls.get("net.ipv4.ip_forward" if family == "ipv4" else "net.ipv6.conf.all.forwarding")
            if value == (glob if key.endswith(".forwarding") else "0"):
                continue
        t.add_row(key, value)
    return t


def _conntrack(v: NamespaceView) -> Panel:
    t = _table(v, "PROTO", "ORIGINAL", "REPLY", "STATE")
    for c in v.conntrack or []:

        def show(d: dict[str, str | int | None]) -> str:
            return f"{d.get('src')}:{d.get('sport') or ''} -> {d.get('dst')}:{d.get('dport') or ''}"

        t.add_row(str(c.protocol), show(c.original), show(c.reply), c.state or "")
    return t


def _overlay(v: NamespaceView) -> Panel:
    t = _table(v, "VXLAN", "SETTINGS", "MAC", "VTEP", "IP")
    for vx in v.vxlans or []:
        flags = ["learning" if vx.learning else "nolearning"]
        flags += [f for f in ("proxy", "l2miss", "l3miss") if getattr(vx, f)]
        settings = [
            f"vni {vx.vni} port {vx.port} mtu {vx.mtu}",
            f"local {vx.local or '-'} dev {vx.dev or '-'}" + (f" remote {vx.remote}" if vx.remote else ""),
            " ".join(flags),
        ]
        if vx.master:
            settings.append(f"master {vx.master}")
        ips = {n.mac: n.address for n in vx.neighbours}
        rows = [
            (e.mac, f"{e.vtep} ({e.host})" if e.host else e.vtep, ips.pop(e.mac, "") or "")
            for e in sorted(vx.entries, key=lambda e: (e.vtep, e.mac))
        ]
        rows += [(mac or "", "", ip or "") for mac, ip in ips.items()]
        for i in range(max(len(settings), len(rows))):
            mac, vtep, ip = rows[i] if i < len(rows) else ("", "", "")
            t.add_row(vx.name if i == 0 else "", settings[i] if i < len(settings) else "", mac, vtep, ip)
    return t


RENDER: dict[str, Callable[[NamespaceView], Panel]] = {
    "links": _links,
    "addr": _addr,
    "route": _route,
    "neigh": _neigh,
    "fdb": _fdb,
    "overlay": _overlay,
    "fw": _fw,
    "sysctl": _sysctl,
    "conntrack": _conntrack,
}


def _what(value: str) -> list[str]:
    chosen = [w.strip() for w in value.split(",") if w.strip()]
    bad = [w for w in chosen if w not in SECTIONS]
    if bad:
        raise click.BadParameter(f"unknown section {', '.join(bad)}; choose from {', '.join(SECTIONS)}")
    return chosen


@main.command(name="inspect")
@click.argument("lab", shell_complete=complete.labs)
@click.argument("nodes", nargs=-1, shell_complete=complete.nodes)
@click.option(
    "--what",
    default=",".join(SECTIONS),
    show_default=True,
    help="Sections to show, comma-separated.",
    shell_complete=complete.sections,
)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (schema: docs/inspect.md).")
@guard
def inspect_(lab: str, nodes: tuple[str, ...], what: str, as_json: bool) -> None:
    """Show every namespace of LAB (or only NODES; `host` is the lab's host) side by side.

    \b
    Links with their veth peers and bridge ports, addresses, routes,
    neighbours (ARP/NDP with NUD state), the bridge fdb, VXLAN devices with
    the remote VTEPs they send to, firewall chains with counters, sysctls and
    conntrack: what `ip`, `bridge` and `iptables-save`
    show, for all the lab's namespaces at once.
    """
    preflight.require_root("read the lab's namespaces")
    for gone in directory.gone(lab):
        err.print(f"warning: {gone}", markup=False, soft_wrap=True)
    sections = _what(what)
    view = inspect(lab, nodes, sections)
    if as_json:
        emit_json(asdict(view), "inspect")
        return
    print_sections(out, view, sections, out.width)


def print_sections(console: Console, view: LabView, sections: Sequence[str], width: int) -> None:
    """The sections of ``view`` as ``nsnet inspect`` prints them: namespaces side by side in ``width`` columns,
    a section no namespace has (VXLAN devices) left out."""
    for section in sections:
        shown = [v for v in view.namespaces if v.vxlans] if section == "overlay" else view.namespaces
        if not shown:
            continue
        console.print(Text(f"== {TITLES[section]}", style="bold"))
        console.print(side_by_side([RENDER[section](v) for v in shown], width), soft_wrap=True)
        console.print()
