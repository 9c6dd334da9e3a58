"""Processes nsnet runs in a lab: the outside's HTTP server, started on ``up``, stopped on ``down``.

The journal records a server as ``[pid, port, start time]`` (``[0, port, 0]``
while it is being started, so that a crash in between still leaves a trace).
A recorded pid is nsnet's server only if the process has that start time,
runs nsnet's server module and is in that namespace: a pid the kernel gave
to another process since is never taken for it, nor signalled.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

from nsnet.errors import KernelError
from nsnet.kernel import netns, procs
from nsnet.model import ROOT_NS

MODULE = "nsnet.engine.outside_server"


def _is_server(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return MODULE.encode() in f.read().split(b"\0")
    except OSError:
        return False


def _recorded(ns: str, entry: Sequence[int]) -> procs.Proc | None:
    """The process a journal entry names, if it still runs as nsnet's server in ``ns``."""
    pid = entry[0] if entry else 0
    start = entry[2] if len(entry) > 2 else procs.start_time(pid) if pid > 0 else None
    if pid <= 0 or not start:
        return None
    proc = procs.Proc(pid, start, "python", ns)
    return proc if procs.same(proc) and _is_server(pid) else None


def running(ns: str, entry: Sequence[int]) -> bool:
    """Whether the journal's ``entry`` for ``ns`` is a server that still runs (not a reused pid)."""
    return _recorded(ns, entry) is not None


def strays(ns: str) -> list[procs.Proc]:
    """nsnet servers running in the lab's namespace ``ns`` (never the root namespace's), recorded or not."""
    if ns == ROOT_NS:
        return []
    return [p for p in procs.in_namespaces({ns: ns}) if _is_server(p.pid)]


def start(ns: str, port: int) -> list[int]:
    """Start the server in ``ns``, replacing one a crashed ``up`` left unrecorded; returns its journal entry."""
    procs.stop(strays(ns))
    # Forked from inside the namespace (not through nsenter): the server is never a process of the root
    # namespace on its way in, that a `down` racing a killed `up` could miss.
    with netns.entered(ns):
        proc = subprocess.Popen(
            [sys.executable, "-m", MODULE, str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            text=True,
        )
    assert proc.stdout is not None and proc.stderr is not None
    if proc.stdout.readline().strip() != "ready":
        proc.wait(timeout=5)
        raise KernelError(f"the HTTP server in {ns} did not start: {proc.stderr.read().strip()}")
    proc.stdout.close()
    proc.stderr.close()
    return [proc.pid, port, procs.start_time(proc.pid) or 0]


def stop(ns: str, entry: Sequence[int]) -> None:
    """Stop the server a journal entry records (if it still runs as such), and any other left in ``ns``."""
    found = _recorded(ns, entry)
    procs.stop([*([found] if found else []), *(p for p in strays(ns) if not found or p.pid != found.pid)])
