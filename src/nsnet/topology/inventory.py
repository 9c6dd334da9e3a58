"""``machines:``: the real machines that carry the hosts of a multi-host lab (schema and checks).

Each host of ``hosts:`` is one machine: the driver reaches it over SSH, and
its share of the lab is built there with the machine's root namespace as the
host, the VXLAN devices on a real underlay interface.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping

from pydantic import BaseModel, ConfigDict, Field

from nsnet.model import Machine

Loc = tuple[str | int, ...]
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}\Z")
SSH_RE = re.compile(r"^(?:(?P<user>[A-Za-z0-9_.][A-Za-z0-9_.-]*)@)?(?P<host>[A-Za-z0-9_.:-]+|\[[0-9A-Fa-f:.]+\])\Z")


class MachineUnderlaySpec(BaseModel):
    """The machine's side of the underlay: a real interface and its VTEP address."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interface: str = Field(description="The real underlay interface (eth1): nsnet never changes it.")
    address: str = Field(description="The machine's IPv4 address on it, the VTEP (192.168.104.2, or with /24).")


class MachineInventorySpec(BaseModel):
    """One machine of ``machines:``, keyed by the host of ``hosts:`` it carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ssh: str | None = Field(
        default=None,
        description="Where the driver reaches it: [user@]host[:port] (default: root@ its underlay address).",
    )
    underlay: MachineUnderlaySpec
    nsnet: str = Field(default="nsnet", description="The nsnet command on the machine.")


def split_ssh(target: str) -> tuple[str, str, int]:
    """``[user@]host[:port]`` as (user, host, port); ``ValueError`` if it is not one."""
    user, _, rest = target.rpartition("@")
    host, port = rest, 22
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        if tail:
            port = int(tail.removeprefix(":"))
    elif rest.count(":") == 1:
        host, text = rest.split(":")
        port = int(text)
    if not SSH_RE.match(target) or not host or not 0 < port < 65536:
        raise ValueError(target)
    return user or "root", host, port


def machines(
    spec: Mapping[str, MachineInventorySpec], hosts: Mapping[str, object], add: Callable[[Loc, str, str], None]
) -> dict[str, Machine]:
    """The machines of ``spec`` checked against the lab's ``hosts``; each problem goes to ``add``."""
    if spec and not hosts:
        add(("machines",), "machines: carry the hosts of a multi-host lab", "declare them under hosts:")
        return {}
    out: dict[str, Machine] = {}
    seen: dict[str, str] = {}
    for name, m in spec.items():
        loc: Loc = ("machines", name)
        if name not in hosts:
            add(loc, f"{name!r} is not a host of this lab", f"use one of: {', '.join(hosts)}")
            continue
        if not IFNAME_RE.match(m.underlay.interface):
            add((*loc, "underlay", "interface"), f"{m.underlay.interface!r} is not an interface name", "")
            continue
        try:
            address = ipaddress.ip_interface(m.underlay.address)
        except ValueError:
            address = None
        if not isinstance(address, ipaddress.IPv4Interface):
            add((*loc, "underlay", "address"), f"{m.underlay.address!r} is not an IPv4 address", "")
            continue
        ip = str(address.ip)
        if ip in seen:
            add((*loc, "underlay", "address"), f"{ip} is machine {seen[ip]}'s address too", "each has its own VTEP")
            continue
        seen[ip] = name
        target = m.ssh or f"root@{ip}"
        try:
            split_ssh(target)
        except ValueError:
            add((*loc, "ssh"), f"{target!r} is not an SSH destination", "write [user@]host[:port]")
            continue
        out[name] = Machine(name, m.underlay.interface, ip, target, m.nsnet)
    missing = [h for h in hosts if h not in spec]
    if spec and missing:
        add(("machines",), f"no machine carries host{'s' if len(missing) > 1 else ''} {', '.join(missing)}", "")
    return out
