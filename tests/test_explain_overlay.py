"""explain over VXLAN: the overlay lab's path across the underlay, and how it breaks, confirmed by a real probe."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from typing import Any

import pytest

from nsnet.explain import Walker
from nsnet.explain.snapshot import from_json, snapshot, to_json
from nsnet.explain.verdict import Snapshot

from conftest import EXAMPLES, explain_json, nsnet, sh

STATIC = str(EXAMPLES / "overlay-static.yaml")
BLUE_MAC = "02:42:0a:00:00:03"  # derived from 10.0.0.3 by nsnet (Docker's scheme)


@pytest.fixture
def lab(lab_name: str) -> str:
    result = nsnet("up", STATIC, "--name", lab_name, "-q")
    assert result.code == 0, result.text
    return lab_name


def explain(lab: str, *args: str, probe: bool = True) -> dict[str, Any]:
    return explain_json(lab, "RED", "BLUE", *args, probe=probe)


def texts(data: dict[str, Any], leg: int = 0) -> list[str]:
    return [f"[{s['node']}] {s['text']}" for s in data["legs"][leg]["steps"]]


def failed_step(data: dict[str, Any]) -> dict[str, Any]:
    return next(s for leg in data["legs"] for s in leg["steps"] if not s["ok"])


def test_static_overlay_is_reachable_across_the_underlay(lab: str) -> None:
    data = explain(lab)
    assert data["reachable"], data["verdict"]
    request, reply = texts(data, 0), texts(data, 1)
    assert "[A] vxlan1: VXLAN 42 to VTEP 192.168.100.2 (B), over eth0 -> underlay -> B:eth0" in request
    assert any(t.startswith("[B] vxlan1 -> bridge br0 -> vblue -> BLUE:beth0") for t in request)
    assert "[B] vxlan1: VXLAN 42 to VTEP 192.168.100.1 (A), over eth0 -> underlay -> A:eth0" in reply
    assert any(t.startswith("[A] vxlan1 -> bridge br0 -> vred -> RED:reth0") for t in reply)
    assert data["observed"]["answered"] and data["observed"]["last_point"] == "BLUE:beth0"

    # The proxy answers ARP when RED has to ask.
    sh("ip", "-n", f"{lab}-RED", "neigh", "flush", "all")
    data = explain(lab, probe=False)
    assert f"[A] vxlan1 answers ARP for 10.0.0.3 from its neighbour table (proxy): {BLUE_MAC}" in texts(data)

    # The engine is pure: the same explanation from the snapshot saved as JSON.
    snap = snapshot(lab)
    again = from_json(json.loads(json.dumps(to_json(snap))))
    assert Walker(again).explain("RED", "BLUE") == Walker(snap).explain("RED", "BLUE")


def test_a_forwarding_entry_deleted_by_hand_drops_the_frame_at_the_vxlan_device(lab: str) -> None:
    sh("bridge", "-n", f"{lab}-A", "fdb", "del", BLUE_MAC, "dev", "vxlan1", "dst", "192.168.100.2", "self")
    data = explain(lab)
    assert not data["reachable"]
    step = failed_step(data)
    assert (step["node"], step["what"]) == ("A", "vxlan")
    assert step["text"] == (
        f"vxlan1 has no forwarding entry for {BLUE_MAC} (nor a default 00:00:00:00:00:00 one): it drops the frame"
    )
    assert data["legs"][0]["reason"] == (
        f"A:vxlan1 has no fdb entry for {BLUE_MAC} (10.0.0.3, behind B), so it drops the frame"
    )
    command = data["fix"]["command"]
    assert command == f"bridge -n {lab}-A fdb append {BLUE_MAC} dev vxlan1 dst 192.168.100.2"
    observed = data["observed"]
    assert not observed["answered"] and observed["verdict"] is None
    # The capture agrees: the request went into A:vxlan1, and was seen nowhere beyond host A.
    assert "A:vxlan1" in observed["request_points"]
    assert {point.split(":")[0] for point in observed["request_points"]} == {"RED", "A"}

    subprocess.run(command.split(), check=True)
    assert explain(lab)["reachable"]


def test_a_neighbour_entry_deleted_by_hand_leaves_arp_unanswered(lab: str) -> None:
    sh("ip", "-n", f"{lab}-A", "neigh", "del", "10.0.0.3", "dev", "vxlan1")
    sh("ip", "-n", f"{lab}-RED", "neigh", "flush", "all")  # RED must ask (a cached entry would still be used)
    data = explain(lab)
    assert not data["reachable"]
    step = failed_step(data)
    assert (step["node"], step["what"]) == ("RED", "neigh")
    assert step["text"].startswith(
        "ARP for 10.0.0.3 gets no answer: A:vxlan1 answers ARP from its neighbour table (proxy), "
        "and 10.0.0.3 is not in it"
    )
    assert data["legs"][0]["reason"] == (
        "ARP is answered by the VXLAN proxy (A:vxlan1) from its neighbour table: 10.0.0.3 is not in it"
    )
    command = data["fix"]["command"]
    assert command == f"ip -n {lab}-A neigh replace 10.0.0.3 lladdr {BLUE_MAC} dev vxlan1 nud permanent"
    assert not data["observed"]["answered"]

    subprocess.run(command.split(), check=True)
    assert explain(lab)["reachable"]


def test_a_packet_bigger_than_the_overlay_mtu(lab: str) -> None:
    # Fits the overlay: 1450 bytes (nsnet gives the overlay the underlay's 1500 less 50).
    assert explain(lab, "--size", "1450")["reachable"]
    # Bigger: RED fragments it to its own MTU, and the fragments get through.
    data = explain(lab, "--size", "1480")
    assert data["reachable"]
    assert "[RED] 1480 bytes is more than reth0's MTU 1450: RED sends it in fragments of at most 1450 bytes" in (
        texts(data)
    )
    # RED and its host end think 1500: the bridge cannot hand 1480 bytes (DF set) to vxlan1.
    sh("ip", "-n", f"{lab}-RED", "link", "set", "reth0", "mtu", "1500")
    sh("ip", "-n", f"{lab}-A", "link", "set", "vred", "mtu", "1500")
    data = explain(lab, "--size", "1480")
    assert not data["reachable"]
    assert failed_step(data)["text"] == (
        "br0 drops the 1480-byte packet: more than port vxlan1's MTU 1450 "
        "(DF is set, so br_netfilter cannot fragment it)"
    )
    assert data["legs"][0]["reason"] == (
        "the 1480-byte packet is bigger than the overlay's MTU: bridge port A:vxlan1 takes 1450 "
        "(port vred's MTU is 1500), so bridge A:br0 drops it"
    )
    assert data["fix"]["command"] == (
        f"ip -n {lab}-A link set vred mtu 1450 && ip -n {lab}-RED link set reth0 mtu 1450"
    )
    assert data["fix"]["topology"] == "set mtu: 1450 in hosts.A.interfaces.vred and nodes.RED.interfaces.reth0"


def test_the_underlay_is_walked_firewall_and_routes(lab: str) -> None:
    underlay = f"{lab}-underlay"
    sh("ip", "netns", "exec", underlay, "iptables", "-P", "FORWARD", "DROP")
    data = explain(lab)
    assert not data["reachable"]
    step = failed_step(data)
    assert (step["node"], step["text"]) == (
        "underlay",
        "netfilter FORWARD: filter/FORWARD -> DROP by policy DROP of FORWARD",
    )
    assert data["legs"][0]["reason"] == (
        "VXLAN 42 from A cannot reach VTEP 192.168.100.2 (B) on the underlay: "
        "policy DROP of FORWARD in underlay's filter table drops it"
    )
    assert (
        data["fix"]["command"]
        == f"ip netns exec {underlay} iptables -t filter -A FORWARD -s 192.168.100.0/24 -j ACCEPT"
    )
    verdict = data["observed"]["verdict"]  # the kernel's trace follows the encapsulated packet
    assert (verdict["node"], verdict["table"], verdict["chain"]) == ("underlay", "filter", "FORWARD")
    sh("ip", "netns", "exec", underlay, "iptables", "-P", "FORWARD", "ACCEPT")

    sh("ip", "-n", f"{lab}-A", "link", "set", "eth0", "down")
    data = explain(lab)
    assert data["legs"][0]["reason"] == (
        "VXLAN 42 from A cannot reach VTEP 192.168.100.2 (B) on the underlay: "
        "A:eth0 is down, so A has no route to 192.168.100.2"
    )
    assert data["fix"]["command"] == f"ip -n {lab}-A link set eth0 up"


# -- dynamic mode and other entries, on a snapshot changed in memory (pure) ---------


def _edit_vxlan(snap: Snapshot, host: str, **changes: Any) -> Snapshot:
    space = snap.spaces[host]
    vxlans = [replace(vx, **changes) for vx in space.view.vxlans or []]
    spaces = dict(snap.spaces)
    spaces[host] = replace(space, view=replace(space.view, vxlans=vxlans))
    return replace(snap, spaces=spaces)


def _without_cache(snap: Snapshot, node: str) -> Snapshot:
    space = snap.spaces[node]
    spaces = dict(snap.spaces)
    spaces[node] = replace(space, view=replace(space.view, neighbours=[]))
    return replace(snap, spaces=spaces)


def test_dynamic_misses_name_the_controller(lab: str) -> None:
    snap = _without_cache(snapshot(lab), "RED")
    e = Walker(_edit_vxlan(snap, "A", l2miss=True, l3miss=True, entries=[])).explain("RED", "BLUE")
    assert e.legs[0].reason == (
        f"A:vxlan1 has no fdb entry for {BLUE_MAC} (10.0.0.3, behind B), so it drops the frame; "
        "the controller (nsnet overlay serve) has not answered this miss yet, or is not running"
    )
    assert [s.what for s in e.legs[0].steps if not s.ok] == ["vxlan", "miss"]
    assert e.fix is not None and f"nsnet overlay serve {lab}" in e.fix.summary

    e = Walker(_edit_vxlan(snap, "A", l2miss=True, l3miss=True, neighbours=[])).explain("RED", "BLUE")
    assert e.legs[0].reason == (
        "ARP is answered by the VXLAN proxy (A:vxlan1) from its neighbour table: 10.0.0.3 is not in it; "
        "the controller (nsnet overlay serve) has not answered this miss yet, or is not running"
    )


def test_wrong_vtep_and_no_proxy(lab: str) -> None:
    snap = _without_cache(snapshot(lab), "RED")
    vx = (snap.spaces["A"].view.vxlans or [])[0]
    wrong = [replace(entry, vtep="192.168.100.9", host=None) for entry in vx.entries]
    e = Walker(_edit_vxlan(snap, "A", entries=wrong)).explain("RED", "BLUE")
    assert (
        e.legs[0].reason == f"A:vxlan1 sends {BLUE_MAC} to VTEP 192.168.100.9, but 10.0.0.3 is behind B (192.168.100.2)"
    )
    assert e.fix is not None
    assert e.fix.command == f"bridge -n {lab}-A fdb replace {BLUE_MAC} dev vxlan1 dst 192.168.100.2"

    e = Walker(_edit_vxlan(snap, "A", proxy=False)).explain("RED", "BLUE")
    assert e.legs[0].reason == (
        "A:vxlan1 has no ARP proxy and does not flood ARP to VTEP 192.168.100.2 (B), behind which 10.0.0.3 is"
    )
    assert e.fix is not None
    assert e.fix.command == f"bridge -n {lab}-A fdb append 00:00:00:00:00:00 dev vxlan1 dst 192.168.100.2"
