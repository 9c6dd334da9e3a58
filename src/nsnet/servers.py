"""Processes nsnet runs in a lab: the outside's HTTP server, started on ``up``, stopped on ``down``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

from .errors import KernelError
from .kernel.firewall import in_ns

MODULE = "nsnet.outside_server"


def running(pid: int) -> bool:
    """Whether ``pid`` is still nsnet's server (not a reused pid)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return MODULE.encode() in f.read()
    except OSError:
        return False


def start(ns: str, port: int) -> int:
    proc = subprocess.Popen(
        in_ns(ns, [sys.executable, "-m", MODULE, str(port)]),
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
    return proc.pid


def stop(pid: int) -> None:
    if running(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
