"""The state a :class:`~nsnet.testing.fakekernel.FakeKernel` holds: namespaces and their links, in memory."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from nsnet.errors import KernelError
from nsnet.model import Endpoint, Route
from nsnet.testing.fakefirewall import Tables

DEFAULT_SYSCTL = "0"
"""What a sysctl nobody wrote reads as."""
DEFAULTS: dict[str, dict[str, Any]] = {"bridge": {"stp": 0, "ageing": 30000}}
"""The settings the kernel gives a new link of a kind when not told (by parameter key)."""


def kernel_error(code: int, what: str) -> KernelError:
    return KernelError(f"{what}: {os.strerror(code)}")


@dataclass
class FakeLink:
    index: int
    name: str
    kind: str
    mac: str
    alias: str | None = None
    mtu: int = 1500
    up: bool = False
    master: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    """Its kind's settings (IFLA_INFO_DATA), by parameter key."""
    peer: Endpoint | None = None
    """A veth's other end."""
    parent: Endpoint | None = None
    """The device a macvlan or ipvlan sits on."""
    addresses: list[str] = field(default_factory=list)
    fdb: set[tuple[str, str]] = field(default_factory=set)
    neighbours: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class FakeNamespace:
    name: str
    mark: str | None = None
    links: dict[str, FakeLink] = field(default_factory=dict)
    routes: set[Route] = field(default_factory=set)
    sysctls: dict[str, str] = field(default_factory=dict)
    firewall: dict[int, Tables] = field(default_factory=dict)
    nft: list[str] = field(default_factory=list)
    """Native nftables rulesets loaded (``nft -f`` text), in order."""
    qdiscs: dict[str, str] = field(default_factory=dict)
    stale: bool = False
