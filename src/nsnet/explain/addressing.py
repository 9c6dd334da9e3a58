"""Where a missing address belongs: the topology's plan, else the neighbour entries that still remember it
(pure). The fix for a removed address adds exactly that address back."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from nsnet.explain.base import WalkerBase, _addresses, _has_address, _ip, _net
from nsnet.explain.verdict import Fix, Space
from nsnet.views import AddressView


class AddressingMixin(WalkerBase):
    """Finds the interface a missing address was on, and the ``ip addr add`` that puts it back."""

    def _lost_owner(self, hop: str) -> tuple[Space, str, int] | None:
        """(namespace, interface, prefix length) ``hop`` belongs on but is not on now."""
        ip = ipaddress.ip_address(hop)
        for node, devices in self.snap.planned.items():
            space = self.snap.spaces.get(node)
            for dev, cidrs in devices.items():
                for cidr in cidrs:
                    iface = ipaddress.ip_interface(cidr)
                    if space is None or iface.ip != ip or dev not in self._links(space):
                        continue
                    if _has_address(space, hop, dev):
                        return None  # it is where it belongs: not a removed address
                    return space, dev, iface.network.prefixlen
        for space in self.snap.spaces.values():
            for n in space.view.neighbours or []:
                if n.address != hop or not n.mac:
                    continue
                owner = self._mac_holder(n.mac)
                if owner is None or _has_address(owner[0], hop):
                    continue
                lengths = [
                    a.prefixlen
                    for a in _addresses(space, n.dev)
                    if a.address and ip in ipaddress.ip_interface(f"{a.address}/{a.prefixlen}").network
                ]
                return owner[0], owner[1], lengths[0] if lengths else (24 if ip.version == 4 else 64)
        return None

    def _mac_holder(self, mac: str) -> tuple[Space, str] | None:
        for space in self.snap.spaces.values():
            for link in space.view.links or []:
                if link.mac and link.mac.lower() == mac.lower() and link.kind != "loopback":
                    return space, link.name
        return None

    def _lost_address_fix(self, hop: str, back_to: str | None = None) -> Fix | None:
        """Put ``hop`` back where it belongs, if that is known: its link up first if it is down (an IPv6 address
        goes with its link), and a route to ``back_to`` when the routes through the address went with it."""
        found = self._lost_owner(hop)
        if found is None:
            return None
        space, dev, length = found
        family = ipaddress.ip_address(hop).version
        where = self.where(space)
        kind = "bridges" if any(b.name == dev for b in space.view.bridges or []) else "interfaces"
        ip = _ip(space, family)
        command = f"{ip} addr add {hop}/{length} dev {dev}"
        link = self._links(space).get(dev)
        if link is not None and link.state != "up":
            command = f"{_ip(space)} link set {dev} up && {command}"
        if back_to and ipaddress.ip_address(back_to).version == family:
            route = self._route_back(space, dev, hop, length, back_to)
            if route:
                command += f" && {route}"
        return Fix(
            f"give {space.node}:{dev} its address {hop}/{length} back",
            command=command,
            topology=f"{where}.{kind}.{dev}.addresses lists {hop}/{length}: `nsnet up` puts it back" if where else None,
        )

    def _route_back(self, space: Space, dev: str, hop: str, length: int, back_to: str) -> str | None:
        """The route ``space`` needs to ``back_to`` once ``hop`` is back on ``dev``, when it has none without it."""
        net = ipaddress.ip_interface(f"{hop}/{length}").network
        if ipaddress.ip_address(back_to) in net:
            return None
        family = net.version
        if any(
            r.family == family
            and r.table == "main"
            and r.type == "unicast"
            and ipaddress.ip_address(back_to) in _net(r)
            and (r.gateway is None or ipaddress.ip_address(r.gateway) not in net)
            for r in space.view.routes or []
        ):
            return None
        restored = replace(
            space,
            view=replace(
                space.view, addresses=[*(space.view.addresses or []), AddressView(dev, family, hop, length, "global")]
            ),
        )
        return self._concrete_route(restored, back_to)

    def _lost_address(self, space: Space) -> str | None:
        """An address ``space`` should have and has not (IPv4 first), if that is known."""
        planned = [
            ipaddress.ip_interface(cidr).ip
            for dev, cidrs in self.snap.planned.get(space.node, {}).items()
            for cidr in cidrs
            if dev in self._links(space)
        ]
        for ip in sorted(planned, key=lambda ip: ip.version):
            if not _has_address(space, str(ip)) and not ip.is_link_local:
                return str(ip)
        if any(a.scope == "global" for a in _addresses(space)):
            return None
        macs = {link.mac.lower() for link in space.view.links or [] if link.mac and link.kind != "loopback"}
        for other in self.snap.spaces.values():
            for n in other.view.neighbours or []:
                if n.mac and n.mac.lower() in macs and n.address and not ipaddress.ip_address(n.address).is_link_local:
                    return n.address
        return None
