"""A 200-node lab: everything built, reachable, unchanged by a second up, and all of it removed by down.

Also the pieces the fast path rests on: netlink sockets made by a thread inside
a namespace really belong to it, and a namespace whose creation was cut short
(an empty file under /run/netns) is made again by ``up`` and removed by ``down``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import nsnet
from nsnet.inspect import inspect
from nsnet.kernel import netns
from nsnet.kernel.netlink import Netlink
from nsnet.model import namespace_mark
from nsnet.plan.actions import DeleteNamespace, NetnsFile

from conftest import EXAMPLES, netns_list, sh, unique_name
from conftest import nsnet as cli

N = 200


def wide_spec(n: int) -> dict[str, Any]:
    """n nodes, each joined by a veth to one bridge in the lab's host, with an address."""
    return {
        "name": "scale",
        "host": {"bridges": {"br0": {}}, "interfaces": {f"p{i}": {"master": "br0"} for i in range(n)}},
        "nodes": {
            f"n{i}": {"interfaces": {"eth0": {"addresses": [f"10.70.{i // 250}.{i % 250 + 2}/16"]}}} for i in range(n)
        },
        "links": [[f"n{i}:eth0", f"host:p{i}"] for i in range(n)],
    }


def wide(n: int) -> nsnet.Topology:
    return nsnet.from_dict(wide_spec(n))


def lab_namespaces(lab: str) -> set[str]:
    return {ns for ns in netns_list() if ns.startswith(f"{lab}-")}


def ping(lab: str, src: int, dst: int) -> bool:
    address = f"10.70.{dst // 250}.{dst % 250 + 2}"
    argv = ["ip", "netns", "exec", f"{lab}-n{src}", "ping", "-c", "1", "-W", "2", address]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def test_two_hundred_nodes_built_unchanged_and_removed(lab_name: str) -> None:
    topology = wide(N)
    steps = nsnet.up(topology, lab_name)
    assert steps, "the first up does everything"
    assert lab_namespaces(lab_name) == {f"{lab_name}-n{i}" for i in range(N)} | {f"{lab_name}-host"}

    # The bridge has every port, each up and marked as the lab's.
    host = inspect(lab_name, ["host"], what=["links"]).namespaces[0]
    assert host.bridges is not None and host.links is not None
    (bridge,) = host.bridges
    assert bridge.name == "br0" and sorted(bridge.ports) == sorted(f"p{i}" for i in range(N))
    ports = [link for link in host.links if link.name.startswith("p")]
    assert len(ports) == N and all(p.state == "up" and p.owned for p in ports)
    # Every peer is found: the veth ends point at each other across namespaces.
    assert {p.peer.netns for p in ports if p.peer} == {f"{lab_name}-n{i}" for i in range(N)}

    # Every node: its address on eth0, up, marked, and no IPv6 link-local (addrgenmode none).
    for i in range(N):
        ns = f"{lab_name}-n{i}"
        (eth0,) = json.loads(sh("ip", "-n", ns, "-j", "-d", "addr", "show", "eth0"))
        assert eth0["operstate"] == "UP" and eth0["ifalias"] == f"nsnet:{lab_name}"
        assert [(a["family"], a["local"], a["prefixlen"]) for a in eth0["addr_info"]] == [
            ("inet", f"10.70.{i // 250}.{i % 250 + 2}", 16)
        ]
        (lo,) = json.loads(sh("ip", "-n", ns, "-j", "link", "show", "lo"))
        assert lo["ifalias"] == namespace_mark(lab_name, f"n{i}") and "UP" in lo["flags"]

    # Real packets across the bridge, between nodes far apart in creation order.
    for src, dst in ((0, N - 1), (N - 1, 0), (57, 123), (199, 100)):
        assert ping(lab_name, src, dst), f"n{src} cannot reach n{dst}"

    # A second up finds nothing to do and changes nothing.
    assert not nsnet.plan_up(topology, lab_name)
    assert not nsnet.up(topology, lab_name)
    assert lab_namespaces(lab_name) == {f"{lab_name}-n{i}" for i in range(N)} | {f"{lab_name}-host"}

    removed = nsnet.down(lab_name)
    assert sum(isinstance(a, DeleteNamespace) for a in removed.actions) == N + 1
    assert sum(isinstance(a, NetnsFile) for a in removed.actions) == N + 1  # each namespace's hosts file
    assert not lab_namespaces(lab_name)
    assert not Path(f"/run/nsnet/labs/{lab_name}.json").exists()


def test_sockets_made_by_a_thread_belong_to_their_namespace() -> None:
    name = unique_name()
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "add", "only9", "type", "bridge")
        fds = len(os.listdir("/proc/self/fd"))
        root = {link["ifname"] for link in json.loads(sh("ip", "-j", "link", "show"))}
        with Netlink() as nl:
            assert [m.name for m in nl.link_msgs(name)] == ["lo", "only9"]
            root_links = {m.name for m in nl.link_msgs("")}
            assert "only9" not in root_links and root_links <= root
        assert len(os.listdir("/proc/self/fd")) == fds, "a socket was left open"
        # The thread came back to where it was.
        assert os.stat("/proc/thread-self/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_a_namespace_cut_short_is_made_again_and_removed(lab_name: str) -> None:
    path = str(EXAMPLES / "lab1-veth.yaml")
    assert cli("up", path, "--name", lab_name, "-q").code == 0
    red, blue = f"{lab_name}-RED", f"{lab_name}-BLUE"
    # What a process killed between creating the mount point and mounting leaves: an empty file.
    sh("ip", "netns", "del", red)
    Path(f"/run/netns/{red}").touch()
    assert netns.is_stale(red) and not netns.is_stale(blue)
    plan = cli("plan", path, "--name", lab_name)
    assert f"create namespace {red} (RED)" in plan.out, plan.text
    assert cli("up", path, "--name", lab_name, "-q").code == 0
    assert not netns.is_stale(red)
    assert "nothing to do" in cli("plan", path, "--name", lab_name).out

    sh("ip", "netns", "del", blue)
    Path(f"/run/netns/{blue}").touch()
    result = cli("down", lab_name)
    assert result.code == 0, result.text
    assert not lab_namespaces(lab_name)


def test_a_failure_inside_a_batch_names_its_step_and_rolls_everything_back(lab_name: str) -> None:
    spec = wide_spec(60)
    for i, node in enumerate(spec["nodes"].values()):
        # One route of sixty the kernel refuses: its gateway is on no subnet of the node.
        via = "172.31.9.9" if i == 37 else "10.70.0.1"
        node["routes"] = [{"to": "192.0.2.0/24", "via": via, "dev": "eth0"}]
    try:
        nsnet.up(nsnet.from_dict(spec), lab_name)
    except nsnet.ApplyError as exc:
        assert exc.step == f"add route 192.0.2.0/24 via 172.31.9.9 dev eth0 in {lab_name}-n37"
        assert exc.rolled_back
    else:
        raise AssertionError("the bad route was accepted")
    assert not lab_namespaces(lab_name)
    assert not Path(f"/run/nsnet/labs/{lab_name}.json").exists()


BIG = 2000
PORTS = 1000


def big_spec(n: int) -> dict[str, Any]:
    """n nodes on bridges of 1000 ports each (a Linux bridge takes at most 1023), each its own subnet."""
    return {
        "name": "scale",
        "host": {
            "bridges": {f"br{b}": {} for b in range((n + PORTS - 1) // PORTS)},
            "interfaces": {f"p{i}": {"master": f"br{i // PORTS}"} for i in range(n)},
        },
        "nodes": {
            f"n{i}": {"interfaces": {"eth0": {"addresses": [f"10.{i // 250}.{i % 250}.2/14"]}}} for i in range(n)
        },
        "links": [[f"n{i}:eth0", f"host:p{i}"] for i in range(n)],
    }


def test_two_thousand_nodes_from_the_command_line(lab_name: str, tmp_path: Path) -> None:
    """The scale path end to end: a file of 2,000 nodes up, up again, inspected, reached and removed."""
    path = tmp_path / "big.yaml"
    path.write_text(json.dumps(big_spec(BIG)))  # JSON is YAML
    try:
        result = cli("up", str(path), "--name", lab_name, "-q")
        assert result.code == 0, result.text
        assert len(lab_namespaces(lab_name)) == BIG + 1

        # Both bridges hold their thousand ports, every port up and marked as the lab's.
        host = inspect(lab_name, ["host"], what=["links"]).namespaces[0]
        assert host.bridges is not None and host.links is not None
        assert {b.name: len(b.ports) for b in host.bridges} == {"br0": PORTS, "br1": BIG - PORTS}
        ports = [link for link in host.links if link.name.startswith("p")]
        assert len(ports) == BIG and all(p.state == "up" and p.owned and p.peer for p in ports)
        for i in (0, 999, 1000, BIG - 1):
            (eth0,) = json.loads(sh("ip", "-n", f"{lab_name}-n{i}", "-j", "addr", "show", "eth0"))
            assert [a["local"] for a in eth0["addr_info"]] == [f"10.{i // 250}.{i % 250}.2"]

        # Nothing to do the second time, and the file is not validated again: same answer.
        again = cli("up", str(path), "--name", lab_name, "--json")
        assert again.code == 0 and json.loads(again.out)["changed"] is False, again.text

        # The text view of every namespace, and probes from one node to the others on its bridge.
        shown = cli("inspect", lab_name, "--what", "links,addr")
        assert shown.code == 0 and f"[n{BIG - 1}] {lab_name}-n{BIG - 1}" in shown.out
        targets = ("n0", "n999", "n1000", "n1999")
        reach = cli("reach", lab_name, "--from", "n1500", *(a for t in targets for a in ("--to", t)), "--json")
        results = json.loads(reach.out)["results"]
        # br1's nodes answer; br0's are another subnet on another bridge, with no route between them.
        assert {r["dst"]: r["ok"] for r in results} == {"n0": False, "n999": False, "n1000": True, "n1999": True}
    finally:
        removed = cli("down", lab_name, "-q")
    assert removed.code == 0, removed.text
    assert not lab_namespaces(lab_name)
    assert not Path(f"/run/nsnet/labs/{lab_name}.json").exists()
