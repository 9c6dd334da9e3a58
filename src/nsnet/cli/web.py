"""The ``nsnet web`` command: a local web app showing labs live, with capture, explain, reach and inspect."""

from __future__ import annotations

import ipaddress
import sys

import click

from nsnet.cli import complete
from nsnet.cli._common import err, guard, main
from nsnet.engine import preflight
from nsnet.engine.directory import labs
from nsnet.errors import LabNotFoundError


@main.command()
@click.argument("lab", required=False, shell_complete=complete.labs)
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="TCP port (0: a free one).")
@click.option(
    "--listen",
    metavar="ADDR",
    help="Listen on this address instead of 127.0.0.1. Anyone who can reach it and has the token sees your labs.",
)
@click.option("--allow-changes", is_flag=True, help="Let the page bring labs up and down and apply fixes.")
@guard
def web(lab: str | None, port: int, listen: str | None, allow_changes: bool) -> None:
    """Serve a web page showing LAB (or every lab that is up) live, and print its URL.

    \b
    The topology as boxes and wires, updated from netlink events (links,
    addresses, ARP entries, bridge learning); captures at chosen points with
    the decoded timeline; explain drawn on the picture with its fix; the reach
    matrix; inspect per node. Read-only unless --allow-changes. The URL holds
    a token made for this launch: requests without it are refused.
    """
    from nsnet.web import DEFAULT_LISTEN, bind, serve

    preflight.require_root("read the labs' namespaces")
    address = listen or DEFAULT_LISTEN
    if lab is not None and lab not in {i.name for i in labs()}:
        raise LabNotFoundError(f"no lab named {lab!r} is up (see `nsnet ls`)")
    sock = bind(address, port)
    if not ipaddress.ip_address(address).is_loopback:
        err.print(f"warning: listening on {address}: anyone who can reach it and has the URL sees (and with")
        err.print("--allow-changes changes) your labs", soft_wrap=True)

    def announce(link: str) -> None:
        click.echo(f"nsnet web: {link}")
        err.print("Ctrl-C stops it" + ("; changes allowed (--allow-changes)" if allow_changes else "; read-only"))
        sys.stdout.flush()

    try:
        serve(sock, lab, allow_changes, announce=announce)
    except KeyboardInterrupt:  # Ctrl-C: the server stopped, as asked (exit 130, as watch and capture)
        err.print("nsnet web: stopped")
        sys.exit(130)
