"""Per-namespace network sysctls (``net.*``): read and written under /proc/sys from inside the namespace."""

from __future__ import annotations

import os
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


CONF4 = ("forwarding", "rp_filter", "arp_ignore", "arp_announce", "arp_filter", "accept_local", "proxy_arp")
"""Per-interface IPv4 settings the packet walk consults (``net.ipv4.conf.{all,default,DEV}.*``)."""
CONF6 = ("forwarding",)


def read_conf(ns: str) -> dict[str, str]:
    """``net.ipv4.conf.*.{CONF4}`` and ``net.ipv6.conf.*.{CONF6}`` of every interface (and all, default) in ``ns``,
    in one pass; an interface name's dots stay dots in the key (``sysctl`` writes them as slashes)."""
    out: dict[str, str] = {}
    with netns.entered(ns):
        for family, names in (("ipv4", CONF4), ("ipv6", CONF6)):
            base = f"/proc/sys/net/{family}/conf"
            try:
                devices = sorted(os.listdir(base), key=lambda d: (d not in ("all", "default"), d))
            except OSError:
                continue
            for dev in devices:
                for name in names:
                    try:
                        with open(f"{base}/{dev}/{name}") as f:
                            out[f"net.{family}.conf.{dev}.{name}"] = f.read().strip()
                    except OSError:
                        continue
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
