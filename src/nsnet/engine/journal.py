"""Per-lab journal and lock under /run/nsnet: what nsnet created, and what it changed.

The journal is written atomically (write, fsync, rename). It records the
lab's namespaces before they are created, so that ``down`` after a crash
still finds them, and the original value of every sysctl and chain policy
nsnet changed, so that ``down`` puts them back.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from nsnet.engine import journal_check
from nsnet.errors import ConflictError, NsnetError
from nsnet.names import NAME_RE
from nsnet.statedir import STATE_DIR, directory, existing, open_file

LAB_NAME_MAX = 32


def check_lab_name(lab: str) -> None:
    """Raise :class:`NsnetError` unless ``lab`` is a safe lab name (it names files and namespaces)."""
    if not NAME_RE.match(lab) or ".." in lab or len(lab) > LAB_NAME_MAX:
        raise NsnetError(
            f"{lab!r} is not a lab name: use up to {LAB_NAME_MAX} letters, digits, _ . - "
            "(no '/' or '..'), starting with a letter or digit"
        )


@dataclass
class Journal:
    """What nsnet knows about one lab."""

    lab: str
    topology: str = ""
    source: str | None = None
    host_mode: str = "sandbox"
    namespaces: dict[str, str] = field(default_factory=dict)
    """Kernel namespace name -> logical name, for every namespace nsnet created."""
    hosts: list[str] = field(default_factory=list)
    """The hosts of a multi-host lab (logical names), its underlay included."""
    machine: str | None = None
    """A machine's share of a multi-host lab: the host this machine is."""
    root_links: list[str] = field(default_factory=list)
    """Links nsnet created in the root namespace (``host: root``)."""
    root_routes: list[str] = field(default_factory=list)
    """Routes nsnet added in the root namespace; no other root route is ever deleted."""
    sysctls: dict[str, dict[str, str]] = field(default_factory=dict)
    """Original values of the sysctls nsnet changed: {ns: {key: value}}."""
    policies: dict[str, dict[str, str]] = field(default_factory=dict)
    """Original filter policies nsnet changed: {ns: {chain: policy}}."""
    firewall: list[str] = field(default_factory=list)
    """Namespaces where nsnet has firewall chains or policies."""
    shaping: dict[str, dict[str, str]] = field(default_factory=dict)
    """Shaping nsnet put on links (``tc qdisc`` words): {ns: {ifname: qdisc}}."""
    servers: dict[str, list[int]] = field(default_factory=dict)
    """Processes nsnet started (the outside's HTTP server): {ns: [pid, port, start time]}."""
    files: dict[str, list[str]] = field(default_factory=dict)
    """Files nsnet wrote under /etc/netns: {ns: [hosts, resolv.conf ...]}, "/" where it made the directory."""
    scratch: list[str] = field(default_factory=list)
    """Directories made for the lab outside the state directory (etcd's data and log): removed on ``down``."""
    status: str = "applying"
    updated: float = 0.0
    tolerant: bool = field(default=False, init=False, repr=False, compare=False)
    """Not saved: a write that fails (a full state directory) does not stop the caller (``down``)."""
    unsaved: str = field(default="", init=False, repr=False, compare=False)
    """Not saved: why the last tolerated write failed."""

    @staticmethod
    def path_for(lab: str) -> Path:
        check_lab_name(lab)
        return STATE_DIR / "labs" / f"{lab}.json"

    @classmethod
    def load(cls, lab: str) -> Journal | None:
        """The journal of ``lab``, None if it has none; :class:`NsnetError` if it cannot be trusted."""
        path = cls.path_for(lab)
        if existing("labs") is None:
            return None
        try:
            fd = open_file(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise NsnetError(f"the journal of lab {lab!r} is unreadable: {exc}") from exc
        except NsnetError as exc:
            raise NsnetError(f"the journal of lab {lab!r} cannot be trusted: {exc}") from None
        try:
            with open(fd, "rb") as f:
                data = journal_check.check(json.loads(f.read()), lab)
        except (OSError, ValueError, RecursionError) as exc:
            raise NsnetError(
                f"the journal of lab {lab!r} ({path}) is corrupt: {exc}; nsnet will not act on it: "
                f"move it away, then `nsnet gc {lab}` removes the lab's namespaces by their marks"
            ) from None
        known = {f.name for f in fields(cls) if f.init}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self) -> None:
        """Write the journal atomically; with :attr:`tolerant` a write that fails is only remembered."""
        path = self.path_for(self.lab)
        self.updated = time.time()
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        try:
            directory("labs", 0o755)
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()  # never write through what may be there
            with open(open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "w") as f:
                os.fchmod(f.fileno(), 0o644)
                json.dump({k: v for k, v in asdict(self).items() if k not in ("tolerant", "unsaved")}, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if self.tolerant:
                self.unsaved = f"{path}: {exc.strerror or exc}"
                return
            raise NsnetError(f"cannot write the journal of lab {self.lab!r} ({path}): {exc.strerror or exc}") from exc
        for stale in path.parent.glob(f"{self.lab}.tmp*"):  # left by a process killed while saving
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_for(self.lab).unlink()


def all_labs() -> list[Journal]:
    """Journals of every lab nsnet knows about, by name (those it cannot read: see :func:`scan`)."""
    return scan()[0]


def scan() -> tuple[list[Journal], dict[str, str]]:
    """Every lab's journal, and every lab whose journal cannot be read with why: one bad journal
    is that lab's problem only."""
    good, bad = [], {}
    labs = existing("labs")
    for path in sorted(labs.glob("*.json")) if labs else ():
        try:
            journal = Journal.load(path.stem)
        except NsnetError as exc:
            bad[path.stem] = str(exc)
            continue
        if journal is not None:
            good.append(journal)
    return good, bad


@contextlib.contextmanager
def locked(lab: str, wait: bool = True) -> Iterator[None]:
    """Hold the lab's lock: one ``up``/``down`` of a lab at a time.

    The lock file is removed once the lab is gone (no journal left), while
    the lock is held. A process that was waiting on the removed file finds,
    once it gets the lock, that the path no longer names that file: it
    starts again with the file now there (or a new one).
    """
    check_lab_name(lab)
    path = directory("locks", 0o700) / f"{lab}.lock"
    while True:
        # Never truncated, never through a symbolic link: the lock file holds nothing, only the lock.
        f = open(open_file(path, os.O_RDWR | os.O_CREAT, 0o600))  # noqa: SIM115 - held for the block, closed below
        os.fchmod(f.fileno(), 0o600)  # whatever the umask left
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            f.close()
            raise ConflictError(f"lab {lab!r} is being changed by another nsnet process") from None
        except BaseException:
            f.close()
            raise
        if _same_file(path, f.fileno()):
            break
        f.close()  # removed (or replaced) while we waited: that lock protects nothing any more
    try:
        yield
    finally:
        if not Journal.path_for(lab).exists():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        f.close()


def _same_file(path: Path, fd: int) -> bool:
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)
