"""explain and the kernel's netfilter as it runs: NAT both ways, native nftables chains, bridge tables.

Each test builds a real lab, changes the host's ruleset with ``nft`` as a user
would, compares explain's verdict with real traffic (and with the kernel's
own trace, ``--probe``), and applies the printed fix.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterator

import pytest

from conftest import EXAMPLES, explain_json, nsnet, sh

LAB2_FIXED = EXAMPLES / "lab2-bridge-fixed.yaml"
LAB2 = EXAMPLES / "lab2-bridge.yaml"
LAB4 = EXAMPLES / "lab4-outside.yaml"


def up(path: object, lab: str) -> None:
    result = nsnet("up", str(path), "--name", lab, "-q")
    assert result.code == 0, result.text


def nft(lab: str, script: str) -> None:
    sh("ip", "netns", "exec", f"{lab}-host", "nft", script)


def pings(lab: str, node: str, address: str) -> bool:
    done = subprocess.run(
        ["ip", "netns", "exec", f"{lab}-{node}", "ping", "-c", "1", "-W", "1", address],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def run_fix(command: str) -> None:
    done = subprocess.run(shlex.split(command), capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"the printed fix failed: {command}: {done.stderr}"


def failing_step(data: dict[str, object]) -> dict[str, object]:
    legs = data["legs"]
    assert isinstance(legs, list)
    return next(s for leg in legs for s in leg["steps"] if not s["ok"])


@pytest.fixture
def web_in_red(lab_name: str) -> Iterator[str]:
    """lab 4 up, and a web server on RED's port 80."""
    up(LAB4, lab_name)
    server = subprocess.Popen(
        ["ip", "netns", "exec", f"{lab_name}-RED", sys.executable, "-m", "nsnet.engine.outside_server", "80"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield lab_name
    finally:
        server.kill()
        server.wait()


def test_masqueraded_replies_come_back(web_in_red: str) -> None:
    lab = web_in_red
    data = explain_json(lab, "RED", "outside")
    assert data["reachable"], data["verdict"]
    reply = [s["text"] for s in data["legs"][1]["steps"]]
    assert any("translated by MASQUERADE: destination becomes 11.11.11.2 again" in t for t in reply), reply
    assert explain_json(lab, "RED", "outside", "--proto", "tcp:80")["reachable"]


def test_hairpin_nat_through_the_bridge(web_in_red: str) -> None:
    lab = web_in_red
    data = explain_json(lab, "BLUE", "11.11.11.1", "--proto", "tcp:8080")
    assert data["reachable"], data["verdict"]
    request = [s["text"] for s in data["legs"][0]["steps"]]
    assert "DNAT: destination becomes 11.11.11.2:80" in request
    assert "MASQUERADE: source becomes 11.11.11.1:40000" in request
    reply = [s["text"] for s in data["legs"][1]["steps"]]
    assert any("translated by DNAT: source becomes 11.11.11.1:8080 again" in t for t in reply), reply


@pytest.mark.parametrize("priority", [-10, 10])
def test_a_native_base_chain_policy_drop_at_any_priority(lab_name: str, priority: int) -> None:
    up(LAB2_FIXED, lab_name)
    nft(lab_name, f"table inet fw {{ chain myfw {{ type filter hook forward priority {priority}; policy drop; }}; }}")
    assert not pings(lab_name, "RED", "11.11.11.3")
    data = explain_json(lab_name, "RED", "BLUE")
    assert not data["reachable"]
    step = failing_step(data)
    assert step["node"] == "host" and "fw/myfw -> DROP by policy drop of chain myfw (table inet fw)" in step["text"]
    if priority > 0:  # iptables' filter chain (priority 0) ran first and accepted: not final
        texts = [s["text"] for s in data["legs"][0]["steps"]]
        assert any("filter/FORWARD -> ACCEPT" in t for t in texts), texts
    assert data["fix"]["command"] == (
        f"ip netns exec {lab_name}-host nft add rule inet fw myfw ip saddr 11.11.11.0/24 accept"
    )
    run_fix(data["fix"]["command"])
    assert pings(lab_name, "RED", "11.11.11.3")
    assert explain_json(lab_name, "RED", "BLUE")["reachable"]


def test_an_accept_in_one_base_chain_is_not_final(lab_name: str) -> None:
    up(LAB2, lab_name)  # the seed's unfixed lab: FORWARD policy DROP
    nft(lab_name, "table inet early { chain c { type filter hook forward priority -10; policy accept; accept; }; }")
    assert not pings(lab_name, "RED", "11.11.11.3")
    data = explain_json(lab_name, "RED", "BLUE")
    texts = [s["text"] for s in data["legs"][0]["steps"]]
    assert any("early/c -> ACCEPT by rule 1 of inet early c: accept" in t for t in texts), texts
    assert data["verdict"].endswith("policy DROP of FORWARD in host's filter table drops it")


def test_native_rules_with_sets_maps_and_concatenations(lab_name: str) -> None:
    up(LAB2_FIXED, lab_name)
    nft(
        lab_name,
        "table ip guard { set blocked { type ipv4_addr; flags interval; elements = { 10.0.0.0/8, 11.11.11.2 }; }; "
        "map verdicts { type ipv4_addr . inet_proto : verdict; elements = { 11.11.11.3 . icmp : jump inspect }; }; "
        "chain inspect { ip saddr @blocked counter drop; }; "
        "chain f { type filter hook forward priority 5; ct state established,related accept; "
        "ip daddr . meta l4proto vmap @verdicts; }; }",
    )
    assert not pings(lab_name, "RED", "11.11.11.3")
    data = explain_json(lab_name, "RED", "BLUE")
    step = failing_step(data)
    assert "rule 1 of ip guard inspect: ip saddr @blocked counter drop" in step["text"], step
    run_fix(data["fix"]["command"])  # nft delete rule ip guard inspect handle N
    assert pings(lab_name, "RED", "11.11.11.3")
    assert explain_json(lab_name, "RED", "BLUE")["reachable"]
    # TCP to a closed port is not matched by the map: the RST comes back through the same chain.
    refused = explain_json(lab_name, "RED", "BLUE", "--proto", "tcp:9")
    assert refused["legs"][1]["outcome"] == "delivered"


def test_a_reject_on_the_input_hook_of_the_destination(lab_name: str) -> None:
    up(LAB2_FIXED, lab_name)
    sh(
        "ip",
        "netns",
        "exec",
        f"{lab_name}-BLUE",
        "nft",
        "table inet host { chain in { type filter hook input priority 0; icmp type echo-request reject; }; }",
    )
    assert not pings(lab_name, "RED", "11.11.11.3")
    data = explain_json(lab_name, "RED", "BLUE")
    assert data["legs"][0]["outcome"] == "rejected"
    step = failing_step(data)
    assert step["node"] == "BLUE" and "host/in -> REJECT" in step["text"]
    run_fix(data["fix"]["command"])
    assert pings(lab_name, "RED", "11.11.11.3")


def test_a_bridge_family_table_drops_bridged_frames_without_br_netfilter(lab_name: str) -> None:
    up(LAB2_FIXED, lab_name)
    sh("ip", "netns", "exec", f"{lab_name}-host", "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0")
    nft(lab_name, "table bridge l2 { chain f { type filter hook forward priority 0; ip daddr 11.11.11.3 drop; }; }")
    assert not pings(lab_name, "RED", "11.11.11.3")
    data = explain_json(lab_name, "RED", "BLUE", probe=False)
    step = failing_step(data)
    assert "netfilter bridge forward: l2/f -> DROP by rule 1 of bridge l2 f: ip daddr 11.11.11.3 drop" in step["text"]
    run_fix(data["fix"]["command"])
    assert pings(lab_name, "RED", "11.11.11.3")


def test_a_rule_nsnet_cannot_evaluate_is_named_not_guessed(lab_name: str) -> None:
    up(LAB2_FIXED, lab_name)
    nft(lab_name, "table inet q { chain f { type filter hook forward priority 5; meta cpu 0 drop; }; }")
    data = explain_json(lab_name, "RED", "BLUE", probe=False)
    assert data["legs"][0]["outcome"] == "unknown"
    assert "nsnet cannot evaluate meta cpu" in data["verdict"], data["verdict"]
