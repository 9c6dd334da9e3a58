"""A namespace's state as far as scenarios change it: read it, compare it with the baseline, put it back."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from typing import Any

IPT_TABLES = {"filter", "nat", "mangle", "raw", "security"}
SYSCTL_GLOBS = (
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/ipv4/icmp_echo_ignore_all",
    "/proc/sys/net/ipv6/icmp/echo_ignore_all",
    "/proc/sys/net/ipv4/conf/*/forwarding",
    "/proc/sys/net/ipv4/conf/*/rp_filter",
    "/proc/sys/net/ipv4/conf/*/arp_ignore",
    "/proc/sys/net/ipv6/conf/*/forwarding",
    "/proc/sys/net/bridge/bridge-nf-call-iptables",
    "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
)
_SEP = "@@@"
_READ = [
    "ip -j -d link show",
    "ip -j addr show",
    "ip -j route show table all",
    "ip -6 -j route show table all",
    "ip -j rule show",
    "ip -6 -j rule show",
    "ip -j neigh show nud permanent",
    "iptables-save",
    "ip6tables-save",
    "nft -j list tables",
    "grep -H . " + " ".join(SYSCTL_GLOBS) + " 2>/dev/null || true",
]


def run(cmd: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """A shell command, in a throwaway network namespace of its own: only ``ip -n``/``ip netns exec`` reach a lab."""
    done = subprocess.run(
        ["unshare", "--net", "bash", "-c", cmd], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{cmd!r} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def _json(text: str) -> Any:
    text = text.strip()
    return json.loads(text) if text else []


def _ipt(text: str) -> tuple[str, ...]:
    """iptables-save without counters, comments and tables that do nothing (no rules, all policies ACCEPT)."""
    out: list[str] = []
    table: list[str] = []
    for line in text.splitlines():
        if line.startswith("*"):
            table = [line]
        elif line.startswith(":"):
            table.append(line.split(" [", 1)[0])
        elif line.startswith("-A"):
            table.append(line)
        elif line == "COMMIT":
            busy = any(x.startswith("-A") for x in table) or any(
                x.startswith(":") and x.split()[1] not in ("ACCEPT", "-") for x in table
            )
            if busy:
                out.extend(table)
    return tuple(out)


@dataclass
class NsState:
    """What scenarios may change in one namespace, normalised so that equal means 'back to baseline'."""

    links: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    addrs: frozenset[tuple[str, str]] = frozenset()
    routes: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    rules: frozenset[str] = frozenset()
    neigh: frozenset[tuple[str, str, str]] = frozenset()
    ipt: tuple[str, ...] = ()
    ip6t: tuple[str, ...] = ()
    ipt_raw: str = ""
    ip6t_raw: str = ""
    nft: frozenset[tuple[str, str]] = frozenset()
    sysctls: dict[str, str] = field(default_factory=dict)

    def key(self) -> tuple[Any, ...]:
        return (
            self.links,
            self.addrs,
            set(self.routes),
            self.rules,
            self.neigh,
            self.ipt,
            self.ip6t,
            self.nft,
            self.sysctls,
        )

    def diff(self, other: NsState) -> list[str]:
        """What differs from ``other`` (empty: the same)."""
        out = []
        for name in ("links", "addrs", "rules", "neigh", "ipt", "ip6t", "nft", "sysctls"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                if isinstance(mine, dict):
                    keys = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
                    out.append(f"{name}: " + ", ".join(f"{k}={mine.get(k)} (was {theirs.get(k)})" for k in keys))
                else:
                    out.append(f"{name}: +{sorted(set(mine) - set(theirs))} -{sorted(set(theirs) - set(mine))}")
        if set(self.routes) != set(other.routes):
            out.append(
                f"routes: +{sorted(set(self.routes) - set(other.routes), key=str)} "
                f"-{sorted(set(other.routes) - set(self.routes), key=str)}"
            )
        return out


def _route_key(r: dict[str, Any], family: int) -> tuple[Any, ...]:
    return (
        family,
        r.get("table", "main"),
        r.get("type", "unicast"),
        r.get("dst"),
        r.get("gateway"),
        r.get("dev"),
        r.get("protocol"),
        r.get("scope"),
        r.get("prefsrc"),
        r.get("metric"),
    )


def read(ns: str) -> NsState:
    """The state of namespace ``ns``, read in one child."""
    script = f"; echo {_SEP}; ".join(_READ)
    out = run(f"ip netns exec {ns} bash -c {json.dumps(script)}").stdout.split(_SEP + "\n")
    links_j, addr_j, r4, r6, rule4, rule6, neigh_j, ipt, ip6t, nft_j, sysctl_text = out
    links = {}
    for link in _json(links_j):
        info = link.get("linkinfo", {})
        port = info.get("info_slave_data", {}) if info.get("info_slave_kind") == "bridge" else {}
        flags = tuple(port.get(k) for k in ("state", "learning", "flood", "isolated")) if port else ()
        links[link["ifname"]] = ("UP" in link.get("flags", []), link.get("master"), link.get("mtu"), flags)
    addrs = frozenset(
        (a["ifname"], f"{i['local']}/{i['prefixlen']}")
        for a in _json(addr_j)
        for i in a.get("addr_info", [])
        if a["ifname"] != "lo"  # nsnet's links have no automatic link-local addresses: any fe80:: was added
    )
    routes: dict[tuple[Any, ...], dict[str, Any]] = {}
    for family, text in ((4, r4), (6, r6)):
        for r in _json(text):
            dst = str(r.get("dst", ""))
            if (
                r.get("table") == "local"
                or dst.startswith(("fe80", "ff00", "multicast"))
                or r.get("type") == "multicast"
            ):
                continue
            routes[_route_key(r, family)] = {**r, "family": family}
    rules = frozenset(json.dumps(r, sort_keys=True) for r in _json(rule4) + _json(rule6))
    neigh = frozenset((n["dst"], n.get("dev", ""), n.get("lladdr", "")) for n in _json(neigh_j))
    tables = frozenset(
        (t["table"]["family"], t["table"]["name"])
        for t in _json(nft_j).get("nftables", [])
        if "table" in t
        if not (t["table"]["family"] in ("ip", "ip6") and t["table"]["name"] in IPT_TABLES)
    )
    sysctls = {}
    for line in sysctl_text.splitlines():
        path, _, value = line.partition(":")
        sysctls[path.removeprefix("/proc/sys/").replace("/", ".")] = value.strip()
    return NsState(links, addrs, routes, rules, neigh, _ipt(ipt), _ipt(ip6t), ipt, ip6t, tables, sysctls)


def route_spec(r: dict[str, Any]) -> str:
    """The ``ip route`` arguments that make route ``r`` (as ``ip -j route`` shows it) again."""
    parts = [r.get("type", "unicast"), str(r["dst"])]
    for key, word in (
        ("gateway", "via"),
        ("dev", "dev"),
        ("protocol", "proto"),
        ("scope", "scope"),
        ("prefsrc", "src"),
        ("metric", "metric"),
        ("table", "table"),
    ):
        if r.get(key) is not None:
            parts += [word, str(r[key])]
    return " ".join(parts)


def restore(ns: str, base: NsState, now: NsState) -> None:
    """Put ``ns`` back to ``base`` whatever a scenario (or a fix) left; best effort, the caller reads it again."""
    cmds: list[str] = []
    ipn = f"ip -n {ns}"
    for name, (up, master, mtu, port) in base.links.items():
        cur = now.links.get(name)
        if cur is None:
            continue
        if cur[2] != mtu and mtu:
            cmds.append(f"{ipn} link set {name} mtu {mtu}")
        if cur[1] != master:
            cmds.append(f"{ipn} link set {name} " + (f"master {master}" if master else "nomaster"))
        if port and cur[3] != port:
            _state, learning, flood, isolated = port
            onoff = {True: "on", False: "off"}
            cmds.append(
                f"bridge -n {ns} link set dev {name} learning {onoff[learning]} flood {onoff[flood]} "
                f"isolated {onoff[isolated]}"
            )
        if cur[0] != up:
            cmds.append(f"{ipn} link set {name} {'up' if up else 'down'}")
    for dev, cidr in now.addrs - base.addrs:
        cmds.append(f"{ipn} addr del {cidr} dev {dev}")
    for dev, cidr in base.addrs - now.addrs:
        cmds.append(f"{ipn} addr add {cidr} dev {dev}" + (" nodad" if ":" in cidr else ""))
    for path, value in base.sysctls.items():
        if now.sysctls.get(path) != value:
            cmds.append(f"ip netns exec {ns} sh -c 'echo {value} > /proc/sys/{path.replace('.', '/')}'")
    for dst, dev, _ in now.neigh - base.neigh:
        cmds.append(f"{ipn} neigh del {dst} dev {dev}")
    if now.nft != base.nft:
        for family, name in now.nft - base.nft:
            cmds.append(f"ip netns exec {ns} nft delete table {family} {name}")
    for tool, want, have, raw in (
        ("iptables", base.ipt, now.ipt, base.ipt_raw),
        ("ip6tables", base.ip6t, now.ip6t, base.ip6t_raw),
    ):
        if want != have:
            cmds.append(f"ip netns exec {ns} {tool}-restore <<'EOF'\n{raw}\nEOF")
            for table in {x[1:] for x in have if x.startswith("*")} - {x[1:] for x in want if x.startswith("*")}:
                cmds.append(f"ip netns exec {ns} {tool} -t {table} -F; ip netns exec {ns} {tool} -t {table} -X")
    for cmd in cmds:
        run(cmd, check=False)
    # Routes last: links coming up and addresses coming back bring their kernel routes first.
    after = read(ns) if cmds else now
    for key in set(after.routes) - set(base.routes):
        run(f"{ipn} -{key[0]} route del {route_spec(after.routes[key])}", check=False)
    for key in set(base.routes) - set(after.routes):
        run(f"{ipn} -{key[0]} route replace {route_spec(base.routes[key])}", check=False)
    for rule in now.rules - base.rules:
        data = json.loads(rule)
        family = "-6" if ":" in str(data.get("src", "")) + str(data.get("dst", "")) else "-4"
        run(f"{ipn} {family} rule del pref {data['priority']}", check=False)
        run(f"{ipn} -6 rule del pref {data['priority']}", check=False)
