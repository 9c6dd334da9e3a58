"""What ``inspect`` reports, as frozen dataclasses; ``asdict`` of them is the ``--json`` schema."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class PeerView:
    """The other end of a veth: its node, namespace, name and index."""

    node: str | None
    netns: str | None
    name: str | None
    index: int | None


@dataclass(frozen=True)
class BridgePortView:
    """A bridge port's settings, as ``bridge -d link`` shows them."""

    state: str
    """``disabled``, ``listening``, ``learning``, ``forwarding`` or ``blocking``: only ``forwarding`` passes data."""
    learning: bool
    flood: bool
    """Unknown unicast is flooded to this port."""
    mcast_flood: bool
    bcast_flood: bool
    hairpin: bool
    """A frame may go back out of the port it came in by."""
    isolated: bool
    """An isolated port talks to non-isolated ports only."""
    neigh_suppress: bool
    proxy_arp: bool


@dataclass(frozen=True)
class LinkView:
    name: str
    index: int
    kind: str
    state: str
    """``up`` or ``down`` (administrative), as ``ip link`` shows UP in the flags."""
    operstate: str
    mtu: int
    mac: str | None
    vendor: str | None
    """The maker registered for the MAC's OUI, where the IEEE registry knows it."""
    master: str | None
    peer: PeerView | None
    alias: str | None
    owned: bool
    """Created by nsnet for this lab (alias ``nsnet:<lab>``)."""
    port: BridgePortView | None = None
    """Its settings as a bridge port (``None``: not a port, or not read)."""
    parent: PeerView | None = None
    """macvlan, ipvlan: the device it sits on."""
    mode: str | None = None
    """macvlan, ipvlan: its mode (``bridge``, ``l2``...)."""


@dataclass(frozen=True)
class AddressView:
    dev: str | None
    family: int
    address: str | None
    prefixlen: int
    scope: str


@dataclass(frozen=True)
class RouteView:
    family: int
    table: str
    type: str
    dst: str
    gateway: str | None
    dev: str | None
    proto: str
    scope: str
    src: str | None
    metric: int | None


@dataclass(frozen=True)
class PolicyRuleView:
    """A policy routing rule, as ``ip rule`` lists it."""

    family: int
    priority: int
    action: str
    """``lookup``, ``goto``, ``nop``, ``blackhole``, ``unreachable`` or ``prohibit``."""
    table: str | None
    """The table ``lookup`` consults (``main``, ``local``, ``default`` or a number)."""
    src: str | None = None
    """``from`` as a prefix (``None``: all)."""
    dst: str | None = None
    iif: str | None = None
    oif: str | None = None
    fwmark: int | None = None
    fwmask: int | None = None
    invert: bool = False
    goto: int | None = None


@dataclass(frozen=True)
class NeighbourView:
    dev: str | None
    address: str | None
    mac: str | None
    state: list[str]
    router: bool


@dataclass(frozen=True)
class FdbView:
    mac: str | None
    port: str | None
    bridge: str | None
    vlan: int | None
    kind: str
    """``learned``, ``permanent`` or ``static``."""
    self: bool
    """An entry of the port device itself (``bridge fdb`` flag ``self``)."""
    used: float | None
    """Seconds since the entry was last used (learned entries)."""
    updated: float | None


@dataclass(frozen=True)
class VtepEntryView:
    """A VXLAN device's forwarding entry: frames to ``mac`` go to the VTEP ``vtep`` (the host ``host``)."""

    mac: str
    vtep: str
    host: str | None
    kind: str
    """``permanent`` or ``learned``."""


@dataclass(frozen=True)
class VxlanView:
    """A VXLAN device as ``ip -d link`` shows it, with its forwarding and neighbour entries."""

    name: str
    vni: int
    port: int
    local: str | None
    remote: str | None
    dev: str | None
    learning: bool
    proxy: bool
    l2miss: bool
    l3miss: bool
    master: str | None
    mtu: int | None
    entries: list[VtepEntryView]
    neighbours: list[NeighbourView]


@dataclass(frozen=True)
class BridgeView:
    name: str
    stp: bool
    ageing_time: int
    """Seconds a learned entry lives without traffic."""
    ports: list[str]


@dataclass(frozen=True)
class RuleView:
    rule: str
    packets: int
    bytes: int
    owned: bool


@dataclass(frozen=True)
class ChainView:
    name: str
    policy: str | None
    """Built-in chains only; ``None`` for user chains."""
    packets: int
    bytes: int
    owned: bool
    rules: list[RuleView] = field(default_factory=list)


@dataclass(frozen=True)
class TableView:
    family: int
    table: str
    chains: list[ChainView]


@dataclass(frozen=True)
class NftRuleView:
    """One nftables rule: its handle, its text as ``nft list ruleset`` prints it, its JSON expressions."""

    handle: int
    text: str
    expr: list[dict[str, Any]]
    comment: str | None = None


@dataclass(frozen=True)
class NftChainView:
    """An nftables chain; a base chain has a ``type``, ``hook``, ``prio`` and ``policy``."""

    name: str
    handle: int
    type: str | None
    hook: str | None
    prio: int | None
    policy: str | None
    rules: list[NftRuleView] = field(default_factory=list)


@dataclass(frozen=True)
class NftSetView:
    """A named set or map: its key type, the data type of a map (``verdict`` for a verdict map), elements as JSON."""

    name: str
    type: Any
    map: Any
    flags: list[str]
    elem: list[Any]


@dataclass(frozen=True)
class NftTableView:
    """An nftables table (``ip``, ``ip6``, ``inet``, ``bridge``, ``arp`` or ``netdev`` family)."""

    family: str
    name: str
    handle: int
    chains: list[NftChainView]
    sets: list[NftSetView]


@dataclass(frozen=True)
class ConntrackView:
    protocol: int | None
    original: dict[str, str | int | None]
    reply: dict[str, str | int | None]
    state: str | None


@dataclass(frozen=True)
class NamespaceView:
    node: str
    netns: str
    links: list[LinkView] | None = None
    addresses: list[AddressView] | None = None
    routes: list[RouteView] | None = None
    neighbours: list[NeighbourView] | None = None
    fdb: list[FdbView] | None = None
    bridges: list[BridgeView] | None = None
    firewall: list[TableView] | None = None
    sysctls: dict[str, str] | None = None
    conntrack: list[ConntrackView] | None = None
    vxlans: list[VxlanView] | None = None
    nftables: list[NftTableView] | None = None
    """The whole ruleset as nftables holds it (iptables-nft tables included); None: not read."""
    rules: list[PolicyRuleView] | None = None
    """Policy routing rules (``None``: not read; the kernel's three default rules apply)."""


@dataclass(frozen=True)
class LabView:
    lab: str
    namespaces: list[NamespaceView]


def made_by_iptables(ipt: TableView, table: NftTableView) -> bool:
    """Whether an nftables table is the iptables-nft one ``iptables-save`` printed: the same chains and rules."""
    if table.family != ("ip" if ipt.family == 4 else "ip6") or table.name != ipt.table:
        return False
    chains = {c.name: len(c.rules) for c in table.chains}
    listed = {c.name: len(c.rules) for c in ipt.chains}  # iptables-save lists built-in chains nft has not made
    return all(listed.get(name) == count for name, count in chains.items()) and all(
        chains.get(name, 0) == count for name, count in listed.items()
    )


def native_tables(iptables: list[TableView], tables: list[NftTableView]) -> list[NftTableView]:
    """The tables of ``tables`` that iptables did not make: what ``iptables-save`` does not show."""
    return [t for t in tables if not any(made_by_iptables(ipt, t) for ipt in iptables)]


def from_dict(cls: type[T], data: Any) -> T:
    """Rebuild a view dataclass from ``asdict`` output (e.g. ``nsnet inspect --json``)."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            values[f.name] = _convert(hints[f.name], data[f.name])
    return cls(**values)


def _convert(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        return _convert(args[0], value) if len(args) == 1 else value
    if origin is list:
        return [_convert(args[0], v) for v in value]
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return from_dict(tp, value)
    return value
