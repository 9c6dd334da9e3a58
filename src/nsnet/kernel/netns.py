"""Named network namespaces under /run/netns, as ``ip netns`` keeps them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from pyroute2 import netns as _netns

from ..errors import KernelError
from ..model import ROOT_NS

NETNS_DIR = "/run/netns"
_ROOT_FD: int | None = None


def path(ns: str) -> str:
    """Filesystem path of a namespace (the root namespace is our own, at start-up)."""
    return "/proc/self/ns/net" if ns == ROOT_NS else os.path.join(NETNS_DIR, ns)


def exists(ns: str) -> bool:
    return ns == ROOT_NS or os.path.exists(path(ns))


def names() -> list[str]:
    """Every named namespace on the machine."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def create(ns: str) -> None:
    if exists(ns):
        raise KernelError(f"network namespace {ns!r} already exists")
    try:
        _netns.create(ns)
    except OSError as exc:
        raise KernelError(f"cannot create network namespace {ns!r}: {exc}") from exc


def delete(ns: str) -> None:
    """Delete a named namespace; its virtual links go with it."""
    if ns == ROOT_NS:
        raise KernelError("refusing to delete the root network namespace")
    try:
        _netns.remove(ns)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise KernelError(f"cannot delete network namespace {ns!r}: {exc}") from exc


def root_fd() -> int:
    """An fd of the namespace nsnet started in, kept open for the process's life."""
    global _ROOT_FD
    if _ROOT_FD is None:
        _ROOT_FD = os.open("/proc/self/ns/net", os.O_RDONLY)
    return _ROOT_FD


@contextlib.contextmanager
def entered(ns: str) -> Iterator[None]:
    """Run the block with this thread inside namespace ``ns``, then come back."""
    if ns == ROOT_NS:
        yield
        return
    root_fd()
    try:
        fd = os.open(path(ns), os.O_RDONLY)
    except FileNotFoundError:
        raise KernelError(f"network namespace {ns!r} does not exist") from None
    try:
        _netns.setns(fd, flags=0)
    finally:
        os.close(fd)
    try:
        yield
    finally:
        _netns.setns(root_fd(), flags=0)
