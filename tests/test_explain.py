"""explain: the predicted path, confirmed by a real probe, for every scenario that must be right."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import EXAMPLES, explain_json, nsnet

LAB2 = (EXAMPLES / "lab2-bridge.yaml").read_text()
FIXED = (EXAMPLES / "lab2-bridge-fixed.yaml").read_text()
OPEN = FIXED.replace("    policies: {FORWARD: DROP}\n", "    policies: {FORWARD: ACCEPT}\n")


def run(tmp_path: Path, lab: str, text: str, *args: str, probe: bool = True) -> dict[str, Any]:
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    result = nsnet("up", str(path), "--name", lab)
    assert result.code == 0, result.text
    return explain_json(lab, *args, probe=probe)


def failed_step(data: dict[str, Any]) -> dict[str, Any]:
    return next(s for leg in data["legs"] for s in leg["steps"] if not s["ok"])


def test_seed_lab2_dies_at_the_hosts_forward_policy(lab_name: str, tmp_path: Path) -> None:
    data = run(tmp_path, lab_name, LAB2, "RED", "BLUE")
    assert not data["reachable"]
    step = failed_step(data)
    assert step["node"] == "host"
    assert step["text"] == "netfilter FORWARD: filter/FORWARD -> DROP by policy DROP of FORWARD"
    assert data["verdict"] == (
        "RED cannot reach BLUE (icmp): the request is dropped: policy DROP of FORWARD in host's filter table drops it"
    )
    assert (
        data["fix"]["command"]
        == f"ip netns exec {lab_name}-host iptables -t filter -A FORWARD -s 11.11.11.0/24 -j ACCEPT"
    )
    assert "{chain: FORWARD, source: 11.11.11.0/24, action: ACCEPT}" in data["fix"]["topology"]
    observed = data["observed"]
    assert not observed["answered"]
    assert observed["verdict"]["node"] == "host"
    assert (observed["verdict"]["table"], observed["verdict"]["chain"], observed["verdict"]["kind"]) == (
        "filter",
        "FORWARD",
        "policy",
    )
    assert any(reason.startswith("NETFILTER_DROP") for reason in observed["drops"])


def test_seed_lab2_fixed_is_reachable(lab_name: str, tmp_path: Path) -> None:
    data = run(tmp_path, lab_name, FIXED, "RED", "BLUE")
    assert data["reachable"]
    assert [leg["outcome"] for leg in data["legs"]] == ["delivered", "delivered"]
    texts = [s["text"] for s in data["legs"][0]["steps"]]
    assert any("ACCEPT by rule 1 of NSNET-FORWARD: -A NSNET-FORWARD -s 11.11.11.0/24 -j ACCEPT" in t for t in texts)
    assert data["observed"]["answered"] and data["observed"]["verdict"] is None


def test_bridged_traffic_skips_iptables_when_bridge_nf_call_is_off(lab_name: str, tmp_path: Path) -> None:
    text = LAB2.replace("net.bridge.bridge-nf-call-iptables: 1", "net.bridge.bridge-nf-call-iptables: 0")
    data = run(tmp_path, lab_name, text, "RED", "BLUE")
    assert data["reachable"]
    assert any(
        "not handed to iptables here (net.bridge.bridge-nf-call-iptables=0)" in s["text"]
        for s in data["legs"][0]["steps"]
    )


@pytest.mark.parametrize(
    ("name", "edit", "dst", "expect"),
    [
        ("no-route", None, "10.9.9.9", "RED has no route to 10.9.9.9"),
        ("no-owner", None, "11.11.11.9", "no interface reachable from bridge host:br0 has 11.11.11.9, so ARP fails"),
        (
            "node-link-down",
            ("reth0: {addresses: [11.11.11.2/24]}", "reth0: {addresses: [11.11.11.2/24], up: false}"),
            "BLUE",
            "RED:reth0 is down, so RED has no route to 11.11.11.3",
        ),
        (
            "host-end-down",
            ("reth1: {master: br0}", "reth1: {master: br0, up: false}"),
            "BLUE",
            "the other end of RED:reth0, host:reth1, is down",
        ),
        ("bridge-down", ("br0: {}", "br0: {up: false}"), "BLUE", "bridge host:br0 is down"),
        (
            "not-attached",
            ("beth1: {master: br0}", "beth1: {}"),
            "BLUE",
            "BLUE:beth0 has 11.11.11.3, but its other end host:beth1 is not attached to any bridge, not to br0",
        ),
        (
            "wrong-prefix",
            ("beth0: {addresses: [11.11.11.3/24]}", "beth0: {addresses: [11.11.11.3/32]}"),
            "11.11.11.3",
            "BLUE has no route to 11.11.11.2",
        ),
        (
            "explicit-drop",
            (
                "- {chain: FORWARD, source: 11.11.11.0/24, action: ACCEPT}",
                "- {chain: FORWARD, destination: 11.11.11.3, protocol: icmp, action: DROP}",
            ),
            "BLUE",
            "rule 1 of NSNET-FORWARD (-A NSNET-FORWARD -d 11.11.11.3/32 -p icmp -j DROP) "
            "in host's filter table drops it",
        ),
        (
            "explicit-reject",
            (
                "- {chain: FORWARD, source: 11.11.11.0/24, action: ACCEPT}",
                "- {chain: FORWARD, destination: 11.11.11.3, protocol: icmp, action: REJECT}",
            ),
            "BLUE",
            "rule 1 of NSNET-FORWARD (-A NSNET-FORWARD -d 11.11.11.3/32 -p icmp -j REJECT --reject-with "
            "icmp-port-unreachable) in host's filter table rejects it",
        ),
        (
            "input-drop",
            ("  BLUE:\n", "  BLUE:\n    firewall: {policies: {INPUT: DROP}}\n"),
            "BLUE",
            "policy DROP of INPUT in BLUE's filter table drops it",
        ),
    ],
)
def test_failure_scenarios(
    lab_name: str, tmp_path: Path, name: str, edit: tuple[str, str] | None, dst: str, expect: str
) -> None:
    text = FIXED
    if edit is not None:
        assert edit[0] in text, name
        text = text.replace(edit[0], edit[1])
    data = run(tmp_path, lab_name, text, "RED", dst)
    assert not data["reachable"]
    reasons = [leg["reason"] for leg in data["legs"] if leg["reason"]]
    assert expect in reasons, (reasons, data["verdict"])


def test_two_bridges_without_a_router(lab_name: str, tmp_path: Path) -> None:
    text = FIXED.replace("br0: {}", "br0: {}\n    br1: {}").replace("beth1: {master: br0}", "beth1: {master: br1}")
    text = text.replace("11.11.11.3/24", "11.11.12.3/24")
    data = run(tmp_path, lab_name, text, "RED", "BLUE")
    assert data["legs"][0]["reason"] == "RED has no route to 11.11.12.3"


def test_tcp_and_udp_open_and_closed_ports(lab_name: str, tmp_path: Path) -> None:
    closed = run(tmp_path, lab_name, OPEN, "RED", "BLUE", "--proto", "tcp:8080")
    assert not closed["reachable"]
    assert closed["legs"][0]["outcome"] == "refused"
    assert closed["legs"][1]["title"].startswith("RST BLUE -> RED")
    assert closed["observed"]["result"] == "refused: RST"

    udp = run(tmp_path, lab_name, OPEN, "RED", "BLUE", "--proto", "udp:5353")
    assert udp["legs"][1]["title"].startswith("ICMP port unreachable BLUE -> RED")
    assert udp["observed"]["result"] == "refused: ICMP port unreachable"

    server = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            f"{lab_name}-BLUE",
            sys.executable,
            "-c",
            "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
            "s.bind(('0.0.0.0',8080))\ns.listen()\nprint('ready',flush=True)\ntime.sleep(30)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
        opened = run(tmp_path, lab_name, OPEN, "RED", "BLUE", "--proto", "tcp:8080")
        assert opened["reachable"]
        assert opened["legs"][1]["title"].startswith("SYN-ACK BLUE -> RED")
        assert opened["observed"]["result"] == "connected to tcp/8080"
    finally:
        server.kill()
        server.wait()


def test_human_output_walks_the_seed_failure(lab_name: str, tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(LAB2)
    assert nsnet("up", str(path), "--name", lab_name).code == 0
    shown = nsnet("explain", lab_name, "RED", "BLUE")
    assert shown.code == 1
    lines = shown.out.splitlines()
    assert lines[0] == "icmp request RED -> BLUE (11.11.11.3)"
    assert "XX   5. [host] netfilter FORWARD: filter/FORWARD -> DROP by policy DROP of FORWARD" in shown.out
    assert (
        f"command:  ip netns exec {lab_name}-host iptables -t filter -A FORWARD -s 11.11.11.0/24 -j ACCEPT" in shown.out
    )
    bad = nsnet("explain", lab_name, "RED", "BLUE", "--proto", "tcp")
    assert bad.code == 2 and "'tcp' is not a protocol: use icmp, tcp:PORT or udp:PORT" in bad.err


def test_probe_on_a_lab_whose_host_has_only_lo(lab_name: str, tmp_path: Path) -> None:
    """Lab 1 has no host bridge: the probe captures in the nodes, and sees the request reach BLUE."""
    data = run(tmp_path, lab_name, (EXAMPLES / "lab1-veth.yaml").read_text(), "RED", "BLUE")
    assert data["reachable"]
    observed = data["observed"]
    assert observed["answered"] and observed["agrees"], observed
    assert observed["request_points"] == ["RED:veth0", "BLUE:veth1"]


V6_LAB2 = (
    FIXED.replace("11.11.11.2/24", "'fd00::2/64'")
    .replace("11.11.11.3/24", "'fd00::3/64'")
    .replace("net.bridge.bridge-nf-call-iptables: 1", "net.bridge.bridge-nf-call-ip6tables: 1")
    .replace("    policies: {FORWARD: DROP}\n", "    policies: {FORWARD: ACCEPT}\n")
    .replace("    rules:\n      - {chain: FORWARD, source: 11.11.11.0/24, action: ACCEPT}\n", "")
)


def test_probe_follows_an_ipv6_ping(lab_name: str, tmp_path: Path) -> None:
    """An IPv6 echo request is captured as ICMPv6 at every point it crosses, in the order it crosses them."""
    data = run(tmp_path, lab_name, V6_LAB2, "RED", "BLUE")
    assert data["legs"][0]["dst"] == "fd00::3"
    observed = data["observed"]
    assert observed["answered"] and observed["agrees"], observed
    assert observed["request_points"][0] == "RED:reth0" and observed["request_points"][-1] == "BLUE:beth0"
    assert {"host:reth1", "host:beth1"} <= set(observed["request_points"])
