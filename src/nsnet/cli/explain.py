"""The ``nsnet explain`` command: where and why a packet dies."""

from __future__ import annotations

import sys
from dataclasses import asdict

import click
from rich.text import Text

from nsnet.cli import complete
from nsnet.cli._common import emit_json, err, guard, main, out
from nsnet.engine import preflight
from nsnet.engine.probe_record import clean_stale
from nsnet.explain import Explanation, Walker
from nsnet.explain.probe import Observation, ProbeInterrupted, probe
from nsnet.explain.snapshot import snapshot


def render(e: Explanation) -> None:
    """Print an explanation as numbered steps, the verdict and the fix."""
    for leg in e.legs:
        out.print(Text(leg.title, style="bold"))
        for number, step in enumerate(leg.steps, start=1):
            mark = Text("  ok  ", style="green") if step.ok else Text("  XX  ", style="bold red")
            out.print(
                Text.assemble(mark, (f"{number:>2}. ", "dim"), (f"[{step.node}] ", "cyan"), step.text), soft_wrap=True
            )
        out.print()
    style = "bold green" if e.reachable else "bold red"
    out.print(Text("verdict: ", style=style) + Text(e.verdict), soft_wrap=True)
    if e.fix:
        out.print(Text("fix: ", style="bold") + Text(e.fix.summary), soft_wrap=True)
        if e.fix.command:
            out.print(Text("  command:  ", style="bold") + Text(e.fix.command), soft_wrap=True)
        if e.fix.topology:
            out.print(Text("  topology: ", style="bold"), soft_wrap=True)
            for text in e.fix.topology.splitlines():
                out.print(f"    {text}", markup=False, soft_wrap=True)


def render_observation(o: Observation) -> None:
    """Print what the real packet did, and whether it matches the prediction."""
    out.print()
    out.print(Text("observed (--probe)", style="bold"))
    out.print(f"  result: {o.result}", markup=False)
    for line in o.seen:
        out.print(f"  seen at {line}", markup=False, soft_wrap=True)
    if o.last_point:
        out.print(f"  the request was last seen at {o.last_point}", markup=False)
    for event in o.trace:
        rule = f"  {event.rule}" if event.rule else ""
        out.print(
            f"  netfilter trace [{event.node}] {event.table}:{event.chain}:{event.kind}:{event.verdict}{rule}",
            markup=False,
            soft_wrap=True,
        )
    for reason, count in sorted(o.drops.items()):
        out.print(f"  kernel drop reason: {reason} (x{count})", markup=False)
    if o.verdict:
        v = o.verdict
        out.print(
            f"  the kernel dropped it in {v.node}: {v.table}:{v.chain}:{v.kind}:{v.verdict} {v.rule}".rstrip(),
            markup=False,
            soft_wrap=True,
        )
    if o.agrees:
        out.print(Text("  prediction and observation agree", style="green"))
    else:
        out.print(Text(f"  PREDICTION AND OBSERVATION DISAGREE: {o.disagreement}", style="bold red"), soft_wrap=True)


@main.command(name="explain")
@click.argument("lab", shell_complete=complete.labs)
@click.argument("src", shell_complete=complete.nodes)
@click.argument("dst", shell_complete=complete.nodes)
@click.option("--proto", default="icmp", show_default=True, help="icmp, tcp:PORT or udp:PORT.")
@click.option(
    "--size",
    type=click.IntRange(28, 65535),
    metavar="BYTES",
    help="The packet's IP length (icmp and udp), checked against every MTU on the way.",
)
@click.option("--probe", "send", is_flag=True, help="Also send the real packet and read the kernel's trace.")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@guard
def explain_(lab: str, src: str, dst: str, proto: str, size: int | None, send: bool, as_json: bool) -> None:
    """Say where a packet from SRC to DST (a node or an address) goes, where it dies and why.

    \b
    The path is predicted from the kernel's current state: route lookups,
    ARP, veth pairs, bridge forwarding, VXLAN (entries, proxy, the underlay),
    MTUs, every netfilter hook with the rule or
    policy that decides, delivery and the reply's way back. It ends with a
    verdict and a fix, as a command and as a topology change.
    With --probe the real packet is sent too: netfilter's trace and the
    kernel's drop reasons (skb:kfree_skb) say what really happened, and any
    disagreement with the prediction is shown.
    Exit code: 0 if the packet gets through and back, 1 if not, 3 if
    prediction and observation disagree.
    """
    from nsnet.cli import across

    if (d := across.driven(lab)) is not None:  # a lab across machines: each machine explains its part
        across.explain(d, src, dst, proto)
    preflight.require_root("read the lab's namespaces")
    clean_stale(lab)  # what killed probes of the lab left behind
    snap = snapshot(lab)
    result = Walker(snap).explain(src, dst, proto, size)
    try:
        observed = probe(snap, result) if send else None
    except ProbeInterrupted as stop:
        err.print(f"interrupted by {stop}: the probe's trace rules and monitors are removed", markup=False)
        sys.exit(128 + stop.signum)
    if as_json:
        emit_json({**asdict(result), "observed": asdict(observed) if observed else None}, "explain")
    else:
        render(result)
        if observed:
            render_observation(observed)
    if observed and not observed.agrees:
        sys.exit(3)
    sys.exit(0 if result.reachable else 1)
