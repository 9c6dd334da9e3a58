"""The ``nsnet validate`` command: every problem of topology files, with file:line, field and fix.

A module of its own, so that checking a file imports neither the engine nor the kernel's modules.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Any

import click

from nsnet.cli._common import emit_json, err, load_topology, main, out
from nsnet.errors import TopologyError


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print problems as JSON.")
def validate(files: tuple[str, ...], as_json: bool) -> None:
    """Check topology FILES and report every problem (file:line, field, fix)."""
    problems: list[dict[str, Any]] = []
    for path in files:
        try:
            topology = load_topology(path)
            if not as_json:
                hosts = f" on {len(topology.overlay.vteps)} hosts" if topology.overlay else ""
                out.print(f"{path}: ok (lab {topology.name}, {len(topology.nodes)} nodes{hosts})", markup=False)
        except TopologyError as exc:
            problems += [asdict(p) for p in exc.problems]
            if not as_json:
                err.print(str(exc), markup=False, soft_wrap=True)
    if as_json:
        emit_json({"valid": not problems, "problems": problems}, "validate")
    sys.exit(1 if problems else 0)
