"""Every example runs as it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXAMPLES, nsnet

pytestmark = pytest.mark.unit


def test_every_example_topology_validates() -> None:
    files = sorted(str(p) for p in EXAMPLES.glob("*.yaml"))
    assert len(files) >= 3
    result = nsnet("validate", *files)
    assert result.code == 0, result.text
    assert result.out.count(": ok (") == len(files)


def test_seed_lab2_script_runs_end_to_end(lab_name: str) -> None:
    env = dict(os.environ, LAB=lab_name, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run(
        ["bash", str(EXAMPLES / "seed-lab2.sh")], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    first, second = out.split("ping BLUE from RED again")
    assert "100% packet loss" in first
    assert "11.11.11.3 dev reth0 lladdr" in first
    assert "Chain FORWARD (policy DROP" in first
    assert f"iptables in {lab_name}-host: + FORWARD -s 11.11.11.0/24 -j ACCEPT" in first
    assert " 0% packet loss" in second
    assert f"lab {lab_name}: down" in second


def test_overlay_dynamic_script_runs_end_to_end(lab_name: str) -> None:
    env = dict(os.environ, LAB=lab_name, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run(
        ["bash", str(EXAMPLES / "overlay-dynamic.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "(A:vxlan1 sends nowhere yet)" in out
    assert "42   10.0.0.2  02:42:0a:00:00:02  192.168.100.1  A     RED" in out
    assert "A l3miss 10.0.0.3 dev vxlan1 -> 02:42:0a:00:00:03 via 192.168.100.2" in out
    assert out.count("1 received, 0% packet loss") == 2  # GREEN, from RED and from BLUE
    assert "192.168.100.3 (C)  10.0.0.4" in out
    assert f"lab {lab_name}: down" in out
    left = subprocess.run(["pgrep", "-f", f"overlay (registry|serve) {lab_name}"], capture_output=True, check=False)
    assert left.returncode == 1, left.stdout
