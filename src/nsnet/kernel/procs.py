"""Processes that run in a lab's namespaces: found by the namespace itself, stopped on ``down``.

A process is in a namespace when ``/proc/PID/ns/net`` is the very namespace
bound at ``/run/netns/NAME``: the same device and inode (``os.stat``), never
a name, so a process of another namespace of the same name is never
touched. A process is known by its pid *and* its start time (field 22 of
``/proc/PID/stat``); every signal goes through a pidfd opened after that
identity was checked, so a pid the kernel reused meanwhile is never
signalled.
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nsnet.kernel import netns
from nsnet.model import ROOT_NS

GRACE = 3.0
"""Seconds a process has to end after SIGTERM before it is sent SIGKILL."""

NsId = tuple[int, int]
"""Device and inode of a network namespace."""


@dataclass(frozen=True)
class Proc:
    """A process found in one of a lab's namespaces."""

    pid: int
    start: int
    """Start time, in clock ticks after boot (``/proc/PID/stat`` field 22)."""
    name: str
    """Its command name (``comm``)."""
    ns: str
    """The kernel namespace name it runs in."""
    node: str = ""
    """The lab's name for that namespace (``RED``, ``host``)."""

    def describe(self) -> str:
        return f"{self.name} (pid {self.pid})"


def ns_id(ns: str) -> NsId | None:
    """Device and inode of the named namespace ``ns`` (None: it does not exist)."""
    return netns.ident(ns)


def start_time(pid: int) -> int | None:
    """The start time of ``pid`` (None: no such process, or a zombie, which holds no namespace)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name, field 2, is in parentheses and may hold spaces and ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _net_of(pid: int) -> NsId | None:
    try:
        st = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def _ancestors() -> set[int]:
    """This process and its ancestors: never stopped, even if run from inside a lab's namespace."""
    pids, pid = set(), os.getpid()
    while pid > 0 and pid not in pids:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            pid = int(stat[stat.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError):
            break
    return pids


def in_namespaces(spaces: Mapping[str, str]) -> list[Proc]:
    """Every process (but this one and its ancestors) in one of the named namespaces ``spaces`` (name -> node).

    The root namespace is never looked for: it is the machine's.
    """
    wanted: dict[NsId, str] = {}
    for ns in spaces:
        ident = ns_id(ns) if ns != ROOT_NS else None
        if ident is not None:
            wanted[ident] = ns
    if not wanted:
        return []
    mine = _ancestors()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in mine:
            continue
        pid = int(entry)
        where = wanted.get(_net_of(pid) or (0, 0))
        started = start_time(pid) if where is not None else None
        if where is not None and started is not None:
            found.append(Proc(pid, started, _comm(pid), where, spaces[where]))
    return sorted(found, key=lambda p: p.pid)


def same(proc: Proc) -> bool:
    """Whether ``proc`` still runs, as the same process (start time) in the same namespace."""
    if start_time(proc.pid) != proc.start:
        return False
    if proc.ns == ROOT_NS:
        return True
    ident = ns_id(proc.ns)
    return ident is not None and _net_of(proc.pid) == ident


def stop(procs: Iterable[Proc], grace: float = GRACE) -> list[Proc]:
    """SIGTERM each process, SIGKILL those still there after ``grace`` seconds, and wait until all are gone.

    Returns the processes that were running (and now are not).
    """
    fds: dict[int, Proc] = {}
    for proc in procs:
        try:
            fd = os.pidfd_open(proc.pid)
        except OSError:  # already gone
            continue
        if not same(proc):  # gone, and the pid taken by another since it was found
            os.close(fd)
            continue
        fds[fd] = proc
    stopped = list(fds.values())
    try:
        _signal_and_wait(fds, signal.SIGTERM, grace)
        _signal_and_wait(fds, signal.SIGKILL, 10.0)
    finally:
        for fd in fds:
            os.close(fd)
    return stopped


def _signal_and_wait(fds: dict[int, Proc], signum: int, timeout: float) -> None:
    """Signal every process still running, and wait up to ``timeout`` s for each to end (its pidfd readable)."""
    running = set(fds)
    for fd in list(running):
        try:
            signal.pidfd_send_signal(fd, signum)
        except ProcessLookupError:
            running.discard(fd)
    deadline = time.monotonic() + timeout
    poller = select.poll()
    for fd in running:
        poller.register(fd, select.POLLIN)
    while running:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        for fd, _ in poller.poll(left * 1000):
            running.discard(fd)
            poller.unregister(fd)
    # An exited process whose parent has not reaped it yet holds no namespace any more.


def describe(procs: Iterable[Proc]) -> list[str]:
    """One line per namespace: ``killed 2 processes in RED: sleep (pid 123), nc (pid 124)``."""
    by_ns: dict[str, list[Proc]] = {}
    for proc in procs:
        by_ns.setdefault(proc.ns, []).append(proc)
    lines = []
    for ns, group in by_ns.items():
        node = group[0].node or ns
        where = node if node == ns or not ns else f"{node} ({ns})"
        noun = "process" if len(group) == 1 else "processes"
        lines.append(f"killed {len(group)} {noun} in {where}: {', '.join(p.describe() for p in group)}")
    return lines
