"""The destination's ICMP settings: whether it answers an echo request at all (pure)."""

from __future__ import annotations

import ipaddress

from nsnet.explain.base import Stop, WalkerBase, _addresses, _run_in, _yaml_under
from nsnet.explain.netfilter import Packet
from nsnet.explain.verdict import Fix, Leg, Space


class IcmpMixin(WalkerBase):
    """``icmp_echo_ignore_all``, ``icmp_echo_ignore_broadcasts`` and IPv6's ``echo_ignore_all``."""

    def _echo_policy(self, leg: Leg, space: Space, pkt: Packet) -> None:
        """Raise :class:`Stop` if ``space`` ignores the echo request ``pkt`` delivered to it."""
        if pkt.proto not in ("icmp", "icmpv6"):
            return
        sysctls = space.view.sysctls or {}
        key = "net.ipv4.icmp_echo_ignore_all" if pkt.family == 4 else "net.ipv6.icmp.echo_ignore_all"
        if sysctls.get(key) != "1" and self._broadcast(space, pkt):
            key = "net.ipv4.icmp_echo_ignore_broadcasts"
        if sysctls.get(key) != "1":
            return
        node = space.node
        leg.add(
            node, "deliver", f"echo request delivered to {node}, which ignores it ({key}=1): no echo reply", ok=False
        )
        raise Stop(
            "dropped",
            f"{node} ignores echo requests ({key}=1), so no echo reply comes back",
            Fix(
                f"let {node} answer pings",
                command=f"{_run_in(space)}sysctl -w {key}=0",
                topology=_yaml_under(self.where(space), ["sysctls:", f"  {key}: 0"]),
            ),
        )

    def _broadcast(self, space: Space, pkt: Packet) -> bool:
        if pkt.family != 4:
            return False
        dst = ipaddress.ip_address(pkt.dst)
        for a in _addresses(space):
            network = ipaddress.ip_interface(f"{a.address}/{a.prefixlen}").network if a.address else None
            if a.family == 4 and network is not None and a.prefixlen < 31 and dst == network.broadcast_address:
                return True
        return dst == ipaddress.ip_address("255.255.255.255")
