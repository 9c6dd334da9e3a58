"""up/down on the real kernel: differences, removals, rollback, ownership."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import EXAMPLES, netns_list, nsnet, root_links, sh, unique_name

BASE = """
name: life
host:
  bridges:
    br0: {addresses: [10.20.0.1/24]}
    br9: {}
  interfaces:
    a1: {master: br0}
    b1: {master: br0}
    c1: {master: br0}
  sysctls:
    net.ipv4.ip_forward: 1
  firewall:
    policies: {FORWARD: DROP}
    rules:
      - {chain: FORWARD, in: br0, out: br0, action: ACCEPT}
      - {chain: INPUT, protocol: tcp, dport: 22, action: DROP}
nodes:
  A:
    interfaces:
      a0: {addresses: [10.20.0.2/24, "fd00:20::2/64"], mtu: 1400}
    routes:
      - {to: default, via: 10.20.0.1}
      - {to: "fd00:99::/64", via: "fd00:20::3"}
  B:
    interfaces:
      b0: {addresses: [10.20.0.3/24, "fd00:20::3/64"], mac: "02:00:00:00:00:0b"}
  C:
    interfaces:
      c0: {addresses: [10.20.0.4/24], up: false}
links:
  - [A:a0, host:a1]
  - [B:b0, host:b1]
  - [C:c0, host:c1]
"""

# C removed; A's address, MTU and route changed; B gets a second address;
# br9 removed; one rule dropped, one added; INPUT policy set; ip_forward no longer managed.
CHANGED = """
name: life
host:
  bridges:
    br0: {addresses: [10.20.0.1/24]}
  interfaces:
    a1: {master: br0}
    b1: {master: br0}
  firewall:
    policies: {FORWARD: DROP, INPUT: DROP}
    rules:
      - {chain: FORWARD, in: br0, out: br0, action: ACCEPT}
      - {chain: FORWARD, source: 10.20.0.0/24, protocol: udp, dport: "53", action: ACCEPT}
nodes:
  A:
    interfaces:
      a0: {addresses: [10.20.0.12/24, "fd00:20::2/64"], mtu: 1300}
    routes:
      - {to: 192.0.2.0/24, via: 10.20.0.1}
  B:
    interfaces:
      b0: {addresses: [10.20.0.3/24, 10.20.0.13/24, "fd00:20::3/64"], mac: "02:00:00:00:00:0b"}
links:
  - [A:a0, host:a1]
  - [B:b0, host:b1]
"""


def write(tmp_path: Path, text: str, name: str = "lab.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def link_names(ns: str) -> set[str]:
    return {link["ifname"] for link in json.loads(sh("ip", "-n", ns, "-j", "link", "show"))}


def up(path: str, lab: str) -> str:
    result = nsnet("up", path, "--name", lab)
    assert result.code == 0, result.text
    return result.out


def snapshot(lab: str) -> dict[str, object]:
    """Everything observable about a lab's namespaces, for before/after comparison."""
    state: dict[str, object] = {}
    for ns in sorted(n for n in netns_list() if n.startswith(f"{lab}-")):
        links = json.loads(sh("ip", "-n", ns, "-j", "-d", "link", "show"))
        for link in links:  # counters and timers move on their own
            for key in ("stats", "stats64", "linkinfo", "operstate"):
                link.pop(key, None)
        state[ns] = {
            "links": links,
            "addr": sh("ip", "-n", ns, "-o", "addr", "show"),
            "routes": sh("ip", "-n", ns, "route", "show", "table", "all"),
            "fw": "\n".join(
                line for line in sh("ip", "netns", "exec", ns, "iptables-save").splitlines() if not line.startswith("#")
            ),
            "sysctl": sh("ip", "netns", "exec", ns, "sysctl", "-n", "net.ipv4.ip_forward"),
        }
    state["journal"] = Path(f"/run/nsnet/labs/{lab}.json").exists()
    return state


def test_edit_and_up_applies_only_the_difference(lab_name: str, tmp_path: Path) -> None:
    up(write(tmp_path, BASE), lab_name)
    host, a, b = f"{lab_name}-host", f"{lab_name}-A", f"{lab_name}-B"
    assert sh("ip", "netns", "exec", host, "sysctl", "-n", "net.ipv4.ip_forward").strip() == "1"
    assert "mtu 1400" in sh("ip", "-n", a, "link", "show", "a0")
    assert "link/ether 02:00:00:00:00:0b" in sh("ip", "-n", b, "link", "show", "b0")
    assert "state DOWN" in sh("ip", "-n", f"{lab_name}-C", "link", "show", "c0")
    v6 = subprocess.run(
        ["ip", "netns", "exec", a, "ping", "-6", "-c", "1", "-W", "2", "fd00:20::3"], capture_output=True, text=True
    )
    assert v6.returncode == 0, v6.stdout
    assert sh("ip", "-n", a, "-6", "route", "show", "proto", "static").strip() == (
        "fd00:99::/64 via fd00:20::3 dev a0 metric 1024 pref medium"
    )
    assert "nothing to do" in nsnet("plan", write(tmp_path, BASE), "--name", lab_name).out

    changed = write(tmp_path, CHANGED, "changed.yaml")
    plan = json.loads(nsnet("plan", changed, "--name", lab_name, "--json").out)
    described = [s["description"] for s in plan["steps"]]
    assert described == [
        f"delete route fd00:99::/64 via fd00:20::3 dev a0 metric 1024 in {a}",
        f"delete route default via 10.20.0.1 dev a0 in {a}",
        f"set {a}:a0 mtu 1300",
        f"delete address 10.20.0.2/24 from {a}:a0",
        f"add address 10.20.0.12/24 to {a}:a0",
        f"add address 10.20.0.13/24 to {b}:b0",
        f"write /etc/netns/{a}/hosts (8 names)",
        f"write /etc/netns/{b}/hosts (8 names)",
        f"write /etc/netns/{host}/hosts (8 names)",
        f"add route 192.0.2.0/24 via 10.20.0.1 in {a}",
        f"restore sysctl net.ipv4.ip_forward=0 in {host} (was 1)",
        f"iptables in {host}: INPUT policy ACCEPT -> DROP; - FORWARD -i br0 -o br9 -j DROP; "
        "- FORWARD -i br9 -o br0 -j DROP; - INPUT -p tcp -m tcp --dport 22 -j DROP; "
        "+ FORWARD -s 10.20.0.0/24 -p udp -m udp --dport 53 -j ACCEPT",
        f"delete link {host}:c1",
        f"delete link {host}:br9",
        f"remove /etc/netns/{lab_name}-C/hosts",
        f"delete namespace {lab_name}-C (and every link in it)",
    ]
    up(changed, lab_name)

    assert f"{lab_name}-C" not in netns_list()
    assert link_names(host) == {"lo", "br0", "a1", "b1"}
    assert "mtu 1300" in sh("ip", "-n", a, "link", "show", "a0")
    addrs = sh("ip", "-n", a, "-o", "-4", "addr", "show", "a0")
    assert "10.20.0.12/24" in addrs and "10.20.0.2/" not in addrs
    assert sh("ip", "-n", a, "route", "show", "proto", "static").strip() == "192.0.2.0/24 via 10.20.0.1 dev a0"
    assert sh("ip", "netns", "exec", host, "sysctl", "-n", "net.ipv4.ip_forward").strip() == "0"
    rules = sh("ip", "netns", "exec", host, "iptables", "-S")
    assert "-P INPUT DROP" in rules and "-P FORWARD DROP" in rules
    assert "--dport 22" not in rules and "NSNET-INPUT" not in rules
    assert "-A NSNET-FORWARD -s 10.20.0.0/24 -p udp -m udp --dport 53 -j ACCEPT" in rules
    assert "nothing changed" in up(changed, lab_name)

    # And back again: the journal remembered the INPUT policy to restore.
    up(write(tmp_path, BASE), lab_name)
    assert "-P INPUT ACCEPT" in sh("ip", "netns", "exec", host, "iptables", "-S")
    assert "nothing changed" in up(write(tmp_path, BASE), lab_name)


def test_a_changed_address_keeps_the_route_through_its_subnet(lab_name: str, tmp_path: Path) -> None:
    """The kernel drops the routes whose gateway was in the subnet of a deleted address: up adds them again."""
    up(write(tmp_path, BASE), lab_name)
    moved = BASE.replace("a0: {addresses: [10.20.0.2/24,", "a0: {addresses: [10.20.0.12/24,")
    up(write(tmp_path, moved, "moved.yaml"), lab_name)
    routes = sh("ip", "-n", f"{lab_name}-A", "route", "show", "proto", "static")
    assert "default via 10.20.0.1 dev a0" in routes
    assert "nothing changed" in up(write(tmp_path, moved, "moved.yaml"), lab_name)


def test_failure_halfway_through_first_up_leaves_nothing(lab_name: str, tmp_path: Path) -> None:
    bad = BASE.replace("net.ipv4.ip_forward: 1", "net.ipv4.conf.nosuchif.forwarding: 1")
    before_links = root_links()
    result = nsnet("up", write(tmp_path, bad), "--name", lab_name)
    assert result.code == 7
    assert (
        f"failed at step: set sysctl net.ipv4.conf.nosuchif.forwarding=1 in {lab_name}-host: "
        "sysctl net.ipv4.conf.nosuchif.forwarding does not exist in this kernel; "
        "the kernel was restored to how it was before this run"
    ) in result.err
    assert not [ns for ns in netns_list() if ns.startswith(f"{lab_name}-")]
    assert root_links() == before_links
    assert not Path(f"/run/nsnet/labs/{lab_name}.json").exists()


def test_failure_halfway_through_a_change_restores_the_lab(lab_name: str, tmp_path: Path) -> None:
    up(write(tmp_path, BASE), lab_name)
    before = snapshot(lab_name)
    # The kernel refuses this route (its gateway is not on a0's subnet) after
    # links, addresses and a new node were already changed.
    bad = CHANGED.replace(
        "      - {to: 192.0.2.0/24, via: 10.20.0.1}",
        "      - {to: 192.0.2.0/24, via: 10.20.0.1}\n      - {to: 198.51.100.0/24, via: 172.31.9.9, dev: a0}",
    )
    result = nsnet("up", write(tmp_path, bad, "bad.yaml"), "--name", lab_name)
    assert result.code == 7, result.text
    assert f"failed at step: add route 198.51.100.0/24 via 172.31.9.9 dev a0 in {lab_name}-A" in result.err
    assert "the kernel was restored to how it was before this run" in result.err
    after = snapshot(lab_name)
    assert after == before
    assert "nothing changed" in up(write(tmp_path, BASE), lab_name)


def test_conflicting_link_is_refused_before_anything_changes(lab_name: str, tmp_path: Path) -> None:
    up(write(tmp_path, BASE), lab_name)
    host = f"{lab_name}-host"
    sh("ip", "-n", host, "link", "add", "d1", "type", "bridge")
    before = snapshot(lab_name)
    clash = CHANGED.replace("  - [B:b0, host:b1]", "  - [B:b0, host:b1]\n  - [B:b5, host:d1]")
    result = nsnet("up", write(tmp_path, clash, "clash.yaml"), "--name", lab_name)
    assert result.code == 5
    assert (
        f"error: interface {host}:d1 already exists and was not created by nsnet; rename the interface "
        f"in the topology or delete it (ip -n {host} link del d1)"
    ) in result.err
    assert snapshot(lab_name) == before


def test_down_removes_only_what_nsnet_created(lab_name: str, tmp_path: Path) -> None:
    other = unique_name("keep")
    sh("ip", "netns", "add", other)
    try:
        sh("ip", "-n", other, "link", "add", "keep0", "type", "bridge")
        sh("ip", "netns", "exec", other, "iptables", "-A", "FORWARD", "-s", "11.11.11.0/24", "-j", "ACCEPT")
        up(write(tmp_path, BASE), lab_name)
        host = f"{lab_name}-host"
        # Hand-made objects inside the lab survive an `up` that removes things around them.
        sh("ip", "-n", host, "link", "add", "mine0", "type", "bridge")
        sh("ip", "netns", "exec", host, "iptables", "-A", "FORWARD", "-s", "192.0.2.0/24", "-j", "DROP")
        up(write(tmp_path, CHANGED, "changed.yaml"), lab_name)
        assert "mine0" in link_names(host)
        assert "-A FORWARD -s 192.0.2.0/24 -j DROP" in sh("ip", "netns", "exec", host, "iptables", "-S")

        down = nsnet("down", lab_name)
        assert down.code == 0, down.text
        assert not any(ns.startswith(f"{lab_name}-") for ns in netns_list())
        assert other in netns_list()
        assert "keep0" in link_names(other)
        assert "-A FORWARD -s 11.11.11.0/24 -j ACCEPT" in sh("ip", "netns", "exec", other, "iptables", "-S")
    finally:
        subprocess.run(["ip", "netns", "del", other], check=False)


def test_down_of_a_lab_that_is_not_up_is_nothing_to_do() -> None:
    name = unique_name("none")
    result = nsnet("down", name)
    assert result.code == 0, result.text
    assert result.out.strip() == f"lab {name} is not up: nothing to do"
    as_json = nsnet("down", name, "--json")
    assert as_json.code == 0 and json.loads(as_json.out) == {
        "schema": "nsnet/down/1",
        "lab": name,
        "was_up": False,
        "steps": [],
        "killed": [],
    }


def test_down_by_file(lab_name: str) -> None:
    path = str(EXAMPLES / "lab1-veth.yaml")
    up(path, lab_name)
    result = nsnet("down", path, "--name", lab_name)
    assert result.code == 0, result.text
    assert not any(ns.startswith(f"{lab_name}-") for ns in netns_list())


@pytest.mark.parametrize("node", ["RED", "host"])
def test_exec_passes_exit_code_stdin_and_stdout(lab_name: str, node: str) -> None:
    up(str(EXAMPLES / "lab2-bridge.yaml"), lab_name)
    assert nsnet("exec", lab_name, node, "--", "sh", "-c", "exit 7").code == 7
    echoed = nsnet("exec", lab_name, node, "--", "cat", input="hello from stdin\n")
    assert echoed.code == 0 and echoed.out == "hello from stdin\n"
    links = nsnet("exec", lab_name, node, "--", "ip", "-o", "link", "show")
    expected = "reth0@" if node == "RED" else "br0:"
    assert expected in links.out


def test_exec_unknown_node(lab_name: str) -> None:
    up(str(EXAMPLES / "lab1-veth.yaml"), lab_name)
    result = nsnet("exec", lab_name, "GREEN", "--", "true")
    assert result.code == 4
    assert f"lab {lab_name!r} has no node 'GREEN'; nodes: BLUE, RED, host" in result.err


def test_shell_prompt_names_the_node(lab_name: str) -> None:
    up(str(EXAMPLES / "lab2-bridge.yaml"), lab_name)
    import os

    env = dict(os.environ, SHELL="/bin/bash")
    result = nsnet("shell", lab_name, "RED", input="ip -o addr show reth0\nexit 3\n", env=env)
    assert result.code == 3
    assert "inet 11.11.11.2/24" in result.out
    assert f"[nsnet {lab_name}:RED]" in result.err


def test_exec_missing_command_is_127(lab_name: str) -> None:
    up(str(EXAMPLES / "lab1-veth.yaml"), lab_name)
    result = nsnet("exec", lab_name, "RED", "--", "no-such-command-here")
    assert result.code == 127
    assert "command not found: no-such-command-here" in result.err


@pytest.mark.parametrize("name", ["../x", "a/b", "x" * 33, ".hidden"])
def test_bad_lab_names_are_refused_everywhere(name: str) -> None:
    path = str(EXAMPLES / "lab1-veth.yaml")
    message = f"{name!r} is not a lab name: use up to 32 letters"
    for args in (("plan", path, "--fresh", "--name", name), ("up", path, "--name", name), ("down", name)):
        result = nsnet(*args)
        assert result.code == 2, (args, result.text)
        assert message in result.err, (args, result.err)


def test_up_finishes_a_namespace_cut_short_before_its_mount(lab_name: str, tmp_path: Path) -> None:
    """nsnet marks a namespace before naming it: an `up` killed while creating one leaves at most the
    empty mount point under /run/netns, which the next `up` replaces with the namespace."""
    path = str(EXAMPLES / "lab1-veth.yaml")
    up(path, lab_name)
    red = f"{lab_name}-RED"
    sh("ip", "netns", "del", red)
    Path(f"/run/netns/{red}").touch()
    result = nsnet("up", path, "--name", lab_name)
    assert result.code == 0, result.text
    assert "create namespace" in result.out
    assert sh("ip", "-n", red, "-j", "link", "show", "lo").count(f"nsnet:{lab_name}:") == 1
    down = nsnet("down", lab_name)
    assert down.code == 0, down.text
    assert red not in netns_list()
