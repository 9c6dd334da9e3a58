"""The lab commands across machines: a machine's share here (``--machine``), or the whole lab over SSH."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from nsnet.cli._common import emit_json, err, fail, out, plural
from nsnet.errors import NsnetError

if TYPE_CHECKING:
    from nsnet.machines.driver import Outcome, Report
    from nsnet.model import Machine, Topology


def read(file: str, name: str | None, machine: str | None, keep: bool) -> Topology:
    """The topology in ``file`` (``-``: streamed in by a driver, kept as the lab's with ``keep``)."""
    from nsnet.topology.cache import load
    from nsnet.topology.loader import loads

    if file != "-":
        return load(file)
    if machine is None:
        fail("a topology on standard input (-) is a machine's share: give --machine")
    text = sys.stdin.read()
    topology = loads(text, "<stdin>")
    if not keep:
        return topology
    from nsnet.machines.local import store

    return load(store(name or topology.name, text))


def share(topology: Topology, machine: str) -> Topology:
    from nsnet.machines.local import share_of

    return share_of(topology, machine)


def _machines(topology: Topology) -> list[Machine]:
    return list(topology.machines.values())


def _text(file: str) -> str:
    with open(file) as f:
        return f.read()


def _report(report: Report, verb: str, talk: bool, as_json: bool, lab: str) -> None:
    """Per machine, what was done; exit 2 naming every machine that failed."""
    if as_json:
        emit_json(
            {
                "lab": lab,
                "machines": {
                    o.machine: {"ok": o.ok, "skipped": o.skipped, "error": o.error or None, **_data(o)}
                    for o in report.outcomes
                },
            },
            "machines-" + verb.split()[0],
        )
    elif talk:
        for o in sorted(report.outcomes, key=lambda o: o.machine):
            if o.ok:
                steps = _data(o).get("steps") or []
                what = f"{verb} ({plural(len(steps), 'change')})" if steps else f"{verb}, nothing changed"
                if "was_up" in _data(o):  # a machine whose host left the file
                    what = f"its host left the lab: share removed ({plural(len(steps), 'step')})"
                out.print(f"  machine {o.machine}: {what}", markup=False)
    for o in report.failed:
        err.print(f"error: {o.error}", markup=False, soft_wrap=True)
    if report.failed:
        names = ", ".join(sorted(o.machine for o in report.failed))
        held = sorted(o.machine for o in report.skipped)
        also = f"; nothing was changed on {', '.join(held)}" if held else ""
        fail(f"lab {lab}: failed on machine{'s' if len(report.failed) > 1 else ''} {names}{also}")


def _data(o: Outcome) -> dict[str, Any]:
    return o.data if isinstance(o.data, dict) else {}


def _print_plans(plans: list[Outcome], lab: str) -> None:
    total = sum(len(p.data.get("steps", [])) for p in plans if p.ok)
    out.print(f"lab {lab}: {plural(total, 'step')} on {plural(len(plans), 'machine')}", markup=False)
    for p in sorted(plans, key=lambda p: p.machine):
        steps = p.data.get("steps", []) if p.ok else []
        out.print(f"  machine {p.machine}: {plural(len(steps), 'step')}", markup=False)
        for step in steps:
            out.print(f"    [{p.machine}] + {step['description']}", markup=False, soft_wrap=True)


def drive_up(file: str, topology: Topology, name: str | None, quiet: bool, as_json: bool, config: str | None) -> None:
    """``nsnet up FILE`` of a lab across machines."""
    from nsnet.machines import driver
    from nsnet.machines.record import Driven

    lab = name or topology.name
    talk = not quiet and not as_json
    if talk:
        where = ", ".join(f"{m.name}={m.ssh}" for m in _machines(topology))
        out.print(
            f"lab {lab}: bringing up {file} on {plural(len(topology.machines), 'machine')} ({where})", markup=False
        )
    previous = Driven.load(lab)
    leaving = [m for n, m in (previous.machines if previous else {}).items() if n not in topology.machines]
    # Recorded before anything changes: a killed `up` leaves a lab that `down` and `ls` know, all its machines.
    Driven(lab, topology.source, {**{m.name: m for m in leaving}, **topology.machines}).save()

    def shown(plans: list[Outcome]) -> None:
        if talk:
            _print_plans(plans, lab)

    report = driver.up(_machines(topology), _text(file), lab, config, on_plan=shown, leaving=leaving)
    if not report.failed:
        Driven(lab, topology.source, dict(topology.machines)).save()
    _report(report, "up", talk, as_json, lab)
    if talk:
        out.print(f"lab {lab}: up on {plural(len(report.outcomes), 'machine')}", markup=False)


def drive_plan(file: str, topology: Topology, name: str | None, as_json: bool, config: str | None) -> None:
    from nsnet.machines import driver

    lab = name or topology.name
    report = driver.plan(_machines(topology), _text(file), lab, config)
    if as_json:
        _report(report, "planned", False, True, lab)
        return
    _print_plans([o for o in report.outcomes if o.ok], lab)
    _report(report, "planned", False, False, lab)


def driven_machines(target: str, topology: Topology | None, name: str | None) -> tuple[str, list[Machine]] | None:
    """The lab and machines of a ``down``/``reach``/``explain`` target this machine drives (None: a lab here)."""
    from nsnet.machines.record import Driven

    if topology is not None and topology.machines:
        return name or topology.name, _machines(topology)
    lab = name or target
    try:
        found = Driven.load(lab)
    except NsnetError:
        return None
    return (lab, list(found.machines.values())) if found else None


def drive_down(lab: str, machines: list[Machine], quiet: bool, as_json: bool, config: str | None) -> None:
    from nsnet.machines import driver
    from nsnet.machines.record import Driven

    talk = not quiet and not as_json
    report = driver.down(machines, lab, config)
    if not report.failed:
        Driven(lab, None).remove()
    if as_json:
        _report(report, "down", False, True, lab)
        return
    for o in sorted(report.outcomes, key=lambda o: o.machine):
        if o.ok and talk:
            was = _data(o).get("was_up", True)
            steps = _data(o).get("steps") or []
            what = f"down ({plural(len(steps), 'step')})" if was else "not up there: nothing to do"
            out.print(f"  machine {o.machine}: {what}", markup=False)
    _report(report, "down", False, False, lab)
    if talk:
        out.print(f"lab {lab}: down on {plural(len(report.outcomes), 'machine')}", markup=False)


def local_down(lab: str, machine: str) -> None:
    """Before ``down LAB --machine M``: the lab here must be M's share."""
    from nsnet.engine.journal import Journal
    from nsnet.machines.local import check_machine

    if Journal.load(lab) is not None:
        check_machine(lab, machine)


def forget(lab: str) -> None:
    from nsnet.machines.local import forget as gone

    gone(lab)


def driven_rows() -> list[dict[str, str]]:
    """Each machine's share of every lab this machine drives, as the machine says (``nsnet ls`` there)."""
    import json

    from nsnet.machines import driver
    from nsnet.machines.record import driven

    rows = []
    for d in driven():
        report = driver.ask(d.machines.values(), lambda m: ["ls", "--json"])
        for o in sorted(report.outcomes, key=lambda o: o.machine):
            row = {"lab": d.lab, "machine": o.machine, "ssh": d.machines[o.machine].ssh, "source": d.source or ""}
            try:
                there = (
                    next((lab for lab in json.loads(o.data.out) if lab.get("name") == d.lab), None) if o.ok else None
                )
            except (ValueError, AttributeError):
                there = None
            if not o.ok:
                row.update(status="unreachable", nodes=o.error)
            elif there is None:
                row.update(status="not up", nodes="")
            else:
                row.update(status=there.get("status", "?"), nodes=", ".join(there.get("nodes") or {}))
            rows.append(row)
    return rows


def serve_machine(lab: str, machine: str, registry: str | None, as_json: bool, ttl: int, announce: bool) -> None:
    """``nsnet overlay serve LAB --machine M``: until SIGTERM, whether the lab is up here or not (yet)."""
    import signal
    import threading
    import time

    from nsnet.machines.local import machine_views
    from nsnet.overlay.log import Record, printer
    from nsnet.overlay.serve import serve as run

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sink = printer(as_json, stop)
    url = registry
    while url is None and not stop.is_set():
        views, url = machine_views(lab, machine)
        if url is None:
            if not views:
                sink(Record(time.time(), machine, "wait", f"lab {lab} is not up here as machine {machine}'s share", {}))
            else:
                fail(f"lab {lab} has no overlay registry (not a dynamic overlay?): give one with --registry URL")
            while not stop.wait(0.5) and machine_views(lab, machine)[1] is None:
                pass
    if url is not None:
        run(lab, lambda: machine_views(lab, machine)[0], url, sink, stop, hosts=[machine], ttl=ttl, announce=announce)
