"""Per-namespace network sysctls (``net.*``)."""

from __future__ import annotations

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
    with netns.entered(ns):
        try:
            with open(_file(key), "w") as f:
                f.write(value)
        except FileNotFoundError:
            hint = " (load it with: modprobe br_netfilter)" if key.startswith("net.bridge.") else ""
            raise KernelError(f"sysctl {key} does not exist in this kernel{hint}") from None
        except OSError as exc:
            raise KernelError(f"cannot set sysctl {key}={value}: {exc.strerror}") from None
