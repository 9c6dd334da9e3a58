"""Files under ``/etc/netns/<namespace>/``, which ``ip netns exec`` shows over ``/etc`` (``hosts``, ``resolv.conf``).

Written atomically (a new file renamed into place), never through a
symbolic link; removed only while they start with the mark of the lab that
wrote them. :func:`show` gives a forked child the same view of ``/etc`` as
``ip netns exec`` gives a command.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import stat
from pathlib import Path

from nsnet.errors import KernelError

ETC_NETNS = Path("/etc/netns")
STALE_RE = re.compile(r"\.(hosts|resolv\.conf)\.nsnet[0-9]+")
"""The temporary name of a file being written (``.hosts.nsnet<pid>``)."""
CLONE_NEWNS = 0x00020000
MS_BIND = 4096
MS_REC = 16384
MS_SLAVE = 1 << 19


def _dir(ns: str) -> Path:
    if not ns or "/" in ns or ns in (".", ".."):
        raise KernelError(f"{ns!r} is not a namespace name")
    return ETC_NETNS / ns


def read(ns: str, names: list[str]) -> dict[str, str]:
    """The text of each of ``names`` that is there (a file that is not a regular one reads as empty)."""
    out = {}
    for name in names:
        path = _dir(ns) / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            continue
        except OSError:  # a symbolic link, a directory: there, and not nsnet's
            if path.is_symlink() or path.exists():
                out[name] = ""
            continue
        with open(fd, "rb") as f:
            out[name] = f.read(1 << 20).decode(errors="replace") if stat.S_ISREG(os.fstat(fd).st_mode) else ""
    return out


def write(ns: str, name: str, text: str, mark: str) -> bool:
    """Write ``/etc/netns/<ns>/<name>`` atomically; whether the directory had to be made.

    A file already there that does not start with ``mark`` (not the lab's) is refused, never written over.
    """
    folder = _dir(ns)
    current = read(ns, [name]).get(name)
    if current is not None and not current.startswith(mark):
        raise KernelError(
            f"{folder / name} already exists and was not written by nsnet for this lab; nsnet never writes "
            f"over a file it did not write: move it away if nothing needs it (`ip netns exec {ns}` shows it "
            f"as /etc/{name}), or bring the lab up under another name (--name)"
        )
    made = False
    try:
        ETC_NETNS.mkdir(mode=0o755, exist_ok=True)
        try:
            folder.mkdir(mode=0o755)
            made = True
        except FileExistsError:
            if folder.is_symlink() or not folder.is_dir():
                raise KernelError(f"{folder} is not a directory: nsnet will not write through it") from None
        tmp = folder / f".{name}.nsnet{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644), "w") as f:
            os.fchmod(f.fileno(), 0o644)
            f.write(text)
        os.replace(tmp, folder / name)
    except OSError as exc:
        raise KernelError(f"cannot write {folder / name}: {exc.strerror or exc}") from exc
    return made


def remove(ns: str, name: str, mark: str, directory: bool) -> None:
    """Remove ``name`` if it starts with ``mark``; then the directory too if ``directory`` (nsnet made it) and empty."""
    folder = _dir(ns)
    text = read(ns, [name]).get(name)
    try:
        if text is not None and text.startswith(mark):
            (folder / name).unlink()
        if directory:
            with contextlib.suppress(FileNotFoundError, OSError):
                folder.rmdir()  # not empty: someone else's files are there too; left
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise KernelError(f"cannot remove {folder / name}: {exc.strerror or exc}") from exc


def forget(ns: str) -> None:
    """After nsnet deleted namespace ``ns``: the temporary files of writes cut short (killed) there, and the
    directory if nothing else is in it (a write killed before the journal said nsnet made it)."""
    folder = _dir(ns)
    if folder.is_symlink() or not folder.is_dir():
        return
    for stale in folder.iterdir():
        # Named as write() names them (a write killed before its first byte leaves an empty one).
        if STALE_RE.fullmatch(stale.name) and stale.is_file() and not stale.is_symlink():
            with contextlib.suppress(OSError):
                stale.unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()  # not empty: someone else's files are there too; left


def show(ns: str) -> None:
    """In this (forked, single-threaded) process: see ``/etc/netns/<ns>/*`` over ``/etc``, as ``ip netns exec`` does.

    A private mount namespace is made (so nothing changes for anyone else)
    and each file bind-mounted over its namesake in /etc. Nothing is done
    where the namespace has no such directory.
    """
    folder = ETC_NETNS / ns
    if not ns or not folder.is_dir():
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0 or libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None) != 0:
        raise KernelError(f"cannot make a private mount namespace: {os.strerror(ctypes.get_errno())}")
    for entry in sorted(folder.iterdir()):
        target = Path("/etc") / entry.name
        if entry.name.startswith(".") or not target.exists():
            continue
        if libc.mount(str(entry).encode(), str(target).encode(), b"none", MS_BIND, None) != 0:
            raise KernelError(f"cannot show {entry} as {target}: {os.strerror(ctypes.get_errno())}")
