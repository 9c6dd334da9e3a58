"""``reach`` and ``explain`` of a lab this machine drives across machines: each machine probes and explains
its part, over SSH, and the driver puts the parts together."""

from __future__ import annotations

import ipaddress
import json
import sys
from typing import TYPE_CHECKING

from nsnet.cli._common import emit_json, err, fail, out
from nsnet.errors import NsnetError

if TYPE_CHECKING:
    from nsnet.machines.record import Driven
    from nsnet.model import Topology


def driven(lab: str) -> Driven | None:
    """The driver's record of ``lab``, if this machine drives it across machines."""
    from nsnet.engine.journal import Journal
    from nsnet.machines.record import Driven

    try:
        here = Journal.load(lab)
        if here is not None and here.machine:  # this machine's share: explained and probed here
            return None
        return Driven.load(lab)
    except NsnetError:
        return None


def _topology(d: Driven) -> Topology:
    from nsnet.topology.cache import load

    if not d.source:
        fail(f"lab {d.lab}: the driver has no topology file for it any more")
    return load(d.source)


def _address(topology: Topology, node: str) -> str:
    """A node's first overlay address (or ``node`` itself, an address)."""
    if node not in topology.namespaces:
        try:
            return str(ipaddress.ip_address(node))
        except ValueError:
            fail(f"lab {topology.name} has no node {node!r}")
    for link in topology.namespaces[node].links.values():
        for cidr in sorted(link.addresses):
            return str(ipaddress.ip_interface(cidr).ip)
    fail(f"node {node} has no address to probe")


def reach(d: Driven, as_json: bool) -> None:
    """Every expectation of the file (or every node to every other), probed from the source's machine."""
    from nsnet.machines import driver
    from nsnet.machines.share import placement

    topology = _topology(d)
    where = placement(topology)
    nodes = topology.nodes
    pairs = [(e.src, e.dst, e.proto, e.reach) for e in topology.expectations] or [
        (a, b, "icmp", True) for a in nodes for b in nodes if a != b
    ]
    wanted: dict[str, list[tuple[str, str, str, bool]]] = {}
    for src, dst, proto, expected in pairs:
        wanted.setdefault(where[src], []).append((src, _address(topology, dst), proto, expected))

    def args(m: object) -> list[str] | None:
        mine = wanted.get(getattr(m, "name", ""))
        if not mine:
            return None
        argv = ["reach", d.lab, "--json", "--proto", mine[0][2]]
        for src in sorted({p[0] for p in mine}):
            argv += ["--from", src]
        for address in sorted({p[1] for p in mine}):
            argv += ["--to", address]
        return argv

    report = driver.ask(d.machines.values(), args)
    rows, failed = [], 0
    for o in sorted(report.outcomes, key=lambda o: o.machine):
        if o.ok and o.machine not in wanted:
            continue  # nothing to probe from there
        if not o.ok or o.data is None:
            err.print(f"error: {o.error or 'no answer'}", markup=False, soft_wrap=True)
            failed += 1
            continue
        try:
            results = {(r["src"], r["address"]): r for r in json.loads(o.data.out)["results"]}
        except (ValueError, KeyError):
            err.print(f"error: machine {o.machine}: {o.data.problem}", markup=False, soft_wrap=True)
            failed += 1
            continue
        for src, address, proto, expected in wanted.get(o.machine, []):
            r = results.get((src, address))
            ok = bool(r and r["ok"])
            rows.append({"machine": o.machine, "src": src, "dst": address, "proto": proto, "ok": ok,
                         "expected": expected, "rtt_ms": r.get("rtt_ms") if r else None})  # fmt: skip
            failed += ok != expected
    if as_json:
        emit_json({"lab": d.lab, "results": rows, "failed": failed}, "machines-reach")
    else:
        for r in rows:
            mark = "ok" if r["ok"] == r["expected"] else "MISMATCH"
            seen = "reaches" if r["ok"] else "blocked"
            rtt = f" {r['rtt_ms']:.2f}ms" if r["rtt_ms"] is not None else ""
            out.print(f"[{r['machine']}] {r['src']} -> {r['dst']} {r['proto']}: {seen}{rtt}  {mark}", markup=False)
        out.print(f"\n{len(rows) - failed}/{len(rows)} probes as expected", markup=False)
    sys.exit(1 if failed else 0)


def explain(d: Driven, src: str, dst: str, proto: str) -> None:
    """The request explained on its source's machine, the reply on its destination's, and a real probe."""
    from nsnet.machines import driver
    from nsnet.machines.share import placement

    topology = _topology(d)
    where = placement(topology)
    if src not in where:
        fail(f"lab {d.lab} has no node {src!r}")
    target = _address(topology, dst)
    asks: dict[str, list[str]] = {where[src]: ["explain", d.lab, src, target, "--proto", proto]}
    if dst in where and where[dst] != where[src]:
        asks[where[dst]] = ["explain", d.lab, dst, _address(topology, src), "--proto", proto]
    report = driver.ask(d.machines.values(), lambda m: asks.get(m.name))
    replies = {o.machine: o for o in report.outcomes}
    for machine, argv in asks.items():
        o = replies[machine]
        out.print(f"== machine {machine}: nsnet {' '.join(argv)}", markup=False)
        if not o.ok:
            err.print(f"error: {o.error}", markup=False, soft_wrap=True)
            continue
        out.print(o.data.out.rstrip() or o.data.problem, markup=False, soft_wrap=True)
    probe = driver.ask(
        [d.machines[where[src]]], lambda m: ["reach", d.lab, "--from", src, "--to", target, "--proto", proto, "--json"]
    ).outcomes[0]
    try:
        ok = probe.ok and bool(json.loads(probe.data.out)["results"][0]["ok"])
    except (ValueError, KeyError, IndexError, AttributeError):
        ok = False
    out.print(f"\nprobe from machine {where[src]}: {src} {'reaches' if ok else 'does not reach'} {target} ({proto})")
    sys.exit(0 if ok else 1)
