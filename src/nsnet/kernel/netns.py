"""Named network namespaces under /run/netns, as ``ip netns`` keeps them.

A namespace is made the way ``ip netns add`` makes one — ``unshare`` a new
network namespace, bind-mount it on ``/run/netns/NAME`` — but by a thread of
this process, which then returns to where it was: no process is forked. Many
namespaces are made (and removed) by a few threads at once, since the kernel
lets those calls overlap.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar

from nsnet.errors import KernelError
from nsnet.model import ROOT_NS

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
MS_REC, MS_BIND, MS_SHARED = 0x4000, 0x1000, 1 << 20
MNT_DETACH = 2
THREADS = 4
"""Threads that create or delete namespaces together (the kernel's own work overlaps well)."""
_ROOT_FD: int | None = None
_LIBC: ctypes.CDLL | None = None
_SHARED = False
_lock = threading.Lock()
T = TypeVar("T")


def path(ns: str) -> str:
    """Filesystem path of a namespace (the root namespace is our own, at start-up)."""
    if ns == ROOT_NS:
        return "/proc/self/ns/net"
    if "/" in ns or "\0" in ns or ns in (".", ".."):  # never a path outside /run/netns
        raise KernelError(f"{ns!r} is not a network namespace name")
    return os.path.join(NETNS_DIR, ns)


def exists(ns: str) -> bool:
    return ns == ROOT_NS or os.path.exists(path(ns))


def ident(ns: str) -> tuple[int, int] | None:
    """Device and inode of the namespace bound at ``ns``'s path (None: not there): which namespace it is now."""
    try:
        st = os.stat(path(ns))
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def names() -> list[str]:
    """Every named namespace on the machine."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def _libc() -> ctypes.CDLL:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace open as ``fd``."""
    _check(_libc().setns(fd, CLONE_NEWNET), "setns")


def is_stale(ns: str) -> bool:
    """Whether ``/run/netns/NAME`` is only an empty file: a creation cut short before the mount."""
    try:
        st = os.stat(path(ns))
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == 0 and st.st_dev != os.stat("/proc/self/ns/net").st_dev


def _share_dir() -> None:
    """Make /run/netns a shared mount, as ``ip netns add`` does, so that the bind mounts propagate."""
    global _SHARED
    with _lock:
        if _SHARED:
            return
        os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
        libc, target = _libc(), NETNS_DIR.encode()
        if libc.mount(b"", target, b"none", MS_SHARED | MS_REC, None) != 0:
            if ctypes.get_errno() != errno.EINVAL:
                _check(-1, f"make {NETNS_DIR} shared")
            _check(libc.mount(target, target, b"none", MS_BIND | MS_REC, None), f"bind {NETNS_DIR}")
            _check(libc.mount(b"", target, b"none", MS_SHARED | MS_REC, None), f"make {NETNS_DIR} shared")
        _SHARED = True


def _create_here(
    ns: str, back: int, inside: Callable[[], T] | None, discard: Callable[[T], None] | None = None
) -> T | None:
    """Create ``ns`` from the calling thread; run ``inside`` in it; return to the namespace ``back``.

    ``inside`` runs before the namespace gets its name: what it does (nsnet's
    mark) is there before anyone can see the namespace under /run/netns. If
    naming it fails, ``discard`` gets what ``inside`` returned.
    """
    target = path(ns)
    if is_stale(ns):
        os.unlink(target)
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNET), "unshare")
    try:
        made = inside() if inside else None
        try:
            # The mount point is made only now, just before the mount: a process killed in between
            # leaves an empty file at worst, which the next create or delete clears.
            os.close(os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
            if libc.mount(b"/proc/thread-self/ns/net", target.encode(), b"none", MS_BIND, None) != 0:
                code = ctypes.get_errno()
                os.unlink(target)
                raise OSError(code, f"mount: {os.strerror(code)}")
        except BaseException:
            if made is not None and discard is not None:
                discard(made)
            raise
        return made
    finally:
        setns(back)


def create(ns: str) -> None:
    """Create one namespace."""
    create_many([ns])


def create_many(
    spaces: Sequence[str],
    inside: Callable[[str], T] | None = None,
    discard: Callable[[T], None] | None = None,
) -> dict[str, T | None]:
    """Create every namespace of ``spaces``, several at once; ``inside(ns)`` runs in each one,
    before it is named (a namespace where it raised is never named).

    Returns what ``inside`` returned, by namespace (``discard`` gets it back
    where naming the namespace failed). If any failed,
    :class:`NamespacesFailed` is raised after all were tried.
    """
    for ns in spaces:
        if ns == ROOT_NS or (exists(ns) and not is_stale(ns)):
            raise KernelError(f"network namespace {ns or 'root'!r} already exists")
    _share_dir()

    def one(ns: str, back: int) -> T | None:
        try:
            return _create_here(ns, back, inside and (lambda: inside(ns)), discard)
        except OSError as exc:
            raise KernelError(f"cannot create network namespace {ns!r}: {exc.strerror or exc}") from exc

    results, errors = _in_threads(spaces, one)
    if errors:
        order = {ns: i for i, ns in enumerate(spaces)}
        raise NamespacesFailed(results, {ns: _kernel_error(errors[ns]) for ns in sorted(errors, key=order.__getitem__)})
    return results


def _kernel_error(exc: BaseException) -> KernelError:
    return exc if isinstance(exc, KernelError) else KernelError(str(exc))


class NamespacesFailed(KernelError):
    """Some namespaces of :func:`create_many` failed (``errors``, in order); ``results`` are the others'."""

    def __init__(self, results: Mapping[str, object], errors: dict[str, KernelError]) -> None:
        super().__init__(str(next(iter(errors.values()))))
        self.results = results
        self.errors = errors


def _in_threads(items: Sequence[str], work: Callable[[str, int], T]) -> tuple[dict[str, T], dict[str, BaseException]]:
    """``work(item, back)`` for every item, in up to :data:`THREADS` threads (``back``: the thread's namespace fd)."""
    results: dict[str, T] = {}
    errors: dict[str, BaseException] = {}
    pending = iter(items)

    def worker() -> None:
        back = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            while True:
                with _lock:
                    item = next(pending, None)
                if item is None:
                    return
                try:
                    results[item] = work(item, back)
                except Exception as exc:
                    errors[item] = exc
        finally:
            os.close(back)

    count = min(THREADS, (len(items) + 7) // 8)
    if count <= 1:
        worker()
    else:
        threads = [threading.Thread(target=worker, name=f"nsnet-netns-{i}") for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return results, errors


def delete(ns: str) -> None:
    """Delete a named namespace; its virtual links go with it."""
    errors = delete_many([ns])
    if errors:
        raise errors[ns]


def delete_many(spaces: Sequence[str]) -> dict[str, KernelError]:
    """Delete named namespaces, several at once; the ones that could not be deleted, and why."""
    for ns in spaces:
        if ns == ROOT_NS:
            raise KernelError("refusing to delete the root network namespace")
    _, errors = _in_threads(spaces, lambda ns, _back: _remove(ns))
    return {ns: _kernel_error(exc) for ns, exc in errors.items()}


def _remove(ns: str) -> None:
    target = path(ns)
    if _libc().umount2(target.encode(), MNT_DETACH) != 0:
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOENT):  # EINVAL: not mounted (an empty file left behind)
            raise KernelError(f"cannot delete network namespace {ns!r}: {os.strerror(code)}")
    try:
        os.unlink(target)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise KernelError(f"cannot delete network namespace {ns!r}: {exc.strerror}") from exc


def root_fd() -> int:
    """An fd of the namespace nsnet started in, kept open for the process's life."""
    global _ROOT_FD
    if _ROOT_FD is None:
        _ROOT_FD = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    return _ROOT_FD


def open_fd(ns: str) -> int:
    """An fd of namespace ``ns`` (the caller closes it)."""
    try:
        return os.open(path(ns), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KernelError(f"network namespace {ns!r} does not exist") from None


@contextlib.contextmanager
def entered(ns: str) -> Iterator[None]:
    """Run the block with this thread inside namespace ``ns``, then come back to where it was."""
    if ns == ROOT_NS:
        yield
        return
    fd = open_fd(ns)
    back = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            setns(fd)
        except OSError as exc:
            reason = "is not a namespace (half created?)" if exc.errno == errno.EINVAL else exc.strerror
            raise KernelError(f"cannot enter network namespace {ns!r}: {reason}") from None
        finally:
            os.close(fd)
        try:
            yield
        finally:
            setns(back)
    finally:
        os.close(back)
