"""What every link kind provides, and the descriptions a kind's links are made and changed from.

A :class:`LinkSpec` is the *one* description of making a link: the plan prints
it as ``ip ... link add`` text (:meth:`LinkSpec.commands`) and the engine sends
it as RTM_NEWLINK requests (:meth:`nsnet.kernel.netlink.Netlink.create_link`).
A :class:`LinkSet` is the same for changing one (``ip ... link set``). Both are
plain data: this layer loads no kernel code.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, Literal

from nsnet.model import ROOT_NS, Endpoint, Link

Codec = Literal["u8", "u16", "u32", "be16", "ipv4", "ifindex"]
"""How a value is packed in its attribute (``ifindex``: an interface name of the namespace, sent as its index)."""


@dataclass(frozen=True)
class Param:
    """One kind-specific setting carried in IFLA_INFO_DATA: its key, attribute number and packing."""

    key: str
    nla: int
    codec: Codec


@dataclass(frozen=True)
class Setting:
    """A value of a :class:`Param`, and the ``ip link`` words that say the same (``""``: the kernel's default)."""

    param: Param
    value: int | str
    words: str


def ip(ns: str) -> str:
    """``ip`` run in ``ns``."""
    return "ip" if ns == ROOT_NS else f"ip -n {shlex.quote(ns)}"


def where(ns: str) -> str:
    return ns or "root"


@dataclass(frozen=True)
class LinkSet:
    """Changing one link (``ip link set``; RTM_NEWLINK on an existing link); None leaves a field alone."""

    ns: str
    name: str
    alias: str | None = None
    master: str | None = None
    """A bridge of the namespace; "" detaches the link from its bridge."""
    mtu: int | None = None
    mac: str | None = None
    up: bool | None = None
    no_link_local: bool = False
    """``addrgenmode none``: no IPv6 link-local address."""
    link_local: bool = False
    """``addrgenmode eui64``: the kernel's IPv6 link-local address, when the link comes up."""
    kind: str | None = None
    data: tuple[Setting, ...] = ()
    """Kind settings changed in place (``type bridge stp_state 1``)."""

    def words(self) -> list[str]:
        out = []
        if self.alias is not None:
            out.append(f"alias {shlex.quote(self.alias)}")
        if self.master is not None:
            out.append(f"master {self.master}" if self.master else "nomaster")
        if self.mtu is not None:
            out.append(f"mtu {self.mtu}")
        if self.mac is not None:
            out.append(f"address {self.mac}")
        if self.no_link_local:
            out.append("addrgenmode none")
        elif self.link_local:
            out.append("addrgenmode eui64")
        if self.up is not None:
            out.append("up" if self.up else "down")
        if self.kind is not None:
            out.append(" ".join(["type", self.kind, *(s.words for s in self.data if s.words)]))
        return out

    def command(self) -> str:
        return f"{ip(self.ns)} link set {self.name} " + " ".join(self.words())


@dataclass(frozen=True)
class LinkSpec:
    """Making one link: where the request goes, its kind and settings, and the ends nsnet marks after."""

    ns: str
    """The namespace the request is sent in."""
    name: str
    kind: str
    mark: str
    data: tuple[Setting, ...] = ()
    lower: str | None = None
    """IFLA_LINK: the device of ``ns`` the new link sits on (a macvlan's parent)."""
    into: str | None = None
    """IFLA_NET_NS_FD: the namespace the link is made in, if not ``ns``."""
    peer: Endpoint | None = None
    """A veth's other end, made at the same time in its namespace."""

    @property
    def ends(self) -> tuple[Endpoint, ...]:
        """The links this makes (each gets nsnet's mark, and no IPv6 link-local address)."""
        first = Endpoint(self.into if self.into is not None else self.ns, self.name)
        return (first, self.peer) if self.peer is not None else (first,)

    def add_command(self) -> str:
        words = [f"{ip(self.ns)} link add {self.name}"]
        if self.lower is not None:
            words.append(f"link {self.lower}")
        if self.into is not None and self.into != self.ns:
            words.append(f"netns {shlex.quote(self.into)}")
        words.append(f"type {self.kind}")
        if self.peer is not None:
            words.append(f"peer name {self.peer.ifname}")
            if self.peer.ns != self.ns:
                words.append(f"netns {shlex.quote(self.peer.ns)}")
        words += [s.words for s in self.data if s.words]
        return " ".join(words)

    def marks(self) -> list[LinkSet]:
        return [LinkSet(e.ns, e.ifname, alias=self.mark, no_link_local=True) for e in self.ends]

    def commands(self) -> list[str]:
        return [self.add_command(), *(m.command() for m in self.marks())]


Problem = tuple[tuple[str, ...], str, str]
"""A problem of a topology, for the loader: (path below the interface, message, hint)."""


class Kind:
    """A link kind. Subclass it in a module of its own and add one line to :data:`nsnet.kinds.KINDS`."""

    name: str = ""
    order: int = 0
    """When it is made: 0 on its own (bridge, dummy), 1 pairs (veth), 2 on another device (vxlan, macvlan)."""
    params: tuple[Param, ...] = ()
    """What it carries in IFLA_INFO_DATA, for making it and for reading it back."""
    linked: Literal["", "peer", "parent"] = ""
    """What IFLA_LINK names: a veth's ``peer``, the ``parent`` a macvlan sits on, or nothing."""
    config: str = ""
    """The kernel option it needs (``CONFIG_IPVLAN``), when kernels may lack it."""
    module: str = ""
    user: bool = False
    """Declared as ``kind:`` of an interface in a topology file."""
    modes: tuple[str, ...] = ()
    """The words ``mode:`` takes (first: the default)."""

    def create(self, ns: str, link: Link, mark: str) -> LinkSpec:
        """How ``link`` of namespace ``ns`` is made."""
        return LinkSpec(ns, link.name, self.name, mark, self.settings(link))

    def settings(self, link: Link) -> tuple[Setting, ...]:
        """Its IFLA_INFO_DATA settings."""
        return ()

    def describe(self, spec: LinkSpec) -> str:
        """The making of a link, in words."""
        return f"create {self.name} {where(spec.ends[0].ns)}:{spec.name}"

    def identity(self, link: Link) -> object:
        """What cannot change in place: a live link whose identity differs is made again."""
        return None

    def changes(self, want: Link, have: Link) -> tuple[Setting, ...]:
        """Settings of a live link to change in place."""
        return ()

    def read(self, values: dict[str, Any]) -> dict[str, Any]:
        """:class:`~nsnet.model.Link` fields from what the kernel reports (``values`` by :attr:`Param.key`)."""
        return {}

    def detail(self, link: Link) -> str:
        """A few words for inspect and graph (``macvlan bridge``), or ""."""
        return ""

    def probe(self) -> list[str]:
        """``ip`` commands that make one in an empty namespace: whether this kernel has the kind."""
        return [f"ip link add nsnet-probe type {self.name}"]

    def check(self, spec: Any) -> list[Problem]:
        """Problems of an interface of this kind as the file declares it (``spec``: its schema object)."""
        return []


class UpperKind(Kind):
    """A kind that sits on a parent device of the lab's host (macvlan, ipvlan), in a ``mode``."""

    order = 2
    linked = "parent"
    user = True
    mode_param: Param
    numbers: dict[str, int] = {}

    @property
    def params(self) -> tuple[Param, ...]:  # type: ignore[override]
        return (self.mode_param,)

    def create(self, ns: str, link: Link, mark: str) -> LinkSpec:
        assert link.parent is not None
        # Asked for in the parent's namespace, made directly in the link's own.
        into = ns if ns != link.parent.ns else None
        return LinkSpec(link.parent.ns, link.name, self.name, mark, self.settings(link), link.parent.ifname, into)

    def describe(self, spec: LinkSpec) -> str:
        mode = next((s.words.split()[-1] for s in spec.data), "")
        return f"create {self.name} {where(spec.ends[0].ns)}:{spec.name} on {where(spec.ns)}:{spec.lower} ({mode})"

    def settings(self, link: Link) -> tuple[Setting, ...]:
        mode = link.mode or self.modes[0]
        return (Setting(self.mode_param, self.numbers[mode], f"mode {mode}"),)

    def identity(self, link: Link) -> object:
        return (link.parent, link.mode or self.modes[0])

    def read(self, values: dict[str, Any]) -> dict[str, Any]:
        names = {n: word for word, n in self.numbers.items()}
        return {"mode": names.get(values.get("mode", -1), str(values.get("mode")))}

    def detail(self, link: Link) -> str:
        return f"{self.name} {link.mode or self.modes[0]}"

    def probe(self) -> list[str]:
        return [
            "ip link add nsnet-probe0 type bridge",
            f"ip link add nsnet-probe link nsnet-probe0 type {self.name}",
        ]

    def check(self, spec: Any) -> list[Problem]:
        out: list[Problem] = []
        if getattr(spec, "parent", None) is None:
            out.append(
                ((), f"a {self.name} interface needs a parent", "add parent: with a bridge or interface of the host")
            )
        mode = getattr(spec, "mode", None)
        if mode is not None and mode not in self.modes:
            out.append((("mode",), f"{mode!r} is not a {self.name} mode", f"use one of {', '.join(self.modes)}"))
        return out
