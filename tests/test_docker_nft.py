"""``docker: nftables``: the host as Docker 29 leaves it with its nftables firewall backend, and explain on it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from nsnet import loads
from nsnet.model import HOST, State, bind
from nsnet.plan.actions import DockerHost
from nsnet.plan.diff import plan

from conftest import EXAMPLES, nsnet, sh

LAB2 = (EXAMPLES / "lab2-bridge.yaml").read_text()
DOCKER_NFT = LAB2.replace("host:\n", "host:\n  docker: nftables\n", 1).replace(
    "  firewall:\n    policies: {FORWARD: DROP}\n", ""
)
OWN_TABLE = """table ip mine {
	chain forward {
		type filter hook forward priority filter - 1; policy accept;
		ip saddr 11.11.11.0/24 accept
	}
}
"""


def ping(lab: str) -> int:
    argv = ["ip", "netns", "exec", f"{lab}-RED", "ping", "-c", "1", "-W", "1", "11.11.11.3"]
    return subprocess.run(argv, capture_output=True, check=False).returncode


@pytest.mark.unit
def test_docker_nftables_is_planned_as_a_native_ruleset() -> None:
    topology = loads(DOCKER_NFT)
    assert topology.namespaces[HOST].docker and topology.namespaces[HOST].docker_backend == "nftables"
    desired = bind(topology)
    docker = [a for a in plan(desired, State(desired.lab, {}), None).actions if isinstance(a, DockerHost)]
    assert [a.backend for a in docker] == ["nftables"]
    assert "nft -f -" in docker[0].commands()[0] and "table ip6 docker-bridges" in docker[0].commands()[0]
    assert (
        loads(
            LAB2.replace("host:\n", "host:\n  docker: true\n", 1).replace(
                "  firewall:\n    policies: {FORWARD: DROP}\n", ""
            )
        )
        .namespaces[HOST]
        .docker_backend
        == "iptables"
    )


def test_lab2_on_docker_nftables_fails_and_explain_names_dockers_chain(lab_name: str, tmp_path: Path) -> None:
    path = tmp_path / "lab2nft.yaml"
    path.write_text(DOCKER_NFT)
    assert nsnet("up", str(path), "--name", lab_name).code == 0
    host = f"{lab_name}-host"
    assert "table ip docker-bridges" in sh("ip", "netns", "exec", host, "nft", "list", "ruleset")
    assert "DOCKER-USER" not in sh("ip", "netns", "exec", host, "iptables-save")
    assert ping(lab_name) == 1

    # An accept in a table of one's own is not final: Docker's filter-FORWARD still drops.
    subprocess.run(["ip", "netns", "exec", host, "nft", "-f", "-"], input=OWN_TABLE, text=True, check=True)
    assert ping(lab_name) == 1
    result = nsnet("explain", "--probe", "--json", lab_name, "RED", "BLUE")
    assert result.code == 1, result.text
    explained = json.loads(result.out)
    steps = [s["text"] for s in explained["legs"][0]["steps"]]
    assert any("mine/forward -> ACCEPT" in s for s in steps), steps
    assert "policy drop of chain filter-FORWARD (table ip docker-bridges)" in explained["verdict"]
    observed = explained["observed"]
    assert observed["agrees"], observed
    v = observed["verdict"]
    assert (v["table"], v["chain"], v["kind"], v["verdict"]) == ("docker-bridges", "filter-FORWARD", "policy", "DROP")
    # The kernel's trace shows the accept of the own table, then Docker's drop: accept is not final.
    assert [(t["table"], t["verdict"]) for t in observed["trace"] if t["table"] != "raw"] == [
        ("mine", "ACCEPT"),
        ("docker-bridges", "DROP"),
    ]
    fix = explained["fix"]
    assert "no DOCKER-USER" in fix["summary"] and "not help" in fix["summary"]
    subprocess.run(fix["command"], shell=True, check=True)
    assert ping(lab_name) == 0
