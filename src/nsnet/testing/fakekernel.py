"""A kernel in memory, for the engine: ``up``, ``down`` and rollback without root.

:class:`FakeKernel` implements :class:`nsnet.engine.seam.Kernel` over
dictionaries: named namespaces with their links (veth pairs, bridges, VXLAN
devices), addresses, static routes, sysctls, iptables tables, shaping,
servers and the files under /etc/netns. It refuses what the kernel refuses where the engine depends on it
(a name taken, a link or namespace that does not exist, a gateway out of
reach, a rule to delete that is not there). Every change is one numbered
step, listed in :attr:`FakeKernel.log`; ``fail_at=N`` makes step N fail (once),
as the kernel could, to test what the engine does then::

    kernel = FakeKernel(fail_at=7)
    with pytest.raises(ApplyError):
        lifecycle.up(topology, kernel=kernel)
    assert kernel.snapshot() == FakeKernel().snapshot()
"""

from __future__ import annotations

import errno
import ipaddress
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from nsnet import kinds
from nsnet.engine.seam import Reading
from nsnet.errors import KernelError, PreflightError
from nsnet.kernel.netlink import Ticket
from nsnet.kernel.procs import Proc
from nsnet.kernel.sysctl import SysctlFailed
from nsnet.kinds.base import LinkSet, LinkSpec
from nsnet.model import ROOT_NS, Endpoint, Firewall, Link, Route, State
from nsnet.plan.actions import SetShaping
from nsnet.testing import fakefirewall
from nsnet.testing.fakefiles import FakeFiles
from nsnet.testing.fakestate import DEFAULT_SYSCTL, DEFAULTS, FakeLink, FakeNamespace, kernel_error


class FakeKernel(FakeFiles):
    """The machine, in memory (see the module's description). ``root=False``: as a user without root."""

    def __init__(self, fail_at: int | None = None, root: bool = True) -> None:
        super().__init__()
        self.spaces: dict[str, FakeNamespace] = {ROOT_NS: FakeNamespace(ROOT_NS)}
        self.fail_at = fail_at
        self.root = root
        self.log: list[str] = []
        """Every change asked for, in order: step N is ``log[N - 1]``."""
        self.servers: dict[str, int] = {}
        self.refuse: str | None = None
        """Set: the preflight check fails with this reason."""
        self.on_step: Callable[[str], None] | None = None
        """Called with each change before it is made."""
        self._failed: list[Ticket] = []
        self._index = itertools.count(2)

    # -- set-up, inspection ------------------------------------------------------

    def add_link(self, ns: str, name: str, kind: str = "other", alias: str | None = None) -> FakeLink:
        """Put a link there as someone else would (no step, never fails)."""
        link = self._new_link(name, kind, alias)
        self.spaces[ns].links[name] = link
        return link

    def add_namespace(self, ns: str, mark: str | None = None) -> FakeNamespace:
        """Make a namespace as someone else would (no step, never fails)."""
        space = self.spaces[ns] = FakeNamespace(ns, mark)
        return space

    @property
    def steps(self) -> int:
        return len(self.log)

    def snapshot(self) -> dict[str, object]:
        """Everything the fake holds that a lab could change, comparable with ``==`` (link indices left out)."""
        out: dict[str, object] = {}
        for ns, space in sorted(self.spaces.items()):
            links = {
                name: (
                    link.kind,
                    link.alias,
                    link.mtu,
                    link.up,
                    link.master,
                    sorted(link.values.items()),
                    link.peer,
                    link.parent,
                    sorted(link.addresses),
                    sorted(link.fdb),
                    sorted(link.neighbours),
                    link.mac,
                )
                for name, link in sorted(space.links.items())
            }
            out[ns] = {
                "mark": space.mark,
                "links": links,
                "routes": sorted(space.routes),
                "sysctls": {k: v for k, v in sorted(space.sysctls.items()) if v != DEFAULT_SYSCTL},
                "firewall": fakefirewall.render(space.firewall),
                "qdiscs": dict(sorted(space.qdiscs.items())),
                "stale": space.stale,
                "server": self.servers.get(ns),
            }
        out["/etc/netns"] = self.files_snapshot()
        return out

    # -- steps -------------------------------------------------------------------

    def _step(self, what: str) -> KernelError | None:
        """Count a change; the injected failure if this is step :attr:`fail_at`."""
        if self.on_step is not None:
            self.on_step(what)
        self.log.append(what)
        if self.steps == self.fail_at:
            return KernelError(f"{what}: injected failure at step {self.steps}")
        return None

    def _space(self, ns: str) -> FakeNamespace:
        space = self.spaces.get(ns)
        if space is None or space.stale:
            raise KernelError(f"network namespace {ns!r} does not exist")
        return space

    def _link(self, ns: str, name: str) -> FakeLink:
        link = self._space(ns).links.get(name)
        if link is None:
            raise KernelError(f"interface {name!r} does not exist in {ns or 'root'}")
        return link

    def _new_link(self, name: str, kind: str, alias: str | None = None) -> FakeLink:
        index = next(self._index)
        return FakeLink(index, name, kind, f"02:00:00:00:{index >> 8 & 255:02x}:{index & 255:02x}", alias=alias)

    def _queue(self, ns: str, what: str, change: Callable[[], None]) -> Ticket:
        self._space(ns)  # as Netlink: a namespace that does not exist fails at once
        ticket = Ticket(ns, what, 0, 0, b"")
        error = self._step(what)
        if error is None:
            try:
                change()
            except KernelError as exc:
                error = KernelError(f"{what}: {exc}")
        if error is not None:
            ticket.error = error
            self._failed.append(ticket)
        return ticket

    # -- preflight, namespaces ---------------------------------------------------

    def require_root(self, what: str = "change network namespaces") -> None:
        if not self.root:
            raise PreflightError(f"nsnet must run as root to {what}: run it with sudo (or as root)")

    def check(self, state: State, firewall_in_use: bool = False) -> None:
        self.require_root()
        if self.refuse:
            raise PreflightError(self.refuse)

    def exists(self, ns: str) -> bool:
        return ns in self.spaces

    def is_stale(self, ns: str) -> bool:
        return ns in self.spaces and self.spaces[ns].stale

    def names(self) -> list[str]:
        return sorted(ns for ns in self.spaces if ns != ROOT_NS)

    def create_namespaces(self, marks: dict[str, str]) -> dict[str, KernelError]:
        failed: dict[str, KernelError] = {}
        for ns, mark in marks.items():
            error = self._step(f"create namespace {ns}")
            if error is None and ns in self.spaces and not self.spaces[ns].stale:
                error = kernel_error(errno.EEXIST, f"create namespace {ns}")
            if error is not None:
                failed[ns] = error
                continue
            self.spaces[ns] = FakeNamespace(ns, mark)
        return failed

    def delete_namespaces(self, spaces: Sequence[str]) -> dict[str, KernelError]:
        failed: dict[str, KernelError] = {}
        for ns in spaces:
            error = self._step(f"delete namespace {ns}")
            if error is None and ns not in self.spaces:
                error = kernel_error(errno.ENOENT, f"delete namespace {ns}")
            if error is not None:
                failed[ns] = error
                continue
            for link in list(self.spaces[ns].links.values()):
                self._remove_link(ns, link)
            del self.spaces[ns]
            self.servers.pop(ns, None)
        return failed

    def forget(self, ns: str) -> None:
        """Nothing to close."""

    def close(self) -> None:
        self._failed.clear()

    def __enter__(self) -> FakeKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------

    def read(self, spaces: Sequence[str]) -> dict[str, Reading]:
        out = {}
        for ns in spaces:
            space = self._space(ns)
            links = {name: self._read_link(f) for name, f in space.links.items()}
            out[ns] = Reading(links, frozenset(space.routes), None if ns == ROOT_NS else space.mark)
        return out

    def _read_link(self, f: FakeLink) -> Link:
        kind = kinds.get(f.kind)
        link = Link(
            name=f.name,
            kind=f.kind,  # type: ignore[arg-type]
            master=f.master,
            mtu=f.mtu,
            mac=f.mac,
            up=f.up,
            addresses=frozenset(f.addresses),
            alias=f.alias,
            peer=f.peer,
            parent=f.parent,
            **(kind.read(f.values) if kind.params else {}),
        )
        if f.kind == "vxlan":
            link = replace(link, fdb=frozenset(f.fdb), neighbours=frozenset(f.neighbours))
        return link

    def lo_alias(self, ns: str) -> str | None:
        return self._space(ns).mark

    def read_sysctls(self, ns: str, keys: list[str]) -> dict[str, str | None]:
        values = self._space(ns).sysctls
        return {key: values.get(key, DEFAULT_SYSCTL) for key in keys}

    def read_firewall(self, ns: str, lab: str, families: set[int]) -> Firewall:
        return fakefirewall.read(self._space(ns).firewall, lab, families)

    def server_running(self, ns: str, entry: Sequence[int]) -> bool:
        return bool(entry) and self.servers.get(ns) == entry[0]

    # -- links -------------------------------------------------------------------

    def flush(self) -> list[Ticket]:
        failed, self._failed = self._failed, []
        return failed

    def create_link(self, spec: LinkSpec) -> list[Ticket]:
        home = spec.into if spec.into is not None else spec.ns
        self._space(home)  # as Netlink: its descriptor is opened at once
        if spec.peer is not None:
            self._space(spec.peer.ns)
        if spec.lower is not None:
            self._link(spec.ns, spec.lower)
        settings = {s.param.key: s.value for s in spec.data}

        def change() -> None:
            for end in spec.ends:
                if end.ifname in self._space(end.ns).links:
                    raise kernel_error(errno.EEXIST, f"create {spec.kind} {end}")
            made = self._new_link(spec.name, spec.kind)
            made.values = {**DEFAULTS.get(spec.kind, {}), **settings}
            if spec.lower is not None:
                made.parent = Endpoint(spec.ns, spec.lower)
            self.spaces[home].links[spec.name] = made
            if spec.peer is not None:
                made.peer = spec.peer
                other = self._new_link(spec.peer.ifname, spec.kind)
                other.peer = Endpoint(home, spec.name)
                self.spaces[spec.peer.ns].links[spec.peer.ifname] = other

        where = " <-> ".join(str(e) for e in spec.ends)
        made = self._queue(spec.ns, f"create {spec.kind} {where}", change)
        return [made, *(self.change_link(m, phase=1) for m in spec.marks())]

    def change_link(self, change: LinkSet, phase: int = 0) -> Ticket:
        ns, name = change.ns, change.name
        if change.master:
            self._link(ns, change.master)

        def apply() -> None:
            link = self._link(ns, name)
            if change.master and self.spaces[ns].links[change.master].kind != "bridge":
                raise kernel_error(errno.EINVAL, f"{change.master} is not a bridge")
            if change.kind is not None and change.kind != link.kind:
                raise kernel_error(errno.EOPNOTSUPP, f"{name} is not a {change.kind}")
            if change.alias is not None:
                link.alias = change.alias
            if change.master is not None:
                link.master = change.master or None
            if change.mtu is not None:
                link.mtu = change.mtu
            if change.mac is not None:
                link.mac = change.mac
            link.values.update({s.param.key: s.value for s in change.data})
            if change.up is not None:
                link.up = change.up
                if not change.up:
                    self._drop_routes(ns, name)

        return self._queue(ns, f"set {name} {' '.join(change.words())}", apply)

    def fdb_entry(self, ns: str, op: str, dev: str, mac: str, dst: str) -> Ticket:
        link = self._link(ns, dev)
        entry = (mac, dst)
        change = (lambda: link.fdb.add(entry)) if op == "add" else (lambda: link.fdb.discard(entry))
        return self._queue(ns, f"fdb {op} {mac} dev {dev} dst {dst}", change)

    def neighbour_entry(self, ns: str, op: str, dev: str, ip: str, mac: str) -> Ticket:
        link = self._link(ns, dev)

        def change() -> None:
            link.neighbours = {(i, m) for i, m in link.neighbours if i != ip}
            if op == "add":
                link.neighbours.add((ip, mac))

        return self._queue(ns, f"neigh {op} {ip} dev {dev}", change)

    def delete_link(self, ns: str, name: str) -> Ticket:
        def change() -> None:
            link = self._space(ns).links.get(name)
            if link is not None:  # gone already is fine
                self._remove_link(ns, link)

        return self._queue(ns, f"delete {name}", change)

    def _remove_link(self, ns: str, link: FakeLink) -> None:
        space = self.spaces[ns]
        space.links.pop(link.name, None)
        space.qdiscs.pop(link.name, None)
        self._drop_routes(ns, link.name)
        for other in list(space.links.values()):
            if other.master == link.name:
                other.master = None
        for other_ns, other_space in list(self.spaces.items()):  # what sits on it goes with it
            for upper in list(other_space.links.values()):
                if upper.parent == Endpoint(ns, link.name):
                    self._remove_link(other_ns, upper)
        if link.peer is not None and link.peer.ns in self.spaces:
            peer = self.spaces[link.peer.ns].links.get(link.peer.ifname)
            if peer is not None and peer.peer == Endpoint(ns, link.name):
                peer.peer = None
                self._remove_link(link.peer.ns, peer)

    def _drop_routes(self, ns: str, dev: str) -> None:
        """Routes through ``dev`` go with it (down or deleted), as do those whose gateway only it reached."""
        space = self.spaces[ns]
        space.routes = {r for r in space.routes if r.dev != dev and (r.via is None or self._reachable(ns, r.via))}

    def _reachable(self, ns: str, via: str, dev: str | None = None) -> bool:
        gateway = ipaddress.ip_address(via)
        for link in self.spaces[ns].links.values():
            if not link.up or (dev is not None and link.name != dev):
                continue
            if gateway.is_link_local and dev is not None:
                return True
            if any(gateway in ipaddress.ip_interface(a).network for a in link.addresses):
                return True
        return False

    def address(self, ns: str, op: str, ifname: str, cidr: str) -> Ticket:
        link = self._link(ns, ifname)
        ip = ipaddress.ip_interface(cidr)
        text = f"{ip.ip}/{ip.network.prefixlen}"

        def change() -> None:
            if op == "add":
                if text in link.addresses:
                    raise kernel_error(errno.EEXIST, "add address")
                link.addresses.append(text)
            else:
                if text not in link.addresses:
                    raise kernel_error(errno.EADDRNOTAVAIL, "delete address")
                link.addresses.remove(text)
                self._drop_routes(ns, "")

        return self._queue(ns, f"{op} address {cidr} on {ifname}", change)

    def route(self, ns: str, op: str, route: Route) -> Ticket:
        if route.dev:
            self._link(ns, route.dev)
        routes = self._space(ns).routes

        def change() -> None:
            if op == "add":
                if any(r.to == route.to and r.metric == route.metric for r in routes):
                    raise kernel_error(errno.EEXIST, "add route")
                if route.dev and not self.spaces[ns].links[route.dev].up:
                    raise kernel_error(errno.ENETDOWN, "add route")
                if route.via and not self._reachable(ns, route.via, route.dev):
                    raise kernel_error(errno.ENETUNREACH, "add route")
                routes.add(route)
                return
            found = [
                r
                for r in sorted(routes)
                if r.to == route.to
                and route.via in (None, r.via)
                and route.dev in (None, r.dev)
                and route.metric in (None, r.metric)
            ]
            if not found:
                raise kernel_error(errno.ESRCH, "delete route")
            routes.discard(found[0])

        return self._queue(ns, f"{op} route {route}", change)

    # -- sysctls, firewall, shaping, processes ------------------------------------

    def write_sysctls(self, ns: str, pairs: Sequence[tuple[str, str]]) -> None:
        space = self._space(ns)
        for i, (key, value) in enumerate(pairs):
            error = self._step(f"sysctl {ns or 'root'} {key}={value}")
            if error is not None:
                raise SysctlFailed(str(error), i)
            space.sysctls[key] = value

    def restore_firewall(self, changes: Sequence[tuple[str, int, str]]) -> list[KernelError | None]:
        out: list[KernelError | None] = []
        for ns, family, text in changes:
            if not text:
                out.append(None)
                continue
            error = self._step(f"iptables-restore (IPv{family}) in {ns or 'root'}")
            if error is None:
                try:
                    space = self._space(ns)
                    space.firewall[family] = fakefirewall.restore(space.firewall.get(family, {}), text)
                except KernelError as exc:
                    error = exc
            out.append(error)
        return out

    def load_nft(self, ns: str, text: str) -> None:
        error = self._step(f"nft -f in {ns or 'root'}")
        if error is not None:
            raise error
        self._space(ns).nft.append(text)

    def shape(self, change: SetShaping) -> None:
        ns, name, qdisc = change.ns, change.name, change.qdisc
        error = self._step(" ".join(change.argv()))
        if error is not None:
            raise error
        self._link(ns, name)
        if qdisc is None:
            self._space(ns).qdiscs.pop(name, None)
        else:
            self._space(ns).qdiscs[name] = qdisc

    def start_server(self, ns: str, port: int) -> list[int]:
        error = self._step(f"start server {port} in {ns}")
        if error is not None:
            raise error
        self._space(ns)
        pid = 10000 + next(self._index)
        self.servers[ns] = pid
        return [pid, port, 1]

    def stop_server(self, ns: str, entry: Sequence[int]) -> None:
        error = self._step(f"stop server in {ns}")
        if error is not None:
            raise error
        self.servers.pop(ns, None)

    def stop_processes(self, spaces: Mapping[str, str]) -> list[Proc]:
        return []

    def settle(self, spaces: Iterable[str]) -> None:
        """Links carry packets at once here."""
