"""inspect agrees with the kernel's own tools, on the seed's lab 2."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from nsnet.inspect import vendor

from conftest import EXAMPLES, nsnet, sh


def ipj(ns: str, *args: str) -> Any:
    return json.loads(sh("ip", "-n", ns, "-j", *args) or "[]")


@pytest.fixture
def lab2_after_failed_ping(lab_name: str) -> dict[str, Any]:
    result = nsnet("up", str(EXAMPLES / "lab2-bridge.yaml"), "--name", lab_name)
    assert result.code == 0, result.text
    ping = subprocess.run(
        ["ip", "netns", "exec", f"{lab_name}-RED", "ping", "-c", "2", "-i", "0.2", "-W", "1", "11.11.11.3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "100% packet loss" in ping.stdout
    shown = nsnet("inspect", lab_name, "--json")
    assert shown.code == 0, shown.text
    view: dict[str, Any] = json.loads(shown.out)
    return {v["node"]: v for v in view["namespaces"]}


def test_inspect_shows_why_the_seed_ping_failed(lab_name: str, lab2_after_failed_ping: dict[str, Any]) -> None:
    spaces = lab2_after_failed_ping
    assert list(spaces) == ["RED", "BLUE", "host"]
    red, blue, host = (f"{lab_name}-{n}" for n in ("RED", "BLUE", "host"))
    red_mac = ipj(red, "link", "show", "reth0")[0]["address"]
    blue_mac = ipj(blue, "link", "show", "beth0")[0]["address"]

    # The host's FORWARD policy DROP, with the dropped echo requests counted.
    forward = next(
        c
        for t in spaces["host"]["firewall"]
        if t["family"] == 4 and t["table"] == "filter"
        for c in t["chains"]
        if c["name"] == "FORWARD"
    )
    assert forward["policy"] == "DROP" and forward["packets"] > 0
    saved = sh("ip", "netns", "exec", host, "iptables-save", "-c", "-t", "filter")
    assert f":FORWARD DROP [{forward['packets']}:{forward['bytes']}]" in saved

    # Both veth MACs learned on the right bridge ports.
    learned = {(f["mac"], f["port"], f["bridge"]) for f in spaces["host"]["fdb"] if f["kind"] == "learned"}
    assert (red_mac, "reth1", "br0") in learned
    assert (blue_mac, "beth1", "br0") in learned

    # RED's neighbour entry for 11.11.11.3 holds BLUE's MAC.
    neigh = [n for n in spaces["RED"]["neighbours"] if n["address"] == "11.11.11.3"]
    assert len(neigh) == 1 and neigh[0]["mac"] == blue_mac and neigh[0]["dev"] == "reth0"

    assert spaces["host"]["sysctls"]["net.bridge.bridge-nf-call-iptables"] == "1"


def test_inspect_agrees_with_ip_and_bridge(lab_name: str, lab2_after_failed_ping: dict[str, Any]) -> None:
    spaces = lab2_after_failed_ping
    for node, view in spaces.items():
        ns = f"{lab_name}-{node}"
        kernel_links = {link["ifname"]: link for link in ipj(ns, "link", "show")}
        assert {link["name"] for link in view["links"]} == set(kernel_links)
        for link in view["links"]:
            k = kernel_links[link["name"]]
            assert link["index"] == k["ifindex"]
            assert link["mtu"] == k["mtu"]
            assert link["mac"] == k["address"]
            assert link["master"] == k.get("master")
            assert link["state"] == ("up" if "UP" in k["flags"] else "down")
            assert link["operstate"] == k["operstate"]
            if "link_index" in k:
                assert link["peer"]["index"] == k["link_index"]
            assert link["owned"] == (link["name"] != "lo")

        kernel_addrs = {
            (a["ifname"], i["local"], i["prefixlen"]) for a in ipj(ns, "addr", "show") for i in a["addr_info"]
        }
        assert {(a["dev"], a["address"], a["prefixlen"]) for a in view["addresses"]} == kernel_addrs

        kernel_routes = {
            (r["dst"], r.get("dev"), r.get("protocol", "boot"), r.get("prefsrc")) for r in ipj(ns, "route")
        }
        mine = {
            (r["dst"].removesuffix("/32") if r["dst"] != "default" else r["dst"], r["dev"], r["proto"], r["src"])
            for r in view["routes"]
            if r["table"] == "main" and r["family"] == 4
        }
        assert mine == kernel_routes

        kernel_neigh = {(n["dst"], n["dev"], n.get("lladdr"), tuple(n["state"])) for n in ipj(ns, "neigh", "show")}
        assert {(n["address"], n["dev"], n["mac"], tuple(n["state"])) for n in view["neighbours"]} == kernel_neigh

        fdb = json.loads(sh("bridge", "-n", ns, "-j", "fdb", "show") or "[]")
        kernel_fdb = {(f["mac"], f["ifname"], f.get("master"), f.get("state", "") or "learned") for f in fdb}
        assert {(f["mac"], f["port"], f["bridge"], f["kind"]) for f in view["fdb"]} == kernel_fdb

    # Peers resolve across namespaces: the seed's reth0@ifN pairing, by name.
    reth0 = next(link for link in spaces["RED"]["links"] if link["name"] == "reth0")
    assert reth0["peer"] == {
        "node": "host",
        "netns": f"{lab_name}-host",
        "name": "reth1",
        "index": next(link["index"] for link in spaces["host"]["links"] if link["name"] == "reth1"),
    }
    bridges = spaces["host"]["bridges"]
    assert bridges == [{"name": "br0", "stp": False, "ageing_time": 300, "ports": ["beth1", "reth1"]}]


def test_inspect_tables_side_by_side(lab_name: str) -> None:
    result = nsnet("up", str(EXAMPLES / "lab2-bridge.yaml"), "--name", lab_name)
    assert result.code == 0, result.text
    shown = nsnet("inspect", lab_name, "--what", "links,fw")
    assert shown.code == 0, shown.text
    lines = shown.out.splitlines()
    assert lines[0] == "== links (ip link)"
    heading = lines[1]
    assert re.search(rf"\[RED\] {lab_name}-RED\s+\[BLUE\] {lab_name}-BLUE\s+\[host\] {lab_name}-host", heading)
    assert re.search(r"reth0@if\d+ .* host:reth1", shown.out)
    assert re.search(r"filter/FORWARD\s+policy DROP", shown.out)

    only = nsnet("inspect", lab_name, "RED", "--what", "neigh", "--json")
    assert [v["node"] for v in json.loads(only.out)["namespaces"]] == ["RED"]
    assert set(json.loads(only.out)["namespaces"][0]) >= {"neighbours"}
    assert json.loads(only.out)["namespaces"][0]["links"] is None

    bad = nsnet("inspect", lab_name, "--what", "links,arp")
    assert bad.code == 2 and "unknown section arp" in bad.err
    missing = nsnet("inspect", lab_name, "GREEN")
    assert missing.code == 4 and f"lab {lab_name!r} has no node 'GREEN'" in missing.err


def test_vendor_names_come_from_the_oui_registry() -> None:
    assert vendor("00:1b:21:3a:4f:5e") == "Intel Corporate"
    assert vendor("02:00:00:00:00:01") is None  # locally administered, like every veth
    assert vendor("00:00:00:00:00:00") is None
