"""The CNI specification's versions, error codes and JSON shapes (results, errors, VERSION).

Results are plain JSON objects (dicts) so that fields nsnet does not know,
from the IPAM plugin or from a previous plugin of a chain, pass through
unchanged. :func:`shape_result` writes a result in the shape of the version
the configuration asks for.
"""

from __future__ import annotations

from nsnet.cni import jsonc as json

TYPE_CHECKING = False  # typing is not imported at run time: the plugin starts once per container
if TYPE_CHECKING:
    from typing import Any
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST = "1.1.0"

# Well-known error codes (spec 1.1.0, "Error"); 100 and above are nsnet's own.
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODING_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50
LIMITED_CONNECTIVITY = 51
CHECK_FAILED = 100
"""nsnet's own: CHECK found the container's network different from what ADD made."""
INTERNAL = 999
"""Anything else (the kernel or a tool refused): the code libcni gives a plugin's plain errors."""


class CniError(Exception):
    """An error the plugin reports on stdout in the specification's shape, then exits non-zero."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, version: str) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


def version_key(version: str) -> tuple[int, ...]:
    """``"1.0.0"`` -> ``(1, 0, 0)``; raises :class:`CniError` (decoding) for anything else."""
    try:
        parts = tuple(int(p) for p in version.split("."))
    except (ValueError, AttributeError):
        raise CniError(DECODING_FAILURE, f"invalid cniVersion {version!r}") from None
    if len(parts) != 3 or any(p < 0 for p in parts):
        raise CniError(DECODING_FAILURE, f"invalid cniVersion {version!r}")
    return parts


def at_least(version: str, minimum: str) -> bool:
    return version_key(version) >= version_key(minimum)


def check_supported(version: str) -> None:
    version_key(version)
    if version not in SUPPORTED_VERSIONS:
        raise CniError(
            INCOMPATIBLE_VERSION,
            "incompatible CNI versions",
            f"config is {version!r}, plugin supports {list(SUPPORTED_VERSIONS)}",
        )


def version_info(requested: str | None) -> dict[str, Any]:
    """The answer to VERSION: the version used for the answer and every version supported."""
    used = requested if requested in SUPPORTED_VERSIONS else LATEST
    return {"cniVersion": used, "supportedVersions": list(SUPPORTED_VERSIONS)}


def best_common(mine: str, theirs: list[str]) -> str | None:
    """The highest version of ``theirs`` not above ``mine`` that this plugin also reads."""
    usable = [v for v in theirs if v in SUPPORTED_VERSIONS and version_key(v) <= version_key(mine)]
    return max(usable, key=version_key) if usable else None


# -- results -----------------------------------------------------------------

ROUTE_FIELDS_1_1 = ("mtu", "advmss", "priority", "table", "scope")
INTERFACE_FIELDS_1_1 = ("mtu", "socketPath", "pciID")


def normalise_result(data: Any, where: str) -> dict[str, Any]:
    """A result of any supported version (an IPAM plugin's, a prevResult) as 1.x lists of dicts."""
    if not isinstance(data, dict):
        raise CniError(DECODING_FAILURE, f"{where} is not a JSON object")
    out: dict[str, Any] = {k: v for k, v in data.items() if k != "cniVersion"}
    for key in ("interfaces", "ips", "routes"):
        value = out.get(key, [])
        if value is None:
            value = []
        if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
            raise CniError(DECODING_FAILURE, f"{where}: {key!r} must be a list of objects")
        out[key] = [dict(x) for x in value]
    for ip in out["ips"]:
        ip.pop("version", None)
        if not isinstance(ip.get("address"), str):
            raise CniError(DECODING_FAILURE, f"{where}: every entry of 'ips' needs an 'address'")
    for route in out["routes"]:
        if not isinstance(route.get("dst"), str):
            raise CniError(DECODING_FAILURE, f"{where}: every entry of 'routes' needs a 'dst'")
    if "dns" in out and not isinstance(out["dns"], dict):
        raise CniError(DECODING_FAILURE, f"{where}: 'dns' must be an object")
    return out


def shape_result(result: dict[str, Any], version: str) -> dict[str, Any]:
    """``result`` (as :func:`normalise_result` gives) in the JSON shape of spec ``version``."""
    out: dict[str, Any] = {"cniVersion": version}
    old = not at_least(version, "1.0.0")
    new = at_least(version, "1.1.0")
    interfaces = []
    for iface in result.get("interfaces", []):
        iface = dict(iface)
        if not new:
            for key in INTERFACE_FIELDS_1_1:
                iface.pop(key, None)
        interfaces.append(iface)
    if interfaces:
        out["interfaces"] = interfaces
    ips = []
    for ip in result.get("ips", []):
        ip = dict(ip)
        if old:
            ip = {"version": "6" if ":" in ip["address"] else "4", **ip}
        ips.append(ip)
    if ips:
        out["ips"] = ips
    routes = []
    for route in result.get("routes", []):
        route = dict(route)
        if not new:
            for key in ROUTE_FIELDS_1_1:
                route.pop(key, None)
        routes.append(route)
    if routes:
        out["routes"] = routes
    out["dns"] = dict(result.get("dns") or {})
    for key, value in result.items():  # fields this plugin does not know, passed through
        if key not in out and key not in ("interfaces", "ips", "routes", "dns"):
            out[key] = value
    return out


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data) + "\n"
