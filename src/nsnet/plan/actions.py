"""The actions of a plan: each one a change to the kernel, in words and as ``ip``/``sysctl``/``iptables`` commands."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from nsnet import kinds
from nsnet.kinds.base import LinkSet, LinkSpec, Setting, ip, where
from nsnet.model import ROOT_NS, Route

IPTABLES_RESTORE = {4: "iptables-restore", 6: "ip6tables-restore"}
ETC_NETNS = "/etc/netns"
"""Where ``ip netns exec`` finds the files it shows over /etc in a namespace."""


DOCKER_RULES = """*filter
:FORWARD DROP [0:0]
:DOCKER-USER - [0:0]
:DOCKER-FORWARD - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-FORWARD
-A DOCKER-USER -j RETURN
COMMIT
"""
"""The host's filter table as Docker leaves it (FORWARD policy DROP, DOCKER-USER jumped to first),
in iptables and ip6tables alike (Docker 27 and later set up ip6tables by default)."""


def _docker_table(family: str) -> str:
    return f"""table {family} docker-bridges {{
	map filter-forward-in-jumps {{
		type ifname : verdict
	}}
	map filter-forward-out-jumps {{
		type ifname : verdict
	}}
	map nat-postrouting-in-jumps {{
		type ifname : verdict
	}}
	map nat-postrouting-out-jumps {{
		type ifname : verdict
	}}
	chain filter-FORWARD {{
		type filter hook forward priority filter; policy drop;
		oifname vmap @filter-forward-in-jumps
		iifname vmap @filter-forward-out-jumps
	}}
	chain nat-POSTROUTING {{
		type nat hook postrouting priority srcnat; policy accept;
		iifname vmap @nat-postrouting-out-jumps
		oifname vmap @nat-postrouting-in-jumps
	}}
}}
"""


DOCKER_NFT = _docker_table("ip") + _docker_table("ip6")
"""The host's ruleset as Docker 29 leaves it with its nftables firewall backend, before any Docker network:
tables ``ip docker-bridges`` and ``ip6 docker-bridges``, whose base chain ``filter-FORWARD`` (hook forward,
priority filter) drops what no bridge's verdict map entry accepts (its policy when dockerd turned forwarding on
itself), and no ``DOCKER-USER``."""

_ip = ip


def _exec(ns: str, cmd: str) -> str:
    return cmd if ns == ROOT_NS else f"ip netns exec {shlex.quote(ns)} {cmd}"


_where = where


@dataclass(frozen=True)
class Action:
    """One step of a plan."""

    ns: str

    def describe(self) -> str:
        raise NotImplementedError

    def commands(self) -> list[str]:
        raise NotImplementedError


@dataclass(frozen=True)
class CreateNamespace(Action):
    label: str
    mark: str

    def describe(self) -> str:
        return f"create namespace {self.ns}" + (f" ({self.label})" if self.label != self.ns else "")

    def commands(self) -> list[str]:
        return [f"ip netns add {shlex.quote(self.ns)}", f"{_ip(self.ns)} link set lo up alias {shlex.quote(self.mark)}"]


@dataclass(frozen=True)
class DockerHost(Action):
    """Set a new host up as Docker leaves one, with its ``iptables`` firewall backend (FORWARD policy DROP,
    DOCKER-USER jumped to first) or its ``nftables`` one (:data:`DOCKER_NFT`)."""

    backend: str = "iptables"

    def describe(self) -> str:
        if self.backend == "nftables":
            return (
                f"set {self.ns} up as a Docker host with the nftables backend (tables ip and ip6 docker-bridges: "
                "filter-FORWARD policy drop)"
            )
        return (
            f"set {self.ns} up as a Docker host (iptables and ip6tables: FORWARD policy DROP, "
            "DOCKER-USER, DOCKER-FORWARD)"
        )

    def commands(self) -> list[str]:
        if self.backend == "nftables":
            return [_exec(self.ns, f"nft -f - <<'EOF'\n{DOCKER_NFT}EOF")]
        return [_exec(self.ns, f"{tool} --noflush <<'EOF'\n{DOCKER_RULES}EOF") for tool in IPTABLES_RESTORE.values()]


@dataclass(frozen=True)
class StartServer(Action):
    """Run nsnet's small HTTP server (the outside's) in a namespace."""

    port: int

    def describe(self) -> str:
        return f"start an HTTP server on port {self.port} in {_where(self.ns)}"

    def commands(self) -> list[str]:
        return [_exec(self.ns, f"python3 -m nsnet.engine.outside_server {self.port} &")]


@dataclass(frozen=True)
class SetShaping(Action):
    """Put a rate limit, delay or loss on a link's egress (``qdisc`` None: take it off)."""

    name: str
    qdisc: str | None

    def describe(self) -> str:
        if self.qdisc is None:
            return f"remove the shaping of {_where(self.ns)}:{self.name}"
        return f"shape {_where(self.ns)}:{self.name}: {self.qdisc}"

    def argv(self) -> list[str]:
        """The ``tc`` command: what the engine runs, and what the plan prints."""
        tc = ["tc"] if self.ns == ROOT_NS else ["tc", "-n", self.ns]
        if self.qdisc is None:
            return [*tc, "qdisc", "del", "dev", self.name, "root"]
        return [*tc, "qdisc", "replace", "dev", self.name, "root", *self.qdisc.split()]

    def commands(self) -> list[str]:
        return [shlex.join(self.argv())]


@dataclass(frozen=True)
class NetnsFile(Action):
    """Write (``text``) or remove (None) ``/etc/netns/<ns>/<name>``, what ``ip netns exec`` shows over /etc."""

    name: str
    text: str | None
    mark: str = ""
    """The first line that proves a file is the lab's: one without it is never written over, nor removed."""

    @property
    def path(self) -> str:
        return f"{ETC_NETNS}/{self.ns}/{self.name}"

    def describe(self) -> str:
        if self.text is None:
            return f"remove {self.path}"
        names = sum(1 for line in self.text.splitlines() if line and not line.startswith("#"))
        what = f"{names} names" if self.name == "hosts" else f"{names} lines"
        return f"write {self.path} ({what})"

    def commands(self) -> list[str]:
        path = shlex.quote(self.path)
        if self.text is None:
            return [f"rm -f {path}; rmdir {shlex.quote(f'{ETC_NETNS}/{self.ns}')} 2>/dev/null || true"]
        return [f"mkdir -p {shlex.quote(f'{ETC_NETNS}/{self.ns}')}", f"cat > {path} <<'EOF'\n{self.text}EOF"]


@dataclass(frozen=True)
class StopServer(Action):
    def describe(self) -> str:
        return f"stop the HTTP server in {_where(self.ns)}"

    def commands(self) -> list[str]:
        return [f"pkill -f 'nsnet.engine.outside_server'  # the one in {self.ns}"]


@dataclass(frozen=True)
class DeleteNamespace(Action):
    def describe(self) -> str:
        return f"delete namespace {self.ns} (and every link in it)"

    def commands(self) -> list[str]:
        return [f"ip netns del {shlex.quote(self.ns)}"]


@dataclass(frozen=True)
class CreateLink(Action):
    """Make a link of any kind (and mark it): ``spec`` is what both the commands and the engine use."""

    spec: LinkSpec

    def describe(self) -> str:
        return kinds.get(self.spec.kind).describe(self.spec)

    def commands(self) -> list[str]:
        return self.spec.commands()


@dataclass(frozen=True)
class FdbEntry(Action):
    """Add (or delete) a VXLAN forwarding entry: frames to ``mac`` go to the VTEP ``dst``."""

    dev: str
    mac: str
    dst: str
    add: bool = True

    def describe(self) -> str:
        where = f"{_where(self.ns)}:{self.dev}"
        return (
            f"forward {self.mac} on {where} to VTEP {self.dst}"
            if self.add
            else f"forget {self.mac} -> VTEP {self.dst} on {where}"
        )

    def commands(self) -> list[str]:
        b = "bridge" if self.ns == ROOT_NS else f"bridge -n {shlex.quote(self.ns)}"
        verb, tail = ("append", " self permanent") if self.add else ("del", " self")
        return [f"{b} fdb {verb} {self.mac} dev {self.dev} dst {self.dst}{tail}"]


@dataclass(frozen=True)
class NeighbourEntry(Action):
    """Add (or delete) a permanent neighbour entry (what a VXLAN device's ARP proxy answers from)."""

    dev: str
    ip: str
    mac: str
    add: bool = True

    def describe(self) -> str:
        where = f"{_where(self.ns)}:{self.dev}"
        return (
            f"answer for {self.ip} with {self.mac} on {where}" if self.add else f"forget neighbour {self.ip} on {where}"
        )

    def commands(self) -> list[str]:
        if self.add:
            return [f"{_ip(self.ns)} neigh replace {self.ip} lladdr {self.mac} dev {self.dev} nud permanent"]
        return [f"{_ip(self.ns)} neigh del {self.ip} dev {self.dev}"]


@dataclass(frozen=True)
class DeleteLink(Action):
    name: str

    def describe(self) -> str:
        return f"delete link {_where(self.ns)}:{self.name}"

    def commands(self) -> list[str]:
        return [f"{_ip(self.ns)} link del {self.name}"]


@dataclass(frozen=True)
class SetLink(Action):
    """Change link attributes; ``master`` "" means no master; ``data``: settings of its ``kind`` changed in place."""

    name: str
    master: str | None = None
    mtu: int | None = None
    mac: str | None = None
    up: bool | None = None
    alias: str | None = None
    """nsnet's mark, for a link it created but had not yet marked (an interrupted ``up``)."""
    kind: str | None = None
    data: tuple[Setting, ...] = ()
    link_local: bool = False
    """Give the link the kernel's IPv6 link-local address (``addrgenmode eui64``) when it comes up."""

    def request(self) -> LinkSet:
        """The change, as both the command and the engine's netlink request come from it."""
        return LinkSet(
            self.ns,
            self.name,
            self.alias,
            self.master,
            self.mtu,
            self.mac,
            self.up,
            link_local=self.link_local,
            kind=self.kind,
            data=self.data,
        )

    def describe(self) -> str:
        parts = []
        if self.alias is not None:
            parts.append(f"mark as {self.alias}")
        if self.master is not None:
            parts.append(f"attach to bridge {self.master}" if self.master else "detach from its bridge")
        if self.mtu is not None:
            parts.append(f"mtu {self.mtu}")
        if self.mac is not None:
            parts.append(f"mac {self.mac}")
        if self.link_local:
            parts.append("IPv6 link-local address")
        if self.up is not None:
            parts.append("up" if self.up else "down")
        parts += [s.words for s in self.data if s.words]
        what = f"{self.kind} " if self.kind else ""
        return f"set {what}{_where(self.ns)}:{self.name} " + ", ".join(parts)

    def commands(self) -> list[str]:
        return [self.request().command()]


@dataclass(frozen=True)
class Address(Action):
    """Add (``add=True``) or delete an address."""

    ifname: str
    cidr: str
    add: bool = True

    def describe(self) -> str:
        verb = "add address" if self.add else "delete address"
        return f"{verb} {self.cidr} {'to' if self.add else 'from'} {_where(self.ns)}:{self.ifname}"

    def commands(self) -> list[str]:
        nodad = " nodad" if self.add and ":" in self.cidr else ""
        return [f"{_ip(self.ns)} addr {'add' if self.add else 'del'} {self.cidr} dev {self.ifname}{nodad}"]


@dataclass(frozen=True)
class RouteChange(Action):
    route: Route
    add: bool = True

    def describe(self) -> str:
        return f"{'add' if self.add else 'delete'} route {self.route} in {_where(self.ns)}"

    def commands(self) -> list[str]:
        v6 = " -6" if self.route.family == 6 else ""
        return [f"{_ip(self.ns)}{v6} route {'add' if self.add else 'del'} {self.route} proto static"]


@dataclass(frozen=True)
class SetSysctl(Action):
    key: str
    value: str
    original: str | None
    restore: bool = False

    def describe(self) -> str:
        verb = "restore" if self.restore else "set"
        was = f" (was {self.original})" if self.original is not None else ""
        return f"{verb} sysctl {self.key}={self.value} in {_where(self.ns)}{was}"

    def commands(self) -> list[str]:
        return [_exec(self.ns, f"sysctl -qw {self.key}={self.value}")]


@dataclass(frozen=True)
class ApplyFirewall(Action):
    family: int
    text: str
    changes: tuple[str, ...]
    originals: dict[str, str] = field(default_factory=dict, compare=False)
    """Filter policies before this change, for chains whose policy it sets."""
    restored: tuple[str, ...] = ()
    """Chains whose original policy this change puts back."""

    def describe(self) -> str:
        tool = "iptables" if self.family == 4 else "ip6tables"
        return f"{tool} in {_where(self.ns)}: " + "; ".join(self.changes)

    def commands(self) -> list[str]:
        return [_exec(self.ns, f"{IPTABLES_RESTORE[self.family]} --noflush <<'EOF'\n{self.text}EOF")]


@dataclass
class Plan:
    """What ``up`` (or ``down``) would do, in order."""

    lab: str
    actions: list[Action] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    """What the journal lists but nsnet cannot prove is the lab's, so leaves alone (and why)."""

    def __bool__(self) -> bool:
        return bool(self.actions)

    def lines(self) -> list[str]:
        return [a.describe() for a in self.actions]

    def script(self) -> str:
        body = [cmd for a in self.actions for cmd in a.commands()]
        return "#!/bin/sh\n# nsnet plan for lab " + self.lab + "\nset -e\n" + "\n".join(body) + "\n"


# -- planning ----------------------------------------------------------------
