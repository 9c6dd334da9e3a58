"""reach: a reachability matrix from real probes, and the topology's expectations."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import nsnet as api
from nsnet import reach

from conftest import EXAMPLES, nsnet, sh, unique_name

LAB2 = (EXAMPLES / "lab2-bridge.yaml").read_text()
FIXED = (EXAMPLES / "lab2-bridge-fixed.yaml").read_text()


def up(tmp_path: Path, lab: str, text: str) -> None:
    path = tmp_path / f"{lab}.yaml"
    path.write_text(text)
    result = nsnet("up", str(path), "--name", lab)
    assert result.code == 0, result.text


def test_matrix_on_the_seed_labs(lab_name: str, tmp_path: Path) -> None:
    up(tmp_path, lab_name, LAB2)
    broken = nsnet("reach", lab_name, "--json")
    assert broken.code == 1
    data = json.loads(broken.out)
    assert data["mode"] == "matrix" and data["failed"] == 2
    assert {(r["src"], r["address"], r["ok"]) for r in data["results"]} == {
        ("RED", "11.11.11.3", False),
        ("BLUE", "11.11.11.2", False),
    }
    up(tmp_path, lab_name, FIXED)
    fixed = nsnet("reach", lab_name)
    assert fixed.code == 0, fixed.text
    assert "2/2 probes answered" in fixed.out
    assert "ok 11.11.11.3" in fixed.out and "ok 11.11.11.2" in fixed.out
    closed = nsnet("reach", lab_name, "--from", "RED", "--to", "BLUE", "--proto", "tcp:80", "--json")
    assert closed.code == 1
    assert json.loads(closed.out)["results"][0]["detail"] == "refused (RST)"


def test_expectations_turn_the_topology_into_a_network_test(lab_name: str, tmp_path: Path) -> None:
    expect = (
        "expect:\n"
        "  - {from: RED, to: BLUE, reach: false}\n"
        "  - {from: BLUE, to: RED, reach: false}\n"
        "  - {from: RED, to: BLUE, proto: 'tcp:80', reach: false}\n"
    )
    up(tmp_path, lab_name, LAB2 + expect)
    met = nsnet("reach", lab_name, "--json")
    assert met.code == 0, met.text
    data = json.loads(met.out)
    assert data["mode"] == "expectations"
    assert [(r["src"], r["dst"], r["proto"], r["expected"], r["ok"]) for r in data["results"]] == [
        ("RED", "BLUE", "icmp", False, False),
        ("BLUE", "RED", "icmp", False, False),
        ("RED", "BLUE", "tcp:80", False, False),
    ]
    # The fix breaks the "must not reach" expectations: reach says so and fails.
    up(tmp_path, lab_name, FIXED + expect)
    mismatch = nsnet("reach", lab_name)
    assert mismatch.code == 1
    assert mismatch.out.count("MISMATCH") == 2
    assert "1/3 expectations met" in mismatch.out


def test_a_50_node_full_matrix(lab_name: str) -> None:
    n = 50
    topology = api.from_dict(
        {
            "name": "wide",
            "host": {"bridges": {"br0": {}}, "interfaces": {f"p{i}": {"master": "br0"} for i in range(n)}},
            "nodes": {f"n{i}": {"interfaces": {"eth0": {"addresses": [f"10.50.0.{i + 1}/24"]}}} for i in range(n)},
            "links": [[f"n{i}:eth0", f"host:p{i}"] for i in range(n)],
        }
    )
    api.up(topology, lab_name)
    results = reach.run(lab_name, reach.matrix(lab_name))
    assert len(results) == n * (n - 1)
    assert all(r.ok for r in results), [r for r in results if not r.ok][:3]


def test_flushing_a_wave_keeps_permanent_entries() -> None:
    """Between waves, neighbour entries go as with `ip neigh flush all`: all but permanent ones."""
    ns = unique_name("fl")
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb")
        sh("ip", "-n", ns, "link", "set", "va", "up")
        for address, state in (("10.9.0.7", "permanent"), ("10.9.0.8", "reachable"), ("fd00::9", "stale")):
            sh("ip", "-n", ns, "neigh", "add", address, "lladdr", "02:00:00:00:00:07", "dev", "va", "nud", state)
        reach._flush_neighbours([ns])
        left = [(n["dst"], n["state"]) for n in json.loads(sh("ip", "-n", ns, "-j", "neigh", "show", "nud", "all"))]
        assert left == [("10.9.0.7", ["PERMANENT"])]
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
