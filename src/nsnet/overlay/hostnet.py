"""The overlay controller's side of a host's kernel: its VXLAN devices, the entries it writes, the misses it hears.

Everything goes through nsnet's netlink codec (:mod:`nsnet.kernel.rtnl`), on
sockets made by the controller's thread inside the host's namespace: one for
requests, one bound to RTNLGRP_NEIGH and RTNLGRP_LINK for the misses and the
devices' changes, and a packet socket for gratuitous ARP replies.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from dataclasses import dataclass

import dpkt

from nsnet.kernel import netns, rtnl
from nsnet.overlay.endpoints import OverlayEndpoint

ABSENT = (errno.ENOENT, errno.ENODEV, errno.ESRCH)
"""What deleting an entry that is gone already answers."""


@dataclass(frozen=True)
class LinkChange:
    """A link was made, changed (``gone`` False) or deleted."""

    name: str
    index: int
    master: int | None
    gone: bool


@dataclass(frozen=True)
class Miss:
    """The kernel found no entry on device ``index``: ``l3miss`` for an IP, ``l2miss`` for a MAC."""

    index: int
    kind: str
    addr: str


def norm_ip(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


def decode(mtype: int, body: memoryview) -> LinkChange | Miss | None:
    """What an event of the host's kernel says, or None for what the controller ignores."""
    if mtype in (rtnl.RTM_NEWLINK, rtnl.RTM_DELLINK):
        link = rtnl.LinkMsg(body)
        return LinkChange(link.name, link.index, link.master, mtype == rtnl.RTM_DELLINK)
    if mtype != rtnl.RTM_GETNEIGH:
        return None
    m = rtnl.NeighMsg(body)
    # Told apart by their attributes, not the family: an L2 miss comes as AF_BRIDGE on older
    # kernels but as AF_INET on recent ones (6.x), with the MAC and no NDA_DST either way.
    if m.dst:
        return Miss(m.ifindex, "l3miss", norm_ip(m.dst))
    if m.lladdr:
        return Miss(m.ifindex, "l2miss", m.lladdr.lower())
    return None


class HostNetlink:
    """The sockets of one host; made in the calling thread's namespace (the host's)."""

    def __init__(self, announce: bool) -> None:
        self._sock = rtnl.Socket.open()
        self.events = rtnl.Socket.open(groups=rtnl.RTMGRP_NEIGH | rtnl.RTMGRP_LINK)
        self._packet: socket.socket | None = None
        if announce:
            # Protocol 0: the socket only sends, and receives nothing.
            self._packet = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)

    def close(self) -> None:
        self._sock.close()
        self.events.close()
        if self._packet is not None:
            self._packet.close()

    def link(self, name: str | None = None, index: int = 0) -> rtnl.LinkMsg | None:
        """The link named ``name`` (or of ``index``), None if there is none."""
        payload = rtnl.ifinfo(index) + (rtnl.string(rtnl.IFLA_IFNAME, name) if name else b"")
        try:
            return rtnl.LinkMsg(self._sock.get(rtnl.RTM_GETLINK, payload))
        except OSError as exc:
            if exc.errno in ABSENT:
                return None
            raise

    def name_of(self, index: int | None) -> str | None:
        if not index:
            return None
        found = self.link(index=index)
        return found.name if found else None

    def write(self, index: int, endpoint: OverlayEndpoint, neigh: bool) -> None:
        """Write ``endpoint``'s fdb entry on device ``index`` (and its neighbour entry, with ``neigh``)."""
        if neigh:
            payload = rtnl.neighbour(index, endpoint.ip, endpoint.mac, rtnl.NUD_PERMANENT)
            self._sock.request(rtnl.RTM_NEWNEIGH, rtnl.REPLACE, payload)
        state = rtnl.NUD_PERMANENT | rtnl.NUD_NOARP
        payload = rtnl.fdb(index, endpoint.mac, endpoint.vtep, state, rtnl.NTF_SELF)
        self._sock.request(rtnl.RTM_NEWNEIGH, rtnl.REPLACE, payload)

    def unwrite(self, index: int, endpoint: OverlayEndpoint, neigh: bool, fdb: bool) -> None:
        """Remove the neighbour entry (``neigh``) and the fdb entry (``fdb``) of ``endpoint``; gone already is fine."""
        requests = []
        if neigh:
            requests.append(rtnl.neighbour(index, endpoint.ip, endpoint.mac, rtnl.NUD_PERMANENT))
        if fdb:
            state = rtnl.NUD_PERMANENT | rtnl.NUD_NOARP
            requests.append(rtnl.fdb(index, endpoint.mac, endpoint.vtep, state, rtnl.NTF_SELF))
        for payload in requests:
            try:
                self._sock.request(rtnl.RTM_DELNEIGH, rtnl.CHANGE, payload)
            except OSError as exc:
                if exc.errno not in ABSENT:
                    raise

    def announce(self, bridge: str | None, endpoint: OverlayEndpoint) -> str:
        """Send a gratuitous ARP reply for ``endpoint`` on ``bridge``; a note for the log line."""
        if self._packet is None or bridge is None:
            return ""
        try:
            frame = garp(endpoint.mac, endpoint.ip)
        except (ValueError, OSError):
            return ""  # not an IPv4 endpoint
        try:
            self._packet.sendto(frame, (bridge, 0))
        except OSError as exc:
            return f" (announcing on {bridge} failed: {exc.strerror})"
        return f" (announced on {bridge})"


def garp(mac: str, ip: str) -> bytes:
    """A broadcast gratuitous ARP reply (``ip`` is at ``mac``), as the endpoint itself would send it."""
    hw = bytes.fromhex(mac.replace(":", ""))
    addr = ipaddress.IPv4Address(ip).packed
    if len(hw) != 6:
        raise ValueError(f"bad MAC {mac}")
    broadcast = b"\xff" * 6
    arp = dpkt.arp.ARP(op=dpkt.arp.ARP_OP_REPLY, sha=hw, spa=addr, tha=broadcast, tpa=addr)
    frame = dpkt.ethernet.Ethernet(dst=broadcast, src=hw, type=dpkt.ethernet.ETH_TYPE_ARP, data=arp)
    return bytes(frame).ljust(60, b"\0")


def ident(ns: str) -> tuple[int, int] | None:
    """The identity of a named namespace (a new one of the same name is another); None if there is none."""
    if not ns:
        return None
    try:
        st = os.stat(netns.path(ns))
    except OSError:
        return None
    return st.st_dev, st.st_ino
