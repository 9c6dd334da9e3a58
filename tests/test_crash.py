"""A randomized crash test: SIGKILL at random points of `up` and `down` of a 100-node lab with a firewall,
NAT, a published port, the outside's server and a process started in a node, in sandbox and root-host mode.

After every kill the next command converges: the next `up` leaves nothing to do (`plan` is empty), the next
`down` leaves nothing of the lab: no namespace (named, or kept alive by a process: every process's
``/proc/PID/ns/net`` is checked), no process, no file of the lab under the state directory, and, with
``host: root``, the root namespace's links, rules and sysctls as they were before the lab.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import yaml

from world import World, world

from conftest import netns_list, nsnet

pytestmark = pytest.mark.kernel
NODES = 100
SEED = 16


def crash_lab(host_mode: str = "sandbox") -> dict[str, object]:
    """A star of ``NODES`` nodes on br0: FORWARD DROP with the bridge's own traffic accepted, masquerade,
    a published port, and (in a sandbox) the outside namespace with its web server."""
    host: dict[str, object] = {
        "bridges": {"br0": {"addresses": ["10.70.0.1/24"], "masquerade": True, "forward": True}},
        "interfaces": {f"p{i}": {"master": "br0"} for i in range(NODES)},
        "sysctls": {"net.bridge.bridge-nf-call-iptables": 1},
        "firewall": {"policies": {"FORWARD": "DROP"}},
        "publish": ["8080:n0:80/tcp"],
    }
    lab: dict[str, object] = {
        "name": "crash",
        "host": host,
        "nodes": {
            f"n{i}": {"interfaces": {"eth0": {"addresses": [f"10.70.0.{i + 2}/24"], "gateway": True}}}
            for i in range(NODES)
        },
        "links": [[f"n{i}:eth0", f"host:p{i}"] for i in range(NODES)],
    }
    if host_mode == "root":  # the machine's own uplink is the outside there
        host["mode"] = "root"
    else:
        lab["outside"] = {"address": "203.0.113.2/24", "host_address": "203.0.113.1/24"}
    return lab


def _netns_inodes(names: Iterable[str], root: str = "/run/netns") -> set[int]:
    inodes = set()
    for name in names:
        try:
            inodes.add(os.stat(f"{root}/{name}").st_ino)
        except OSError:
            continue
    return inodes


def _processes_in(inodes: set[int]) -> list[str]:
    """``PID comm`` of every process of the machine whose network namespace is one of ``inodes`` and has no name
    under /run/netns any more: a namespace inode is reused once freed, by other tests' named namespaces."""
    inodes = inodes - _netns_inodes(netns_list())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                found.append(f"{entry} {Path(f'/proc/{entry}/comm').read_text().strip()}")
        except OSError:
            continue
    return found


def _plan_is_empty(out: str) -> bool:
    return "nothing to do" in out


# -- sandbox mode --------------------------------------------------------------------------------------


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "nsnet", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def _kill_after(proc: subprocess.Popen[str], delay: float) -> bool:
    time.sleep(delay)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return killed


def _lab_files(state: Path, lab: str) -> list[str]:
    return [str(p) for p in (state / "labs" / f"{lab}.json", state / "locks" / f"{lab}.lock") if p.exists()]


def test_sigkill_at_random_points_in_a_sandbox_lab(lab_name: str, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    path = tmp_path / "crash.yaml"
    path.write_text(yaml.safe_dump(crash_lab()))
    state = Path(os.environ.get("NSNET_STATE_DIR", "/run/nsnet"))
    timed = time.monotonic()
    assert nsnet("up", str(path), "--name", lab_name, "-q").code == 0
    build = time.monotonic() - timed
    timed = time.monotonic()
    assert nsnet("down", lab_name, "-q").code == 0
    teardown = time.monotonic() - timed
    points, killed, inodes = 60, 0, set()
    sleepers: list[subprocess.Popen[str]] = []
    try:
        for i in range(points):
            if i % 2 == 0:  # a kill during up, then up must converge
                killed += _kill_after(_start("up", str(path), "--name", lab_name, "-q"), build * rng.random())
                done = nsnet("up", str(path), "--name", lab_name, "-q")
                assert done.code == 0, f"point {i}: {done.text}"
                plan = nsnet("plan", str(path), "--name", lab_name)
                assert _plan_is_empty(plan.out), f"point {i}: {plan.out}"
                names = [ns for ns in netns_list() if ns.startswith(f"{lab_name}-")]
                assert len(names) == NODES + 2, f"point {i}: {len(names)} namespaces"
                inodes |= _netns_inodes(names)
                sleepers.append(
                    subprocess.Popen(
                        ["ip", "netns", "exec", f"{lab_name}-n{i % NODES}", "sleep", "1000"], start_new_session=True
                    )
                )
            else:  # a kill during down, then down must leave nothing
                killed += _kill_after(_start("down", lab_name, "-q"), teardown * rng.random())
                done = nsnet("down", lab_name, "-q")
                assert done.code == 0, f"point {i}: {done.text}"
                assert not [ns for ns in netns_list() if ns.startswith(f"{lab_name}-")], f"point {i}"
                assert not _processes_in(inodes), f"point {i}: {_processes_in(inodes)}"
                assert not _lab_files(state, lab_name), f"point {i}: {_lab_files(state, lab_name)}"
                inodes = set()
        assert killed >= points // 3, f"only {killed} of {points} kills interrupted something"
    finally:
        for proc in sleepers:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


# -- root-host mode, in a private world ------------------------------------------------------------------


@pytest.fixture
def private() -> Iterator[World]:
    yield from world()


def _root_state(w: World) -> dict[str, str]:
    """The world's root namespace as a lab must leave it: links, addresses, rules (no counters), sysctls."""
    out = w.sh(
        "ip -o link | cut -d: -f2; echo ==; ip -br addr; echo ==; iptables-save; echo ==; ip6tables-save; "
        "echo ==; nft list ruleset; echo ==; sysctl net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables "
        "2>/dev/null || true"
    )
    parts = out.split("==\n")
    # Empty tables with built-in chains at ACCEPT are iptables' own making once any rule was ever written.
    builtin = re.compile(r"^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT")
    rules = [
        re.sub(r"\[\d+:\d+\]", "", line)
        for line in "".join(parts[2:4]).splitlines()
        if line.startswith(("-A", ":")) and not builtin.match(line)
    ]
    nft_rules = [
        line.strip()
        for line in re.sub(r"counter packets \d+ bytes \d+", "counter", parts[4]).splitlines()
        if line.strip() and not re.match(r"\s*(table|chain|type|policy|\})", line)
    ]
    return {
        "links": "".join(sorted(parts[0].splitlines(keepends=True))),
        "addresses": parts[1],
        "iptables": "\n".join(rules),
        "nft": "\n".join(nft_rules),
        "sysctls": parts[5] if len(parts) > 5 else "",
    }


def _kill_in_world(w: World, argv: str, delay: float) -> bool:
    """Run an nsnet command in the world and SIGKILL it after ``delay`` seconds; whether it was still running."""
    script = (
        f"{sys.executable} -m nsnet {argv} >/dev/null 2>&1 & pid=$!; sleep {delay:.3f}; "
        "if kill -0 $pid 2>/dev/null; then kill -9 $pid; echo killed; fi; wait $pid || true"
    )
    return "killed" in w.sh(script)


def test_sigkill_at_random_points_in_a_root_host_lab(private: World, lab_name: str, tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    path = tmp_path / "crash-root.yaml"
    path.write_text(yaml.safe_dump(crash_lab("root")))
    before = _root_state(private)
    timed = time.monotonic()
    assert private.nsnet("up", str(path), "--name", lab_name, "-q").code == 0
    build = time.monotonic() - timed
    timed = time.monotonic()
    assert private.nsnet("down", lab_name, "-q").code == 0
    teardown = time.monotonic() - timed
    assert _root_state(private) == before
    points, killed = 40, 0
    for i in range(points):
        if i % 2 == 0:
            killed += _kill_in_world(private, f"up {path} --name {lab_name} -q", build * rng.random())
            done = private.nsnet("up", str(path), "--name", lab_name, "-q")
            assert done.code == 0, f"point {i}: {done.text}"
            plan = private.nsnet("plan", str(path), "--name", lab_name)
            assert _plan_is_empty(plan.out), f"point {i}: {plan.out}"
            private.sh(f"setsid ip netns exec {lab_name}-n{i % NODES} sleep 1000 </dev/null >/dev/null 2>&1 &")
        else:
            killed += _kill_in_world(private, f"down {lab_name} -q", teardown * rng.random())
            done = private.nsnet("down", lab_name, "-q")
            assert done.code == 0, f"point {i}: {done.text}"
            left = private.sh(
                f"ip netns list | grep -c '^{lab_name}-' || true; ls /run/nsnet/labs /run/nsnet/locks 2>/dev/null "
                f"| grep -c '^{lab_name}\\.' || true; pgrep -c -x sleep || true"
            ).split()
            assert left == ["0", "0", "0"], f"point {i}: namespaces, lab files, sleeping processes left: {left}"
            now = _root_state(private)
            changed = [key for key in before if now[key] != before[key]]
            assert not changed, f"point {i}: the root namespace's {changed} changed:\n{now}"
    assert killed >= points // 3, f"only {killed} of {points} kills interrupted something"
