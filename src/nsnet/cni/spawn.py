"""Run a program with some input and collect its output: :func:`subprocess.run` for the plugin's hot path.

:mod:`subprocess` brings :mod:`threading`, :mod:`selectors`, :mod:`signal`
and :mod:`locale` with it: milliseconds of a process started once per
container and command, for the two or three programs an ADD runs (the IPAM
plugin, ``iptables-restore``). This is ``posix_spawn`` and ``poll``.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections.abc import Mapping, Sequence

CHUNK = 1 << 16
DEFAULT_SIGNALS = (13, 25)
"""SIGPIPE and SIGXFSZ, which Python ignores: back to their defaults in the program, as subprocess does."""


class Completed:
    """A finished program: its exit status, standard output and standard error."""

    __slots__ = ("code", "err", "out")

    def __init__(self, code: int, out: bytes, err: bytes) -> None:
        self.code, self.out, self.err = code, out, err


def run(
    argv: Sequence[str], stdin: bytes = b"", env: Mapping[str, str] | None = None, timeout: float = 120
) -> Completed:
    """Run ``argv`` (``argv[0]`` a path) with ``stdin``; :class:`OSError` if it cannot be started,
    :class:`TimeoutError` (the program killed) if it takes longer than ``timeout`` seconds."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    actions = [(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)]
    try:
        environ = dict(os.environ if env is None else env)
        pid = os.posix_spawn(argv[0], list(argv), environ, file_actions=actions, setsigdef=DEFAULT_SIGNALS)
    except OSError:
        for fd in (in_r, in_w, out_r, out_w, err_r, err_w):
            os.close(fd)
        raise
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    try:
        out, err = _communicate(in_w, out_r, err_r, stdin, time.monotonic() + timeout)
    except TimeoutError:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise
    _, status = os.waitpid(pid, 0)
    return Completed(os.waitstatus_to_exitcode(status), out, err)


def _communicate(in_w: int, out_r: int, err_r: int, data: bytes, deadline: float) -> tuple[bytes, bytes]:
    """Write ``data`` to the program while reading what it prints, until it closes its output."""
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    poller = select.poll()
    open_fds = {out_r, err_r}
    for fd in open_fds:
        poller.register(fd, select.POLLIN)
    if data:
        os.set_blocking(in_w, False)
        poller.register(in_w, select.POLLOUT)
        open_fds.add(in_w)
    else:
        os.close(in_w)
    view, sent = memoryview(data), 0
    try:
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            for fd, _ in poller.poll(left * 1000):
                if fd == in_w:
                    try:
                        sent += os.write(in_w, view[sent : sent + CHUNK])
                    except BrokenPipeError:  # the program stopped reading: what it says tells why
                        sent = len(view)
                    if sent >= len(view):
                        poller.unregister(in_w)
                        open_fds.discard(in_w)
                        os.close(in_w)
                    continue
                got = os.read(fd, CHUNK)
                if got:
                    chunks[fd].append(got)
                else:
                    poller.unregister(fd)
                    open_fds.discard(fd)
    finally:
        for fd in open_fds | {out_r, err_r}:
            with contextlib.suppress(OSError):
                os.close(fd)
    return b"".join(chunks[out_r]), b"".join(chunks[err_r])
