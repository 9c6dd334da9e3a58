"""The network configuration on stdin, read the way the reference ``bridge`` plugin reads it.

Fields this plugin does not know are ignored here and passed through
unchanged (the IPAM plugin gets the configuration exactly as it came). The
reference plugin's fields that nsnet does not implement (VLANs, MAC spoof
checking ...) are refused with error 2 when they ask for something, rather
than silently ignored.
"""

from __future__ import annotations

import ipaddress

from nsnet.cni import jsonc as json
from nsnet.cni import spec
from nsnet.cni.record import record
from nsnet.cni.spec import CniError

TYPE_CHECKING = False  # typing is not imported at run time: the plugin starts once per container
if TYPE_CHECKING:
    from typing import Any


class _Name:
    r"""``re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")`` without :mod:`re`, whose import is a cost of every call
    (and without ``$``'s leniency for a trailing newline)."""

    def match(self, text: str) -> bool:
        return (
            bool(text)
            and text[0].isascii()
            and text[0].isalnum()
            and all(c.isascii() and (c.isalnum() or c in "_.-") for c in text)
        )


NAME_RE = _Name()
"""Network names and container ids (spec: alphanumeric, then alphanumerics, ``_``, ``.``, ``-``)."""
IFNAME_MAX = 15
DEFAULT_BRIDGE = "cni0"
PROTOCOLS = ("tcp", "udp", "sctp")

UNSUPPORTED: dict[str, Any] = {
    "vlan": 0,
    "vlanTrunk": None,
    "macspoofchk": False,
    "disableContainerInterface": False,
}
"""The reference bridge plugin's fields nsnet does not implement, with the value that asks for nothing."""


@record
class PortMapping:
    """A published port (the ``portMappings`` capability): the node's ``host_port`` to the container's."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str | None = None


@record
class Bandwidth:
    """The ``bandwidth`` capability: rates in bits per second, bursts in bits (0: no limit)."""

    ingress_rate: int = 0
    ingress_burst: int = 0
    egress_rate: int = 0
    egress_burst: int = 0


@record
class NetConf:
    """One plugin's network configuration."""

    raw: dict[str, Any]
    """The configuration as it came on stdin (passed to the IPAM plugin unchanged)."""
    stdin: bytes
    version: str
    name: str
    type: str
    bridge: str = DEFAULT_BRIDGE
    is_gateway: bool = False
    is_default_gateway: bool = False
    ip_masq: bool = False
    mtu: int | None = None
    hairpin: bool = False
    promisc: bool = False
    forward: bool = True
    """nsnet's own: accept the container's traffic in FORWARD (same bridge, out, replies, published ports)."""
    ipam: dict[str, Any] | None = None
    dns: dict[str, Any] | None = None
    port_mappings: list[PortMapping] = []  # copied for each instance by @record
    bandwidth: Bandwidth | None = None
    prev_result: dict[str, Any] | None = None
    valid_attachments: set[tuple[str, str]] | None = None

    @property
    def ipam_type(self) -> str | None:
        return self.ipam.get("type") if self.ipam else None


def parse_json(data: bytes, what: str = "the network configuration") -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CniError(spec.DECODING_FAILURE, f"cannot decode {what}", str(exc)) from None
    except RecursionError:
        raise CniError(spec.DECODING_FAILURE, f"cannot decode {what}", "it nests too deep") from None


def _invalid(message: str) -> CniError:
    return CniError(spec.INVALID_CONFIG, message)


def _bool(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _invalid(f"{key!r} must be true or false, not {json.dumps(value)}")
    return value


def _int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(f"{what} must be an integer from {low} to {high}, not {json.dumps(value)}")
    return value


def check_ifname(name: Any, what: str, code: int = spec.INVALID_CONFIG) -> str:
    """A Linux interface name as the specification allows it (``CNI_IFNAME``, ``bridge``), and as
    the kernel takes it as it is: ``%`` would make it a pattern (``e%d`` becomes ``e0``)."""
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or len(name.encode()) > IFNAME_MAX
        or any(c in name for c in "/:%")
        or any(c.isspace() or not c.isprintable() for c in name)
    ):
        raise CniError(
            code,
            f"{what} {name!r} is not a valid interface name",
            f"at most {IFNAME_MAX} bytes, no '/', ':', '%' or whitespace, not '.' or '..'",
        )
    return name


def _port_mappings(value: Any) -> list[PortMapping]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid("runtimeConfig.portMappings must be a list")
    out = []
    for i, item in enumerate(value):
        where = f"runtimeConfig.portMappings[{i}]"
        if not isinstance(item, dict):
            raise _invalid(f"{where} must be an object")
        protocol = item.get("protocol") or "tcp"
        if not isinstance(protocol, str) or protocol.lower() not in PROTOCOLS:
            raise _invalid(f"{where}.protocol must be one of {', '.join(PROTOCOLS)}, not {json.dumps(protocol)}")
        host_ip = item.get("hostIP") or None
        if host_ip is not None:
            try:
                ipaddress.ip_address(host_ip)
            except ValueError:
                raise _invalid(f"{where}.hostIP {json.dumps(host_ip)} is not an IP address") from None
        out.append(
            PortMapping(
                host_port=_int(item.get("hostPort"), f"{where}.hostPort", 1, 65535),
                container_port=_int(item.get("containerPort"), f"{where}.containerPort", 1, 65535),
                protocol=protocol.lower(),
                host_ip=host_ip,
            )
        )
    return out


def _bandwidth(value: Any) -> Bandwidth | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid("runtimeConfig.bandwidth must be an object")
    got = {}
    for key in ("ingressRate", "ingressBurst", "egressRate", "egressBurst"):
        got[key] = _int(value.get(key, 0) or 0, f"runtimeConfig.bandwidth.{key}", 0, 2**63 - 1)
    for way in ("ingress", "egress"):
        if got[f"{way}Rate"] and not got[f"{way}Burst"]:
            raise _invalid(f"runtimeConfig.bandwidth.{way}Burst must be set with {way}Rate")
    if not got["ingressRate"] and not got["egressRate"]:
        return None
    return Bandwidth(got["ingressRate"], got["ingressBurst"], got["egressRate"], got["egressBurst"])


def _valid_attachments(data: dict[str, Any]) -> set[tuple[str, str]] | None:
    # libcni sends both names (the second is a spelling of an earlier draft).
    value = data.get("cni.dev/valid-attachments", data.get("cni.dev/attachments"))
    if value is None:
        return None
    if not isinstance(value, list):
        raise _invalid("cni.dev/valid-attachments must be a list")
    out = set()
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("containerID"), str):
            raise _invalid("every entry of cni.dev/valid-attachments needs a containerID")
        ifname = item.get("ifname", "")
        out.add((item["containerID"], ifname if isinstance(ifname, str) else ""))
    return out


def _check_unsupported(data: dict[str, Any]) -> None:
    """Refuse a field nsnet-cni does not implement (unless it has its harmless value)."""
    for key, harmless in UNSUPPORTED.items():
        value = data.get(key)
        if value not in (None, harmless) and not (harmless is None and value == []):
            raise CniError(
                spec.UNSUPPORTED_FIELD,
                f"unsupported field in network configuration: {key}={json.dumps(value)}",
                "nsnet-cni does not implement it; use the reference bridge plugin for this network",
            )


def _ipam_and_dns(data: dict[str, Any]) -> tuple[Any, Any]:
    """The ``ipam`` and ``dns`` objects, checked."""
    ipam = data.get("ipam")
    if ipam is not None and not isinstance(ipam, dict):
        raise _invalid("'ipam' must be an object")
    if ipam is not None and ipam.get("type") is not None and not isinstance(ipam.get("type"), str):
        raise _invalid("'ipam.type' must be a string")
    dns = data.get("dns")
    if dns is not None and not isinstance(dns, dict):
        raise _invalid("'dns' must be an object")
    return ipam, dns


def parse(stdin: bytes) -> NetConf:
    """Read and check the network configuration; raise :class:`CniError` with the spec's code."""
    data = parse_json(stdin)
    if not isinstance(data, dict):
        raise CniError(spec.DECODING_FAILURE, "the network configuration must be a JSON object")
    version = data.get("cniVersion")
    if not isinstance(version, str):
        raise CniError(spec.DECODING_FAILURE, "the network configuration has no cniVersion")
    spec.check_supported(version)
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise _invalid(
            f"network name {json.dumps(name)} is invalid: use letters, digits, _ . -, starting with a letter or digit"
        )
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise _invalid("the network configuration has no type")
    _check_unsupported(data)
    ipam, dns = _ipam_and_dns(data)
    mtu = data.get("mtu")
    runtime = data.get("runtimeConfig") or {}
    if not isinstance(runtime, dict):
        raise _invalid("'runtimeConfig' must be an object")
    prev = data.get("prevResult")
    is_default_gateway = _bool(data, "isDefaultGateway", False)
    return NetConf(
        raw=data,
        stdin=stdin,
        version=version,
        name=name,
        type=kind,
        bridge=check_ifname(data.get("bridge") or DEFAULT_BRIDGE, "bridge"),
        is_gateway=_bool(data, "isGateway", False) or is_default_gateway,
        is_default_gateway=is_default_gateway,
        ip_masq=_bool(data, "ipMasq", False),
        mtu=_int(mtu, "'mtu'", 68, 65535) if mtu else None,
        hairpin=_bool(data, "hairpinMode", False),
        promisc=_bool(data, "promiscMode", False),
        forward=_bool(data, "forward", True),
        ipam=ipam if ipam and ipam.get("type") else None,
        dns=dns if dns else None,
        port_mappings=_port_mappings(runtime.get("portMappings")),
        bandwidth=_bandwidth(runtime.get("bandwidth")),
        prev_result=spec.normalise_result(prev, "prevResult") if prev is not None else None,
        valid_attachments=_valid_attachments(data),
    )
