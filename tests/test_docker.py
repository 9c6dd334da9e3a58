"""Lab 2 with ``host: root`` on a real Docker host: Debian's dockerd, in a private world (never the machine's).

The seed's lab 2 fails on a Docker host because Docker sets the FORWARD
policy to DROP. explain must name that policy and put the fix in
DOCKER-USER; the fix, applied as printed, must work and survive a dockerd
restart; so must the lab's own rule; and ``down`` must leave Docker's
ruleset as it found it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockerd import IMAGE, Docker, missing, remove_cgroups
from world import World, root_variant, world

from conftest import explain_json, nsnet, sh

DEFAULT_DIRS = ("/var/lib/docker", "/var/lib/containerd", "/run/docker", "/run/containerd", "/etc/docker/key.json")
"""Where a dockerd without its own roots would write on the machine."""
ACCEPT_FIX = "iptables -I DOCKER-USER -s 11.11.11.0/24 -j ACCEPT"


@pytest.fixture
def docker_host(lab_name: str) -> Iterator[Docker]:
    """dockerd running in a private world, with the test image imported and a container run to prove it works."""
    lacking = missing()
    if lacking:
        pytest.fail(lacking)  # a machine set up by scripts/setup.sh has Docker: its absence is a failure
    parent = f"nsnet-test-{lab_name}"
    machine_dirs = {path: os.path.exists(path) for path in DEFAULT_DIRS}
    private = world(private_dirs=["/etc/docker"])
    w = next(private)
    try:
        docker = Docker(w, parent)
        docker.start()
        docker.import_busybox()
        ran = docker.cli("run", "--rm", "--network", "bridge", IMAGE, "ping", "-c", "1", "-W", "2", "172.17.0.1")
        assert ran.code == 0, f"a container cannot run here:\n{ran.text}\n{docker.log()}"
        info = json.loads(docker.cli("info", "--format", "{{json .}}").out)
        assert (info["DefaultRuntime"], info["CgroupDriver"], info["Driver"]) == ("runc", "cgroupfs", docker.driver)
        yield docker
    finally:
        try:
            next(private, None)  # closes the world and checks that nothing of it is left
        finally:
            left = remove_cgroups(parent)
            assert not left, f"cgroups left behind: {left}"
            now = {path: os.path.exists(path) for path in DEFAULT_DIRS}
            assert now == machine_dirs, "dockerd wrote to the machine's own directories"


def saved(w: World) -> str:
    """``iptables-save`` and ``ip6tables-save`` of the world's root namespace, without comments and counters."""
    text = w.sh("iptables-save; ip6tables-save")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    return "\n".join(re.sub(r" \[\d+:\d+\]$", "", line) for line in lines)


def pings(w: World, lab: str) -> bool:
    return w.run("ip", "netns", "exec", f"{lab}-RED", "ping", "-c", "2", "-i", "0.2", "-W", "1", "11.11.11.3").code == 0


def explain(w: World, lab: str) -> dict[str, Any]:
    shown = w.nsnet("explain", lab, "RED", "BLUE", "--probe", "--json")
    assert shown.code in (0, 1), shown.text
    data: dict[str, Any] = json.loads(shown.out)
    assert shown.code == (0 if data["reachable"] else 1)
    assert data["observed"]["agrees"], data["observed"]
    return data


def test_lab2_on_a_docker_host(docker_host: Docker, lab_name: str, tmp_path: Path) -> None:
    docker, w = docker_host, docker_host.world
    docker_made = saved(w)
    assert ":FORWARD DROP" in docker_made and "-A FORWARD -j DOCKER-USER" in docker_made
    assert "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER" in docker_made
    lab2, fixed = root_variant("lab2-bridge.yaml", tmp_path), root_variant("lab2-bridge-fixed.yaml", tmp_path)

    up = w.nsnet("up", lab2, "--name", lab_name)
    assert up.code == 0, up.text
    # As in the tutorial: the ping dies, though ARP resolved BLUE's address.
    assert not pings(w, lab_name)
    neigh = json.loads(w.sh(f"ip -n {lab_name}-RED -j neigh show 11.11.11.3"))
    assert neigh and neigh[0]["lladdr"] and neigh[0]["state"][0] != "FAILED", neigh

    data = explain(w, lab_name)
    assert data["reachable"] is False
    assert data["verdict"].endswith("policy DROP of FORWARD in host's filter table drops it"), data["verdict"]
    # Docker's nat PREROUTING (-m addrtype --dst-type LOCAL) was evaluated on the way, not given up on.
    steps = [s["text"] for s in data["legs"][0]["steps"]]
    assert any(s.startswith("netfilter PREROUTING: nat/PREROUTING -> ACCEPT") for s in steps), steps
    fix = data["fix"]
    assert fix["command"] == ACCEPT_FIX
    for words in ("DOCKER-USER", "Docker's documentation", "Docker's FORWARD policy", "dockerd restarts"):
        assert words in fix["summary"], fix["summary"]

    w.sh(fix["command"])  # the fix, as printed
    assert pings(w, lab_name)
    assert explain(w, lab_name)["reachable"] is True

    docker.restart()
    assert pings(w, lab_name), "the DOCKER-USER rule did not survive a dockerd restart"
    assert explain(w, lab_name)["reachable"] is True

    w.sh(fix["command"].replace(" -I ", " -D ", 1))  # the user takes the rule out again: the lab fails again
    assert not pings(w, lab_name)

    up = w.nsnet("up", fixed, "--name", lab_name)  # the lab's own accept rule, in nsnet's chain
    assert up.code == 0, up.text
    assert pings(w, lab_name)
    docker.restart()
    assert pings(w, lab_name), "the lab's own rule did not survive a dockerd restart"
    assert explain(w, lab_name)["reachable"] is True
    forward = [line for line in saved(w).splitlines() if line.startswith("-A FORWARD ")]
    assert forward[0] == "-A FORWARD -j DOCKER-USER", forward  # Docker put its chains first again

    down = w.nsnet("down", lab_name)
    assert down.code == 0, down.text
    assert saved(w) == docker_made, "down did not leave Docker's ruleset as it found it"
    assert w.sh("ip -o link show | awk -F': ' '{print $2}'").split() == ["lo", "docker0"]


DOCKER_STYLE = """\
name: dockerstyle
host:
  docker: true
  bridges:
    br0: {}
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


def test_a_docker_style_sandbox_host_gets_the_docker_user_fix(lab_name: str, tmp_path: Path) -> None:
    """``docker: true`` builds the host's filter table as Docker leaves it: the same fix, and it works."""
    path = tmp_path / "dockerstyle.yaml"
    path.write_text(DOCKER_STYLE)
    up = nsnet("up", str(path), "--name", lab_name)
    assert up.code == 0, up.text
    data = explain_json(lab_name, "RED", "BLUE")
    assert data["reachable"] is False
    assert data["fix"]["command"] == f"ip netns exec {lab_name}-host {ACCEPT_FIX}"
    sh("bash", "-c", data["fix"]["command"])
    assert explain_json(lab_name, "RED", "BLUE")["reachable"] is True
