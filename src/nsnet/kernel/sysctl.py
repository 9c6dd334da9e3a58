"""Per-namespace network sysctls (``net.*``): read and written under /proc/sys from inside the namespace."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import KernelError
from . import netns


def _file(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def read(ns: str, keys: list[str]) -> dict[str, str | None]:
    """Current values of ``keys`` in ``ns`` (``None`` where the key does not exist)."""
    out: dict[str, str | None] = {}
    with netns.entered(ns):
        for key in keys:
            try:
                with open(_file(key)) as f:
                    out[key] = " ".join(f.read().split())
            except OSError:
                out[key] = None
    return out


def write(ns: str, key: str, value: str) -> None:
    write_many(ns, [(key, value)])


class SysctlFailed(KernelError):
    """:func:`write_many` stopped at ``pairs[index]``; the ones before it were written."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


def write_many(ns: str, pairs: Sequence[tuple[str, str]]) -> None:
    """Write ``(key, value)`` pairs in order, entering ``ns`` once; stop at the first that fails."""
    with netns.entered(ns):
        for i, (key, value) in enumerate(pairs):
            try:
                with open(_file(key), "w") as f:
                    f.write(value)
            except FileNotFoundError:
                hint = " (load it with: modprobe br_netfilter)" if key.startswith("net.bridge.") else ""
                raise SysctlFailed(f"sysctl {key} does not exist in this kernel{hint}", i) from None
            except OSError as exc:
                raise SysctlFailed(f"cannot set sysctl {key}={value}: {exc.strerror}", i) from None
