"""The whole lab from one place: every machine's share planned, applied and removed over SSH, in parallel.

``nsnet up FILE`` of a topology with ``machines:`` reaches each machine,
checks that it runs this nsnet's version, has each one plan its share
(``nsnet plan - --machine M``, the file streamed in), and only when every
machine could plan applies the shares in parallel (``nsnet up - --machine
M``). A machine that fails to apply rolls its own share back; the others keep
theirs, each convergent, and the next ``up`` finishes the lab. The driver
records the lab (:mod:`nsnet.machines.record`) before it changes anything,
so that ``down`` and ``ls`` know its machines even after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from nsnet import __version__
from nsnet.errors import NsnetError
from nsnet.machines.ssh import MachineError, Session
from nsnet.model import Machine

Work = Callable[[Session], Awaitable[Any]]


@dataclass
class Outcome:
    """What one machine did (``error``: why it failed, naming the machine)."""

    machine: str
    ok: bool
    data: Any = None
    error: str = ""
    skipped: bool = False
    """Not done because another machine failed first (nothing changed here)."""


@dataclass
class Fleet:
    """Open sessions to a lab's machines, and those that could not be reached."""

    sessions: dict[str, Session] = field(default_factory=dict)
    failed: list[Outcome] = field(default_factory=list)


async def _open(machine: Machine, config: str | None) -> Session:
    session = Session(machine, config)
    await session.__aenter__()
    try:
        there = await session.version()
    except BaseException:
        await session.__aexit__()
        raise
    if there != __version__:
        await session.__aexit__()
        raise MachineError(
            f"machine {machine.name} runs nsnet {there}, this is nsnet {__version__}: install the same version there"
        )
    return session


@contextlib.asynccontextmanager
async def fleet(machines: Iterable[Machine], config: str | None = None) -> Any:
    """Sessions to every machine, opened in parallel (a machine that cannot be reached is in ``failed``)."""
    ms = list(machines)
    opened = await asyncio.gather(*(_open(m, config) for m in ms), return_exceptions=True)
    f = Fleet()
    for m, got in zip(ms, opened, strict=True):
        if isinstance(got, Session):
            f.sessions[m.name] = got
        elif isinstance(got, NsnetError):
            f.failed.append(Outcome(m.name, False, error=str(got)))
        else:
            raise got
    try:
        yield f
    finally:
        await asyncio.gather(*(s.__aexit__() for s in f.sessions.values()), return_exceptions=True)


async def each(f: Fleet, work: Work) -> list[Outcome]:
    """``work`` on every open session, in parallel."""

    async def one(name: str, session: Session) -> Outcome:
        try:
            return Outcome(name, True, await work(session))
        except NsnetError as exc:
            return Outcome(name, False, error=str(exc))

    return list(await asyncio.gather(*(one(n, s) for n, s in f.sessions.items())))


def _args(machine: str, lab: str) -> list[str]:
    return ["--machine", machine, "--name", lab]


@dataclass
class Report:
    """What a command across machines did: per machine, and the plans when it planned first."""

    outcomes: list[Outcome]
    plans: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok and not o.skipped]

    @property
    def skipped(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.skipped]


def plan(machines: Iterable[Machine], text: str, lab: str, config: str | None = None) -> Report:
    """Every machine's plan of its share of the topology ``text``."""

    async def go() -> Report:
        async with fleet(machines, config) as f:
            plans = await each(f, lambda s: s.nsnet("plan", "-", *_args(s.machine.name, lab), input=text))
            return Report(f.failed + plans)

    return asyncio.run(go())


def up(
    machines: Iterable[Machine],
    text: str,
    lab: str,
    config: str | None = None,
    on_plan: Callable[[list[Outcome]], None] | None = None,
    leaving: Iterable[Machine] = (),
) -> Report:
    """Plan every share, then (if every machine could) apply them all in parallel.

    ``leaving``: machines that carried a share of the lab and no longer do
    (their host left the file): their shares are removed with the same run.
    """
    gone = {m.name: m for m in leaving}

    async def go() -> Report:
        async with fleet([*machines, *gone.values()], config) as f:
            leave = {n: f.sessions.pop(n) for n in list(f.sessions) if n in gone}
            try:
                return await _up(f, leave)
            finally:
                await asyncio.gather(*(s.__aexit__() for s in leave.values()), return_exceptions=True)

    async def _up(f: Fleet, leave: dict[str, Session]) -> Report:
        plans = await each(f, lambda s: s.nsnet("plan", "-", *_args(s.machine.name, lab), input=text))
        if f.failed or any(not p.ok for p in plans):
            held = [p if not p.ok else Outcome(p.machine, False, skipped=True) for p in plans]
            return Report(f.failed + held)
        if on_plan is not None:
            on_plan(plans)
        done = await each(f, lambda s: s.nsnet("up", "-", *_args(s.machine.name, lab), input=text))
        left = await each(Fleet(leave), lambda s: s.nsnet("down", lab, "--machine", s.machine.name))
        return Report(done + left, plans)

    return asyncio.run(go())


def down(machines: Iterable[Machine], lab: str, config: str | None = None) -> Report:
    """Remove every machine's share of ``lab``."""

    async def go() -> Report:
        async with fleet(machines, config) as f:
            done = await each(f, lambda s: s.nsnet("down", lab, "--machine", s.machine.name))
            return Report(f.failed + done)

    return asyncio.run(go())


def ask(machines: Iterable[Machine], args: Callable[[Machine], list[str] | None], config: str | None = None) -> Report:
    """``nsnet ARGS`` on each machine (``args`` None: nothing to ask there), the replies as they came."""

    async def go() -> Report:
        async with fleet(machines, config) as f:

            async def work(s: Session) -> Any:
                argv = args(s.machine)
                return None if argv is None else await s.run(*argv)

            return Report(f.failed + await each(f, work))

    return asyncio.run(go())
