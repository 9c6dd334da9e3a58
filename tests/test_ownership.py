"""Nothing foreign is touched: links, namespaces and files nsnet did not create, and journals it cannot trust.

Root-namespace cases run in a private world (tests/world.py), never on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from world import World, world

from conftest import EXAMPLES, netns_list, nsnet, sh, unique_name

ROOT_BRIDGE = """\
name: {lab}
host:
  mode: root
  bridges:
    br0: {{addresses: [11.11.11.1/24]}}
  interfaces:
    reth1: {{master: br0}}
nodes:
  RED:
    interfaces:
      reth0: {{addresses: [11.11.11.2/24]}}
links:
  - [RED:reth0, host:reth1]
"""


@pytest.fixture
def private() -> Iterator[World]:
    yield from world()


def addresses(w: World, link: str) -> set[str]:
    """The IPv4 addresses of a link of the world's root namespace."""
    shown = json.loads(w.sh(f"ip -j -4 addr show dev {link}"))
    return {f"{a['local']}/{a['prefixlen']}" for a in shown[0]["addr_info"]}


def test_a_foreign_root_bridge_is_refused_not_taken_over(private: World, lab_name: str, tmp_path: Path) -> None:
    w = private
    topo = tmp_path / "root-bridge.yaml"
    topo.write_text(ROOT_BRIDGE.format(lab=lab_name))
    w.sh("ip link add br0 type bridge && ip addr add 192.0.2.1/24 dev br0 && ip link set br0 up")
    before = w.sh("ip -br link show br0")

    for command in ("plan", "up"):
        refused = w.nsnet(command, str(topo))
        assert refused.code != 0, refused.text
        assert "Traceback" not in refused.text
        assert "interface br0 already exists in the root namespace and was not created by nsnet" in refused.err
        assert "rename it in the topology" in refused.err and "ip link del br0" in refused.err
        assert "delete address 192.0.2.1/24" not in refused.text
    assert addresses(w, "br0") == {"192.0.2.1/24"}
    assert w.sh("ip -br link show br0") == before
    assert w.sh("ip netns list").strip() == "", "a refused up created namespaces"
    assert "reth1" not in w.sh("ip -o link")
    assert w.run("test", "-e", f"/run/nsnet/labs/{lab_name}.json").code == 1, "a refused up left a journal"

    # The foreign bridge gone, the same file builds its own, and down removes only that.
    w.sh("ip link del br0 && ip link add own0 type veth peer name own1 && ip addr add 192.0.2.7/24 dev own0")
    up = w.nsnet("up", str(topo))
    assert up.code == 0, up.text
    assert addresses(w, "br0") == {"11.11.11.1/24"}
    assert "nothing to do" in w.nsnet("plan", str(topo)).out
    down = w.nsnet("down", lab_name)
    assert down.code == 0, down.text
    links = w.sh("ip -o link")
    assert "br0" not in links and "reth1" not in links
    assert addresses(w, "own0") == {"192.0.2.7/24"}


def test_a_foreign_root_link_named_like_a_veth_end_is_refused(private: World, lab_name: str, tmp_path: Path) -> None:
    w = private
    topo = tmp_path / "root-bridge.yaml"
    topo.write_text(ROOT_BRIDGE.format(lab=lab_name))
    w.sh("ip link add reth1 type veth peer name other1 && ip addr add 192.0.2.9/24 dev reth1")
    refused = w.nsnet("up", str(topo))
    assert refused.code != 0 and "Traceback" not in refused.text, refused.text
    assert "interface reth1 already exists in the root namespace" in refused.err
    assert addresses(w, "reth1") == {"192.0.2.9/24"}
    assert "br0" not in w.sh("ip -o link") and w.sh("ip netns list").strip() == ""


def lo_alias(ns: str) -> str:
    shown = json.loads(sh("ip", "-n", ns, "-j", "link", "show", "lo"))
    return str(shown[0].get("ifalias", ""))


def test_a_namespace_made_again_by_someone_else_is_neither_adopted_nor_deleted(lab_name: str) -> None:
    up = nsnet("up", str(EXAMPLES / "lab2-bridge.yaml"), "--name", lab_name)
    assert up.code == 0, up.text
    red = f"{lab_name}-RED"
    assert lo_alias(red).startswith(f"nsnet:{lab_name}:RED:")
    sh("ip", "netns", "del", red)
    sh("ip", "netns", "add", red)
    try:
        sh("ip", "-n", red, "link", "add", "foo", "type", "veth", "peer", "name", "bar")
        for command in ("plan", "up"):
            refused = nsnet(command, str(EXAMPLES / "lab2-bridge.yaml"), "--name", lab_name)
            assert refused.code != 0 and "Traceback" not in refused.text, refused.text
            assert f"network namespace {red!r} of lab {lab_name!r} was replaced" in refused.err
            assert f"ip netns del {red}" in refused.err
        assert lo_alias(red) == "", "up marked a namespace it did not create"
        assert "reth0" not in sh("ip", "-n", red, "-o", "link")

        planned = nsnet("plan", "--down", lab_name)
        assert planned.code == 0 and f"would keep namespace {red}" in planned.err, planned.text
        assert f"delete namespace {red}" not in planned.out
        down = nsnet("down", lab_name)
        assert down.code == 0, down.text
        assert f"kept namespace {red}" in down.err
        assert red in netns_list(), "down deleted a namespace it did not create"
        links = sh("ip", "-n", red, "-o", "link")
        assert "foo@bar" in links and "bar@foo" in links
        assert not {f"{lab_name}-BLUE", f"{lab_name}-host"} & netns_list()
        assert nsnet("ls", "--json").out.count(lab_name) == 0
    finally:
        subprocess.run(["ip", "netns", "del", red], check=False)


def test_an_empty_namespace_made_again_is_not_taken_either(lab_name: str) -> None:
    assert nsnet("up", str(EXAMPLES / "lab1-veth.yaml"), "--name", lab_name).code == 0
    spaces = sorted(ns for ns in netns_list() if ns.startswith(f"{lab_name}-"))
    victim = spaces[0]
    sh("ip", "netns", "del", victim)
    sh("ip", "netns", "add", victim)
    try:
        refused = nsnet("up", str(EXAMPLES / "lab1-veth.yaml"), "--name", lab_name)
        assert refused.code != 0 and "was replaced" in refused.err, refused.text
        down = nsnet("down", lab_name)
        assert down.code == 0, down.text
        assert victim in netns_list()
        assert not (set(spaces) - {victim}) & netns_list()
    finally:
        subprocess.run(["ip", "netns", "del", victim], check=False)


# -- the journal and the state directory ---------------------------------------------------


def state_env(state: Path) -> dict[str, str]:
    return {**os.environ, "NSNET_STATE_DIR": str(state)}


def test_a_symlinked_journal_is_refused(lab_name: str, tmp_path: Path) -> None:
    """Someone else's journal, linked in place of the lab's, names a namespace that is not the lab's."""
    state, victim = tmp_path / "state", f"{lab_name}-victim"
    (state / "labs").mkdir(parents=True)
    evil = tmp_path / "evil.json"
    evil.write_text(json.dumps({"lab": lab_name, "namespaces": {victim: "RED"}, "status": "up"}))
    (state / "labs" / f"{lab_name}.json").symlink_to(evil)
    sh("ip", "netns", "add", victim)
    try:
        down = nsnet("down", lab_name, env=state_env(state))
        assert down.code == 2 and "Traceback" not in down.text, down.text
        assert "cannot be trusted" in down.err and "is a symbolic link" in down.err
        assert victim in netns_list()
        listed = nsnet("ls", "--json", env=state_env(state))
        assert listed.code == 0, listed.text
        assert [(lab["name"], lab["status"]) for lab in json.loads(listed.out)] == [(lab_name, "unreadable")]
    finally:
        subprocess.run(["ip", "netns", "del", victim], check=False)


def test_a_symlinked_journal_directory_is_refused(lab_name: str, tmp_path: Path) -> None:
    state, victim, elsewhere = tmp_path / "state", f"{lab_name}-victim", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / f"{lab_name}.json").write_text(json.dumps({"lab": lab_name, "namespaces": {victim: "RED"}}))
    state.mkdir()
    (state / "labs").symlink_to(elsewhere)
    sh("ip", "netns", "add", victim)
    try:
        for args in (["down", lab_name], ["ls"]):
            refused = nsnet(*args, env=state_env(state))
            assert refused.code == 2 and "Traceback" not in refused.text, refused.text
            assert f"{state / 'labs'} is a symbolic link" in refused.err
        assert victim in netns_list()
    finally:
        subprocess.run(["ip", "netns", "del", victim], check=False)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("namespaces", {"../../{victim}": "RED"}, "is not a namespace name"),
        ("root_links", ["../x"], "is not an interface name"),
        ("sysctls", {"": {"kernel.core_pattern": "|/bin/sh"}}, "is not a sysctl nsnet sets"),
        ("policies", {"": {"FORWARD\nCOMMIT": "ACCEPT"}}, "is not one nsnet sets"),
        ("servers", {"x": [1, 80]}, "is not a pid, a port and a start time"),
        ("shaping", {"x": {"a0": "tbf rate 1mbit dev eth0"}}, "is not one nsnet writes"),
    ],
)
def test_a_journal_naming_what_nsnet_never_writes_is_refused(
    lab_name: str, tmp_path: Path, field: str, value: object, message: str
) -> None:
    """A namespace name ``../../path`` would make down unmount and unlink an arbitrary empty file."""
    state = tmp_path / "state"
    (state / "labs").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.touch()
    text = json.dumps({"lab": lab_name, field: value, "status": "up"}).replace("{victim}", str(victim).lstrip("/"))
    (state / "labs" / f"{lab_name}.json").write_text(text)
    down = nsnet("down", lab_name, env=state_env(state))
    assert down.code == 2 and "Traceback" not in down.text, down.text
    assert f"the journal of lab {lab_name!r}" in down.err and "is corrupt" in down.err and message in down.err
    assert victim.exists()


def test_every_journal_nsnet_writes_passes_the_check() -> None:
    """The check refuses only what nsnet never writes: originals as the kernel gave them pass."""
    from dataclasses import asdict

    from nsnet.engine import journal_check
    from nsnet.engine.journal import Journal
    from nsnet.topology.shaping import qdisc

    journal = Journal(
        lab="x",
        source="/home/you/lab.yaml",
        host_mode="root",
        namespaces={"x-RED": "RED", "BLUE": "BLUE", "x-underlay": "underlay"},
        hosts=["A"],
        root_links=["br0", "reth1", "v.10:a-b"],
        root_routes=["default via 10.0.0.1"],
        sysctls={
            "": {"net.ipv4.ip_forward": "0", "net.ipv4.ip_local_reserved_ports": "8080,9090"},
            "x-RED": {"net.ipv4.tcp_rmem": "4096 131072 6291456", "net.ipv4.conf.eth0.rp_filter": "2"},
        },
        policies={"": {"FORWARD": "DROP"}, "x-RED": {"INPUT": "ACCEPT"}},
        firewall=["", "x-RED"],
        shaping={"x-RED": {"eth0": qdisc("10mbit", "20ms", 1e-05) or "", "eth1": qdisc("1gbit", None, None) or ""}},
        servers={"": [4242, 8080]},
        status="up",
    )
    data = {k: v for k, v in asdict(journal).items() if k not in ("tolerant", "unsaved")}
    assert journal_check.check(json.loads(json.dumps(data)), "x") == data


def test_the_lock_file_is_never_truncated_through_a_link(lab_name: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "locks").mkdir(parents=True, mode=0o700)
    precious = tmp_path / "precious"
    precious.write_text("keep me\n")
    (state / "locks" / f"{lab_name}.lock").symlink_to(precious)
    up = nsnet("up", str(EXAMPLES / "lab1-veth.yaml"), "--name", lab_name, env=state_env(state))
    assert up.code == 2 and "Traceback" not in up.text, up.text
    assert "is a symbolic link" in up.err
    assert precious.read_text() == "keep me\n"
    assert not [ns for ns in netns_list() if ns.startswith(f"{lab_name}-")]


def test_state_files_have_their_modes_whatever_the_umask(lab_name: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    args = [sys.executable, str(EXAMPLES / "lab1-veth.yaml"), lab_name]
    for umask in ("000", "077"):
        run = subprocess.run(
            ["sh", "-c", f'umask {umask}; exec "$0" -m nsnet up "$1" --name "$2" -q', *args],
            env=state_env(state),
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            assert run.returncode == 0, run.stderr
            modes = {
                path: stat.S_IMODE(os.stat(state / path).st_mode)
                for path in ("", "labs", "locks", f"labs/{lab_name}.json", f"locks/{lab_name}.lock")
            }
            assert modes == {
                "": 0o755,
                "labs": 0o755,
                "locks": 0o700,
                f"labs/{lab_name}.json": 0o644,
                f"locks/{lab_name}.lock": 0o600,
            }, (umask, modes)
        finally:
            assert nsnet("down", lab_name, env=state_env(state)).code == 0
        shutil.rmtree(state)


def test_gc_never_removes_a_lab_of_another_state_directory(lab_name: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    up = nsnet("up", str(EXAMPLES / "lab1-veth.yaml"), "--name", lab_name, env=state_env(state))
    assert up.code == 0, up.text
    spaces = {ns for ns in netns_list() if ns.startswith(f"{lab_name}-")}
    try:
        assert spaces
        for args in (["--dry-run"], []):
            gc = nsnet("gc", lab_name, "--json", *args)  # the default state directory: the lab is not its
            assert gc.code == 0, gc.text
            assert json.loads(gc.out) == []
        assert spaces <= netns_list()
        down = nsnet("down", lab_name)  # nor is it the default state directory's to take down
        assert down.code == 0 and f"lab {lab_name} is not up: nothing to do" in down.out, down.text
        assert spaces <= netns_list()
    finally:
        assert nsnet("down", lab_name, env=state_env(state)).code == 0
    assert not spaces & netns_list()


def test_a_corrupt_journal_is_that_labs_problem_only(new_lab_name: list[str], tmp_path: Path) -> None:
    good, bad = unique_name(), unique_name()
    new_lab_name += [good, bad]
    state = tmp_path / "state"
    env = state_env(state)
    up = nsnet("up", str(EXAMPLES / "lab1-veth.yaml"), "--name", good, env=env)
    assert up.code == 0, up.text
    try:
        (state / "labs" / f"{bad}.json").write_text('{"lab": "' + bad + '", "namespaces": [')
        listed = nsnet("ls", "--json", env=env)
        assert listed.code == 0, listed.text
        labs = {lab["name"]: lab for lab in json.loads(listed.out)}
        assert labs[good]["status"] == "up" and labs[bad]["status"] == "unreadable"
        assert "is corrupt" in labs[bad]["problem"]
        assert "unreadable" in nsnet("ls", env=env).out
        gc = nsnet("gc", "--dry-run", "--json", env=env)
        assert gc.code == 0 and json.loads(gc.out) == [], gc.text
        refused = nsnet("gc", bad, env=env)
        assert refused.code == 2 and "is corrupt" in refused.err, refused.text
        api = subprocess.run(
            [sys.executable, "-c", API.format(path=str(EXAMPLES / "lab1-veth.yaml"), name=unique_name())],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert api.returncode == 0 and api.stdout == "up\n", api.stderr
        down = nsnet("down", bad, env=env)
        assert down.code == 2 and "is corrupt" in down.err and "Traceback" not in down.text
    finally:
        assert nsnet("down", good, env=env).code == 0


API = """
import nsnet
with nsnet.Lab({path!r}, name={name!r}) as lab:
    print("up")
"""


def test_down_completes_on_a_full_state_directory(private: World, lab_name: str) -> None:
    w = private
    env = {**os.environ, "NSNET_STATE_DIR": "/run/small"}
    w.sh("mkdir /run/small && mount -t tmpfs -o size=64k small /run/small")
    up = w.run(sys.executable, "-m", "nsnet", "up", str(EXAMPLES / "lab2-bridge.yaml"), "--name", lab_name, env=env)
    assert up.code == 0, up.text
    assert len(w.sh("ip netns list").split("\n")) > 3
    w.sh("dd if=/dev/zero of=/run/small/fill bs=4k 2>/dev/null || true; ! touch /run/small/x 2>/dev/null || true")
    full = w.run("sh", "-c", "echo x > /run/small/probe")
    assert full.code != 0, "the state directory is not full"
    down = w.run(sys.executable, "-m", "nsnet", "down", lab_name, env=env)
    assert down.code == 0 and "Traceback" not in down.text, down.text
    assert w.sh("ip netns list").strip() == ""
    assert w.run("test", "-e", f"/run/small/labs/{lab_name}.json").code == 1


# -- plan --script ----------------------------------------------------------------------------

SNAPSHOT = r"""
for ns in "" $(ip netns list | cut -d' ' -f1 | sort); do
    echo "== ${ns:-root}"
    ip ${ns:+-n "$ns"} -o -d link show | sed -E 's/^[0-9]+: //; s/@if[0-9]+//' | awk '{
        print $1, ($0 ~ /veth/ ? "veth" : $0 ~ /bridge / ? "bridge" : "other"), ($0 ~ /master/ ? "in-bridge" : "")
    }'
    ip ${ns:+-n "$ns"} -o addr show | awk '{print $2, $4}' | sort
    ip ${ns:+-n "$ns"} route show | sort
done
"""


def test_the_plan_script_builds_what_up_builds_outside_pid_1s_namespace(
    private: World, lab_name: str, tmp_path: Path
) -> None:
    """A host: root plan script, run in a network namespace that is not PID 1's, puts the root ends
    of its veths in the namespace it runs in, as `up` does."""
    w = private
    topo = tmp_path / "root-bridge.yaml"
    topo.write_text(ROOT_BRIDGE.format(lab=lab_name))
    script = w.nsnet("plan", str(topo), "--fresh", "--script")
    assert script.code == 0, script.text
    (tmp_path / "plan.sh").write_text(script.out + SNAPSHOT)
    # The script's root namespace is a fresh one (not the world init's): it and the snapshot run there.
    by_script = w.sh(f"unshare --net sh -c 'ip link set lo up && sh {tmp_path / 'plan.sh'}'; ip netns del RED")
    up = w.nsnet("up", str(topo))
    assert up.code == 0, up.text
    by_up = w.sh(SNAPSHOT)
    assert by_script.split("\n") == by_up.split("\n")
    assert "reth1: veth in-bridge" in by_up and "br0 11.11.11.1/24" in by_up
    assert w.nsnet("down", lab_name).code == 0
