"""Labs across machines: three simulated machines (private worlds with sshd), driven from a fourth over SSH."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet import Fleet, fleet


@pytest.fixture
def machines(tmp_path: Path) -> Iterator[Fleet]:
    yield from fleet(["A", "B", "C"], tmp_path)


def ping(f: Fleet, machine: str, node: str, address: str, count: int = 1) -> bool:
    result = f.machines[machine].run("ip", "netns", "exec", node, "ping", "-c", str(count), "-W", "1", address)
    return result.code == 0


def nothing_left(f: Fleet) -> None:
    for name, w in f.machines.items():
        assert f.links(name) == "", f"machine {name} kept links: {f.links(name)}"
        assert w.sh("ip netns list") == "", f"machine {name} kept namespaces"
        assert w.sh("ls /run/nsnet/labs 2>/dev/null || true").strip() == ""
        assert w.sh("ls /run/nsnet/machines 2>/dev/null || true").strip() == ""


def test_static_overlay_across_three_machines(machines: Fleet, tmp_path: Path) -> None:
    f = machines
    topo = f.inventory("overlay-static.yaml", tmp_path)
    up = f.drive("up", str(topo))
    assert up.code == 0, up.text
    assert "machine A: up" in up.out and "machine B: up" in up.out, up.out
    # Host A is machine A's root namespace: the bridge and VXLAN device are there, on its real eth1.
    vx = json.loads(f.machines["A"].sh("ip -d -j link show vxlan1"))[0]
    assert vx["linkinfo"]["info_data"]["local"] == "192.168.100.1"
    assert vx["mtu"] == 1450
    fdb = f.machines["A"].sh("bridge fdb show dev vxlan1")
    assert "02:42:0a:00:00:03 dst 192.168.100.2" in fdb
    assert ping(f, "A", "RED", "10.0.0.3", 2)
    assert ping(f, "B", "BLUE", "10.0.0.2")

    again = f.drive("up", str(topo))
    assert again.code == 0, again.text
    assert "machine A: up, nothing changed" in again.out, again.out

    down = f.drive("down", "overlay")
    assert down.code == 0, down.text
    nothing_left(f)
