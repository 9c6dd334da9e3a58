"""Nothing foreign is touched: links, namespaces and files nsnet did not create, and journals it cannot trust.

Root-namespace cases run in a private world (tests/world.py), never on the machine.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from world import World, world

from conftest import EXAMPLES, netns_list, nsnet, sh

ROOT_BRIDGE = """\
name: {lab}
host:
  mode: root
  bridges:
    br0: {{addresses: [11.11.11.1/24]}}
  interfaces:
    reth1: {{master: br0}}
nodes:
  RED:
    interfaces:
      reth0: {{addresses: [11.11.11.2/24]}}
links:
  - [RED:reth0, host:reth1]
"""


@pytest.fixture
def private() -> Iterator[World]:
    yield from world()


def addresses(w: World, link: str) -> set[str]:
    """The IPv4 addresses of a link of the world's root namespace."""
    shown = json.loads(w.sh(f"ip -j -4 addr show dev {link}"))
    return {f"{a['local']}/{a['prefixlen']}" for a in shown[0]["addr_info"]}


def test_a_foreign_root_bridge_is_refused_not_taken_over(private: World, lab_name: str, tmp_path: Path) -> None:
    w = private
    topo = tmp_path / "root-bridge.yaml"
    topo.write_text(ROOT_BRIDGE.format(lab=lab_name))
    w.sh("ip link add br0 type bridge && ip addr add 192.0.2.1/24 dev br0 && ip link set br0 up")
    before = w.sh("ip -br link show br0")

    for command in ("plan", "up"):
        refused = w.nsnet(command, str(topo))
        assert refused.code != 0, refused.text
        assert "Traceback" not in refused.text
        assert "interface br0 already exists in the root namespace and was not created by nsnet" in refused.err
        assert "rename it in the topology" in refused.err and "ip link del br0" in refused.err
        assert "delete address 192.0.2.1/24" not in refused.text
    assert addresses(w, "br0") == {"192.0.2.1/24"}
    assert w.sh("ip -br link show br0") == before
    assert w.sh("ip netns list").strip() == "", "a refused up created namespaces"
    assert "reth1" not in w.sh("ip -o link")
    assert w.run("test", "-e", f"/run/nsnet/labs/{lab_name}.json").code == 1, "a refused up left a journal"

    # The foreign bridge gone, the same file builds its own, and down removes only that.
    w.sh("ip link del br0 && ip link add own0 type veth peer name own1 && ip addr add 192.0.2.7/24 dev own0")
    up = w.nsnet("up", str(topo))
    assert up.code == 0, up.text
    assert addresses(w, "br0") == {"11.11.11.1/24"}
    assert "nothing to do" in w.nsnet("plan", str(topo)).out
    down = w.nsnet("down", lab_name)
    assert down.code == 0, down.text
    links = w.sh("ip -o link")
    assert "br0" not in links and "reth1" not in links
    assert addresses(w, "own0") == {"192.0.2.7/24"}


def test_a_foreign_root_link_named_like_a_veth_end_is_refused(private: World, lab_name: str, tmp_path: Path) -> None:
    w = private
    topo = tmp_path / "root-bridge.yaml"
    topo.write_text(ROOT_BRIDGE.format(lab=lab_name))
    w.sh("ip link add reth1 type veth peer name other1 && ip addr add 192.0.2.9/24 dev reth1")
    refused = w.nsnet("up", str(topo))
    assert refused.code != 0 and "Traceback" not in refused.text, refused.text
    assert "interface reth1 already exists in the root namespace" in refused.err
    assert addresses(w, "reth1") == {"192.0.2.9/24"}
    assert "br0" not in w.sh("ip -o link") and w.sh("ip netns list").strip() == ""


def lo_alias(ns: str) -> str:
    shown = json.loads(sh("ip", "-n", ns, "-j", "link", "show", "lo"))
    return str(shown[0].get("ifalias", ""))


def test_a_namespace_made_again_by_someone_else_is_neither_adopted_nor_deleted(lab_name: str) -> None:
    up = nsnet("up", str(EXAMPLES / "lab2-bridge.yaml"), "--name", lab_name)
    assert up.code == 0, up.text
    red = f"{lab_name}-RED"
    assert lo_alias(red).startswith(f"nsnet:{lab_name}:RED:")
    sh("ip", "netns", "del", red)
    sh("ip", "netns", "add", red)
    try:
        sh("ip", "-n", red, "link", "add", "foo", "type", "veth", "peer", "name", "bar")
        for command in ("plan", "up"):
            refused = nsnet(command, str(EXAMPLES / "lab2-bridge.yaml"), "--name", lab_name)
            assert refused.code != 0 and "Traceback" not in refused.text, refused.text
            assert f"network namespace {red!r} of lab {lab_name!r} was replaced" in refused.err
            assert f"ip netns del {red}" in refused.err
        assert lo_alias(red) == "", "up marked a namespace it did not create"
        assert "reth0" not in sh("ip", "-n", red, "-o", "link")

        down = nsnet("down", lab_name)
        assert down.code == 0, down.text
        assert f"kept namespace {red}" in down.err
        assert red in netns_list(), "down deleted a namespace it did not create"
        links = sh("ip", "-n", red, "-o", "link")
        assert "foo@bar" in links and "bar@foo" in links
        assert not {f"{lab_name}-BLUE", f"{lab_name}-host"} & netns_list()
        assert nsnet("ls", "--json").out.count(lab_name) == 0
    finally:
        subprocess.run(["ip", "netns", "del", red], check=False)


def test_an_empty_namespace_made_again_is_not_taken_either(lab_name: str) -> None:
    assert nsnet("up", str(EXAMPLES / "lab1-veth.yaml"), "--name", lab_name).code == 0
    spaces = sorted(ns for ns in netns_list() if ns.startswith(f"{lab_name}-"))
    victim = spaces[0]
    sh("ip", "netns", "del", victim)
    sh("ip", "netns", "add", victim)
    try:
        refused = nsnet("up", str(EXAMPLES / "lab1-veth.yaml"), "--name", lab_name)
        assert refused.code != 0 and "was replaced" in refused.err, refused.text
        down = nsnet("down", lab_name)
        assert down.code == 0, down.text
        assert victim in netns_list()
        assert not (set(spaces) - {victim}) & netns_list()
    finally:
        subprocess.run(["ip", "netns", "del", victim], check=False)
