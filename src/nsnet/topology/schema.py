"""The topology file format, as pydantic models.

These models check the *shape* of a topology file (keys, types, value
syntax); cross-references and kernel limits are checked in :mod:`nsnet.topology.loader`.
The JSON Schema that editors use is generated from them
(``nsnet schema``, ``docs/topology.schema.json``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from nsnet.names import NAME_RE as NAME_RE  # re-exported: the loader and older callers import it from here
from nsnet.topology import ipcache, values
from nsnet.topology.inventory import MachineInventorySpec
from nsnet.topology.values import (
    IP,
    PUBLISH_RE,
    AddressOrNetwork,
    Cidr,
    Delay,
    Domain,
    IPv4,
    Mac,
    Ports,
    Rate,
    ResolvOption,
    Scalar,
)

Policy = Literal["ACCEPT", "DROP"]
Table = Literal["filter", "nat", "mangle", "raw"]
Action = Literal["ACCEPT", "DROP", "REJECT", "RETURN", "LOG", "MASQUERADE"]
Protocol = Literal["all", "tcp", "udp", "icmp", "icmpv6", "sctp"]
CtState = Literal["NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class InterfaceSpec(_Strict):
    """Settings of one interface in a namespace: a veth end, or a link of its own ``kind``."""

    addresses: list[Cidr] = Field(default_factory=list, description="Addresses in CIDR form.")
    mtu: int | None = Field(default=None, ge=68, le=65535, description="MTU in bytes.")
    mac: Mac | None = Field(default=None, description="MAC address, e.g. 02:00:00:00:00:01.")
    up: bool = Field(default=True, description="Bring the interface up.")
    master: str | None = Field(default=None, description="Bridge in the same namespace to attach to.")
    gateway: bool = Field(
        default=False,
        description="Default routes (IPv4, IPv6) via the addresses of the bridge this link's other end is a port of.",
    )
    link_local: bool = Field(
        default=False,
        description="An IPv6 link-local address (fe80::, the kernel's), for router advertisements and SLAAC.",
    )
    rate: Rate | None = Field(default=None, description="Egress rate limit (tbf), e.g. 10mbit, 500kbit.")
    delay: Delay | None = Field(default=None, description="Egress delay (netem), e.g. 20ms.")
    loss: float | None = Field(default=None, ge=0, le=100, description="Egress loss in percent (netem).")
    kind: str | None = Field(
        default=None,
        description="veth (default: an end of a link under links:), or a link of its own: macvlan, ipvlan, dummy.",
    )
    parent: str | None = Field(
        default=None, description="macvlan, ipvlan: the host's bridge or interface the link sits on."
    )
    mode: str | None = Field(
        default=None, description="macvlan: bridge (default), private, vepa, passthru; ipvlan: l2 (default), l3, l3s."
    )


class BridgeSpec(_Strict):
    """A Linux bridge in a namespace."""

    addresses: list[Cidr] = Field(default_factory=list, description="Addresses in CIDR form.")
    mtu: int | None = Field(default=None, ge=68, le=65535)
    mac: Mac | None = None
    up: bool = True
    stp: bool = Field(default=False, description="Spanning tree protocol.")
    ageing: int | None = Field(
        default=None, ge=0, le=1_000_000, description="FDB ageing time in seconds (kernel default 300)."
    )
    masquerade: bool = Field(
        default=False,
        description="Outbound NAT for the bridge's subnets leaving through another interface (Docker's MASQUERADE).",
    )
    forward: bool = Field(
        default=False, description="Let traffic between this bridge's ports through a FORWARD policy DROP."
    )
    link_local: bool = Field(default=False, description="An IPv6 link-local address (fe80::, the kernel's).")


class RouteSpec(_Strict):
    """A static route: ``to`` is a network or ``default``."""

    to: str = Field(description="Destination network, or 'default'.")
    via: str | None = Field(default=None, description="Gateway address.")
    dev: str | None = Field(default=None, description="Output interface.")
    metric: int | None = Field(default=None, ge=0, le=2**32 - 1)

    @field_validator("to")
    @classmethod
    def check_to(cls, value: str) -> str:
        if value == "default":
            return value
        return values.check_network(value)

    @field_validator("via")
    @classmethod
    def check_via(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ipcache.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a gateway address: write it like 11.11.11.1") from None
        return value

    @field_validator("dev")
    @classmethod
    def check_dev(cls, value: str | None) -> str | None:
        return None if value is None else values.check_ifname(value)

    @model_validator(mode="after")
    def check_needs_target(self) -> RouteSpec:
        if self.via is None and self.dev is None:
            raise ValueError("a route needs 'via' (a gateway) or 'dev' (an interface), or both")
        return self


class RuleSpec(_Strict):
    """One firewall rule, in iptables terms."""

    family: Literal["ipv4", "ipv6"] | None = Field(
        default=None, description="iptables (ipv4) or ip6tables (ipv6); inferred from addresses."
    )
    table: Table = "filter"
    chain: str = Field(description="Built-in chain: INPUT, FORWARD, OUTPUT, PREROUTING or POSTROUTING.")
    source: AddressOrNetwork | None = Field(default=None, description="-s: address or network.")
    destination: AddressOrNetwork | None = Field(default=None, description="-d: address or network.")
    protocol: Protocol | None = Field(default=None, description="-p")
    sport: Scalar | None = Field(default=None, description="--sport: port or range A:B (tcp/udp/sctp).")
    dport: Scalar | None = Field(default=None, description="--dport: port or range A:B (tcp/udp/sctp).")
    in_: str | None = Field(default=None, alias="in", description="-i: input interface (+ as wildcard).")
    out: str | None = Field(default=None, description="-o: output interface (+ as wildcard).")
    state: list[CtState] | None = Field(default=None, description="-m conntrack --ctstate")
    action: Action = Field(description="-j: ACCEPT, DROP, REJECT, RETURN, LOG or MASQUERADE.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("sport", "dport")
    @classmethod
    def check_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = str(value)
        parts = text.split(":")
        if len(parts) > 2 or not all(p.isdigit() and 0 < int(p) < 65536 for p in parts):
            raise ValueError(f"{text!r} is not a port or range: write 80 or 1000:2000 (1-65535)")
        if len(parts) == 2 and int(parts[0]) > int(parts[1]):
            raise ValueError(f"port range {text!r} is backwards: write the smaller port first")
        return text

    @field_validator("in_", "out")
    @classmethod
    def check_iface(cls, value: str | None) -> str | None:
        if value is None:
            return None
        stem = value[:-1] if value.endswith("+") else value
        if not stem and value == "+":
            return value
        values.check_ifname(stem)
        return value


class FirewallSpec(_Strict):
    """Built-in chain policies (filter table; IPv4 and IPv6) and rules."""

    policies: dict[str, Policy] = Field(
        default_factory=dict, description="Filter-table policies (iptables), e.g. {FORWARD: DROP}."
    )
    policies6: dict[str, Policy] = Field(
        default_factory=dict, description="Filter-table policies of ip6tables, e.g. {FORWARD: DROP}."
    )
    rules: list[RuleSpec] = Field(default_factory=list)


class DnsSpec(_Strict):
    """The namespace's ``resolv.conf`` (under ``/etc/netns``): name servers, search domains, options."""

    servers: list[IP] = Field(default_factory=list, max_length=3, description="Name servers (the resolver reads 3).")
    search: list[Domain] = Field(default_factory=list, max_length=6, description="Search domains.")
    options: list[ResolvOption] = Field(default_factory=list, description="Resolver options, e.g. ndots:2.")

    @model_validator(mode="after")
    def _not_empty(self) -> DnsSpec:
        if not (self.servers or self.search or self.options):
            raise ValueError("dns: needs servers, search or options (remove it to write no resolv.conf)")
        return self


class NamespaceSpec(_Strict):
    """What lives in one network namespace: interfaces, bridges, routes, sysctls, firewall."""

    interfaces: dict[str, InterfaceSpec | None] = Field(default_factory=dict)
    bridges: dict[str, BridgeSpec | None] = Field(default_factory=dict)
    routes: list[RouteSpec] = Field(default_factory=list)
    sysctls: dict[str, Scalar] = Field(default_factory=dict)
    firewall: FirewallSpec = Field(default_factory=FirewallSpec)
    dns: DnsSpec | None = Field(default=None, description="A resolv.conf of its own (under /etc/netns).")


class NodeSpec(NamespaceSpec):
    """A node: a network namespace of its own."""


class PublishSpec(_Strict):
    """A published port: the host's ``host_port`` forwarded to ``node``'s ``port`` (``docker run -p``)."""

    host_ip: IP | None = Field(
        default=None, description="Only traffic to this host address (IPv4 or IPv6); default: every IPv4 address."
    )
    host_port: Ports = Field(description="A port, or a range such as 8000-8010.")
    node: str
    port: Ports = Field(description="A port, or a range as long as host_port's.")
    proto: Literal["tcp", "udp"] = "tcp"

    @model_validator(mode="after")
    def _same_length(self) -> PublishSpec:
        first, last = values.port_range(self.host_port)
        to_first, to_last = values.port_range(self.port)
        if last - first != to_last - to_first:
            raise ValueError(
                f"host ports {self.host_port} and node ports {self.port} are ranges of different lengths: "
                "publish ranges of equal length (8000-8010:RED:8000-8010)"
            )
        return self


class HostSpec(NamespaceSpec):
    """The lab's host: ``mode: sandbox`` (a private namespace, the default) or ``root``."""

    mode: Literal["sandbox", "root"] = "sandbox"
    publish: list[PublishSpec] = Field(
        default_factory=list,
        description="Published ports, as mappings or '[HOSTIP:]HOSTPORT[-END]:NODE:PORT[-END][/tcp|udp]'.",
    )
    allow: list[list[str]] = Field(
        default_factory=list, description="Pairs of bridges allowed to talk; others are isolated from each other."
    )
    docker: bool | Literal["iptables", "nftables"] = Field(
        default=False,
        description="Build the host as Docker leaves it: true or iptables (FORWARD policy DROP, DOCKER-USER jumped "
        "to first, in iptables and ip6tables), or nftables (Docker 29's tables ip/ip6 docker-bridges).",
    )

    @field_validator("publish", mode="before")
    @classmethod
    def _publish_shorthand(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        out = []
        for item in value:
            if isinstance(item, str):
                m = PUBLISH_RE.match(item.strip())
                if not m:
                    raise ValueError(
                        f"{item!r} is not a published port: write it like 8080:RED:80/tcp, "
                        "127.0.0.1:8080:RED:80, [fd00::1]:8080:RED:80 or 8000-8010:RED:8000-8010/udp"
                    )
                item = {
                    "host_ip": m["ip"].strip("[]") if m["ip"] else None,
                    "host_port": m["host"],
                    "node": m["node"],
                    "port": m["port"],
                    "proto": m["proto"] or "tcp",
                }
            out.append(item)
        return out


class VxlanSpec(_Strict):
    """A VXLAN device on a host of a multi-host lab, usually a port of a bridge."""

    vni: int = Field(ge=1, le=16_777_215, description="The VXLAN network identifier (1-16777215).")
    port: int = Field(default=4789, ge=1, le=65535, description="UDP port (IANA's 4789; Linux's own default is 8472).")
    master: str | None = Field(default=None, description="Bridge in the same host to attach to.")
    remote: IPv4 | None = Field(
        default=None,
        description="A single peer VTEP (point to point); without it, nsnet or the controller writes per-MAC entries.",
    )
    learning: bool = Field(default=False, description="Learn remote MACs from received packets.")
    mtu: int | None = Field(default=None, ge=68, le=65535, description="MTU; default: the underlay's minus 50.")


class MachineSpec(NamespaceSpec):
    """One host of a multi-host lab: a sandbox namespace here, a machine elsewhere."""

    address: Cidr | None = Field(
        default=None,
        description="Its underlay (VTEP) address on eth0; default: the underlay subnet's next address.",
    )
    vxlans: dict[str, VxlanSpec] = Field(default_factory=dict, description="VXLAN devices, by name.")


class UnderlaySpec(_Strict):
    """The network joining the hosts of a multi-host lab (a switch namespace, ``underlay``)."""

    subnet: Annotated[str, AfterValidator(values.check_ipv4_network)] = Field(
        default="192.168.100.0/24", description="Hosts get .1, .2, ... in the order listed unless they say."
    )
    mtu: int = Field(default=1500, ge=1280, le=65535, description="The underlay's MTU; the overlay gets 50 less.")
    address: Cidr | None = Field(
        default=None,
        description="The switch's own address, where services such as the registry listen; default: the last one.",
    )


class OverlaySpec(_Strict):
    """How VXLAN forwarding entries are kept: written by nsnet (static) or by its controller (dynamic)."""

    mode: Literal["static", "dynamic"] = Field(
        default="static",
        description="static: up writes every fdb and neighbour entry; dynamic: `nsnet overlay serve` answers misses.",
    )
    registry: str | None = Field(
        default=None,
        description="Dynamic mode: the etcd URL; default http://<underlay address>:2379.",
    )

    @field_validator("registry")
    @classmethod
    def check_registry(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+(:\d+)?/?\Z", value):
            raise ValueError(f"{value!r} is not an etcd URL: write it like http://192.168.100.254:2379")
        return value


class OutsideSpec(_Strict):
    """A stand-in for the outside world: a namespace joined to the host by an uplink veth."""

    address: Cidr = Field(default="203.0.113.2/24", description="The outside's address (a documentation range).")
    host_address: Cidr = Field(default="203.0.113.1/24", description="The host's uplink address.")
    address6: Cidr | None = Field(
        default=None,
        description="The outside's IPv6 address; default, when the lab has IPv6: 2001:db8::2/64 (documentation).",
    )
    host_address6: Cidr | None = Field(
        default=None, description="The host's IPv6 uplink address; default, when the lab has IPv6: 2001:db8::1/64."
    )
    uplink: str = Field(default="up0", description="The uplink's name in the host.")
    serve: int | None = Field(
        default=80, ge=1, le=65535, description="Port of a small HTTP server run in the outside (null: none)."
    )


class LinkSpec(_Strict):
    """A veth pair between two endpoints written ``NODE:IFACE`` (or ``host:IFACE``)."""

    endpoints: list[str] = Field(min_length=2, max_length=2)


class ExpectSpec(_Strict):
    """A reachability expectation checked by ``nsnet reach``."""

    from_: str = Field(alias="from", description="Source node.")
    to: str = Field(description="Destination node or address.")
    proto: str = Field(default="icmp", description="icmp, tcp:PORT or udp:PORT.")
    reach: bool = Field(default=True, description="Whether it must get through (true) or must not (false).")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("proto")
    @classmethod
    def check_proto(cls, value: str) -> str:
        name, _, port = value.partition(":")
        if (name == "icmp" and not port) or (name in ("tcp", "udp") and port.isdigit() and 0 < int(port) < 65536):
            return value
        raise ValueError(f"{value!r} is not a protocol: write icmp, tcp:PORT or udp:PORT")


class TopologySpec(_Strict):
    """A whole topology file."""

    name: str = Field(description="The lab's name.")
    host: HostSpec = Field(default_factory=HostSpec)
    hosts: dict[str, MachineSpec | None] = Field(
        default_factory=dict, description="Several hosts joined by an underlay (instead of host:)."
    )
    underlay: UnderlaySpec | None = Field(default=None, description="The network joining the hosts.")
    overlay: OverlaySpec | None = Field(default=None, description="How VXLAN entries are kept (static or dynamic).")
    machines: dict[str, MachineInventorySpec] = Field(
        default_factory=dict, description="The real machines carrying the hosts (see docs/machines.md)."
    )
    nodes: dict[str, NodeSpec | None] = Field(default_factory=dict)
    links: list[LinkSpec] = Field(default_factory=list)
    outside: OutsideSpec | None = Field(
        default=None, description="A namespace named 'outside' standing for the world beyond the host's uplink."
    )
    expect: list[ExpectSpec] = Field(
        default_factory=list, description="Pairs that must (or must not) reach each other: checked by nsnet reach."
    )

    @field_validator("host", mode="before")
    @classmethod
    def _host_shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"mode": value}
        return value

    @field_validator("links", mode="before")
    @classmethod
    def _link_shorthand(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"endpoints": v} if isinstance(v, list) else v for v in value]
        return value


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the topology file format."""
    schema = TopologySpec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "nsnet topology"
    # Accept the documented shorthands too.
    props = schema["properties"]
    props["host"] = {
        "anyOf": [{"enum": ["sandbox", "root"]}, {"$ref": "#/$defs/HostSpec"}],
        "description": "The lab's host: sandbox (default) or root, or a namespace spec.",
    }
    schema["$defs"]["HostSpec"]["properties"]["publish"]["items"] = {
        "anyOf": [
            {"$ref": "#/$defs/PublishSpec"},
            {"type": "string", "pattern": PUBLISH_RE.pattern.replace("\\Z", "$")},
        ]
    }
    props["links"]["items"] = {
        "anyOf": [
            {"$ref": "#/$defs/LinkSpec"},
            {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
        ]
    }
    return schema
