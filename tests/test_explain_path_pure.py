"""The kernel path outside netfilter, pure: route types and rules, forwarding, rp_filter, ARP and neighbours,
ICMP sysctls, bridge port flags and removed addresses, on saved snapshots changed in memory."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from nsnet.explain import Walker
from nsnet.explain.snapshot import from_json, to_json
from nsnet.explain.verdict import Explanation, Snapshot
from nsnet.views import BridgePortView, FdbView, NeighbourView, PolicyRuleView, RouteView

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"
ROUTED = json.loads((DATA / "routed-snapshot.json").read_text())
LAB2 = json.loads((DATA / "lab2-snapshot.json").read_text())


def routed() -> Snapshot:
    return from_json(ROUTED)


def bridged() -> Snapshot:
    """Lab 2 with bridged traffic kept away from the host's iptables: reachable as saved."""
    snap = from_json(LAB2)
    host = snap.spaces["host"].view
    return change(snap, "host", sysctls=dict(host.sysctls or {}, **{"net.bridge.bridge-nf-call-iptables": "0"}))


def change(snap: Snapshot, node: str, **fields: Any) -> Snapshot:
    space = snap.spaces[node]
    return replace(snap, spaces=dict(snap.spaces, **{node: replace(space, view=replace(space.view, **fields))}))


def sysctl(snap: Snapshot, node: str, **values: str) -> Snapshot:
    current = snap.spaces[node].view.sysctls or {}
    return change(snap, node, sysctls={**current, **{k.replace("__", "."): v for k, v in values.items()}})


def route(dst: str, kind: str = "unicast", table: str = "main", **more: Any) -> RouteView:
    fields: dict[str, Any] = {"gateway": None, "dev": None, "proto": "static", "scope": "global", "src": None}
    fields.update(more)
    return RouteView(family=4, table=table, type=kind, dst=dst, metric=None, **fields)


def add_routes(snap: Snapshot, node: str, *routes: RouteView) -> Snapshot:
    return change(snap, node, routes=[*routes, *(snap.spaces[node].view.routes or [])])


def add_rules(snap: Snapshot, node: str, *rules: PolicyRuleView) -> Snapshot:
    return change(snap, node, rules=sorted([*rules, *(snap.spaces[node].view.rules or [])], key=lambda r: r.priority))


def explain(snap: Snapshot, src: str = "RED", dst: str = "BLUE", **kw: Any) -> Explanation:
    return Walker(snap).explain(src, dst, **kw)


def failed(e: Explanation) -> str:
    return " | ".join(s.text for leg in e.legs for s in leg.steps if not s.ok)


def command(e: Explanation) -> str:
    assert e.fix is not None and e.fix.command, e.verdict
    return e.fix.command


# -- snapshots ---------------------------------------------------------------------------------------


def test_both_snapshots_round_trip_and_are_reachable() -> None:
    assert to_json(routed()) == ROUTED
    assert to_json(from_json(LAB2)) == LAB2  # saved before rules, port flags and conf sysctls were read
    assert explain(routed()).reachable
    assert explain(bridged()).reachable


# -- routes and rules ------------------------------------------------------------------------------------


def test_a_prohibit_route_rejects_and_is_deleted() -> None:
    e = explain(add_routes(routed(), "R", route("10.2.0.2/32", "prohibit")))
    assert not e.reachable and e.legs[0].outcome == "rejected"
    assert "R's route to 10.2.0.2 is a prohibit route" in e.verdict
    assert command(e) == "ip -n kpsnap-R route del prohibit 10.2.0.2/32"


def test_a_blackhole_drops_silently_and_an_unreachable_default_is_replaced() -> None:
    e = explain(add_routes(routed(), "R", route("10.2.0.0/25", "blackhole")))
    assert e.legs[0].outcome == "dropped" and "blackhole" in failed(e)
    snap = routed()
    rest = [r for r in snap.spaces["RED"].view.routes or [] if r.dst != "default"]
    e = explain(change(snap, "RED", routes=[route("default", "unreachable"), *rest]))
    assert e.legs[0].outcome == "rejected"
    assert command(e) == (
        "ip -n kpsnap-RED route del unreachable default && "
        "ip -n kpsnap-RED route add 10.2.0.0/24 via 10.1.0.1 dev reth0"
    )


def test_policy_rules_are_followed_in_priority_order() -> None:
    to_100 = PolicyRuleView(4, 100, "lookup", "100", src="10.1.0.0/24")
    snap = add_rules(add_routes(routed(), "R", route("default", "blackhole", table="100")), "R", to_100)
    e = explain(snap)
    assert not e.reachable and "blackhole default table 100" in failed(e)
    thrown = explain(add_routes(snap, "R", route("10.2.0.0/24", "throw", table="100")))
    assert thrown.reachable, thrown.verdict
    assert any("table 100: throw 10.2.0.0/24" in s.text for s in thrown.legs[0].steps)
    other = explain(add_rules(routed(), "R", PolicyRuleView(4, 10, "blackhole", None, src="192.0.2.0/24")))
    assert other.reachable


def test_a_refusing_rule_names_its_priority() -> None:
    e = explain(add_rules(routed(), "R", PolicyRuleView(4, 50, "unreachable", None, dst="10.2.0.2/32")))
    assert e.legs[0].outcome == "rejected" and "policy rule 50" in e.verdict
    assert command(e) == "ip -n kpsnap-R rule del pref 50"


def test_an_unmodelled_route_type_is_unknown_not_a_crash() -> None:
    e = explain(add_routes(routed(), "R", route("10.2.0.2/32", "nat")))
    assert e.legs[0].outcome == "unknown" and "does not model" in e.verdict


def test_the_no_route_fix_names_the_router() -> None:
    snap = routed()
    e = explain(change(snap, "RED", routes=[r for r in snap.spaces["RED"].view.routes or [] if r.dst != "default"]))
    assert command(e) == "ip -n kpsnap-RED route add 10.2.0.0/24 via 10.1.0.1 dev reth0"


# -- forwarding and rp_filter --------------------------------------------------------------------------


def test_forwarding_is_the_ingress_interfaces_flag() -> None:
    e = explain(sysctl(routed(), "R", net__ipv4__conf__r1__forwarding="0"))
    assert "net.ipv4.conf.r1.forwarding=0" in failed(e)
    assert command(e) == "ip netns exec kpsnap-R sysctl -w net.ipv4.conf.r1.forwarding=1"
    reply = explain(sysctl(routed(), "R", net__ipv4__conf__r2__forwarding="0"))
    assert reply.legs[0].outcome == "delivered" and reply.legs[1].outcome == "dropped"
    per_interface = sysctl(routed(), "R", net__ipv4__ip_forward="0", net__ipv4__conf__all__forwarding="0")
    assert explain(per_interface).reachable
    off = {f"net__ipv4__conf__{d}__forwarding": "0" for d in ("r1", "r2", "r3")}
    e = explain(sysctl(per_interface, "R", **off))
    assert command(e) == "ip netns exec kpsnap-R sysctl -w net.ipv4.ip_forward=1"


def test_ipv6_forwarding_is_global() -> None:
    assert "net.ipv6.conf.all.forwarding" in failed(
        explain(sysctl(routed(), "R", net__ipv6__conf__all__forwarding="0"), dst="fd02::2")
    )


def test_a_router_without_link_local_cannot_solicit_for_a_forwarded_packet() -> None:
    e = explain(routed(), dst="fd02::2")
    assert "no link-local address on r2" in failed(e)
    assert command(e).startswith("ip -6 -n kpsnap-R addr add fe80::") and command(e).endswith("/64 dev r2")


def _asymmetric() -> Snapshot:
    snap = routed()
    red = snap.spaces["RED"].view.routes or []
    return add_routes(
        change(snap, "RED", routes=red), "RED", route("10.2.0.0/24", gateway="10.3.0.1", dev="reth1", src="10.1.0.2")
    )


def test_rp_filter_strict_and_loose() -> None:
    e = explain(sysctl(_asymmetric(), "R", net__ipv4__conf__all__rp_filter="1"))
    assert "rp_filter=1 (strict) on r3" in failed(e)
    assert command(e) == "ip netns exec kpsnap-R sysctl -w net.ipv4.conf.all.rp_filter=2"
    assert explain(sysctl(_asymmetric(), "R", net__ipv4__conf__all__rp_filter="2")).reachable
    # max(all, dev): strict on the interface is strict whatever all says; the fix loosens what is set
    e = explain(sysctl(_asymmetric(), "R", net__ipv4__conf__r3__rp_filter="1"))
    assert command(e) == "ip netns exec kpsnap-R sysctl -w net.ipv4.conf.r3.rp_filter=2"
    e = explain(sysctl(_asymmetric(), "R", net__ipv4__conf__all__rp_filter="1", net__ipv4__conf__r3__rp_filter="1"))
    assert command(e) == ("ip netns exec kpsnap-R sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.r3.rp_filter=2")
    assert explain(sysctl(routed(), "R", net__ipv4__conf__all__rp_filter="1")).reachable


# -- ARP and neighbours -------------------------------------------------------------------------------------


def test_arp_ignore_and_arp_filter() -> None:
    e = explain(sysctl(bridged(), "BLUE", net__ipv4__conf__all__arp_ignore="8"))
    assert "arp_ignore=8" in failed(e)
    assert command(e) == "ip netns exec lab2-BLUE sysctl -w net.ipv4.conf.all.arp_ignore=0"
    assert explain(sysctl(bridged(), "BLUE", net__ipv4__conf__beth0__arp_ignore="1")).reachable


def test_arp_filter_answers_only_where_the_route_back_leaves() -> None:
    snap = sysctl(bridged(), "BLUE", net__ipv4__conf__all__arp_filter="1")
    assert explain(snap).reachable
    routes = [route("11.11.11.2/32", dev="lo"), *(snap.spaces["BLUE"].view.routes or [])]
    e = explain(change(snap, "BLUE", routes=routes))
    assert "arp_filter=1: its route back to the asking address 11.11.11.2 leaves by lo" in failed(e)
    assert command(e) == "ip netns exec lab2-BLUE sysctl -w net.ipv4.conf.all.arp_filter=0"


def _moved_to_lo(snap: Snapshot) -> Snapshot:
    blue = snap.spaces["BLUE"].view
    addresses = [replace(a, dev="lo", prefixlen=32) if a.address == "11.11.11.3" else a for a in blue.addresses or []]
    return change(snap, "BLUE", addresses=addresses)


def test_an_address_on_another_interface_is_answered_only_with_arp_ignore_0() -> None:
    assert explain(_moved_to_lo(bridged()), dst="11.11.11.3").legs[0].outcome == "delivered"
    e = explain(sysctl(_moved_to_lo(bridged()), "BLUE", net__ipv4__conf__all__arp_ignore="1"), dst="11.11.11.3")
    assert "arp_ignore=1" in failed(e)


def test_a_wrong_static_neighbour_entry() -> None:
    wrong = NeighbourView("reth0", "11.11.11.3", "02:00:00:00:00:99", ["PERMANENT"], False)
    e = explain(change(bridged(), "RED", neighbours=[wrong]))
    assert "wrong MAC 02:00:00:00:00:99" in e.verdict
    assert command(e) == "ip -n lab2-RED neigh del 11.11.11.3 dev reth0"
    failed_entry = replace(wrong, mac=None, state=["FAILED"])
    assert explain(change(bridged(), "RED", neighbours=[failed_entry])).reachable


def test_icmp_echo_ignore() -> None:
    e = explain(sysctl(bridged(), "BLUE", net__ipv4__icmp_echo_ignore_all="1"))
    assert not e.reachable and "ignores echo requests" in e.verdict
    assert command(e) == "ip netns exec lab2-BLUE sysctl -w net.ipv4.icmp_echo_ignore_all=0"
    assert explain(sysctl(bridged(), "BLUE", net__ipv4__icmp_echo_ignore_all="1"), proto="tcp:80").legs[0].outcome


# -- bridge ports -----------------------------------------------------------------------------------------


def ports(snap: Snapshot, **flags: dict[str, Any]) -> Snapshot:
    base = BridgePortView("forwarding", True, True, True, True, False, False, False, False)
    links = [
        replace(link, port=replace(base, **flags.get(link.name, {}))) if link.master else link
        for link in snap.spaces["host"].view.links or []
    ]
    return change(snap, "host", links=links)


def test_isolated_ports_and_port_state() -> None:
    e = explain(ports(bridged(), reth1={"isolated": True}, beth1={"isolated": True}))
    assert "both isolated" in e.verdict
    assert command(e) == "bridge -n lab2-host link set dev beth1 isolated off"
    assert explain(ports(bridged(), beth1={"isolated": True})).reachable
    e = explain(ports(bridged(), reth1={"state": "disabled"}))
    assert "state disabled" in e.verdict and command(e) == "bridge -n lab2-host link set dev reth1 state 3"


def test_learning_and_flooding() -> None:
    no_fdb = change(bridged(), "host", fdb=[])
    e = explain(ports(no_fdb, beth1={"learning": False, "flood": False}))
    assert "flood is off" in e.verdict
    assert command(e) == "bridge -n lab2-host link set dev beth1 learning on flood on"
    assert explain(ports(no_fdb, beth1={"learning": False})).reachable
    assert explain(ports(no_fdb, beth1={"flood": False})).reachable
    mac = next(link.mac for link in bridged().spaces["BLUE"].view.links or [] if link.name == "beth0")
    learned = change(bridged(), "host", fdb=[FdbView(mac, "beth1", "br0", None, "learned", False, 1.0, 1.0)])
    assert explain(ports(learned, beth1={"learning": False, "flood": False})).reachable
    e = explain(ports(no_fdb, beth1={"bcast_flood": False}))
    assert "bcast_flood off" in e.verdict


def test_what_the_request_teaches_the_reply_uses() -> None:
    """The request's ARP teaches the bridge RED's port and BLUE RED's MAC: the reply needs no flooding."""
    no_fdb = change(bridged(), "host", fdb=[])
    e = explain(ports(no_fdb, reth1={"flood": False}))
    assert e.reachable, e.verdict
    e = explain(ports(no_fdb, reth1={"flood": False, "learning": False}))
    assert not e.reachable and e.legs[1].outcome == "dropped" and "reth1" in e.verdict


def test_a_routers_solicitation_leaves_the_asker_known() -> None:
    """RED's solicitation for its router leaves RED in R's table: R needs a link-local address only towards BLUE."""
    snap = routed()
    r = snap.spaces["R"].view
    link_local = replace(next(a for a in r.addresses or [] if a.dev == "r2"), address="fe80::1", prefixlen=64)
    snap = change(snap, "R", addresses=[*(r.addresses or []), link_local], neighbours=[])
    e = explain(change(snap, "BLUE", neighbours=[]), dst="fd02::2")
    assert e.reachable, e.verdict


# -- addresses -----------------------------------------------------------------------------------------


def test_a_removed_address_is_put_back() -> None:
    snap = routed()
    blue = snap.spaces["BLUE"].view
    e = explain(change(snap, "BLUE", addresses=[a for a in blue.addresses or [] if a.address != "10.2.0.2"]))
    assert not e.reachable
    assert command(e) == "ip -n kpsnap-BLUE addr add 10.2.0.2/24 dev beth0"


def test_a_node_explained_to_itself_is_local_delivery() -> None:
    e = explain(bridged(), "RED", "RED")
    assert e.reachable and "delivered locally" in e.legs[0].steps[0].text


def test_a_source_that_lost_its_address_gets_it_back_with_its_route() -> None:
    snap = routed()
    red = snap.spaces["RED"].view
    addresses = [a for a in red.addresses or [] if a.address != "10.1.0.2"]
    routes = [r for r in red.routes or [] if r.dev != "reth0" or r.family != 4]
    e = explain(change(snap, "RED", addresses=addresses, routes=routes))
    assert "RED:reth0 lost its address 10.1.0.2/24" in e.verdict
    assert command(e).startswith("ip -n kpsnap-RED addr add 10.1.0.2/24 dev reth0 && ip -n kpsnap-RED route add ")


def test_a_state_explain_does_not_model_is_unknown_not_a_traceback() -> None:
    snap = bridged()
    red = snap.spaces["RED"].view
    links = [replace(link, peer=replace(link.peer, name="gone")) if link.peer else link for link in red.links or []]
    e = explain(change(snap, "RED", links=links))
    assert not e.reachable and "unknown" in e.verdict


def test_the_no_route_fix_names_the_only_router_even_when_it_does_not_forward() -> None:
    snap = routed()
    lost = change(snap, "RED", routes=[r for r in snap.spaces["RED"].view.routes or [] if r.dst != "default"])
    e = explain(sysctl(lost, "R", net__ipv4__ip_forward="0"))
    assert command(e) == "ip -n kpsnap-RED route add 10.2.0.0/24 via 10.1.0.1 dev reth0"
    assert e.fix is not None and "GATEWAY" not in e.fix.summary
