"""Connection tracking on the walk: NAT applied to a request, and reversed for its reply (pure).

The kernel translates a connection's first packet where a NAT rule says
(destination at PREROUTING and OUTPUT, source at POSTROUTING and INPUT) and
remembers both tuples. Every later packet of the connection is translated
the same way without asking the NAT rules again, and a reply is translated
back: the destination of a reply to a masqueraded or SNATed connection
becomes the original source again where the reply comes in (PREROUTING),
and its source becomes the original destination of a DNATed connection
where it goes out (POSTROUTING).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from nsnet.explain.base import WalkerBase, _addresses
from nsnet.explain.netfilter import Decision, Packet
from nsnet.explain.verdict import Leg, Space

DST_HOOKS = ("PREROUTING", "OUTPUT")
"""Where the kernel changes a destination (DNAT, REDIRECT, and a reply's reverse SNAT)."""


@dataclass
class Connection:
    """One connection as one namespace's conntrack holds it: the tuple before and after its NAT there."""

    original: tuple[str, int | None, str, int | None]
    translated: tuple[str, int | None, str, int | None]
    kinds: list[str]
    """The NATs done, in order (``DNAT``, ``MASQUERADE``...)."""


def _tuple(pkt: Packet) -> tuple[str, int | None, str, int | None]:
    return (pkt.src, pkt.sport, pkt.dst, pkt.dport)


def _same_port(a: int | None, b: int | None) -> bool:
    return a is None or b is None or a == b


class ConntrackMixin(WalkerBase):
    """Keeps the NAT each namespace did to the request, to reverse it on the reply."""

    _conns: dict[str, Connection]

    def _forget_connections(self) -> None:
        """A new walk: no connection is known yet."""
        self._conns = {}

    def _nat(self, leg: Leg, space: Space, hook: str, decision: Decision, pkt: Packet, iface: str | None) -> Packet:
        """``pkt`` after the NAT ``decision`` made at ``hook`` (a request), or conntrack's reverse NAT (a reply)."""
        if pkt.direction == "reply":
            return self._reverse(leg, space, hook, pkt)
        nat = decision.nat
        if nat is None:
            return pkt
        before = pkt
        node = space.node
        if hook in DST_HOOKS and nat.kind in ("DNAT", "REDIRECT"):
            if nat.kind == "REDIRECT":
                address = self._primary(space, iface, pkt.family) or ("127.0.0.1" if pkt.family == 4 else "::1")
            else:
                address = nat.address or pkt.dst
            pkt = replace(pkt, dst=address, dport=nat.port or pkt.dport, ct_status=pkt.ct_status | {"dnat"})
            leg.add(node, "netfilter", f"{nat.kind}: destination becomes {_where(pkt.dst, pkt.dport)}")
        elif hook not in DST_HOOKS and nat.kind in ("SNAT", "MASQUERADE"):
            source = nat.address if nat.kind == "SNAT" and nat.address else self._primary(space, iface, pkt.family)
            pkt = replace(pkt, src=source or pkt.src, sport=nat.port or pkt.sport, ct_status=pkt.ct_status | {"snat"})
            leg.add(node, "netfilter", f"{nat.kind}: source becomes {_where(pkt.src, pkt.sport)}")
        else:
            return pkt
        conns = self._conns
        if node in conns:
            conns[node].translated = _tuple(pkt)
            conns[node].kinds.append(nat.kind)
        else:
            conns[node] = Connection(_tuple(before), _tuple(pkt), [nat.kind])
        return pkt

    def _reverse(self, leg: Leg, space: Space, hook: str, pkt: Packet) -> Packet:
        conn = self._conns.get(space.node)
        if conn is None:
            return pkt
        o_src, o_sport, o_dst, o_dport = conn.original
        t_src, t_sport, t_dst, t_dport = conn.translated
        from_far_end = pkt.src == t_dst and _same_port(pkt.sport, t_dport)
        to_near_end = (pkt.dst == t_src and _same_port(pkt.dport, t_sport)) or (
            pkt.dst == o_src and _same_port(pkt.dport, o_sport)
        )
        if not (from_far_end and to_near_end):
            return pkt
        node = space.node
        if hook in DST_HOOKS and (o_src, o_sport) != (t_src, t_sport) and pkt.dst == t_src:
            pkt = replace(pkt, dst=o_src, dport=o_sport if pkt.dport is not None else None)
            kind = next(k for k in conn.kinds if k in ("SNAT", "MASQUERADE"))
            leg.add(
                node,
                "netfilter",
                f"conntrack: the reply of a connection {node} translated by {kind}: "
                f"destination becomes {_where(pkt.dst, pkt.dport)} again",
            )
        elif hook not in DST_HOOKS and (o_dst, o_dport) != (t_dst, t_dport):
            pkt = replace(pkt, src=o_dst, sport=o_dport if pkt.sport is not None else None)
            kind = next(k for k in conn.kinds if k in ("DNAT", "REDIRECT"))
            leg.add(
                node,
                "netfilter",
                f"conntrack: the reply of a connection {node} translated by {kind}: "
                f"source becomes {_where(pkt.src, pkt.sport)} again",
            )
        return pkt

    def _primary(self, space: Space, dev: str | None, family: int) -> str | None:
        """The address the kernel masquerades behind on ``dev`` (its first global address of the family)."""
        for a in _addresses(space, dev):
            if a.family == family and a.address and a.scope == "global":
                return a.address
        return None


def _where(address: str, port: int | None) -> str:
    if port is None:
        return address
    return f"[{address}]:{port}" if ipaddress.ip_address(address).version == 6 else f"{address}:{port}"
