"""``host: root``: the lab's host is the root namespace, here a private world's (never the machine's)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from world import World, machine_network, residue, root_variant, world


@pytest.fixture
def private() -> Iterator[World]:
    yield from world()


def ping(w: World, ns: str, address: str) -> subprocess.CompletedProcess[str]:
    result = w.run("ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "1", address)
    return subprocess.CompletedProcess([], result.code, result.out, result.err)


def explain(w: World, lab: str, *args: str) -> dict[str, object]:
    """``nsnet explain LAB ARGS --probe --json`` in the world: its exit code matches its verdict, the kernel agrees."""
    shown = w.nsnet("explain", lab, *args, "--probe", "--json")
    assert shown.code in (0, 1), shown.text
    data: dict[str, object] = json.loads(shown.out)
    assert shown.code == (0 if data["reachable"] else 1)
    observed = data["observed"]
    assert isinstance(observed, dict) and observed["agrees"], observed
    return data


def test_a_private_world_leaves_nothing_on_the_machine() -> None:
    before = machine_network()
    w = World(private_dirs=["/srv"]).start()
    try:
        w.sh(
            "ip link add wt0 type veth peer name wt1 && ip link set wt0 up && ip addr add 192.0.2.1/24 dev wt0\n"
            "iptables -A FORWARD -j DROP && nft add table inet worldtest\n"
            "touch /run/world-file /srv/nsnet-world-test\n"
            "setsid sleep 1000 </dev/null >/dev/null 2>&1 &"
        )
        inside = w.sh("ip -o link; cat /sys/class/net/wt0/operstate; iptables-save; ls /run; ps -e -o comm")
        assert "wt0" in inside and "-A FORWARD -j DROP" in inside and "world-file" in inside and "sleep" in inside
        assert "eth0" not in w.sh("ls /sys/class/net"), "the world's /sys shows the machine's links"
        assert machine_network() == before, "what the world does shows on the machine"
        assert not Path("/run/world-file").exists()
        assert not Path("/srv/nsnet-world-test").exists()
        assert w.ids is not None and residue(w.ids)  # the world's processes, while it lives
    finally:
        w.close()
    assert w.ids is not None and residue(w.ids) == [], "processes outlived the world"
    assert machine_network() == before


def test_lab2_with_host_root_explained_and_probed(private: World, lab_name: str, tmp_path: Path) -> None:
    w = private
    lab2, fixed = root_variant("lab2-bridge.yaml", tmp_path), root_variant("lab2-bridge-fixed.yaml", tmp_path)
    up = w.nsnet("up", lab2, "--name", lab_name)
    assert up.code == 0, up.text
    red = f"{lab_name}-RED"
    assert ping(w, red, "11.11.11.3").returncode == 1
    assert json.loads(w.sh("ip -j link show br0"))[0]["ifname"] == "br0"  # the bridge is in the (world's) root

    # The root namespace is a namespace like any other: the veth peers are followed both ways.
    view = json.loads(w.nsnet("inspect", lab_name, "--json").out)
    peers = {
        (ns["node"], link["name"]): (link["peer"]["node"], link["peer"]["name"])
        for ns in view["namespaces"]
        for link in ns.get("links") or []
        if link["peer"]
    }
    assert peers[("RED", "reth0")] == ("host", "reth1")
    assert peers[("host", "reth1")] == ("RED", "reth0")
    assert peers[("host", "beth1")] == ("BLUE", "beth0")

    data = explain(w, lab_name, "RED", "BLUE")
    assert data["reachable"] is False
    assert str(data["verdict"]).endswith("policy DROP of FORWARD in host's filter table drops it")
    fix = data["fix"]
    assert isinstance(fix, dict)
    assert fix["command"] == "iptables -t filter -A FORWARD -s 11.11.11.0/24 -j ACCEPT"  # no `ip netns exec`

    up = w.nsnet("up", fixed, "--name", lab_name)
    assert up.code == 0, up.text
    assert ping(w, red, "11.11.11.3").returncode == 0
    data = explain(w, lab_name, "RED", "BLUE")
    assert data["reachable"] is True, data["verdict"]
    data = explain(w, lab_name, "BLUE", "RED", "--proto", "udp:5353")  # nothing listens: refused, both agree
    assert data["reachable"] is False and "nothing listens on udp/5353" in str(data["verdict"])

    # Capture on the root namespace's bridge port and on RED, while RED pings.
    # The ping starts once capture says it is ready (its line on stderr), however slow the machine is.
    capture = w.sh(
        f"{sys.executable} -m nsnet capture {lab_name} RED:reth0 host:reth1 icmp --count 8 --duration 30 --json "
        f">{tmp_path}/capture.json 2>{tmp_path}/capture.err & cap=$!\n"
        f"for i in $(seq 300); do grep -q '^capturing' {tmp_path}/capture.err && break; sleep 0.1; done\n"
        f"ip netns exec {red} ping -c 2 -i 0.2 11.11.11.3 >/dev/null\n"
        f"wait $cap; cat {tmp_path}/capture.json"
    )
    document = json.loads(capture)
    assert {(p["point"], p["netns"]) for p in document["points"]} == {("RED:reth0", red), ("host:reth1", "")}
    seen = [(p["point"], p["direction"]) for p in document["packets"]]
    assert sorted(seen) == sorted(
        [("RED:reth0", "out"), ("host:reth1", "in"), ("host:reth1", "out"), ("RED:reth0", "in")] * 2
    ), capture
    reach = w.nsnet("reach", lab_name)
    assert reach.code == 0, reach.text
    assert "2/2 probes answered" in reach.out

    down = w.nsnet("down", lab_name)
    assert down.code == 0, down.text
    assert w.sh("ip -o link show | grep -v ': lo:' || true").strip() == ""
    assert "-A " not in w.sh("iptables-save"), "down left rules in the root namespace"
