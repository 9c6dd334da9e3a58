"""The outside world: gateway, NAT, published ports, isolation, a Docker-style host."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import EXAMPLES, nsnet, sh

LAB4 = EXAMPLES / "lab4-outside.yaml"
FETCH = "import sys,urllib.request;print(urllib.request.urlopen(sys.argv[1],timeout=3).read().decode(),end='')"


def up(path: str | Path, lab: str) -> str:
    result = nsnet("up", str(path), "--name", lab)
    assert result.code == 0, result.text
    return result.out


def fetch(lab: str, node: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", f"{lab}-{node}", sys.executable, "-c", FETCH, url],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


@pytest.fixture
def web_in_red(lab_name: str) -> Iterator[None]:
    """lab 4 up, and a web server on RED's port 80 answering who asked."""
    up(LAB4, lab_name)
    server = subprocess.Popen(
        ["ip", "netns", "exec", f"{lab_name}-RED", sys.executable, "-m", "nsnet.engine.outside_server", "80"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    yield None
    server.kill()
    server.wait()


def test_masquerade_to_the_outside_and_conntrack(lab_name: str) -> None:
    up(LAB4, lab_name)
    page = fetch(lab_name, "RED", "http://203.0.113.2/")
    assert page.returncode == 0, page.stderr
    lines = page.stdout.splitlines()
    assert lines[0] == "hello from outside"
    assert lines[1].startswith("client 203.0.113.1:")  # the host's uplink address: masquerade
    sport = int(lines[1].rsplit(":", 1)[1])
    shown = json.loads(nsnet("inspect", lab_name, "host", "--what", "conntrack", "--json").out)
    entries = shown["namespaces"][0]["conntrack"]
    assert any(
        e["original"]["src"] == "11.11.11.2"
        and e["original"]["dst"] == "203.0.113.2"
        and e["original"]["dport"] == 80
        and e["reply"]["dst"] == "203.0.113.1"
        and e["reply"]["dport"] == sport
        for e in entries
    ), entries
    # Traffic that stays on the bridge is not masqueraded.
    rules = sh("ip", "netns", "exec", f"{lab_name}-host", "iptables-save", "-t", "nat")
    assert "-A NSNET-POSTROUTING -s 11.11.11.0/24 ! -o br0 -j MASQUERADE" in rules


def test_published_port_from_outside_host_and_hairpin(lab_name: str, web_in_red: None) -> None:
    from_outside = fetch(lab_name, "outside", "http://203.0.113.1:8080/")
    assert from_outside.returncode == 0, from_outside.stderr
    assert from_outside.stdout.splitlines()[1].startswith("client 203.0.113.2:")
    from_host = fetch(lab_name, "host", "http://203.0.113.1:8080/")
    assert from_host.returncode == 0, from_host.stderr
    # BLUE through the host's address: DNAT to RED, and masquerade so RED answers via the host.
    hairpin = fetch(lab_name, "BLUE", "http://11.11.11.1:8080/")
    assert hairpin.returncode == 0, hairpin.stderr
    assert hairpin.stdout.splitlines()[1].startswith("client 11.11.11.1:")


def test_down_stops_the_outside_server(lab_name: str) -> None:
    up(LAB4, lab_name)
    journal = json.loads(Path(f"/run/nsnet/labs/{lab_name}.json").read_text())
    pid = journal["servers"][f"{lab_name}-outside"][0]
    assert Path(f"/proc/{pid}").exists()
    assert "nothing changed" in up(LAB4, lab_name)
    assert nsnet("down", lab_name).code == 0
    assert (
        not Path(f"/proc/{pid}/cmdline").exists() or b"outside_server" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    )


TWO_BRIDGES = """
name: two
host:
  bridges:
    br0: {addresses: [10.1.0.1/24]}
    br1: {addresses: [10.2.0.1/24]}
  interfaces:
    a1: {master: br0}
    b1: {master: br1}
ALLOW
nodes:
  A:
    interfaces:
      a0: {addresses: [10.1.0.2/24], gateway: true}
  B:
    interfaces:
      b0: {addresses: [10.2.0.2/24], gateway: true}
links:
  - [A:a0, host:a1]
  - [B:b0, host:b1]
"""


def test_bridges_are_isolated_until_the_pair_is_allowed(lab_name: str, tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(TWO_BRIDGES.replace("ALLOW\n", ""))
    up(path, lab_name)
    ping = ["ip", "netns", "exec", f"{lab_name}-A", "ping", "-c", "1", "-W", "1", "10.2.0.2"]
    assert subprocess.run(ping, capture_output=True, check=False).returncode == 1
    rules = sh("ip", "netns", "exec", f"{lab_name}-host", "iptables", "-S", "NSNET-FORWARD")
    assert "-A NSNET-FORWARD -i br0 -o br1 -j DROP" in rules
    assert "-A NSNET-FORWARD -i br1 -o br0 -j DROP" in rules
    explained = json.loads(nsnet("explain", lab_name, "A", "B", "--json").out)
    assert "rule 1 of NSNET-FORWARD (-A NSNET-FORWARD -i br0 -o br1 -j DROP)" in explained["verdict"]

    path.write_text(TWO_BRIDGES.replace("ALLOW\n", "  allow: [[br0, br1]]\n"))
    up(path, lab_name)
    assert subprocess.run(ping, capture_output=True, check=False).returncode == 0


DOCKER = """
name: dock
host:
  docker: true
  bridges:
    br0: {FORWARD}
  interfaces:
    reth1: {master: br0}
    beth1: {master: br0}
  sysctls:
    net.bridge.bridge-nf-call-iptables: 1
nodes:
  RED:
    interfaces:
      reth0: {addresses: [11.11.11.2/24]}
  BLUE:
    interfaces:
      beth0: {addresses: [11.11.11.3/24]}
links:
  - [RED:reth0, host:reth1]
  - [BLUE:beth0, host:beth1]
"""


def docker_lines(lab: str) -> list[str]:
    saved = sh("ip", "netns", "exec", f"{lab}-host", "iptables-save", "-t", "filter")
    # Counters move with traffic; compare the rules and policies only (like iptables-save without -c).
    return [
        line.split(" [")[0] if line.startswith(":") else line
        for line in saved.splitlines()
        if not line.startswith("#") and "NSNET" not in line
    ]


def test_docker_style_host_is_left_as_docker_made_it(lab_name: str, tmp_path: Path) -> None:
    path = tmp_path / "dock.yaml"
    path.write_text(DOCKER.replace("{FORWARD}", "{}"))
    up(path, lab_name)
    ping = ["ip", "netns", "exec", f"{lab_name}-RED", "ping", "-c", "1", "-W", "1", "11.11.11.3"]
    assert subprocess.run(ping, capture_output=True, check=False).returncode == 1  # Docker's FORWARD DROP
    docker_made = docker_lines(lab_name)
    assert docker_made == [
        "*filter",
        ":INPUT ACCEPT",
        ":FORWARD DROP",
        ":OUTPUT ACCEPT",
        ":DOCKER-FORWARD -",
        ":DOCKER-USER -",
        "-A FORWARD -j DOCKER-USER",
        "-A FORWARD -j DOCKER-FORWARD",
        "-A DOCKER-USER -j RETURN",
        "COMMIT",
    ]

    path.write_text(DOCKER.replace("{FORWARD}", "{forward: true}"))
    up(path, lab_name)
    assert subprocess.run(ping, capture_output=True, check=False).returncode == 0  # through nsnet's own chain
    assert docker_lines(lab_name) == docker_made

    path.write_text(DOCKER.replace("{FORWARD}", "{}"))
    up(path, lab_name)
    assert docker_lines(lab_name) == docker_made
    assert "NSNET" not in sh("ip", "netns", "exec", f"{lab_name}-host", "iptables-save")
