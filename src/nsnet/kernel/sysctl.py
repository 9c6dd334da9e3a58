"""Per-namespace network sysctls (``net.*``): read and written under /proc/sys from inside the namespace."""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence

from nsnet.errors import KernelError
from nsnet.kernel import netns, rtnl


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


# Where each of CONF4 sits in the IFLA_INET_CONF array of a link (IPV4_DEVCONF_* - 1), and CONF6 in
# IFLA_INET6_CONF (DEVCONF_*): what /proc/sys/net/ipv{4,6}/conf/DEV/ holds, as the link dump reports it.
_INET_CONF, _INET6_CONF = 1, 2  # IFLA_INET_CONF, IFLA_INET6_CONF
_CONF4_INDEX = {"forwarding": 0, "proxy_arp": 2, "rp_filter": 7, "arp_filter": 12, "arp_announce": 17,
                "arp_ignore": 18, "accept_local": 22}  # fmt: skip
_CONF6_INDEX = {"forwarding": 0}


def read_conf(ns: str) -> dict[str, str]:
    """``net.ipv4.conf.*.{CONF4}`` and ``net.ipv6.conf.*.{CONF6}`` of every interface (and all, default) in ``ns``,
    in one pass; an interface name's dots stay dots in the key (``sysctl`` writes them as slashes).

    ``all`` and ``default`` are read under /proc/sys; each interface's values come with one dump of
    the links. (Opening a file under /proc/sys/net costs time in proportion to the number of network
    namespaces on the machine: read per interface, a lab's host of 10,000 ports would take minutes.)
    """
    out: dict[str, str] = {}
    with netns.entered(ns):
        sock = rtnl.Socket.open()
        try:
            skip_stats = rtnl.u32(rtnl.IFLA_EXT_MASK, rtnl.RTEXT_FILTER_SKIP_STATS)
            links = sock.dump(rtnl.RTM_GETLINK, rtnl.ifinfo() + skip_stats)
        finally:
            sock.close()
        devices = {4: {}, 6: {}}  # type: dict[int, dict[str, dict[str, str]]]
        for body in links:
            name, conf4, conf6 = _link_conf(body)
            if conf4 is not None:
                devices[4][name] = {key: str(conf4[i]) for key, i in _CONF4_INDEX.items() if i < len(conf4)}
            if conf6 is not None:
                devices[6][name] = {key: str(conf6[i]) for key, i in _CONF6_INDEX.items() if i < len(conf6)}
        for family, names in (("ipv4", CONF4), ("ipv6", CONF6)):
            base = f"/proc/sys/net/{family}/conf"
            for dev in ("all", "default"):
                for name in names:
                    try:
                        with open(f"{base}/{dev}/{name}") as f:
                            out[f"net.{family}.conf.{dev}.{name}"] = f.read().strip()
                    except OSError:
                        continue
            per_dev = devices[4 if family == "ipv4" else 6]
            for dev in sorted(per_dev):
                for name in names:
                    if name in per_dev[dev]:
                        out[f"net.{family}.conf.{dev}.{name}"] = per_dev[dev][name]
    return out


def _link_conf(body: memoryview) -> tuple[str, list[int] | None, list[int] | None]:
    """A link's name and its IPv4 and IPv6 configuration arrays (None where the family is off on it)."""
    a = rtnl.attrs(body, rtnl.IFINFO_SIZE)
    name = bytes(a[rtnl.IFLA_IFNAME]).split(b"\0", 1)[0].decode(errors="replace")
    conf4 = conf6 = None
    spec = a.get(rtnl.IFLA_AF_SPEC)
    if spec is not None:
        families = rtnl.attrs(spec, 0)
        if socket.AF_INET in families:
            raw = rtnl.attrs(families[socket.AF_INET], 0).get(_INET_CONF)
            conf4 = list(struct.unpack(f"={len(raw) // 4}I", raw)) if raw is not None else None
        if socket.AF_INET6 in families:
            raw = rtnl.attrs(families[socket.AF_INET6], 0).get(_INET6_CONF)
            conf6 = list(struct.unpack(f"={len(raw) // 4}i", raw)) if raw is not None else None
    return name, conf4, conf6


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
