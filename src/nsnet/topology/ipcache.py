"""IP addresses, interfaces and networks parsed from text, each text once per process.

Validating a lab reads every address several times (its syntax, its subnet,
duplicates, overlapping bridges, routes); these cache :mod:`ipaddress`'s
results (immutable objects), errors are its own.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_CACHE = 1 << 16


@lru_cache(maxsize=_CACHE)
def ip_interface(text: str) -> IPInterface:
    """:func:`ipaddress.ip_interface`, cached."""
    return ipaddress.ip_interface(text)


@lru_cache(maxsize=_CACHE)
def ip_address(text: str) -> IPAddress:
    """:func:`ipaddress.ip_address`, cached."""
    return ipaddress.ip_address(text)


@lru_cache(maxsize=_CACHE)
def ip_network(text: str, strict: bool = True) -> IPNetwork:
    """:func:`ipaddress.ip_network`, cached."""
    return ipaddress.ip_network(text, strict=strict)
