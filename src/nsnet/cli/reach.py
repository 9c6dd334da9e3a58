"""The ``nsnet reach`` command: who reaches whom, and what the topology expects."""

from __future__ import annotations

import sys
from dataclasses import asdict

import click
from rich.table import Table
from rich.text import Text

from nsnet import reach
from nsnet.cli import complete
from nsnet.cli._common import emit_json, guard, main, out
from nsnet.cli.panels import Panel, side_by_side
from nsnet.engine import directory, preflight

WIDE = 40
"""Targets beyond which the matrix is printed as a list, one probe a line."""


def _cell(results: list[reach.Result]) -> Text:
    text = Text()
    for r in results:
        if text:
            text.append("\n")
        mark = ("ok", "green") if r.ok else ("FAIL", "bold red")
        text.append(mark[0], style=mark[1])
        rtt = f" {r.rtt_ms:.2f}ms" if r.rtt_ms is not None else ""
        text.append(f" {r.address}{rtt}" + ("" if r.ok or r.detail.startswith("no echo") else f" ({r.detail})"))
    return text


def _matrix(results: list[reach.Result]) -> Table | Text:
    cells: dict[tuple[str, str], list[reach.Result]] = {}
    for r in results:
        cells.setdefault((r.src, r.dst), []).append(r)
    sources = list(dict.fromkeys(r.src for r in results))
    targets = list(dict.fromkeys(r.dst for r in results))
    if len(targets) > WIDE:
        return _listing(results)
    table = Table("FROM \\ TO", *targets, box=None, pad_edge=False, header_style="bold")
    for src in sources:
        row: list[Text | str] = [Text(src, style="bold")]
        for dst in targets:
            cell = cells.get((src, dst))
            row.append(_cell(cell) if cell else "-")
        table.add_row(*row)
    return table


def _listing(results: list[reach.Result]) -> Text:
    """A matrix too wide for a screen, one probe a line (in linear time, for labs of thousands of nodes)."""
    panel = Panel("", "FROM", "TO", "RESULT")
    for r in results:
        rtt = f" {r.rtt_ms:.2f}ms" if r.rtt_ms is not None else ""
        detail = "" if r.ok or r.detail.startswith("no echo") else f" ({r.detail})"
        panel.add_row(r.src, r.dst, f"{'ok' if r.ok else 'FAIL'} {r.address}{rtt}{detail}")
    return side_by_side([panel], 0)


def _expectations(results: list[reach.Result]) -> Table:
    table = Table("FROM", "TO", "PROTO", "EXPECTED", "OBSERVED", "", box=None, pad_edge=False, header_style="bold")
    for r in results:
        observed = ("reaches" if r.ok else "blocked") + f" ({r.detail})"
        verdict = Text("ok", style="green") if r.matches else Text("MISMATCH", style="bold red")
        table.add_row(
            r.src,
            f"{r.dst} {r.address}" if r.dst != r.address else r.dst,
            r.proto,
            "reaches" if r.expected else "blocked",
            observed,
            verdict,
        )
    return table


@main.command(name="reach")
@click.argument("lab", shell_complete=complete.labs)
@click.option("--from", "sources", multiple=True, help="Source node (repeatable; default: every node).")
@click.option("--to", "targets", multiple=True, help="Destination node or address (repeatable; default: every node).")
@click.option("--proto", default="icmp", show_default=True, help="icmp, tcp:PORT or udp:PORT.")
@click.option("--matrix", "force_matrix", is_flag=True, help="Probe the matrix even if the topology has expectations.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@guard
def reach_(
    lab: str, sources: tuple[str, ...], targets: tuple[str, ...], proto: str, force_matrix: bool, as_json: bool
) -> None:
    """Probe who reaches whom in LAB, like Mininet's pingall, with real packets.

    \b
    By default every node probes every address of every other node. When the
    lab's topology file declares `expect:` entries (and no --from/--to/
    --proto is given), those are checked instead: expected vs observed.
    Exit code: 1 if a probe fails (matrix) or an expectation is not met.
    """
    from nsnet.cli import across

    if (d := across.driven(lab)) is not None:  # a lab across machines: each probes from its own nodes
        across.reach(d, as_json)
    preflight.require_root("send probes from the lab's namespaces")
    topology = directory.lab_topology(lab)
    use_expectations = (
        topology is not None and topology.expectations and not (sources or targets or force_matrix) and proto == "icmp"
    )
    if use_expectations:
        assert topology is not None
        pairs = reach.expectation_probes(lab, topology.expectations)
        results = reach.run(lab, [p for p, _ in pairs], [e for _, e in pairs])
        failed = [r for r in results if not r.matches]
    else:
        name, _, port = proto.partition(":")
        if not ((name == "icmp" and not port) or (name in ("tcp", "udp") and port.isdigit())):
            raise click.BadParameter(f"{proto!r}: use icmp, tcp:PORT or udp:PORT", param_hint="--proto")
        results = reach.run(lab, reach.matrix(lab, sources, targets, proto))
        failed = [r for r in results if not r.ok]
    if as_json:
        emit_json(
            {
                "lab": lab,
                "mode": "expectations" if use_expectations else "matrix",
                "results": [asdict(r) for r in results],
                "failed": len(failed),
            },
            "reach",
        )
    else:
        out.print(_expectations(results) if use_expectations else _matrix(results))
        what = "expectations met" if use_expectations else "probes answered"
        out.print(f"\n{len(results) - len(failed)}/{len(results)} {what}", markup=False)
    sys.exit(1 if failed else 0)
