"""Reliability on the real kernel: crashes, a lost journal, concurrency, drift, leaks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nsnet as api

from conftest import EXAMPLES, netns_list, nsnet, sh, unique_name

N = 50


def wide(n: int = N) -> dict[str, object]:
    return {
        "name": "wide",
        "host": {
            "bridges": {"br0": {"addresses": ["10.60.0.1/24"]}},
            "interfaces": {f"p{i}": {"master": "br0"} for i in range(n)},
            "firewall": {
                "policies": {"FORWARD": "DROP"},
                "rules": [{"chain": "FORWARD", "in": "br0", "action": "ACCEPT"}],
            },
            "sysctls": {"net.ipv4.ip_forward": 1},
        },
        "nodes": {
            f"n{i}": {"interfaces": {"eth0": {"addresses": [f"10.60.0.{i + 2}/24"], "gateway": True}}} for i in range(n)
        },
        "links": [[f"n{i}:eth0", f"host:p{i}"] for i in range(n)],
    }


def lab_namespaces(lab: str) -> set[str]:
    return {ns for ns in netns_list() if ns.startswith(f"{lab}-")}


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "nsnet", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def test_sigkill_at_many_points_of_up_and_down_always_converges(lab_name: str, tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "wide.yaml"
    path.write_text(yaml.safe_dump(wide()))
    started = time.monotonic()
    assert nsnet("up", str(path), "--name", lab_name, "-q").code == 0
    build = time.monotonic() - started
    started = time.monotonic()
    assert nsnet("down", lab_name, "-q").code == 0
    teardown = time.monotonic() - started
    points = 30
    killed_up = killed_down = 0
    for i in range(points):
        # Spread the kill over the whole build (process start-up included), then over the teardown.
        proc = start("up", str(path), "--name", lab_name, "-q")
        time.sleep(build * (i + 0.5) / points)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed_up += 1
        proc.wait()
        result = nsnet("up", str(path), "--name", lab_name, "-q")
        assert result.code == 0, f"point {i}: {result.text}"
        plan = nsnet("plan", str(path), "--name", lab_name)
        assert "nothing to do" in plan.out, f"point {i}: {plan.out}"
        assert len(lab_namespaces(lab_name)) == N + 1

        proc = start("down", lab_name, "-q")
        time.sleep(teardown * (i + 0.5) / points)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed_down += 1
        proc.wait()
        if Path(f"/run/nsnet/labs/{lab_name}.json").exists() or lab_namespaces(lab_name):
            result = nsnet("down", lab_name, "-q")
            assert result.code == 0, f"point {i}: {result.text}"
        assert not lab_namespaces(lab_name), f"point {i}: left {sorted(lab_namespaces(lab_name))[:5]}"
    # Most of the points must really have interrupted something.
    assert killed_up >= points // 2 and killed_down >= 1, (killed_up, killed_down)


def test_lost_journal_gc_removes_exactly_the_lab(lab_name: str) -> None:
    other = unique_name("keep")
    sh("ip", "netns", "add", other)
    try:
        bystander = unique_name()
        assert nsnet("up", str(EXAMPLES / "lab1-veth.yaml"), "--name", bystander, "-q").code == 0
        try:
            assert nsnet("up", str(EXAMPLES / "lab2-bridge.yaml"), "--name", lab_name, "-q").code == 0
            Path(f"/run/nsnet/labs/{lab_name}.json").unlink()
            listed = json.loads(nsnet("gc", lab_name, "--dry-run", "--json").out)
            assert sorted(m["netns"] for m in listed) == sorted(f"{lab_name}-{n}" for n in ("RED", "BLUE", "host"))
            assert lab_namespaces(lab_name)  # a dry run removes nothing
            removed = nsnet("gc", lab_name)
            assert removed.code == 0, removed.text
            assert not lab_namespaces(lab_name)
            assert other in netns_list()
            assert lab_namespaces(bystander)
        finally:
            nsnet("down", bystander, "-q")
    finally:
        subprocess.run(["ip", "netns", "del", other], check=False)


def test_down_without_journal_uses_the_marks(lab_name: str) -> None:
    assert nsnet("up", str(EXAMPLES / "lab1-veth.yaml"), "--name", lab_name, "-q").code == 0
    Path(f"/run/nsnet/labs/{lab_name}.json").unlink()
    result = nsnet("down", lab_name)
    assert result.code == 0, result.text
    assert not lab_namespaces(lab_name)


def test_two_ups_of_one_lab_are_serialised(lab_name: str) -> None:
    path = str(EXAMPLES / "lab2-bridge-fixed.yaml")
    procs = [start("up", path, "--name", lab_name, "-q") for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert "nothing to do" in nsnet("plan", path, "--name", lab_name).out
    assert len(lab_namespaces(lab_name)) == 3


def test_two_labs_at_once_do_not_see_each_other(lab_name: str, new_lab_name: list[str]) -> None:
    other = unique_name()
    new_lab_name.append(other)
    path = str(EXAMPLES / "lab2-bridge-fixed.yaml")
    procs = [start("up", path, "--name", name, "-q") for name in (lab_name, other)]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    # Same addresses in both labs; a capture on the other lab's bridge sees none of this lab's pings.
    dump = subprocess.Popen(
        ["ip", "netns", "exec", f"{other}-host", "tcpdump", "-n", "-i", "br0", "-c", "50", "icmp or arp"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    ping = subprocess.run(
        ["ip", "netns", "exec", f"{lab_name}-RED", "ping", "-c", "3", "-i", "0.2", "11.11.11.3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ping.returncode == 0
    time.sleep(0.5)
    dump.send_signal(signal.SIGINT)
    out, err = dump.communicate(timeout=10)
    assert "0 packets captured" in err, out + err


def test_drift_is_shown_repaired_and_down_still_works(lab_name: str) -> None:
    path = str(EXAMPLES / "lab2-bridge-fixed.yaml")
    assert nsnet("up", path, "--name", lab_name, "-q").code == 0
    host = f"{lab_name}-host"
    sh("ip", "netns", "del", f"{lab_name}-BLUE")
    sh("ip", "-n", f"{lab_name}-RED", "addr", "flush", "dev", "reth0")
    sh("ip", "-n", f"{lab_name}-RED", "addr", "add", "11.11.11.20/24", "dev", "reth0")
    sh("ip", "netns", "exec", host, "iptables", "-F", "NSNET-FORWARD")
    drift = nsnet("plan", path, "--name", lab_name)
    assert f"create namespace {lab_name}-BLUE (BLUE)" in drift.out
    assert f"delete address 11.11.11.20/24 from {lab_name}-RED:reth0" in drift.out
    assert f"add address 11.11.11.2/24 to {lab_name}-RED:reth0" in drift.out
    assert "+ FORWARD -s 11.11.11.0/24 -j ACCEPT" in drift.out
    assert nsnet("up", path, "--name", lab_name, "-q").code == 0
    assert "nothing to do" in nsnet("plan", path, "--name", lab_name).out
    ping = ["ip", "netns", "exec", f"{lab_name}-RED", "ping", "-c", "1", "-W", "1", "11.11.11.3"]
    assert subprocess.run(ping, capture_output=True, check=False).returncode == 0
    sh("ip", "netns", "del", f"{lab_name}-RED")  # and down still succeeds with a node gone
    assert nsnet("down", lab_name, "-q").code == 0
    assert not lab_namespaces(lab_name)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_fd_or_memory_leak_across_cycles(lab_name: str) -> None:
    topology = api.from_dict(wide(20))
    api.up(topology, lab_name)
    api.down(lab_name)
    fds = open_fds()
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1])
    for _ in range(100):
        api.up(topology, lab_name)
        api.down(lab_name)
    assert open_fds() == fds
    with open("/proc/self/statm") as f:
        grown = (int(f.read().split()[1]) - rss) * os.sysconf("SC_PAGE_SIZE")
    assert grown < 64 << 20, f"resident memory grew by {grown >> 20} MiB over 100 cycles"
    assert not lab_namespaces(lab_name)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_up_then_down_leaves_nothing(lab_name: str, tmp_path: Path, signum: int) -> None:
    import yaml

    path = tmp_path / "wide.yaml"
    path.write_text(yaml.safe_dump(wide(20)))
    proc = start("up", str(path), "--name", lab_name, "-q")
    time.sleep(0.4)
    proc.send_signal(signum)
    proc.wait(timeout=60)
    result = nsnet("down", lab_name, "-q")
    assert result.code == 0, result.text
    assert not lab_namespaces(lab_name)


def test_a_200_node_full_mesh_reach_stays_bounded(lab_name: str) -> None:
    """39,800 probes in waves that fit the kernel's shared neighbour table; fds and memory stay put."""
    from nsnet import reach

    n = 200
    topology = api.from_dict(
        {
            "name": "mesh",
            "host": {"bridges": {"br0": {}}, "interfaces": {f"p{i}": {"master": "br0"} for i in range(n)}},
            "nodes": {
                f"n{i}": {"interfaces": {"eth0": {"addresses": [f"10.90.{i // 250}.{i % 250 + 1}/16"]}}}
                for i in range(n)
            },
            "links": [[f"n{i}:eth0", f"host:p{i}"] for i in range(n)],
        }
    )
    api.up(topology, lab_name)
    fds = open_fds()
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1])
    results = reach.run(lab_name, reach.matrix(lab_name))
    assert len(results) == n * (n - 1)
    assert all(r.ok for r in results), [r for r in results if not r.ok][:3]
    assert open_fds() == fds
    with open("/proc/self/statm") as f:
        grown = (int(f.read().split()[1]) - rss) * os.sysconf("SC_PAGE_SIZE")
    assert grown < 128 << 20, f"resident memory grew by {grown >> 20} MiB"
