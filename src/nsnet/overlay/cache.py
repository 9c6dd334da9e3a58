"""The overlay controller's copy of the registry, indexed for the kernel's misses; what it wrote and still waits for."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nsnet.overlay.endpoints import OverlayEndpoint
from nsnet.overlay.hostnet import norm_ip


@dataclass
class Written:
    """What a controller wrote on a device for one key: the fdb entry, and the neighbour entry if ``neigh``."""

    endpoint: OverlayEndpoint
    neigh: bool


@dataclass
class Pending:
    """A miss the registry could not answer yet: when it came first, when it was last logged, repeats since."""

    first: float
    logged: float
    repeats: int = 0


class EndpointCache:
    """Registry key -> endpoint, found again by (VNI, IP) for an L3 miss and by (VNI, MAC) for an L2 miss."""

    def __init__(self) -> None:
        self._endpoints: dict[str, OverlayEndpoint] = {}
        self._by_ip: dict[tuple[int, str], str] = {}
        self._by_mac: dict[tuple[int, str], set[str]] = {}

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._endpoints))

    def __getitem__(self, key: str) -> OverlayEndpoint:
        return self._endpoints[key]

    def get(self, key: str) -> OverlayEndpoint | None:
        return self._endpoints.get(key)

    def remember(self, key: str, endpoint: OverlayEndpoint) -> None:
        self.drop(key)
        self._endpoints[key] = endpoint
        self._by_ip[(endpoint.vni, norm_ip(endpoint.ip))] = key
        self._by_mac.setdefault((endpoint.vni, endpoint.mac.lower()), set()).add(key)

    def drop(self, key: str) -> None:
        old = self._endpoints.pop(key, None)
        if old is None:
            return
        ip = (old.vni, norm_ip(old.ip))
        if self._by_ip.get(ip) == key:
            del self._by_ip[ip]
        keys = self._by_mac.get((old.vni, old.mac.lower()))
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_mac[(old.vni, old.mac.lower())]

    def answering(self, vni: int, kind: str, addr: str) -> list[str]:
        """The keys whose endpoint answers a miss: of an IP (``l3miss``) or of a MAC (``l2miss``, several IPs)."""
        if kind == "l3miss":
            found = self._by_ip.get((vni, addr))
            return [found] if found else []
        return sorted(self._by_mac.get((vni, addr), ()))


def fields(endpoint: OverlayEndpoint) -> dict[str, Any]:
    """An endpoint's fields as a log record's data."""
    return {
        "vni": endpoint.vni,
        "ip": endpoint.ip,
        "mac": endpoint.mac,
        "vtep": endpoint.vtep,
        "owner": endpoint.host,
        "node": endpoint.node,
    }
