"""The whole netfilter ruleset of a namespace, as nftables holds it (``nft -j list ruleset``).

iptables-nft tables are nftables tables too, so this one read sees Docker's
and nsnet's iptables rules, firewalld's and Debian's native tables, and
kube-proxy's sets and maps alike. The JSON form carries each rule's
expressions (what explain evaluates); the text form (``nft -a -s``) gives each
rule as a user would read it, keyed by its handle.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
from typing import Any

from nsnet.errors import KernelError
from nsnet.kernel import netns, rtnl
from nsnet.kernel.firewall import NFT_GETTABLE, _finish, _start, in_ns
from nsnet.views import NftChainView, NftRuleView, NftSetView, NftTableView

FAMILIES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}
_TABLE_RE = re.compile(r"^table (\S+) (\S+) \{")
_CHAIN_RE = re.compile(r"^\s*chain (\S+) \{")
_HANDLE_RE = re.compile(r"^\s*(.*?)\s*# handle (\d+)$")


def load(ns: str, text: str) -> None:
    """Add the tables of ``text`` (``nft -f`` syntax) to ``ns``'s ruleset."""
    done = subprocess.run(in_ns(ns, ["nft", "-f", "-"]), input=text, text=True, capture_output=True, check=False)
    if done.returncode != 0:
        raise KernelError(f"nft -f refused the ruleset in {ns or 'the root namespace'}: {done.stderr.strip()}")


def families(ns: str) -> set[str] | None:
    """The nftables families that have tables in ``ns``; None when that cannot be told (then ``nft`` is asked)."""
    try:
        with netns.entered(ns):
            sock = rtnl.Socket.open(rtnl.NETLINK_NETFILTER)
        try:
            tables = sock.dump(NFT_GETTABLE, struct.pack("=BBH", socket.AF_UNSPEC, 0, 0))
        finally:
            sock.close()
    except (OSError, KernelError):
        return None
    return {FAMILIES.get(t[0], str(t[0])) for t in tables if len(t)}


def read(ns: str) -> list[NftTableView]:
    """Every nftables table of ``ns`` with its chains, rules and sets; [] when it has none."""
    if families(ns) == set():
        return []
    json_argv = ["nft", "-j", "list", "ruleset"]
    text_argv = ["nft", "-a", "-s", "list", "ruleset"]
    try:
        procs = [_start(ns, json_argv), _start(ns, text_argv)]  # both at once
    except KernelError as exc:
        raise KernelError(f"{exc} (nft: apt-get install nftables)") from exc
    data = _finish(ns, json_argv, procs[0])
    texts = rule_texts(_finish(ns, text_argv, procs[1]))
    return parse(json.loads(data) if data.strip() else {"nftables": []}, texts)


def rule_texts(listing: str) -> dict[tuple[str, str, str, int], str]:
    """(family, table, chain, handle) -> the rule as ``nft list ruleset`` prints it."""
    out: dict[tuple[str, str, str, int], str] = {}
    table: tuple[str, str] | None = None
    chain = ""
    for line in listing.splitlines():
        if m := _TABLE_RE.match(line):
            table, chain = (m.group(1), m.group(2)), ""
        elif m := _CHAIN_RE.match(line):
            chain = m.group(1)
        elif table and chain and (m := _HANDLE_RE.match(line)):
            out[(table[0], table[1], chain, int(m.group(2)))] = m.group(1)
    return out


def parse(data: dict[str, Any], texts: dict[tuple[str, str, str, int], str] | None = None) -> list[NftTableView]:
    """Tables from libnftables' JSON (``nft -j list ruleset``), rules in chain order."""
    texts = texts or {}
    tables: dict[tuple[str, str], NftTableView] = {}
    chains: dict[tuple[str, str, str], NftChainView] = {}
    for item in data.get("nftables", []):
        if "table" in item:
            t = item["table"]
            tables[(t["family"], t["name"])] = NftTableView(
                family=t["family"], name=t["name"], handle=int(t.get("handle", 0)), chains=[], sets=[]
            )
        elif "chain" in item:
            c = item["chain"]
            chain = NftChainView(
                name=c["name"],
                handle=int(c.get("handle", 0)),
                type=c.get("type"),
                hook=c.get("hook"),
                prio=_prio(c.get("prio")),
                policy=c.get("policy", "accept") if c.get("hook") else None,
                rules=[],
            )
            chains[(c["family"], c["table"], c["name"])] = chain
            tables[(c["family"], c["table"])].chains.append(chain)
        elif "rule" in item:
            r = item["rule"]
            key = (r["family"], r["table"], r["chain"], int(r.get("handle", 0)))
            chains[key[:3]].rules.append(
                NftRuleView(
                    handle=key[3],
                    text=texts.get(key, ""),
                    expr=[e for e in r.get("expr", []) if "counter" not in e],
                    comment=r.get("comment"),
                )
            )
        elif "set" in item or "map" in item:
            s = item.get("set") or item["map"]
            tables[(s["family"], s["table"])].sets.append(
                NftSetView(
                    name=s["name"],
                    type=s.get("type"),
                    map=s.get("map"),
                    flags=list(s.get("flags", [])),
                    elem=list(s.get("elem", [])),
                )
            )
    return list(tables.values())


def _prio(value: Any) -> int | None:
    """A chain priority: nft prints a number, or a standard name with an offset on older versions."""
    if value is None or isinstance(value, int):
        return value
    names = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100, "out": 100}
    if isinstance(value, dict):  # {"prio": "filter", "offset": 10} style
        return names.get(str(value.get("name")), 0) + int(value.get("offset", 0))
    text = str(value).replace(" ", "")
    for name, base in names.items():
        if text.startswith(name):
            return base + int(text[len(name) :] or 0)
    return int(text)
