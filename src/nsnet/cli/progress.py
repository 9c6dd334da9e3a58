"""How ``up`` and ``down`` report their steps: a line each, or a progress bar on a terminal."""

from __future__ import annotations

import collections
import contextlib
import sys
from collections.abc import Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from nsnet.cli._common import out
from nsnet.plan.actions import Action, CreateLink, Plan

PHASES = {
    "CreateNamespace": ("namespace", "namespaces"),
    "DeleteNamespace": ("namespace removed", "namespaces removed"),
    "CreateLink:bridge": ("bridge", "bridges"),
    "CreateLink:veth": ("veth pair", "veth pairs"),
    "CreateLink:vxlan": ("VXLAN device", "VXLAN devices"),
    "CreateLink:macvlan": ("macvlan", "macvlans"),
    "CreateLink:ipvlan": ("ipvlan", "ipvlans"),
    "CreateLink:dummy": ("dummy", "dummies"),
    "DeleteLink": ("link removed", "links removed"),
    "SetLink": ("link setting", "link settings"),
    "Address": ("address", "addresses"),
    "RouteChange": ("route", "routes"),
    "FdbEntry": ("fdb entry", "fdb entries"),
    "NeighbourEntry": ("neighbour entry", "neighbour entries"),
    "SetSysctl": ("sysctl", "sysctls"),
    "ApplyFirewall": ("firewall change", "firewall changes"),
    "SetShaping": ("shaping", "shapings"),
    "DockerHost": ("Docker host setup", "Docker host setups"),
    "StartServer": ("server started", "servers started"),
    "StopServer": ("server stopped", "servers stopped"),
}
BAR_FROM = 20
"""Plans shorter than this are printed a line per step even on a terminal: a bar would only flash."""


def _key(action: Action) -> str:
    """The step's type; a link's creation with its kind (``CreateLink:veth``)."""
    name = type(action).__name__
    return f"{name}:{action.spec.kind}" if isinstance(action, CreateLink) else name


def phase(action: Action, count: int = 2) -> str:
    """What kind of step ``action`` is, in words (``namespaces``, ``addresses`` ...), for ``count`` of them."""
    name = _key(action)
    one, many = PHASES.get(name, (name, name))
    return one if count == 1 else many


class Reporter:
    """Told of the plan, then of each step as it starts; prints lines, draws a bar, or stays quiet."""

    def __init__(self, talk: bool, lines: bool) -> None:
        self.talk = talk
        self.lines = lines
        self.counts: collections.Counter[str] = collections.Counter()
        self._examples: dict[str, Action] = {}
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def start(self, plan: Plan) -> None:
        if self.talk and not self.lines and len(plan.actions) >= BAR_FROM:
            self._bar = Progress(
                TextColumn("  {task.description:<20}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=out,
                transient=True,
            )
            self._task = self._bar.add_task("", total=len(plan.actions))
            self._bar.start()

    def step(self, action: Action) -> None:
        self.counts[_key(action)] += 1
        self._examples.setdefault(_key(action), action)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=1, description=phase(action))
        elif self.talk:
            out.print(f"  [green]+[/] {action.describe()}", markup=True, soft_wrap=True)

    def close(self) -> None:
        if self._bar is None:
            return
        self._bar.stop()
        self._bar = None
        summary = ", ".join(f"{count} {phase(self._examples[kind], count)}" for kind, count in self.counts.items())
        out.print(f"  {summary}", markup=False, soft_wrap=True)


@contextlib.contextmanager
def reporter(talk: bool, verbose: bool) -> Iterator[Reporter]:
    """A :class:`Reporter`: lines with ``verbose`` or when stdout is not a terminal, a bar otherwise."""
    report = Reporter(talk, lines=verbose or not sys.stdout.isatty())
    try:
        yield report
    finally:
        report.close()
