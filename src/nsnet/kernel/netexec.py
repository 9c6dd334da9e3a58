"""Python code inside a network namespace: a function run in a forked child, or a socket opened there.

:func:`spawn` forks a child that enters the namespace and calls the function;
the child sees ``/etc`` as ``ip netns exec`` shows it (the namespace's
``hosts`` and ``resolv.conf`` from ``/etc/netns``, in a mount namespace of
its own); the function is never pickled (closures and lambdas work), only what it
returns or raises comes back, pickled through a pipe. An exception in the
child is raised in the parent as :class:`ChildError`, with the child's
traceback text. :func:`open_socket` creates a socket while this thread is
inside the namespace: the socket stays bound to that namespace for its whole
life, whatever thread uses it later.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from nsnet.errors import ChildError, NsnetError
from nsnet.kernel import etcnetns, netns

T = TypeVar("T")


class Child(Generic[T]):
    """A function running in a forked child bound to a namespace (see :func:`spawn`)."""

    def __init__(self, pid: int, fd: int, where: str, what: str) -> None:
        self.pid = pid
        self.where = where
        self.what = what
        self._fd: int | None = fd
        self._data = bytearray()
        self._status: int | None = None

    def result(self, timeout: float | None = 60.0) -> T:
        """Wait for the function's return value; raise :class:`ChildError` if it raised or died.

        After ``timeout`` seconds the child is killed and :class:`ChildError` raised.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._fd is not None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                self.kill()
                raise ChildError(f"{self.what} in {self.where} did not finish within {timeout:g} s; killed")
            ready, _, _ = select.select([self._fd], [], [], left)
            if ready:
                chunk = os.read(self._fd, 1 << 16)
                if chunk:
                    self._data += chunk
                else:
                    os.close(self._fd)
                    self._fd = None
        self._reap()
        return self._outcome()

    @property
    def running(self) -> bool:
        """Whether the child has not ended yet."""
        if self._status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._status = status
        return self._status is None

    def kill(self) -> None:
        """Kill the child (if it still runs) and reap it."""
        if self._status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self._reap()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _reap(self) -> None:
        if self._status is None:
            _, self._status = os.waitpid(self.pid, 0)

    def _outcome(self) -> T:
        if not self._data:
            status = self._status or 0
            how = (
                f"killed by signal {os.WTERMSIG(status)}"
                if os.WIFSIGNALED(status)
                else f"exited with status {os.waitstatus_to_exitcode(status)}"
            )
            raise ChildError(f"{self.what} in {self.where} ended without a result ({how})")
        ok, payload = pickle.loads(bytes(self._data))
        if ok:
            value: T = payload
            return value
        name, message, text, blob = payload
        exception = None
        if blob is not None:
            try:
                exception = pickle.loads(blob)
            except Exception:
                exception = None
        raise ChildError(f"{self.what} in {self.where} raised {name}: {message}", text, exception) from exception


def spawn(ns: str, func: Callable[[], T], where: str | None = None) -> Child[T]:
    """Call ``func()`` in a forked child bound to network namespace ``ns``; returns at once.

    ``where`` names the place in messages (default: the namespace).
    """
    what = getattr(func, "__qualname__", None) or repr(func)
    place = where or ns or "the root namespace"
    if not netns.exists(ns):
        raise NsnetError(f"network namespace {ns!r} does not exist")
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        _child(ns, func, write_fd)
    os.close(write_fd)
    return Child(pid, read_fd, place, what)


def call(ns: str, func: Callable[[], T], timeout: float | None = 60.0, where: str | None = None) -> T:
    """Call ``func()`` in a forked child bound to ``ns`` and return what it returns (pickled back)."""
    return spawn(ns, func, where).result(timeout)


def _child(ns: str, func: Callable[[], Any], fd: int) -> None:
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            with netns.entered(ns):
                etcnetns.show(ns)  # names resolve as under `ip netns exec`: the lab's hosts file over /etc/hosts
                payload = pickle.dumps((True, func()))
        except BaseException as exc:
            payload = pickle.dumps((False, _describe(exc)))
        with os.fdopen(fd, "wb") as pipe:
            pipe.write(payload)
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        code = 70
    finally:
        os._exit(code)


def _describe(exc: BaseException) -> tuple[str, str, str, bytes | None]:
    text = "".join(traceback.format_exception(exc))
    try:
        blob = pickle.dumps(exc)
        pickle.loads(blob)
    except Exception:
        return type(exc).__qualname__, str(exc), text, None
    return type(exc).__qualname__, str(exc), text, blob


def open_socket(ns: str, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0) -> socket.socket:
    """A socket created inside namespace ``ns``: it binds, connects and listens there."""
    try:
        with netns.entered(ns):
            return socket.socket(family, type, proto)
    except OSError as exc:
        raise NsnetError(f"cannot open a socket in {ns or 'the root namespace'}: {exc.strerror or exc}") from exc
