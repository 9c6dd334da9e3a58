"""The `nsnet watch` command: a lab's netlink events, live, on one timeline."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from datetime import datetime
from typing import NoReturn

import click
from rich.text import Text

from nsnet.cli import complete
from nsnet.cli._common import err, guard, main, out, plural, schema_id
from nsnet.engine import preflight
from nsnet.watch import Event, Watcher

ACTION_STYLES = {"new": "green", "del": "red", "change": "yellow"}
LEGEND = (
    "link: interface up/down, carrier | addr, route: added/removed | "
    "neigh: ARP/NDP cache | fdb: bridge MAC table (learned, aged out) | netns: namespace gone"
)


@main.command()
@click.argument("lab", shell_complete=complete.labs)
@click.argument("nodes", nargs=-1, metavar="[NODE]...", shell_complete=complete.nodes)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line and event (schema: docs/watch.md).")
@click.option("--count", type=click.IntRange(min=1), metavar="N", help="Stop after N events.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="S", help="Stop after S seconds.")
@guard
def watch(lab: str, nodes: tuple[str, ...], as_json: bool, count: int | None, timeout: float | None) -> None:
    """Print LAB's netlink events live, from every namespace (or only the NODEs; `host` is the lab's host).

    \b
    Neighbour entries (the ARP cache filling in), bridge fdb entries learned
    and aged out, links up/down, addresses and routes added and removed, one
    line per event, labelled by node. Runs until Ctrl-C, --count or --timeout.
    """
    preflight.require_root("watch the lab's namespaces")
    events: Watcher | None = None
    reason = ""
    try:
        with Watcher(lab, nodes, timeout=timeout, count=count) as events:
            _stop_on_signals()
            _heading(events, timeout, count, as_json)
            width = max(len(label) for label in events.namespaces) + 2
            for event in events:
                if as_json:
                    click.echo(json.dumps({"schema": schema_id("watch-event"), **event.to_json()}))
                else:
                    out.print(_line(event, width), soft_wrap=True)
    except KeyboardInterrupt:
        reason = "interrupted"
    except BrokenPipeError:  # e.g. `nsnet watch lab2 | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        reason = "output closed"
    if events is not None:
        _summary(events, reason)


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM stop cleanly, even where SIGINT was ignored (a background job of a script).

    Only once the watcher is built: opening a socket in a namespace may fork a
    short-lived child (pyroute2's ``IPRoute(netns=...)`` does) that is ended
    with SIGTERM, which must kill it rather than raise KeyboardInterrupt in it.
    """
    with contextlib.suppress(ValueError):  # not in the main thread: leave signals alone
        signal.signal(signal.SIGINT, _interrupted)
        signal.signal(signal.SIGTERM, _interrupted)


def _interrupted(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def _heading(events: Watcher, timeout: float | None, count: int | None, as_json: bool) -> None:
    """The ready line on stderr: once it is printed, every event is reported."""
    spaces = ", ".join(f"{label} ({ns or 'root'})" for label, ns in events.namespaces.items())
    limits = [f"{timeout:g} s" if timeout else "", plural(count, "event") if count else ""]
    until = " or ".join(x for x in limits if x) or "Ctrl-C"
    err.print(f"watching lab {events.lab}: {spaces}; until {until}", markup=False, soft_wrap=True)
    if not as_json:
        err.print(LEGEND, markup=False, soft_wrap=True, style="dim")


def _line(event: Event, width: int) -> Text:
    stamp = datetime.fromtimestamp(event.time).strftime("%H:%M:%S.%f")
    return Text.assemble(
        (stamp, "dim"),
        " ",
        (f"[{event.node}]".ljust(width), "bold"),
        " ",
        (event.kind.ljust(5), "cyan"),
        " ",
        (event.action.ljust(6), ACTION_STYLES.get(event.action, "")),
        " ",
        event.describe(),
    )


def _summary(events: Watcher, reason: str) -> None:
    elapsed = time.time() - events.started
    text = f"{plural(events.emitted, 'event')} in {elapsed:.1f} s"
    if reason:
        text += f" ({reason})"
    if events.gone:
        text += f"; gone: {', '.join(events.gone)}"
    if events.overruns:
        text += f"; events were lost {plural(events.overruns, 'time')} (receive buffer overrun)"
    err.print(text, markup=False, soft_wrap=True)
