"""``nsnet import``: a Kathará or containerlab lab as an nsnet topology, optionally brought up and probed."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from nsnet.cli._common import emit_json, err, guard, main, out, plural


@main.command("import")
@click.argument("kind", type=click.Choice(["kathara", "containerlab"]), metavar="FORMAT")
@click.argument("path", type=click.Path(exists=True))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the topology here (default: stdout).")
@click.option("--name", help="The lab name for --check (default: the imported lab's).")
@click.option("--check", is_flag=True, help="Bring the imported lab up, run its kept commands, probe who reaches whom.")
@click.option("--keep", is_flag=True, help="With --check: leave the lab up afterwards.")
@click.option("--json", "as_json", is_flag=True, help="Print the topology, notes and kept commands as JSON.")
@guard
def import_(kind: str, path: str, output: str | None, name: str | None, check: bool, keep: bool, as_json: bool) -> None:
    """Import a lab written for another tool.

    \b
    FORMAT is `kathara` (PATH: a lab directory with lab.conf and NODE.startup
    scripts) or `containerlab` (PATH: a .clab.yml file). Collision domains and
    bridge nodes become bridges in the lab's host; interfaces, addresses,
    routes, sysctls and iptables rules come from lab.conf, the start-up
    scripts and `exec:` lines. Every line that does not translate is listed
    with its file and line: kept (a network command run as is after up),
    unsupported (daemons, routing suites, files), or not applicable (images,
    binds, resources).
    \b
      nsnet import kathara labs/static-routing -o static.yaml
      nsnet import containerlab two-nodes.clab.yml --check
    """
    from nsnet.importers import import_lab, render
    from nsnet.topology.loader import loads

    draft = import_lab(kind, path)
    text = render(draft)
    loads(text, output or f"<{draft.name} imported>")  # the result must be a topology nsnet takes
    if as_json:
        emit_json(
            {
                "topology": draft.topology(),
                "notes": [note.__dict__ for note in draft.notes],
                "exec": draft.exec_commands(),
            },
            "import",
        )
    elif output:
        Path(output).write_text(text)
        err.print(f"wrote {output}: lab {draft.name}, {plural(len(draft.nodes), 'node')}", markup=False)
    elif not check:
        sys.stdout.write(text)
    if not as_json:
        for note in draft.notes:
            err.print(f"  {note.describe()}", markup=False, soft_wrap=True)
    if check:
        _check(draft, text, output, name, keep)


def _check(draft: object, text: str, output: str | None, name: str | None, keep: bool) -> None:
    from nsnet.importers import Draft
    from nsnet.lab import Lab

    assert isinstance(draft, Draft)
    with tempfile.TemporaryDirectory() as tmp:
        path = output or str(Path(tmp) / f"{draft.name}.yaml")
        if not output:
            Path(path).write_text(text)
        lab = Lab(path, name=name or draft.name)
        lab.up()
        try:
            for node, commands in draft.exec_commands().items():
                for command in commands:
                    done = lab.node(node).run(["sh", "-c", command])
                    if not done.ok:
                        err.print(f"  [{node}] {command}: exit {done.returncode}", markup=False)
            results = lab.reach()
            for r in results:
                mark = "ok  " if r.ok else "FAIL"
                out.print(f"{mark} {r.src} -> {r.dst} ({r.address}): {r.detail}", markup=False)
            good = sum(r.ok for r in results)
            out.print(f"{good} of {plural(len(results), 'probe')} answered", markup=False)
        finally:
            if keep:
                out.print(f"lab {lab.name} is up: `nsnet down {lab.name}` removes it", markup=False)
            else:
                lab.down()
