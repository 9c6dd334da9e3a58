"""The syntax of single values in a topology file (pure): interface names, addresses, MACs, rates,
delays; each as a pydantic type that says what is wrong and how to write it.

:mod:`nsnet.topology.schema` builds the file's models of these types.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from nsnet.names import IFNAME_MAX as IFNAME_MAX  # re-exported: the schema's callers import them from here
from nsnet.names import IFNAME_RE as IFNAME_RE
from nsnet.names import SYSCTL_RE as SYSCTL_RE
from nsnet.topology import ipcache

MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}\Z")
PUBLISH_RE = re.compile(
    r"^(?:(?P<ip>[0-9.]+|\[[0-9A-Fa-f:.]+\]):)?(?P<host>\d{1,5}(?:-\d{1,5})?):"
    r"(?P<node>[A-Za-z0-9][A-Za-z0-9_.-]*):(?P<port>\d{1,5}(?:-\d{1,5})?)(?:/(?P<proto>tcp|udp))?\Z"
)
RATE_RE = re.compile(r"^[1-9][0-9]{0,9}(bit|kbit|mbit|gbit)\Z")
DELAY_RE = re.compile(r"^[1-9][0-9]{0,6}(us|ms|s)\Z")
SYSCTL_VALUE_RE = re.compile(r"^[A-Za-z0-9_.: -]{0,64}\Z")


def check_ifname(value: str) -> str:
    if len(value.encode()) > IFNAME_MAX:
        raise ValueError(
            f"interface name {value!r} is {len(value.encode())} bytes; "
            f"Linux allows at most {IFNAME_MAX}: use a shorter name"
        )
    if not IFNAME_RE.match(value) or value in (".", ".."):
        raise ValueError(f"interface name {value!r} may only use letters, digits and _ . : -")
    return value


def check_cidr(value: str) -> str:
    try:
        iface = ipcache.ip_interface(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an address in CIDR form: write it like 11.11.11.2/24 or fd00::2/64"
        ) from None
    if "/" not in value:
        raise ValueError(f"{value!r} has no prefix length: write it like {value}/{24 if iface.version == 4 else 64}")
    ip = iface.ip
    if (
        ip.is_multicast
        or ip.is_unspecified
        or ip.is_loopback
        or ((iface.version == 4 and int(ip) >> 24 in (0, 127)) or str(ip) == "255.255.255.255")
    ):
        raise ValueError(f"{value!r} is a multicast, loopback or unspecified address: use a unicast address")
    net = iface.network
    if iface.version == 4 and net.prefixlen < 31 and ip in (net.network_address, net.broadcast_address):
        which = "network" if ip == net.network_address else "broadcast"
        raise ValueError(f"{value!r} is the {which} address of {net}: pick a host address inside it")
    return value


def check_mac(value: str) -> str:
    if not MAC_RE.match(value):
        raise ValueError(f"{value!r} is not a MAC address: write it like 02:00:00:00:00:01")
    if int(value[:2], 16) & 1:
        raise ValueError(
            f"{value!r} is a multicast MAC (lowest bit of the first octet set): "
            "use a unicast one such as 02:00:00:00:00:01"
        )
    return value.lower()


def check_network(value: str) -> str:
    try:
        ipcache.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a network: write it like 10.0.0.0/8 ({exc})") from None
    return value


def check_address_or_network(value: str) -> str:
    try:
        ipcache.ip_network(value, strict=True)
    except ValueError:
        raise ValueError(f"{value!r} is not an address or network: write it like 11.11.11.0/24 or 11.11.11.3") from None
    return value


def scalar_text(value: Any) -> Any:
    """Numbers (and YAML booleans, as 1/0) to text; anything else is left for the str check."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    return value


Scalar = Annotated[str, BeforeValidator(scalar_text, json_schema_input_type=int | bool | str)]
"""A number or a word, kept as text (ports, sysctl values)."""


def check_rate(value: str) -> str:
    if not RATE_RE.match(value):
        raise ValueError(f"{value!r} is not a rate: write it like 10mbit, 500kbit or 1gbit")
    return value


def check_delay(value: str) -> str:
    if not DELAY_RE.match(value):
        raise ValueError(f"{value!r} is not a delay: write it like 20ms or 500us")
    return value


Rate = Annotated[str, AfterValidator(check_rate)]
Delay = Annotated[str, AfterValidator(check_delay)]
Cidr = Annotated[str, AfterValidator(check_cidr)]
Mac = Annotated[str, AfterValidator(check_mac)]
AddressOrNetwork = Annotated[str, AfterValidator(check_address_or_network)]


def check_ipv4(value: str) -> str:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address: write it like 192.168.100.2") from None
    return value


def check_ipv4_network(value: str) -> str:
    try:
        ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IPv4 network: write it like 192.168.100.0/24 ({exc})") from None
    return value


IPv4 = Annotated[str, AfterValidator(check_ipv4)]


DOMAIN_RE = re.compile(r"^(?=.{1,253}\Z)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?)+\Z")
RESOLV_OPTION_RE = re.compile(r"^[a-z][a-z0-9-]*(:[0-9]{1,3})?\Z")


def check_ip(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address: write it like 192.0.2.53 or 2001:db8::53") from None
    return value


def check_domain(value: str) -> str:
    if not DOMAIN_RE.match(value):
        raise ValueError(f"{value!r} is not a domain name: write it like lab.example")
    return value


def check_resolv_option(value: str) -> str:
    if not RESOLV_OPTION_RE.match(value):
        raise ValueError(f"{value!r} is not a resolver option: write it like ndots:2 or edns0")
    return value


IP = Annotated[str, AfterValidator(check_ip)]
Domain = Annotated[str, AfterValidator(check_domain)]
ResolvOption = Annotated[str, AfterValidator(check_resolv_option)]


def port_text(value: Any) -> Any:
    """A port given as a number reads as its text (``8080`` and ``"8080"`` alike)."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def check_ports(value: str) -> str:
    """A port (``80``) or a range of ports (``8000-8010``), each 1 to 65535."""
    first, _, last = value.partition("-")
    ok = first.isdigit() and (not last or last.isdigit())
    if not ok or not 0 < int(first) <= int(last or first) < 65536:
        raise ValueError(f"{value!r} is not a port or a range of ports: write it like 80 or 8000-8010")
    return value


def port_range(value: str) -> tuple[int, int]:
    """The first and last port of ``80`` or ``8000-8010``."""
    first, _, last = value.partition("-")
    return int(first), int(last or first)


Ports = Annotated[str, BeforeValidator(port_text, json_schema_input_type=int | str), AfterValidator(check_ports)]
