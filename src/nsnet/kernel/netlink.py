"""Links, addresses and routes through netlink, one socket per namespace.

Changes are queued (:meth:`Netlink.create_link`, :meth:`Netlink.address`, ...)
and sent by :meth:`Netlink.flush`: every namespace's requests in as few
``send`` calls as possible, the acknowledgements collected afterwards. The
sockets are made in their namespace by this thread (``setns`` there and back),
never by a child process. Reading goes through the same sockets
(:meth:`Netlink.dump`, :meth:`Netlink.link_msgs`); :mod:`nsnet.kernel.readers`
turns what they return into views and the model.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import resource
import socket
from dataclasses import dataclass
from typing import Any

from nsnet import kinds
from nsnet.errors import KernelError
from nsnet.kernel import netns, rtnl
from nsnet.kinds.base import LinkSet, LinkSpec, Param, Setting
from nsnet.model import ROOT_NS, Route

SKIP_STATS = rtnl.u32(rtnl.IFLA_EXT_MASK, rtnl.RTEXT_FILTER_SKIP_STATS)
NS_FDS_MAX = 1000
"""Namespace descriptors held for queued veth creations before the queue is sent."""


@dataclass(eq=False)
class Ticket:
    """One queued request; after :meth:`Netlink.flush`, :attr:`error` says whether it failed."""

    ns: str
    what: str
    kind: int
    flags: int
    payload: bytes
    phase: int = 0
    """Requests of phase 0 (creations) are sent before those of phase 1 (what depends on them)."""
    ignore: frozenset[int] = frozenset()
    """Error codes that mean "already done" (e.g. ENODEV for a delete)."""
    error: KernelError | None = None


def _lo_up(mark: str) -> bytes:
    """``lo`` up, with ``mark`` (nsnet's mark on a namespace it created) as its alias."""
    return rtnl.ifinfo(rtnl.LOOPBACK_IFINDEX, rtnl.IFF_UP, rtnl.IFF_UP) + rtnl.attr(rtnl.IFLA_IFALIAS, mark.encode())


def _describe(exc: OSError) -> str:
    return exc.strerror or rtnl.describe(exc.errno or errno.EIO)


class Netlink:
    """One netlink socket per namespace, opened on first use, closed by :meth:`close`."""

    def __init__(self) -> None:
        self._raw: dict[str, rtnl.Socket] = {}
        self._names: dict[str, dict[str, int]] = {}
        self._queued: list[Ticket] = []
        self._failed: list[Ticket] = []
        self._fds: list[int] = []

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._queued.clear()
        self._failed.clear()
        self._close_fds()
        for ns in list(self._raw):
            self._close(ns)

    def _close(self, ns: str) -> None:
        raw = self._raw.pop(ns, None)
        if raw is not None:
            raw.close()
        self._names.pop(ns, None)

    def _close_fds(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()

    def forget(self, ns: str) -> None:
        """Close the sockets of ``ns`` (before deleting it: an open socket keeps a namespace alive)."""
        if any(t.ns == ns for t in self._queued):
            self._send_queued()
        self._close(ns)

    # -- sockets -------------------------------------------------------------

    def raw(self, ns: str) -> rtnl.Socket:
        """nsnet's own socket in ``ns``."""
        sock = self._raw.get(ns)
        if sock is None:
            if len(self._raw) >= 256:
                _raise_fd_limit()
            if ns == ROOT_NS:
                sock = rtnl.Socket.open()
            else:
                if not netns.exists(ns):
                    raise KernelError(f"network namespace {ns!r} does not exist")
                with netns.entered(ns):
                    sock = rtnl.Socket.open()
            self._raw[ns] = sock
        return sock

    def adopt(self, ns: str, sock: rtnl.Socket) -> None:
        """Use ``sock``, made inside ``ns`` when it was created, as its socket."""
        old = self._raw.pop(ns, None)
        if old is not None:
            old.close()
        self._raw[ns] = sock

    def create_namespaces(self, marks: dict[str, str]) -> dict[str, KernelError]:
        """Create namespaces, each marked (``lo`` up, alias) and given its socket from inside, several at once.

        Returns the ones that failed (and do not exist), with why.
        """

        def inside(ns: str) -> rtnl.Socket:
            sock = rtnl.Socket.open()
            payload = rtnl.ifinfo(rtnl.LOOPBACK_IFINDEX, rtnl.IFF_UP, rtnl.IFF_UP) + rtnl.attr(
                rtnl.IFLA_IFALIAS, marks[ns].encode()
            )
            try:
                sock.request(rtnl.RTM_NEWLINK, rtnl.CHANGE, payload)
            except OSError as exc:
                sock.close()
                raise KernelError(f"set lo up: {_describe(exc)}") from exc
            return sock

        if len(self._raw) + len(marks) >= 256:
            _raise_fd_limit()
        try:
            made = netns.create_many(list(marks), inside, lambda sock: sock.close())
            failed: dict[str, KernelError] = {}
        except netns.NamespacesFailed as exc:
            made = {ns: sock for ns, sock in exc.results.items() if isinstance(sock, rtnl.Socket)}
            failed = exc.errors
        for ns, sock in made.items():
            if sock is not None:
                self.adopt(ns, sock)
        return failed

    # -- reading -------------------------------------------------------------

    def dump(self, ns: str, what: str, kind: int, payload: bytes) -> list[memoryview]:
        """The messages a dump request returns in ``ns`` (queued requests are sent first)."""
        if self._queued:
            self._send_queued()
        try:
            return self.raw(ns).dump(kind, payload)
        except OSError as exc:
            raise KernelError(f"{what} in {ns or 'root'}: {_describe(exc)}") from exc

    def get(self, ns: str, what: str, kind: int, payload: bytes) -> memoryview:
        """The one message a ``get`` request returns in ``ns``."""
        if self._queued:
            self._send_queued()
        try:
            return self.raw(ns).get(kind, payload)
        except OSError as exc:
            raise KernelError(f"{what} in {ns or 'root'}: {_describe(exc)}") from exc

    def link_msgs(self, ns: str) -> list[rtnl.LinkMsg]:
        """Every link of ``ns``, ``lo`` included, as the kernel lists them."""
        msgs = [rtnl.parse_link(b) for b in self.dump(ns, "list links", rtnl.RTM_GETLINK, rtnl.ifinfo() + SKIP_STATS)]
        self._names[ns] = {m.name: m.index for m in msgs}
        return msgs

    def index(self, ns: str, ifname: str) -> int:
        """The index of ``ifname`` in ``ns`` (from the last listing, or a new one)."""
        found = self._names.get(ns, {}).get(ifname)
        if found is None:
            self.link_msgs(ns)
            found = self._names[ns].get(ifname)
        if found is None:
            raise KernelError(f"interface {ifname!r} does not exist in {ns or 'root'}")
        return found

    def lo_alias(self, ns: str) -> str | None:
        """The alias of ``lo``: nsnet's mark on a namespace it created."""
        body = self.get(ns, "look up lo", rtnl.RTM_GETLINK, rtnl.ifinfo(rtnl.LOOPBACK_IFINDEX) + SKIP_STATS)
        return rtnl.parse_link(body).alias

    # -- changing: queued until flush() --------------------------------------

    def _queue(
        self, ns: str, what: str, kind: int, flags: int, payload: bytes, phase: int = 0, ignore: tuple[int, ...] = ()
    ) -> Ticket:
        self.raw(ns)  # open it now: a namespace that does not exist is this request's error
        ticket = Ticket(ns, what, kind, flags, payload, phase, frozenset(ignore))
        self._queued.append(ticket)
        return ticket

    @property
    def queued(self) -> int:
        return len(self._queued)

    def flush(self) -> list[Ticket]:
        """Send every queued request; the ones that failed, in the order they were queued."""
        self._send_queued()
        failed, self._failed = self._failed, []
        return failed

    def _send_queued(self) -> None:
        queued, self._queued = self._queued, []
        try:
            for phase in sorted({t.phase for t in queued}):
                by_ns: dict[str, list[Ticket]] = {}
                for t in queued:
                    if t.phase == phase:
                        by_ns.setdefault(t.ns, []).append(t)
                for ns, tickets in by_ns.items():
                    try:
                        results = self.raw(ns).transact([(t.kind, t.flags, t.payload) for t in tickets])
                    except (OSError, KernelError) as exc:
                        results = [rtnl.Failure(getattr(exc, "errno", None) or errno.EIO, str(exc))] * len(tickets)
                    for t, failure in zip(tickets, results, strict=True):
                        if failure is not None and failure.code not in t.ignore:
                            t.error = KernelError(f"{t.what}: {failure}")
                            self._failed.append(t)
        finally:
            self._close_fds()
        order = {id(t): i for i, t in enumerate(queued)}
        self._failed.sort(key=lambda t: order.get(id(t), -1))

    def _invalidate(self, *spaces: str) -> None:
        for ns in spaces:
            self._names.pop(ns, None)

    def mark_namespace(self, ns: str, mark: str) -> Ticket:
        """Bring ``lo`` up and mark the namespace as nsnet's (alias on ``lo``)."""
        payload = rtnl.ifinfo(rtnl.LOOPBACK_IFINDEX, rtnl.IFF_UP, rtnl.IFF_UP) + rtnl.attr(
            rtnl.IFLA_IFALIAS, mark.encode()
        )
        return self._queue(ns, "set lo up", rtnl.RTM_NEWLINK, rtnl.CHANGE, payload)

    def create_link(self, spec: LinkSpec) -> list[Ticket]:
        """Make a link as ``spec`` describes it (in ``spec.into`` if given; a veth's peer in its own
        namespace), then mark every end it makes, without IPv6 link-local."""
        payload = rtnl.ifinfo() + rtnl.string(rtnl.IFLA_IFNAME, spec.name)
        if spec.lower is not None:
            payload += rtnl.u32(rtnl.IFLA_LINK, self.index(spec.ns, spec.lower))
        if spec.into is not None and spec.into != spec.ns:
            payload += rtnl.u32(rtnl.IFLA_NET_NS_FD, self._ns_fd(spec.into))
        data = b"".join(self._setting(spec.ns, s) for s in spec.data)
        if spec.peer is not None:
            peer = rtnl.ifinfo() + rtnl.string(rtnl.IFLA_IFNAME, spec.peer.ifname)
            if spec.peer.ns != spec.ns:
                peer += rtnl.u32(rtnl.IFLA_NET_NS_FD, self._ns_fd(spec.peer.ns))
            data += rtnl.nest(rtnl.VETH_INFO_PEER, peer)
        info = [rtnl.string(rtnl.IFLA_INFO_KIND, spec.kind)] + ([rtnl.nest(rtnl.IFLA_INFO_DATA, data)] if data else [])
        payload += rtnl.nest(rtnl.IFLA_LINKINFO, *info)
        self._invalidate(spec.ns, *(e.ns for e in spec.ends))
        where = " <-> ".join(str(e) for e in spec.ends)
        made = self._queue(spec.ns, f"create {spec.kind} {where}", rtnl.RTM_NEWLINK, rtnl.NEW, payload)
        # The kernel ignores an alias given at creation, and takes no IPv6 settings
        # for a link that does not exist yet: both are set right after.
        return [made, *(self.change_link(m, phase=1) for m in spec.marks())]

    def _ns_fd(self, ns: str) -> int:
        """A descriptor of ``ns``, held until the queue is sent."""
        if len(self._fds) >= NS_FDS_MAX:
            self._send_queued()  # closes them: a socket per namespace already takes one descriptor each
        fd = netns.open_fd(ns)
        self._fds.append(fd)
        return fd

    def _setting(self, ns: str, s: Setting) -> bytes:
        """One IFLA_INFO_DATA attribute, packed as its parameter says."""
        codec, value = s.param.codec, s.value
        if codec == "ifindex":
            return rtnl.u32(s.param.nla, self.index(ns, str(value)))
        if codec == "ipv4":
            return rtnl.attr(s.param.nla, ipaddress.IPv4Address(value).packed)
        size, order = {"u8": (1, "little"), "u16": (2, "little"), "be16": (2, "big"), "u32": (4, "little")}[codec]
        return rtnl.attr(s.param.nla, int(value).to_bytes(size, order))  # type: ignore[arg-type]

    def fdb_entry(self, ns: str, op: str, dev: str, mac: str, dst: str) -> Ticket:
        """Add (``append``, as ``bridge fdb append``) or delete a VXLAN device's own entry: ``mac`` via VTEP ``dst``."""
        header = rtnl.ndmsg(socket.AF_BRIDGE, self.index(ns, dev), rtnl.NUD_PERMANENT, rtnl.NTF_SELF)
        ip = ipaddress.ip_address(dst)
        payload = header + rtnl.attr(rtnl.NDA_LLADDR, rtnl.mac_bytes(mac)) + rtnl.attr(rtnl.NDA_DST, ip.packed)
        if op == "add":
            flags = rtnl.F_REQUEST | rtnl.F_ACK | rtnl.F_CREATE | rtnl.F_APPEND
            return self._queue(ns, f"fdb append {mac} dev {dev} dst {dst}", rtnl.RTM_NEWNEIGH, flags, payload)
        return self._queue(
            ns, f"fdb del {mac} dev {dev} dst {dst}", rtnl.RTM_DELNEIGH, rtnl.CHANGE, payload, ignore=(errno.ENOENT,)
        )

    def neighbour_entry(self, ns: str, op: str, dev: str, ip: str, mac: str) -> Ticket:
        """Add (replacing any) or delete a permanent neighbour entry."""
        address = ipaddress.ip_address(ip)
        family = socket.AF_INET if address.version == 4 else socket.AF_INET6
        payload = rtnl.ndmsg(family, self.index(ns, dev), rtnl.NUD_PERMANENT) + rtnl.attr(rtnl.NDA_DST, address.packed)
        if op == "add":
            payload += rtnl.attr(rtnl.NDA_LLADDR, rtnl.mac_bytes(mac))
            flags = rtnl.F_REQUEST | rtnl.F_ACK | rtnl.F_CREATE | rtnl.F_REPLACE
            return self._queue(ns, f"neigh replace {ip} lladdr {mac} dev {dev}", rtnl.RTM_NEWNEIGH, flags, payload)
        return self._queue(
            ns, f"neigh del {ip} dev {dev}", rtnl.RTM_DELNEIGH, rtnl.CHANGE, payload, ignore=(errno.ENOENT,)
        )

    def change_link(self, change: LinkSet, phase: int = 0) -> Ticket:
        """Change a link as ``change`` describes it (``master`` "" detaches it from its bridge)."""
        flags = mask = 0
        if change.up is not None:
            flags, mask = (rtnl.IFF_UP if change.up else 0), rtnl.IFF_UP
        payload = rtnl.ifinfo(0, flags, mask) + rtnl.string(rtnl.IFLA_IFNAME, change.name)
        if change.alias is not None:
            payload += rtnl.attr(rtnl.IFLA_IFALIAS, change.alias.encode())
        if change.master is not None:
            payload += rtnl.u32(rtnl.IFLA_MASTER, self.index(change.ns, change.master) if change.master else 0)
        if change.mtu is not None:
            payload += rtnl.u32(rtnl.IFLA_MTU, change.mtu)
        if change.mac is not None:
            payload += rtnl.attr(rtnl.IFLA_ADDRESS, rtnl.mac_bytes(change.mac))
        if change.no_link_local:
            payload += rtnl.NO_LINK_LOCAL
        elif change.link_local:
            payload += rtnl.LINK_LOCAL
        if change.kind is not None:
            data = b"".join(self._setting(change.ns, s) for s in change.data)
            payload += rtnl.nest(
                rtnl.IFLA_LINKINFO,
                rtnl.string(rtnl.IFLA_INFO_KIND, change.kind),
                rtnl.nest(rtnl.IFLA_INFO_DATA, data),
            )
        what = f"set {change.name} {' '.join(change.words())}"
        return self._queue(change.ns, what, rtnl.RTM_NEWLINK, rtnl.CHANGE, payload, phase=phase)

    def delete_link(self, ns: str, name: str) -> Ticket:
        """Delete a link (gone already is fine)."""
        self._invalidate(ns)
        payload = rtnl.ifinfo() + rtnl.string(rtnl.IFLA_IFNAME, name)
        return self._queue(ns, f"delete {name}", rtnl.RTM_DELLINK, rtnl.CHANGE, payload, ignore=(errno.ENODEV,))

    def address(self, ns: str, op: str, ifname: str, cidr: str) -> Ticket:
        ip = ipaddress.ip_interface(cidr)
        family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
        packed = ip.ip.packed
        payload = rtnl.ifaddr(family, ip.network.prefixlen, self.index(ns, ifname))
        payload += rtnl.attr(rtnl.IFA_ADDRESS, packed)
        if ip.version == 4:
            payload += rtnl.attr(rtnl.IFA_LOCAL, packed)
        elif op == "add":
            # IPv6 addresses skip duplicate address detection, so a lab is usable at once.
            payload += rtnl.u32(rtnl.IFA_FLAGS, rtnl.IFA_F_NODAD)
        kind, flags = (rtnl.RTM_NEWADDR, rtnl.NEW) if op == "add" else (rtnl.RTM_DELADDR, rtnl.CHANGE)
        return self._queue(ns, f"{op} address {cidr} on {ifname}", kind, flags, payload)

    def route(self, ns: str, op: str, route: Route) -> Ticket:
        net = ipaddress.ip_network(route.to)
        family = socket.AF_INET if net.version == 4 else socket.AF_INET6
        if op == "add":
            kind, flags, header = rtnl.RTM_NEWROUTE, rtnl.NEW, rtnl.rtmsg(family, net.prefixlen, rtnl.RTPROT_STATIC)
        else:  # scope "nowhere" matches a route of any scope, as `ip route del` does
            header = rtnl.rtmsg(family, net.prefixlen, rtnl.RTPROT_STATIC, scope=rtnl.RT_SCOPE_NOWHERE, kind=0)
            kind, flags = rtnl.RTM_DELROUTE, rtnl.CHANGE
        payload = header
        if net.prefixlen:
            payload += rtnl.attr(rtnl.RTA_DST, net.network_address.packed)
        if route.via:
            payload += rtnl.attr(rtnl.RTA_GATEWAY, ipaddress.ip_address(route.via).packed)
        if route.dev:
            payload += rtnl.u32(rtnl.RTA_OIF, self.index(ns, route.dev))
        if route.metric is not None:
            payload += rtnl.u32(rtnl.RTA_PRIORITY, route.metric)
        return self._queue(ns, f"{op} route {route}", kind, flags, payload)


def kind_fields(kind: str | None, data: bytes | None, names: dict[int, str]) -> dict[str, Any]:
    """The :class:`~nsnet.model.Link` fields a link's kind reads from its IFLA_INFO_DATA."""
    found = kinds.get(kind)
    return found.read(_decode(found.params, data, names)) if found.params else {}


def _decode(params: tuple[Param, ...], data: bytes | None, names: dict[int, str]) -> dict[str, Any]:
    """A kind's IFLA_INFO_DATA, by parameter key (``ifindex`` values as interface names)."""
    found = rtnl.attrs(data, 0) if data else {}
    out: dict[str, Any] = {}
    for p in params:
        raw = found.get(p.nla)
        if raw is None:
            continue
        if p.codec == "ipv4":
            out[p.key] = socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, bytes(raw))
        elif p.codec == "ifindex":
            index = int.from_bytes(raw, "little")
            out[p.key] = names.get(index) if index else None
        else:
            out[p.key] = int.from_bytes(raw, "big" if p.codec == "be16" else "little")
    return out


_FD_LIMIT_RAISED = False


def _raise_fd_limit() -> None:
    """A socket per namespace: a lab of a thousand nodes needs more than the usual 1,024 descriptors."""
    global _FD_LIMIT_RAISED
    if _FD_LIMIT_RAISED:
        return
    _FD_LIMIT_RAISED = True
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard == resource.RLIM_INFINITY else min(hard, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
