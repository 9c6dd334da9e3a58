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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConflictError, NsnetError
from .names import NAME_RE

STATE_DIR = Path(os.environ.get("NSNET_STATE_DIR", "/run/nsnet"))


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
    """Processes nsnet started (the outside's HTTP server): {ns: [pid, port]}."""
    status: str = "applying"
    updated: float = 0.0

    @staticmethod
    def path_for(lab: str) -> Path:
        check_lab_name(lab)
        return STATE_DIR / "labs" / f"{lab}.json"

    @classmethod
    def load(cls, lab: str) -> Journal | None:
        try:
            data: dict[str, Any] = json.loads(cls.path_for(lab).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise NsnetError(f"the journal of lab {lab!r} is unreadable: {exc}") from exc
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self) -> None:
        path = self.path_for(self.lab)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.updated = time.time()
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "w") as f:
            json.dump(asdict(self), f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        for stale in path.parent.glob(f"{self.lab}.tmp*"):  # left by a process killed while saving
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_for(self.lab).unlink()


def all_labs() -> list[Journal]:
    """Journals of every lab nsnet knows about, by name."""
    out = []
    for path in sorted((STATE_DIR / "labs").glob("*.json")):
        journal = Journal.load(path.stem)
        if journal is not None:
            out.append(journal)
    return out


@contextlib.contextmanager
def locked(lab: str, wait: bool = True) -> Iterator[None]:
    """Hold the lab's lock: one ``up``/``down`` of a lab at a time."""
    check_lab_name(lab)
    lock_dir = STATE_DIR / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{lab}.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise ConflictError(f"lab {lab!r} is being changed by another nsnet process") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
