"""Bridge, veth pair, addresses and routes, through nsnet's netlink codec (:mod:`nsnet.kernel.rtnl`).

The node is the namespace the plugin runs in; the container's namespace is
the one ``CNI_NETNS`` names (a path: ``/run/netns/NAME``, ``/proc/PID/ns/net``).
A netlink socket is opened in each (the container's by entering it for the
moment it takes, then coming back), and every change is a netlink request on
one of them: no ``ip`` process, no pyroute2 (whose import alone would double
the plugin's start-up time).

The veth pair is made in the node with its container end created directly in
the container's namespace, as nsnet does for a lab. The node's end gets a
name derived from the attachment (``veth`` + 8 hex digits of a hash of
network, container id and interface name), so DEL and GC find it without
the container, and an alias naming the attachment.
"""

from __future__ import annotations

import _socket as socket  # socket.py's enums cost a plugin started once per container a millisecond
import errno
import ipaddress
import os

from nsnet.cni import spec
from nsnet.cni.record import record
from nsnet.cni.spec import CniError
from nsnet.kernel import rtnl

TYPE_CHECKING = False  # typing is not imported at run time: the plugin starts once per container
if TYPE_CHECKING:
    from typing import Any

CLONE_NEWNET = 0x40000000
ALIAS_PREFIX = "nsnet-cni"
ALIAS_MAX = 127


def sha256_hex(data: bytes) -> str:
    """``hashlib.sha256(data).hexdigest()``, from Python's own implementation when it has one
    (hashlib loads OpenSSL first: two milliseconds of a plugin started once per container)."""
    for builtin in ("_sha2", "_sha256"):  # Python 3.12 and later; 3.11
        try:
            module: Any = __import__(builtin)
        except ImportError:
            continue
        return str(module.sha256(data).hexdigest())
    import hashlib

    return hashlib.sha256(data).hexdigest()


def host_ifname(network: str, container_id: str, ifname: str) -> str:
    """The node's end of the attachment's veth pair: ``veth`` + 8 hex digits."""
    digest = sha256_hex(f"{network}\0{container_id}\0{ifname}".encode())
    return "veth" + digest[:8]


def alias_for(network: str, container_id: str, ifname: str) -> str:
    """The alias marking the node's end of the veth as this attachment's."""
    text = f"{ALIAS_PREFIX}:{network}:{container_id}:{ifname}"
    if len(text.encode()) <= ALIAS_MAX:
        return text
    short = host_ifname(network, container_id, ifname)  # ASCII: names and ids are
    return f"{ALIAS_PREFIX}:{network}:"[: ALIAS_MAX - len(short)] + short


def parse_alias(alias: str | None) -> tuple[str, str, str] | None:
    """``(network, container id, ifname)`` of a veth marked by :func:`alias_for` (unless hashed)."""
    parts = (alias or "").split(":")
    if len(parts) != 4 or parts[0] != ALIAS_PREFIX:
        return None
    return parts[1], parts[2], parts[3]


def _fail(what: str, exc: OSError) -> CniError:
    return CniError(spec.INTERNAL, f"{what}: {exc.strerror or exc}")


# -- namespaces and sockets --------------------------------------------------


def open_netns(path: str) -> int:
    """An fd of the container's namespace; :class:`CniError` (unknown container) if there is none."""
    try:
        # Non-blocking: a FIFO (or a device) named as CNI_NETNS must not hang the plugin on open.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise CniError(spec.UNKNOWN_CONTAINER, f"cannot open network namespace {path!r}: {exc.strerror}") from None
    own = os.stat("/proc/self/ns/net")
    st = os.fstat(fd)
    if st.st_dev != own.st_dev:  # every namespace file lives on the kernel's nsfs
        os.close(fd)
        raise CniError(
            spec.INVALID_ENVIRONMENT,
            f"CNI_NETNS {path!r} is not a network namespace",
            "name a namespace file: /run/netns/NAME or /proc/PID/ns/net",
        )
    if (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino):
        os.close(fd)
        raise CniError(spec.INVALID_ENVIRONMENT, f"CNI_NETNS {path!r} is the namespace the plugin runs in")
    return fd


_LIBC: Any = None


def setns(fd: int) -> None:
    """Move this thread into the network namespace open as ``fd``.

    (:func:`nsnet.kernel.netns.setns` does the same, but importing that module costs a
    plugin started once per container a few milliseconds more.)
    """
    import ctypes

    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    if _LIBC.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def socket_in(fd: int, path: str) -> rtnl.Socket:
    """A netlink socket made inside the namespace open as ``fd`` (this thread comes back at once)."""
    back = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            setns(fd)
        except OSError as exc:
            raise CniError(
                spec.UNKNOWN_CONTAINER, f"{path!r} is not a network namespace: {exc.strerror or exc}"
            ) from None
        try:
            return rtnl.Socket.open()
        finally:
            setns(back)
    finally:
        os.close(back)


@record
class Link:
    index: int
    name: str
    kind: str | None
    mac: str | None
    mtu: int | None
    master: int | None
    peer_index: int | None
    flags: int
    alias: str | None


def get_link(sock: rtnl.Socket, name: str) -> Link | None:
    payload = rtnl.ifinfo() + rtnl.string(rtnl.IFLA_IFNAME, name)
    payload += rtnl.u32(rtnl.IFLA_EXT_MASK, rtnl.RTEXT_FILTER_SKIP_STATS)
    try:
        body = sock.get(rtnl.RTM_GETLINK, payload)
    except OSError as exc:
        if exc.errno in (errno.ENODEV, errno.ENOENT):
            return None
        raise _fail(f"look up {name}", exc) from None
    m = rtnl.parse_link(body)
    return Link(m.index, m.name, m.kind, m.mac, m.mtu, m.master, m.peer_index, m.flags, m.alias)


def list_links(sock: rtnl.Socket) -> list[Link]:
    payload = rtnl.ifinfo() + rtnl.u32(rtnl.IFLA_EXT_MASK, rtnl.RTEXT_FILTER_SKIP_STATS)
    try:
        bodies = sock.dump(rtnl.RTM_GETLINK, payload)
    except OSError as exc:
        raise _fail("list links", exc) from None
    out = []
    for body in bodies:
        m = rtnl.parse_link(body)
        out.append(Link(m.index, m.name, m.kind, m.mac, m.mtu, m.master, m.peer_index, m.flags, m.alias))
    return out


def _change(sock: rtnl.Socket, what: str, payload: bytes, kind: int = rtnl.RTM_NEWLINK) -> None:
    try:
        sock.request(kind, rtnl.CHANGE, payload)
    except OSError as exc:
        raise _fail(what, exc) from None


def set_link(
    sock: rtnl.Socket,
    link: Link,
    *,
    up: bool = False,
    promisc: bool = False,
    master: int | None = None,
    alias: str | None = None,
) -> None:
    flags = (rtnl.IFF_UP if up else 0) | (rtnl.IFF_PROMISC if promisc else 0)
    payload = rtnl.ifinfo(link.index, flags, flags)
    if master is not None:
        payload += rtnl.u32(rtnl.IFLA_MASTER, master)
    if alias is not None:
        payload += rtnl.attr(rtnl.IFLA_IFALIAS, alias.encode())
    _change(sock, f"set up {link.name}", payload)


def set_hairpin(sock: rtnl.Socket, link: Link) -> None:
    """``bridge link set dev LINK hairpin on``: frames may go back out of the port they came in by."""
    protinfo = rtnl.attr(rtnl.IFLA_PROTINFO | rtnl.NLA_F_NESTED, rtnl.attr(rtnl.IFLA_BRPORT_MODE, b"\x01"))
    _change(
        sock,
        f"set hairpin mode on {link.name}",
        rtnl.ifinfo(link.index, family=rtnl.AF_BRIDGE) + protinfo,
        rtnl.RTM_SETLINK,
    )


def delete_link(sock: rtnl.Socket, name: str) -> bool:
    """Delete a link (its veth peer goes with it); whether it existed."""
    try:
        sock.request(rtnl.RTM_DELLINK, rtnl.CHANGE, rtnl.ifinfo() + rtnl.string(rtnl.IFLA_IFNAME, name))
    except OSError as exc:
        if exc.errno in (errno.ENODEV, errno.ENOENT):
            return False
        raise _fail(f"delete {name}", exc) from None
    return True


# -- the bridge and the veth pair ----------------------------------------------


def random_mac() -> bytes:
    """A random unicast, locally administered MAC (as the kernel's ``eth_random_addr``)."""
    mac = bytearray(os.urandom(6))
    mac[0] = (mac[0] & 0xFE) | 0x02
    return bytes(mac)


def ensure_bridge(sock: rtnl.Socket, name: str, mtu: int | None, promisc: bool, network: str) -> Link:
    """The bridge, created (with ``mtu`` and a fixed MAC) if it does not exist, up (and promiscuous if asked)."""
    link = get_link(sock, name)
    if link is None:
        info = rtnl.nest(rtnl.IFLA_LINKINFO, rtnl.string(rtnl.IFLA_INFO_KIND, "bridge"))
        payload = rtnl.ifinfo() + rtnl.string(rtnl.IFLA_IFNAME, name) + info
        # A MAC of its own, set (addr_assign_type 3): left unset, the bridge takes its lowest
        # port's, and changes it when that container goes, leaving the others' neighbour entries
        # for their gateway stale until they expire.
        payload += rtnl.attr(rtnl.IFLA_ADDRESS, random_mac())
        if mtu:
            payload += rtnl.u32(rtnl.IFLA_MTU, mtu)
        try:
            sock.request(rtnl.RTM_NEWLINK, rtnl.NEW, payload)
        except OSError as exc:
            if exc.errno != errno.EEXIST:  # made meanwhile by another network's plugin
                raise _fail(f"create bridge {name}", exc) from None
        link = get_link(sock, name)
        if link is None:
            raise CniError(spec.INTERNAL, f"bridge {name} vanished just after it was created")
        if link.alias is None:
            set_link(sock, link, alias=f"{ALIAS_PREFIX}:{network}")
    if link.kind != "bridge":
        raise CniError(spec.INVALID_CONFIG, f"{name} exists in the node and is not a bridge ({link.kind or 'device'})")
    if not link.flags & rtnl.IFF_UP or (promisc and not link.flags & rtnl.IFF_PROMISC):
        set_link(sock, link, up=True, promisc=promisc)
    return link


def create_veth(node: rtnl.Socket, host: str, container_fd: int, ifname: str, mtu: int | None) -> None:
    """The veth pair: ``host`` in the node, ``ifname`` made directly in the container's namespace."""
    peer = rtnl.ifinfo() + rtnl.string(rtnl.IFLA_IFNAME, ifname) + rtnl.u32(rtnl.IFLA_NET_NS_FD, container_fd)
    payload = rtnl.ifinfo() + rtnl.string(rtnl.IFLA_IFNAME, host)
    if mtu:
        peer += rtnl.u32(rtnl.IFLA_MTU, mtu)
        payload += rtnl.u32(rtnl.IFLA_MTU, mtu)
    payload += rtnl.nest(
        rtnl.IFLA_LINKINFO,
        rtnl.string(rtnl.IFLA_INFO_KIND, "veth"),
        rtnl.nest(rtnl.IFLA_INFO_DATA, rtnl.nest(rtnl.VETH_INFO_PEER, peer)),
    )
    try:
        node.request(rtnl.RTM_NEWLINK, rtnl.NEW, payload)
    except OSError as exc:
        raise _fail(f"create veth pair {host} <-> {ifname}", exc) from None


# -- addresses and routes ----------------------------------------------------


def _family(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    return socket.AF_INET if ip.version == 4 else socket.AF_INET6


def add_address(sock: rtnl.Socket, link: Link, cidr: str) -> None:
    """An address with its broadcast (IPv4, as the reference plugin's netlink library sets it); present is fine."""
    ip = ipaddress.ip_interface(cidr)
    packed = ip.ip.packed
    payload = rtnl.ifaddr(_family(ip.ip), ip.network.prefixlen, link.index)
    payload += rtnl.attr(rtnl.IFA_LOCAL, packed) + rtnl.attr(rtnl.IFA_ADDRESS, packed)
    if ip.version == 4 and ip.network.prefixlen < 31:
        payload += rtnl.attr(rtnl.IFA_BROADCAST, ip.network.broadcast_address.packed)
    if ip.version == 6:
        payload += rtnl.u32(rtnl.IFA_FLAGS, rtnl.IFA_F_NODAD)
    try:
        sock.request(rtnl.RTM_NEWADDR, rtnl.NEW, payload)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise _fail(f"add address {cidr} on {link.name}", exc) from None


def add_route(sock: rtnl.Socket, link: Link, dst: str, gateway: str | None) -> None:
    """A route through ``link`` (via ``gateway`` if given); present is fine."""
    net = ipaddress.ip_network(dst, strict=False)
    scope = rtnl.RT_SCOPE_UNIVERSE if gateway else rtnl.RT_SCOPE_LINK
    payload = rtnl.rtmsg(
        _family(net.network_address), net.prefixlen, rtnl.RTPROT_BOOT, table=rtnl.RT_TABLE_MAIN, scope=scope
    )
    if net.prefixlen:
        payload += rtnl.attr(rtnl.RTA_DST, net.network_address.packed)
    if gateway:
        payload += rtnl.attr(rtnl.RTA_GATEWAY, ipaddress.ip_address(gateway).packed)
    payload += rtnl.u32(rtnl.RTA_OIF, link.index)
    try:
        sock.request(rtnl.RTM_NEWROUTE, rtnl.NEW, payload)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            via = f" via {gateway}" if gateway else ""
            raise _fail(f"add route {dst}{via} dev {link.name}", exc) from None


def addresses(sock: rtnl.Socket, link: Link) -> set[str]:
    """The addresses on ``link``, as ``address/prefix``."""
    out = set()
    for body in sock.dump(rtnl.RTM_GETADDR, rtnl.ifaddr(socket.AF_UNSPEC, 0, 0)):
        a = rtnl.parse_addr(body)
        if a.index == link.index and (a.local or a.address):
            out.add(str(ipaddress.ip_interface(f"{a.local or a.address}/{a.prefixlen}")))
    return out


def routes(sock: rtnl.Socket, link: Link) -> set[tuple[str, str | None]]:
    """``(destination, gateway)`` of the main table's routes through ``link``."""
    out: set[tuple[str, str | None]] = set()
    for body in sock.dump(rtnl.RTM_GETROUTE, rtnl.rtmsg(socket.AF_UNSPEC, 0, 0, table=0, kind=0)):
        r = rtnl.parse_route(body)
        if r.table != rtnl.RT_TABLE_MAIN or r.oif != link.index or r.family not in (socket.AF_INET, socket.AF_INET6):
            continue
        dst = r.dst or ("0.0.0.0" if r.family == socket.AF_INET else "::")
        out.add((str(ipaddress.ip_network(f"{dst}/{r.dst_len}")), r.gateway))
    return out


def set_sysctl(key: str, value: str) -> None:
    """Write a sysctl of the plugin's namespace (``/proc/sys/net`` is per namespace), if it differs."""
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
        with open(path, "w") as f:
            f.write(value)
    except OSError as exc:
        raise CniError(spec.INTERNAL, f"cannot set {key}={value}: {exc.strerror or exc}") from None
