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
import os
from collections.abc import Iterator

from nsnet.cni import jsonc as json

TYPE_CHECKING = False  # typing is not imported at run time: the plugin starts once per container
if TYPE_CHECKING:
    from typing import Any

DEFAULT_DIR = "/run/nsnet/cni"
ENV = "NSNET_CNI_STATE_DIR"


# Paths are strings joined with os.path (pathlib's import is a cost the plugin pays on every call).


def root() -> str:
    return os.environ.get(ENV) or DEFAULT_DIR


def network_dir(network: str) -> str:
    return os.path.join(root(), network)


def record_path(network: str, container_id: str, ifname: str) -> str:
    # ':' is in neither a container id nor an interface name.
    return os.path.join(network_dir(network), f"{container_id}:{ifname}.json")


@contextlib.contextmanager
def _flock(path: str) -> Iterator[None]:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def network_lock(network: str) -> contextlib.AbstractContextManager[None]:
    """Held through a whole ADD/DEL/CHECK/GC of ``network``: concurrent containers take turns."""
    return _flock(os.path.join(network_dir(network), "lock"))


def node_lock() -> contextlib.AbstractContextManager[None]:
    """Held while the iptables rules are read and changed (every network shares the chains)."""
    return _flock(os.path.join(root(), "node.lock"))


def save(network: str, container_id: str, ifname: str, record: dict[str, Any]) -> None:
    path = record_path(network, container_id, ifname)
    directory, name = os.path.split(path)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}")
    with open(tmp, "w") as f:  # no fsync: the directory is a tmpfs (/run) that a reboot empties anyway
        json.dump(record, f)
    os.replace(tmp, path)


def load(network: str, container_id: str, ifname: str) -> dict[str, Any] | None:
    return _read(record_path(network, container_id, ifname))


def _read(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            data = json.load(f)
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove(network: str, container_id: str, ifname: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(record_path(network, container_id, ifname))


def records(network: str) -> list[dict[str, Any]]:
    """Every attachment recorded for ``network`` (temporary files left by a crash are removed)."""
    out: list[dict[str, Any]] = []
    directory = network_dir(network)
    if not os.path.isdir(directory):
        return out
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.startswith(".") and ".json." in name:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            continue
        if not name.endswith(".json"):
            continue
        data = _read(path)
        if data is not None and isinstance(data.get("containerID"), str) and isinstance(data.get("ifname"), str):
            out.append(data)
    return out
