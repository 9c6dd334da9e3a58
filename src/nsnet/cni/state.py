"""What nsnet-cni attached, and its locks, under ``/run/nsnet/cni`` (``NSNET_CNI_STATE_DIR``).

Layout::

    <dir>/node.lock                      one change of the node's iptables rules at a time
    <dir>/<network>/lock                 one ADD, DEL, CHECK or GC of the network at a time
    <dir>/<network>/<id>:<ifname>.json   one attachment: its configuration and result

An attachment is recorded (its configuration first) before anything is
created for it, so that GC finds what an interrupted ADD left, and removed
after DEL released everything. Records are written atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_DIR = "/run/nsnet/cni"
ENV = "NSNET_CNI_STATE_DIR"


def root() -> Path:
    return Path(os.environ.get(ENV) or DEFAULT_DIR)


def network_dir(network: str) -> Path:
    return root() / network


def record_path(network: str, container_id: str, ifname: str) -> Path:
    # ':' is in neither a container id nor an interface name.
    return network_dir(network) / f"{container_id}:{ifname}.json"


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def network_lock(network: str) -> contextlib.AbstractContextManager[None]:
    """Held through a whole ADD/DEL/CHECK/GC of ``network``: concurrent containers take turns."""
    return _flock(network_dir(network) / "lock")


def node_lock() -> contextlib.AbstractContextManager[None]:
    """Held while the iptables rules are read and changed (every network shares the chains)."""
    return _flock(root() / "node.lock")


def save(network: str, container_id: str, ifname: str, record: dict[str, Any]) -> None:
    path = record_path(network, container_id, ifname)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with open(tmp, "w") as f:  # no fsync: the directory is a tmpfs (/run) that a reboot empties anyway
        json.dump(record, f)
    os.replace(tmp, path)


def load(network: str, container_id: str, ifname: str) -> dict[str, Any] | None:
    return _read(record_path(network, container_id, ifname))


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove(network: str, container_id: str, ifname: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        record_path(network, container_id, ifname).unlink()


def records(network: str) -> list[dict[str, Any]]:
    """Every attachment recorded for ``network`` (temporary files left by a crash are removed)."""
    out: list[dict[str, Any]] = []
    directory = network_dir(network)
    if not directory.is_dir():
        return out
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") and ".json." in path.name:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        if path.suffix != ".json":
            continue
        data = _read(path)
        if data is not None and isinstance(data.get("containerID"), str) and isinstance(data.get("ifname"), str):
            out.append(data)
    return out
