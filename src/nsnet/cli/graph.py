"""The `nsnet graph` command."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from nsnet import graph as drawing
from nsnet.cli import complete
from nsnet.cli._common import fail, guard, lab_and_topology, main, out
from nsnet.picture_explain import marked
from nsnet.picture_summary import summarize


@main.command()
@click.argument("target", shell_complete=complete.labs_or_files)
@click.option(
    "-o",
    "--output",
    default="-",
    show_default=True,
    help="Write the picture to this file: .svg, .png, .dot or .mmd/.mermaid; - for standard output (DOT).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(drawing.FORMATS),
    help="Output format, whatever the file is called (default: from the -o suffix).",
)
@click.option("--name", help="Lab name, when TARGET is a file brought up (or to be) under another name.")
@click.option("--live", is_flag=True, help="With a topology FILE: draw the lab brought up from it, as it is now.")
@click.option(
    "--explain",
    "explain_pair",
    nargs=2,
    metavar="SRC DST",
    help="Mark where `nsnet explain SRC DST` says the packet dies (a live lab).",
)
@click.option("--proto", default="icmp", show_default=True, help="With --explain: icmp, tcp:PORT or udp:PORT.")
@click.option(
    "--full", is_flag=True, help="Draw every node of a large lab (by default nodes on one bridge are summed up)."
)
@guard
def graph(
    target: str,
    output: str,
    fmt: str | None,
    name: str | None,
    live: bool,
    explain_pair: tuple[str, str] | None,
    proto: str,
    full: bool,
) -> None:
    """Draw a lab: namespaces as boxes, interfaces with their addresses, veth pairs as wires.

    \b
    TARGET is a topology file (drawn as written, no root needed) or the name
    of a lab that is up (drawn live: link state, addresses and MACs from the
    kernel; down links dashed and grey).
      nsnet graph examples/lab2-bridge.yaml -o lab2.svg
      nsnet graph lab2 -o lab2.png
      nsnet graph lab2 --format mermaid
      nsnet graph lab2 --explain RED BLUE -o lab2.svg   where the ping dies
    """
    lab, topology = lab_and_topology(target, name)
    kind = drawing.format_for(output, fmt)
    live = live or bool(explain_pair)
    picture = drawing.from_topology(topology, lab) if topology and not live else drawing.from_lab(lab, topology)
    if not full:
        picture = summarize(picture)
    if explain_pair:
        from nsnet.explain import explain

        picture = marked(picture, explain(lab, *explain_pair, proto=proto))
    if output == "-" and kind == "png" and sys.stdout.isatty():
        fail("PNG is binary: write it to a file with -o FILE.png (or pipe it)")
    data = drawing.render(picture, kind)
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        Path(output).write_bytes(data)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")
    out.print(f"lab {lab}: wrote {output} ({kind}, {len(picture.boxes)} namespaces)", markup=False)
