"""The seed's labs, literally, on the real kernel."""

from __future__ import annotations

import json
import re
import subprocess

from conftest import EXAMPLES, netns_list, nsnet, sh

LAB1 = str(EXAMPLES / "lab1-veth.yaml")
LAB2 = str(EXAMPLES / "lab2-bridge.yaml")
LAB2_FIXED = str(EXAMPLES / "lab2-bridge-fixed.yaml")


def ping(ns: str, address: str, count: int = 1) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "ping", "-c", str(count), "-W", "1", "-i", "0.2", address],
        capture_output=True,
        text=True,
        check=False,
    )


def link_json(ns: str, dev: str) -> dict[str, object]:
    data: list[dict[str, object]] = json.loads(sh("ip", "-n", ns, "-j", "link", "show", "dev", dev))
    return data[0]


def up(path: str, name: str) -> str:
    result = nsnet("up", path, "--name", name)
    assert result.code == 0, result.text
    return result.out


def test_lab1_veth_ping_works(lab_name: str) -> None:
    up(LAB1, lab_name)
    red, blue = f"{lab_name}-RED", f"{lab_name}-BLUE"
    result = ping(red, "11.11.11.3", count=2)
    assert result.returncode == 0, result.stdout
    assert " 0% packet loss" in result.stdout
    # Each side now caches the other's MAC, as the seed shows with `ip neigh`.
    blue_mac = link_json(blue, "veth1")["address"]
    neigh = json.loads(sh("ip", "-n", red, "-j", "neigh", "show", "dev", "veth0"))
    assert [(n["dst"], n["lladdr"]) for n in neigh] == [("11.11.11.3", blue_mac)]
    assert neigh[0]["state"][0] in ("REACHABLE", "STALE", "DELAY")
    # veth0 in RED is paired with veth1 in BLUE.
    assert link_json(red, "veth0")["link_index"] == link_json(blue, "veth1")["ifindex"]


def test_lab2_ping_dies_at_forward_drop_then_fix_adds_only_the_rule(lab_name: str) -> None:
    up(LAB2, lab_name)
    red, blue, host = f"{lab_name}-RED", f"{lab_name}-BLUE", f"{lab_name}-host"

    result = ping(red, "11.11.11.3", count=2)
    assert result.returncode == 1
    assert "100% packet loss" in result.stdout

    # ARP still resolves: RED's neighbour table holds BLUE's MAC.
    blue_mac = link_json(blue, "beth0")["address"]
    neigh = json.loads(sh("ip", "-n", red, "-j", "neigh", "show", "11.11.11.3"))
    assert neigh and neigh[0]["lladdr"] == blue_mac
    assert neigh[0]["state"][0] != "FAILED"

    # The seed's observations.
    assert sh("ip", "-n", red, "route", "show").strip() == (
        "11.11.11.0/24 dev reth0 proto kernel scope link src 11.11.11.2"
    )
    ports = json.loads(sh("ip", "-n", host, "-j", "link", "show", "master", "br0"))
    assert sorted(p["ifname"] for p in ports) == ["beth1", "reth1"]
    assert sh("ip", "netns", "exec", host, "cat", "/proc/sys/net/bridge/bridge-nf-call-iptables").strip() == "1"
    saved = sh("ip", "netns", "exec", host, "iptables-save", "-c", "-t", "filter")
    policy = re.search(r"^:FORWARD DROP \[(\d+):(\d+)\]$", saved, re.M)
    assert policy and int(policy.group(1)) > 0, saved

    # Going to the fixed file applies exactly one change: the rule.
    plan = nsnet("plan", LAB2_FIXED, "--name", lab_name, "--json")
    assert plan.code == 0, plan.text
    steps = json.loads(plan.out)["steps"]
    assert len(steps) == 1
    assert steps[0]["action"] == "ApplyFirewall"
    assert steps[0]["description"] == f"iptables in {host}: + FORWARD -s 11.11.11.0/24 -j ACCEPT"
    out = up(LAB2_FIXED, lab_name)
    assert "(1 change)" in out

    result = ping(red, "11.11.11.3", count=2)
    assert result.returncode == 0, result.stdout
    rules = sh("ip", "netns", "exec", host, "iptables", "-S", "NSNET-FORWARD")
    assert "-A NSNET-FORWARD -s 11.11.11.0/24 -j ACCEPT" in rules
    # Every namespace has its own firewall: RED's and BLUE's are untouched.
    for ns in (red, blue):
        assert (
            sh("ip", "netns", "exec", ns, "iptables", "-S") == "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n"
        )


def test_up_twice_changes_nothing(lab_name: str) -> None:
    up(LAB2_FIXED, lab_name)
    again = nsnet("up", LAB2_FIXED, "--name", lab_name)
    assert again.code == 0
    assert "already up to date, nothing changed" in again.out
    plan = nsnet("plan", LAB2_FIXED, "--name", lab_name)
    assert "nothing to do" in plan.out


def test_seed_names_are_visible_to_ip_netns() -> None:
    """Under the topology's own name, nodes are the seed's RED and BLUE."""
    if {"RED", "BLUE", "lab2-host"} & netns_list():
        raise AssertionError("namespaces RED/BLUE/lab2-host already exist; this test needs them free")
    try:
        result = nsnet("up", LAB2_FIXED)
        assert result.code == 0, result.text
        addr = sh("ip", "netns", "exec", "RED", "ip", "addr", "show", "reth0")
        assert "inet 11.11.11.2/24" in addr
        assert re.search(r"reth0@if\d+:", addr)
        host_links = sh("ip", "netns", "exec", "lab2-host", "ip", "-o", "link", "show")
        assert re.search(r"reth1@if\d+: .* master br0", host_links)
        assert ping("RED", "11.11.11.3").returncode == 0
        listing = nsnet("ls")
        assert re.search(r"lab2\s+up\s+lab2-host\s+RED, BLUE\s+\S*lab2-bridge-fixed.yaml", listing.out), listing.out
    finally:
        result = nsnet("down", "lab2")
    assert result.code == 0, result.text
    assert not {"RED", "BLUE", "lab2-host"} & netns_list()


def test_two_labs_from_one_file_side_by_side(lab_name: str, new_lab_name: list[str]) -> None:
    from conftest import unique_name

    other = unique_name()
    new_lab_name.append(other)
    up(LAB2_FIXED, lab_name)
    up(LAB2_FIXED, other)
    for name in (lab_name, other):
        assert ping(f"{name}-RED", "11.11.11.3").returncode == 0
    listing = json.loads(nsnet("ls", "--json").out)
    mine = {lab["name"]: lab["nodes"] for lab in listing if lab["name"] in (lab_name, other)}
    assert mine == {n: {"RED": f"{n}-RED", "BLUE": f"{n}-BLUE"} for n in (lab_name, other)}
    down = nsnet("down", other)
    assert down.code == 0
    assert not any(ns.startswith(f"{other}-") for ns in netns_list())
    # The first lab is untouched by the other's removal.
    assert ping(f"{lab_name}-RED", "11.11.11.3").returncode == 0


def test_plan_script_builds_the_same_network(lab_name: str, tmp_path: object) -> None:
    script = nsnet("plan", LAB2_FIXED, "--name", lab_name, "--fresh", "--script")
    assert script.code == 0, script.text
    lines = script.out.splitlines()
    # It reads like the seed's own command list.
    assert f"ip netns add {lab_name}-RED" in lines
    assert f"ip -n {lab_name}-RED link add reth0 type veth peer name reth1 netns {lab_name}-host" in lines
    assert f"ip -n {lab_name}-host link set reth1 master br0" in lines
    assert f"ip -n {lab_name}-RED addr add 11.11.11.2/24 dev reth0" in lines
    assert "-A NSNET-FORWARD -s 11.11.11.0/24 -j ACCEPT" in lines
    try:
        run = subprocess.run(["sh", "-c", script.out], capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stderr
        assert ping(f"{lab_name}-RED", "11.11.11.3").returncode == 0
        # nsnet sees exactly its topology in what the script built.
        again = nsnet("up", LAB2_FIXED, "--name", lab_name)
        assert again.code == 0, again.text
        assert "nothing changed" in again.out
    finally:
        if nsnet("down", lab_name, "-q").code != 0:
            for ns in (f"{lab_name}-RED", f"{lab_name}-BLUE", f"{lab_name}-host"):
                subprocess.run(["ip", "netns", "del", ns], check=False)
