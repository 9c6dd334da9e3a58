"""Frozen model objects: a topology, and the state of a lab's namespaces.

A :class:`Topology` speaks in logical names (``RED``, ``host``). Binding it to
a lab name (:func:`bind`) gives a :class:`State`: the same objects keyed by
the kernel's namespace names. What the kernel holds is read into a
:class:`State` too (:mod:`nsnet.engine.observe`), so desired and live compare
directly (:mod:`nsnet.plan.diff`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from typing import Literal

from nsnet import statedir

HOST = "host"
"""The logical name of a lab's host namespace."""

ROOT_NS = ""
"""Key of the machine's root network namespace (never a valid netns name)."""

LinkKind = Literal["veth", "bridge", "vxlan", "macvlan", "ipvlan", "dummy"]
"""The kinds nsnet makes (one module each under :mod:`nsnet.kinds`)."""
HostMode = Literal["sandbox", "root"]


@dataclass(frozen=True, order=True)
class Endpoint:
    """One end of a link: a namespace and an interface name."""

    ns: str
    ifname: str

    def __str__(self) -> str:
        return f"{self.ns or 'root'}:{self.ifname}"


@dataclass(frozen=True)
class Vxlan:
    """A VXLAN device's settings (``ip link add NAME type vxlan id VNI ...``)."""

    vni: int
    port: int = 4789
    local: str | None = None
    remote: str | None = None
    dev: str | None = None
    """The underlay interface (by name, in the same namespace)."""
    learning: bool = False
    proxy: bool = False
    """Answer ARP and neighbour solicitations from the device's neighbour table."""
    l2miss: bool = False
    l3miss: bool = False

    def words(self) -> str:
        """The settings as ``ip link add ... type vxlan`` words."""
        out = [f"id {self.vni}", f"dstport {self.port}"]
        if self.local:
            out.append(f"local {self.local}")
        if self.remote:
            out.append(f"remote {self.remote}")
        if self.dev:
            out.append(f"dev {self.dev}")
        out.append("learning" if self.learning else "nolearning")
        out += [flag for flag in ("proxy", "l2miss", "l3miss") if getattr(self, flag)]
        return " ".join(out)


@dataclass(frozen=True)
class Link:
    """A network interface nsnet manages in one namespace."""

    name: str
    kind: LinkKind
    peer: Endpoint | None = None
    master: str | None = None
    mtu: int | None = None
    mac: str | None = None
    up: bool = True
    addresses: frozenset[str] = frozenset()
    stp: bool | None = None
    ageing: int | None = None
    alias: str | None = None
    """The interface alias; nsnet marks what it creates with ``nsnet:<lab>``."""
    masquerade: bool = False
    """Bridges: outbound NAT for their subnets (see :mod:`nsnet.topology.outside`)."""
    forward: bool = False
    """Bridges: same-bridge traffic accepted in FORWARD."""
    shaping: str | None = None
    """Egress shaping as ``tc qdisc`` words (``tbf rate 10mbit ...``, ``netem delay 20ms``), or None."""
    vxlan: Vxlan | None = None
    """VXLAN devices: their settings."""
    fdb: frozenset[tuple[str, str]] | None = None
    """VXLAN devices: forwarding entries (MAC, remote VTEP) nsnet writes; None: not nsnet's to manage."""
    neighbours: frozenset[tuple[str, str]] | None = None
    """VXLAN devices: neighbour entries (IP, MAC) nsnet writes; None: not nsnet's to manage."""
    parent: Endpoint | None = None
    """macvlan, ipvlan: the device it sits on (in the lab's host)."""
    mode: str | None = None
    """macvlan, ipvlan: its mode (``bridge``, ``l2``...)."""
    link_local: bool = False
    """An IPv6 link-local address (the kernel's, EUI-64): nsnet makes links without one unless asked."""


@dataclass(frozen=True, order=True)
class Route:
    """A static route. ``to`` is a network in CIDR form (``0.0.0.0/0`` for default)."""

    to: str
    via: str | None = None
    dev: str | None = None
    metric: int | None = None

    @property
    def family(self) -> int:
        return ipaddress.ip_network(self.to).version

    def __str__(self) -> str:
        text = "default" if ipaddress.ip_network(self.to).prefixlen == 0 else self.to
        if self.via:
            text += f" via {self.via}"
        if self.dev:
            text += f" dev {self.dev}"
        if self.metric is not None:
            text += f" metric {self.metric}"
        return text


BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
}
POLICY_CHAINS = BUILTIN_CHAINS["filter"]
IP6_POLICY = "ip6:"
"""The prefix of an IPv6 filter policy's key in :attr:`Firewall.policies` (``ip6:FORWARD``; IPv4's are bare)."""


def policy_key(family: int, chain: str) -> str:
    """The key of ``chain``'s filter policy of IP version ``family`` in :attr:`Firewall.policies`."""
    return chain if family == 4 else IP6_POLICY + chain


def policy_chain(key: str) -> tuple[int, str]:
    """(IP version, chain) of a key of :attr:`Firewall.policies`."""
    return (6, key[len(IP6_POLICY) :]) if key.startswith(IP6_POLICY) else (4, key)


PORT_PROTOCOLS = ("tcp", "udp", "sctp")
OWN_PREFIX = "NSNET-"


def own_chain(chain: str) -> str:
    """The nsnet chain that a built-in chain jumps to (``FORWARD`` -> ``NSNET-FORWARD``)."""
    return OWN_PREFIX + chain


@dataclass(frozen=True, order=True)
class Rule:
    """A firewall rule in iptables-save form: ``-A <own chain> <args>``."""

    family: int
    table: str
    chain: str
    args: str

    def __str__(self) -> str:
        tool = "iptables" if self.family == 4 else "ip6tables"
        return f"{tool} -t {self.table} {self.chain} {self.args}"


@dataclass(frozen=True)
class Firewall:
    """Filter-table policies and rules, in order."""

    policies: dict[str, str] = field(default_factory=dict)
    """By chain: ``FORWARD`` for iptables, ``ip6:FORWARD`` for ip6tables (see :func:`policy_key`)."""
    rules: tuple[Rule, ...] = ()
    chains: frozenset[tuple[int, str, str]] = frozenset()
    """Live only: nsnet chains present, as (family, table, built-in chain)."""
    jumps: frozenset[tuple[int, str, str]] = frozenset()
    """Live only: jump rules to nsnet chains present, as (family, table, built-in chain)."""

    @property
    def families(self) -> set[int]:
        return (
            {r.family for r in self.rules}
            | {f for f, _, _ in self.chains}
            | {policy_chain(key)[0] for key in self.policies}
        )


@dataclass(frozen=True)
class Namespace:
    """Everything nsnet manages in one network namespace."""

    name: str
    label: str
    role: Literal["node", "host"]
    links: dict[str, Link] = field(default_factory=dict)
    routes: frozenset[Route] = frozenset()
    sysctls: dict[str, str] = field(default_factory=dict)
    firewall: Firewall = field(default_factory=Firewall)
    mark: str | None = None
    """Live only: the ownership mark (alias of ``lo``), ``nsnet:<lab>:<label>:<state>``."""
    docker: bool = False
    """Host only: set up like a Docker host when created (see :data:`nsnet.plan.actions.DOCKER_RULES`)."""
    docker_backend: str = "iptables"
    """Docker's firewall backend: ``iptables``, or ``nftables`` (:data:`nsnet.plan.actions.DOCKER_NFT`)."""
    server: int | None = None
    """A port on which nsnet runs a small HTTP server in this namespace (the ``outside``)."""
    stale: bool = False
    """Live only: not a namespace but the empty file a creation cut short left under /run/netns."""
    files: dict[str, str] = field(default_factory=dict)
    """Files of ``/etc/netns/<namespace>/`` (``hosts``, ``resolv.conf``) by name, their whole text: what
    ``ip netns exec`` shows over ``/etc``. Bound ones start with :func:`file_mark`; live: those there."""


def link_mark(lab: str) -> str:
    """The alias nsnet gives every link it creates for ``lab``."""
    return f"nsnet:{lab}"


def namespace_mark(lab: str, label: str) -> str:
    """The alias nsnet gives ``lo`` in every namespace it creates for ``lab``:
    ``nsnet:<lab>:<label>:<state>``, ``state`` naming the state directory of its journal."""
    return f"nsnet:{lab}:{label}:{statedir.identity()}"


NETNS_FILES = ("hosts", "resolv.conf")
"""The files nsnet writes under ``/etc/netns/<namespace>/``."""


def file_mark(lab: str) -> str:
    """The first line of every file nsnet writes for ``lab`` under ``/etc/netns``: what proves it is the lab's."""
    return f"# nsnet:{lab}: written by nsnet up, removed by nsnet down\n"


@dataclass(frozen=True)
class NamespaceMark:
    """A namespace mark read back: its lab, node and state directory (None: an older mark without one)."""

    lab: str
    node: str
    state: str | None

    @property
    def ours(self) -> bool:
        """Made by an nsnet using this process's state directory."""
        return self.state == statedir.identity()


def parse_namespace_mark(mark: str | None) -> NamespaceMark | None:
    """The parts of a namespace mark, or None if ``mark`` is not one."""
    parts = (mark or "").split(":")
    if parts[0] != "nsnet" or len(parts) not in (3, 4) or not all(parts[1:]):
        return None
    return NamespaceMark(parts[1], parts[2], parts[3] if len(parts) == 4 else None)


@dataclass(frozen=True)
class Expectation:
    """``src`` must (``reach``) or must not reach ``dst`` (a node or an address) over ``proto``."""

    src: str
    dst: str
    proto: str = "icmp"
    reach: bool = True


@dataclass(frozen=True)
class Overlay:
    """A lab spanning several hosts: the underlay joining them and how VXLAN entries are kept."""

    mode: Literal["static", "dynamic"]
    subnet: str
    mtu: int
    vteps: dict[str, str]
    """Host -> its underlay (VTEP) address."""
    address: str | None = None
    """The underlay switch's own address (CIDR), where services such as the registry listen."""
    registry: str | None = None
    """Dynamic mode: the etcd URL the controllers use."""


@dataclass(frozen=True)
class Machine:
    """A real machine that carries one host of a multi-host lab (``machines:``)."""

    name: str
    """The host of ``hosts:`` it carries."""
    interface: str
    """Its underlay interface (a real one, never nsnet's)."""
    address: str
    """Its VTEP address on that interface (IPv4, no prefix)."""
    ssh: str
    """Where the driver reaches it: ``[user@]host[:port]``."""
    nsnet: str = "nsnet"
    """The nsnet command there."""


UNDERLAY = "underlay"
"""The logical name of the namespace that joins the hosts of a multi-host lab (a switch)."""


@dataclass(frozen=True)
class Topology:
    """A validated topology in logical names (see :func:`nsnet.topology.loader.load`)."""

    name: str
    host_mode: HostMode
    namespaces: dict[str, Namespace]
    source: str | None = None
    expectations: tuple[Expectation, ...] = ()
    overlay: Overlay | None = None
    machines: dict[str, Machine] = field(default_factory=dict)
    """The real machines that carry the hosts (``machines:``); empty: every host is a namespace here."""
    machine: str | None = None
    """A machine's share of a lab: the host this machine is (see :mod:`nsnet.machines.share`)."""

    @property
    def nodes(self) -> list[str]:
        return [n for n, space in self.namespaces.items() if space.role == "node"]

    @property
    def hosts(self) -> list[str]:
        """The host namespaces (``host``, or those of a multi-host lab and its ``underlay``)."""
        return [n for n, space in self.namespaces.items() if space.role == "host"]


@dataclass(frozen=True)
class State:
    """A lab's namespaces keyed by kernel namespace name (``ROOT_NS`` for root)."""

    lab: str
    namespaces: dict[str, Namespace]

    def label(self, ns: str) -> str:
        space = self.namespaces.get(ns)
        return space.label if space else (ns or "root")


def netns_names(topology: Topology, lab: str | None = None) -> dict[str, str]:
    """Kernel namespace name of each logical namespace of ``topology`` in lab ``lab``.

    Under the topology's own name, nodes keep their names (``RED``); under
    another lab name they are prefixed with it (``mylab-RED``). The sandbox
    host is ``<lab>-host``; a ``root`` host is the root namespace.
    """
    lab = lab or topology.name
    prefix = "" if lab == topology.name else f"{lab}-"
    names = {n: prefix + n for n in topology.nodes}
    for host in topology.hosts:
        names[host] = f"{lab}-{host}"
    if HOST in topology.namespaces or not topology.hosts:
        names[HOST] = ROOT_NS if topology.host_mode == "root" else f"{lab}-host"
    return names


def bind(topology: Topology, lab: str | None = None) -> State:
    """The desired :class:`State` of ``topology`` brought up as lab ``lab``."""
    lab = lab or topology.name
    names = netns_names(topology, lab)
    spaces: dict[str, Namespace] = {}
    for logical, space in topology.namespaces.items():
        links = {
            k: replace(
                v,
                peer=Endpoint(names[v.peer.ns], v.peer.ifname) if v.peer else None,
                parent=Endpoint(names[v.parent.ns], v.parent.ifname) if v.parent else None,
            )
            if v.peer or v.parent
            else v
            for k, v in space.links.items()
        }
        files = {name: file_mark(lab) + text for name, text in space.files.items()} if names[logical] else {}
        spaces[names[logical]] = replace(space, name=names[logical], links=links, files=files)
    return State(lab=lab, namespaces=spaces)
