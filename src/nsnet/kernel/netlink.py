"""Links, addresses and routes through netlink (pyroute2), one socket per namespace."""

from __future__ import annotations

import errno
import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ..errors import KernelError
from ..model import ROOT_NS, Endpoint, Link, Route
from . import netns

RTPROT_STATIC = 4
IFF_UP = 1
IFA_F_NODAD = 0x02
# As Docker does: no IPv6 link-local addresses (nor the DAD, MLD and router
# solicitations they bring) on lab links; IPv6 works where addresses are given.
NO_LINK_LOCAL = {"attrs": [("AF_INET6", {"attrs": [("IFLA_INET6_ADDR_GEN_MODE", 1)]})]}


@dataclass
class RawLink:
    """A link as read from the kernel, before veth peers are resolved."""

    index: int
    link: Link
    alias: str | None
    peer_index: int | None = None
    peer_nsid: int | None = None
    ips: list[str] = field(default_factory=list)


def _describe(exc: NetlinkError) -> str:
    return f"{os.strerror(exc.code)} (errno {errno.errorcode.get(exc.code, exc.code)})"


class Netlink:
    """One pyroute2 socket per namespace, opened on first use, closed by :meth:`close`."""

    def __init__(self) -> None:
        self._sockets: dict[str, IPRoute] = {}

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()

    def forget(self, ns: str) -> None:
        sock = self._sockets.pop(ns, None)
        if sock is not None:
            sock.close()

    def sock(self, ns: str) -> IPRoute:
        if ns not in self._sockets:
            if not netns.exists(ns):
                raise KernelError(f"network namespace {ns!r} does not exist")
            self._sockets[ns] = IPRoute() if ns == ROOT_NS else IPRoute(netns=ns, flags=0)
        return self._sockets[ns]

    def call(self, ns: str, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.sock(ns), method)(*args, **kwargs)
        except NetlinkError as exc:
            raise KernelError(f"{what}: {_describe(exc)}") from exc

    def index(self, ns: str, ifname: str) -> int:
        found = self.call(ns, f"look up {ifname}", "link_lookup", ifname=ifname)
        if not found:
            raise KernelError(f"interface {ifname!r} does not exist in {ns or 'root'}")
        return int(found[0])

    # -- reading -------------------------------------------------------------

    def links(self, ns: str) -> dict[str, RawLink]:
        """Every link in ``ns`` except ``lo``, with global addresses."""
        msgs = self.call(ns, "list links", "get_links")
        by_index: dict[int, str] = {m["index"]: m.get("ifname") for m in msgs}
        out: dict[str, RawLink] = {}
        for m in msgs:
            name = m.get("ifname")
            kind = m.get(("IFLA_LINKINFO", "IFLA_INFO_KIND"))
            if name == "lo":
                continue
            master_idx = m.get("IFLA_MASTER")
            stp = ageing = None
            if kind == "bridge":
                data = m.get(("IFLA_LINKINFO", "IFLA_INFO_DATA"))
                if data is not None:
                    stp = bool(data.get("IFLA_BR_STP_STATE"))
                    ageing = int(data.get("IFLA_BR_AGEING_TIME") or 0) // 100
            link = Link(
                name=name,
                kind=kind if kind in ("veth", "bridge") else kind or "other",  # type: ignore[arg-type]
                master=by_index.get(master_idx) if master_idx else None,
                mtu=m.get("IFLA_MTU"),
                mac=m.get("IFLA_ADDRESS"),
                up=bool(m["flags"] & IFF_UP),
                stp=stp,
                ageing=ageing,
            )
            raw = RawLink(index=m["index"], link=link, alias=m.get("IFLA_IFALIAS"))
            if kind == "veth":
                raw.peer_index = m.get("IFLA_LINK")
                raw.peer_nsid = m.get("IFLA_LINK_NETNSID")
            out[name] = raw
        names = {r.index: n for n, r in out.items()}
        for a in self.call(ns, "list addresses", "get_addr"):
            ip = ipaddress.ip_interface(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}")
            if ip.is_link_local and ip.version == 6:
                continue
            owner = names.get(a["index"])
            if owner:
                out[owner].ips.append(str(ip))
        return out

    def routes(self, ns: str) -> set[Route]:
        """Static routes (``proto static``) of the main table."""
        routes: set[Route] = set()
        names = {m["index"]: m.get("ifname") for m in self.call(ns, "list links", "get_links")}
        for family in (2, 10):
            for r in self.call(ns, "list routes", "get_routes", family=family, table=254):
                if r["proto"] != RTPROT_STATIC:
                    continue
                dst = r.get("RTA_DST") or ("0.0.0.0" if family == 2 else "::")
                oif = r.get("RTA_OIF")
                routes.add(
                    Route(
                        to=str(ipaddress.ip_network(f"{dst}/{r['dst_len']}")),
                        via=r.get("RTA_GATEWAY"),
                        dev=names.get(oif) if oif else None,
                        metric=r.get("RTA_PRIORITY"),
                    )
                )
        return routes

    def lo_alias(self, ns: str) -> str | None:
        msgs = self.call(ns, "look up lo", "get_links", self.index(ns, "lo"))
        return msgs[0].get("IFLA_IFALIAS") if msgs else None

    # -- changing ------------------------------------------------------------

    def mark_namespace(self, ns: str, mark: str) -> None:
        """Bring ``lo`` up and mark the namespace as nsnet's (alias on ``lo``)."""
        self.call(ns, "set lo up", "link", "set", index=self.index(ns, "lo"), state="up", ifalias=mark)

    def add_veth(self, a: Endpoint, b: Endpoint, mark: str) -> None:
        peer: dict[str, Any] = {"ifname": b.ifname}
        fd = None
        if b.ns != a.ns:
            fd = os.open(netns.path(b.ns), os.O_RDONLY)
            peer["net_ns_fd"] = fd
        try:
            self.call(a.ns, f"create veth {a} <-> {b}", "link", "add", ifname=a.ifname, kind="veth", peer=peer)
        finally:
            if fd is not None:
                os.close(fd)
        self.set_link(a.ns, a.ifname, ifalias=mark, IFLA_AF_SPEC=NO_LINK_LOCAL)
        self.set_link(b.ns, b.ifname, ifalias=mark, IFLA_AF_SPEC=NO_LINK_LOCAL)

    def add_bridge(self, ns: str, name: str, mark: str, stp: bool, ageing: int | None) -> None:
        kwargs: dict[str, Any] = {"br_stp_state": int(stp)}
        if ageing is not None:
            kwargs["br_ageing_time"] = ageing * 100
        self.call(ns, f"create bridge {name}", "link", "add", ifname=name, kind="bridge", **kwargs)
        # The kernel ignores an alias given at creation; set it separately.
        self.set_link(ns, name, ifalias=mark, IFLA_AF_SPEC=NO_LINK_LOCAL)

    def set_link(self, ns: str, name: str, **attrs: Any) -> None:
        self.call(ns, f"set {name} {attrs}", "link", "set", index=self.index(ns, name), **attrs)

    def set_bridge(self, ns: str, name: str, **attrs: Any) -> None:
        self.call(ns, f"set bridge {name} {attrs}", "link", "set", index=self.index(ns, name), kind="bridge", **attrs)

    def delete_link(self, ns: str, name: str) -> None:
        try:
            self.sock(ns).link("del", index=self.index(ns, name))
        except KernelError:
            return
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:
                raise KernelError(f"delete {name}: {_describe(exc)}") from exc

    def address(self, ns: str, op: str, ifname: str, cidr: str) -> None:
        ip = ipaddress.ip_interface(cidr)
        # IPv6 addresses skip duplicate address detection, so a lab is usable at once.
        extra = {"flags": IFA_F_NODAD} if ip.version == 6 and op == "add" else {}
        self.call(
            ns,
            f"{op} address {cidr} on {ifname}",
            "addr",
            op,
            index=self.index(ns, ifname),
            address=str(ip.ip),
            prefixlen=ip.network.prefixlen,
            **extra,
        )

    def route(self, ns: str, op: str, route: Route) -> None:
        net = ipaddress.ip_network(route.to)
        kwargs: dict[str, Any] = {
            "dst": str(net.network_address),
            "dst_len": net.prefixlen,
            "proto": RTPROT_STATIC,
            "family": 2 if net.version == 4 else 10,
        }
        if route.via:
            kwargs["gateway"] = route.via
        if route.dev:
            kwargs["oif"] = self.index(ns, route.dev)
        if route.metric is not None:
            kwargs["priority"] = route.metric
        self.call(ns, f"{op} route {route}", "route", op, **kwargs)
