"""Overlays across hosts, static mode: VXLAN devices, underlay, MTU and the entries nsnet writes.

Each host is a sandbox namespace joined to the others by the lab's underlay
switch; RED on host A reaches BLUE on host B through VXLAN, and what `up`
wrote (fdb entries to remote VTEPs, neighbour entries for the ARP proxy) is
read back from the kernel with `bridge` and `ip`.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from nsnet import TopologyError, loads

from conftest import EXAMPLES, nsnet, sh

STATIC = EXAMPLES / "overlay-static.yaml"

THREE = """\
name: three
hosts:
  A:
    bridges: {br0: {}}
    vxlans: {vxlan1: {vni: 7, master: br0, port: 4789}}
    interfaces: {va: {master: br0}}
  B:
    bridges: {br0: {}}
    vxlans: {vxlan1: {vni: 7, master: br0}}
    interfaces: {vb: {master: br0}}
  C:
    bridges: {br0: {}}
    vxlans: {vxlan1: {vni: 7, master: br0}}
    interfaces: {vc: {master: br0}}
nodes:
  N1: {interfaces: {eth0: {addresses: [10.7.0.1/24]}}}
  N2: {interfaces: {eth0: {addresses: [10.7.0.2/24]}}}
  N3: {interfaces: {eth0: {addresses: [10.7.0.3/24]}}}
links:
  - [N1:eth0, A:va]
  - [N2:eth0, B:vb]
  - [N3:eth0, C:vc]
"""


def ping(ns: str, address: str, tries: int = 3) -> bool:
    """One ping, retried: a link just brought up may drop the first packets."""
    for _ in range(tries):
        if (
            subprocess.run(["ip", "netns", "exec", ns, "ping", "-c1", "-W1", address], capture_output=True).returncode
            == 0
        ):
            return True
    return False


def fdb(ns: str, dev: str = "vxlan1") -> set[tuple[str, str]]:
    entries = json.loads(sh("bridge", "-n", ns, "-j", "fdb", "show", "dev", dev))
    return {(e["mac"], e["dst"]) for e in entries if "dst" in e and e["mac"] != "00:00:00:00:00:00"}


def neighbours(ns: str, dev: str = "vxlan1") -> set[tuple[str, str]]:
    return {(n["dst"], n["lladdr"]) for n in json.loads(sh("ip", "-n", ns, "-j", "neigh", "show", "dev", dev))}


def link(ns: str, name: str) -> dict:
    return json.loads(sh("ip", "-n", ns, "-d", "-j", "link", "show", name))[0]


def test_static_two_hosts(lab_name: str) -> None:
    result = nsnet("up", str(STATIC), "--name", lab_name)
    assert result.code == 0, result.text
    red, blue, a, b = (f"{lab_name}-{n}" for n in ("RED", "BLUE", "A", "B"))
    vx = link(a, "vxlan1")["linkinfo"]["info_data"]
    assert (vx["id"], vx["port"], vx["local"], vx["link"]) == (42, 4789, "192.168.100.1", "eth0")
    assert vx["proxy"] and not vx["learning"] and not vx.get("l2miss") and not vx.get("l3miss")
    # The overlay MTU is the underlay's less 50, on the node, its bridge port, the bridge and the VXLAN device.
    assert link(red, "reth0")["mtu"] == 1450 and link(a, "vred")["mtu"] == 1450
    assert link(a, "br0")["mtu"] == 1450 and link(a, "vxlan1")["mtu"] == 1450 and link(a, "eth0")["mtu"] == 1500
    # Docker's MACs, from the addresses, known to every host in advance.
    assert link(red, "reth0")["address"] == "02:42:0a:00:00:02"
    assert fdb(a) == {("02:42:0a:00:00:03", "192.168.100.2")}
    assert fdb(b) == {("02:42:0a:00:00:02", "192.168.100.1")}
    assert neighbours(a) == {("10.0.0.3", "02:42:0a:00:00:03")}
    assert ping(red, "10.0.0.3") and ping(blue, "10.0.0.2")
    # What the expectations say, reach checks.
    checked = nsnet("reach", lab_name)
    assert checked.code == 0, checked.text
    again = nsnet("up", str(STATIC), "--name", lab_name, "--json")
    assert again.code == 0 and json.loads(again.out)["changed"] is False, again.text
    view = json.loads(nsnet("inspect", lab_name, "A", "--what", "overlay", "--json").out)
    [dev] = view["namespaces"][0]["vxlans"]
    assert (dev["vni"], dev["local"], dev["dev"], dev["master"]) == (42, "192.168.100.1", "eth0", "br0")
    assert [(e["mac"], e["vtep"], e["host"]) for e in dev["entries"]] == [("02:42:0a:00:00:03", "192.168.100.2", "B")]
    text = nsnet("inspect", lab_name, "--what", "overlay").out
    assert "192.168.100.2 (B)" in text and "vni 42" in text


def test_static_three_hosts_follow_the_topology(lab_name: str, tmp_path: Path) -> None:
    path = tmp_path / "three.yaml"
    path.write_text(THREE)
    assert nsnet("up", str(path), "--name", lab_name, "-q").code == 0
    ns = {n: f"{lab_name}-{n}" for n in ("N1", "N2", "N3", "A", "B", "C")}
    for src, dst in (("N1", "10.7.0.2"), ("N1", "10.7.0.3"), ("N2", "10.7.0.3"), ("N3", "10.7.0.1")):
        assert ping(ns[src], dst), f"{src} -> {dst}"
    assert fdb(ns["A"]) == {("02:42:0a:07:00:02", "192.168.100.2"), ("02:42:0a:07:00:03", "192.168.100.3")}
    # N3 leaves: its entries go from A and B, and nothing else changes.
    path.write_text(
        THREE.replace("  N3: {interfaces: {eth0: {addresses: [10.7.0.3/24]}}}\n", "")
        .replace("  - [N3:eth0, C:vc]\n", "")
        .replace("    interfaces: {vc: {master: br0}}\n", "")
    )
    result = nsnet("up", str(path), "--name", lab_name)
    assert result.code == 0, result.text
    assert "forget 02:42:0a:07:00:03 -> VTEP 192.168.100.3" in result.out
    assert fdb(ns["A"]) == {("02:42:0a:07:00:02", "192.168.100.2")}
    assert neighbours(ns["B"]) == {("10.7.0.1", "02:42:0a:07:00:01")}
    assert ping(ns["N1"], "10.7.0.2")


def test_entries_drifted_by_hand_are_put_back(lab_name: str) -> None:
    assert nsnet("up", str(STATIC), "--name", lab_name, "-q").code == 0
    a = f"{lab_name}-A"
    sh("bridge", "-n", a, "fdb", "del", "02:42:0a:00:00:03", "dev", "vxlan1", "dst", "192.168.100.2", "self")
    sh("ip", "-n", a, "neigh", "del", "10.0.0.3", "dev", "vxlan1")
    sh(
        "bridge",
        "-n",
        a,
        "fdb",
        "append",
        "02:42:0a:00:00:09",
        "dev",
        "vxlan1",
        "dst",
        "192.168.100.9",
        "self",
        "permanent",
    )
    plan = nsnet("plan", str(STATIC), "--name", lab_name)
    assert "forward 02:42:0a:00:00:03" in plan.out and "forget 02:42:0a:00:00:09" in plan.out, plan.text
    assert nsnet("up", str(STATIC), "--name", lab_name, "-q").code == 0
    assert fdb(a) == {("02:42:0a:00:00:03", "192.168.100.2")}
    assert neighbours(a) == {("10.0.0.3", "02:42:0a:00:00:03")}


def test_a_changed_vni_rebuilds_the_device(lab_name: str, tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(STATIC.read_text())
    assert nsnet("up", str(path), "--name", lab_name, "-q").code == 0
    path.write_text(STATIC.read_text().replace("vni: 42", "vni: 43"))
    result = nsnet("up", str(path), "--name", lab_name)
    assert result.code == 0, result.text
    assert "create VXLAN device" in result.out
    assert link(f"{lab_name}-A", "vxlan1")["linkinfo"]["info_data"]["id"] == 43
    assert ping(f"{lab_name}-RED", "10.0.0.3")


def test_capture_on_the_underlay_shows_vxlan(lab_name: str, tmp_path: Path) -> None:
    assert nsnet("up", str(STATIC), "--name", lab_name, "-q").code == 0
    assert ping(f"{lab_name}-RED", "10.0.0.3")
    out = tmp_path / "u.pcapng"
    capture = subprocess.Popen(
        [
            *nsnet_argv(),
            "capture",
            lab_name,
            "A:eth0",
            "udp",
            "--count",
            "2",
            "--duration",
            "10",
            "-w",
            str(out),
            "--print",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert capture.stdout is not None
    legend = capture.stdout.readline()  # printed once the capture listens: the ping after it is seen
    assert "capture points:" in legend, legend
    assert ping(f"{lab_name}-RED", "10.0.0.3")
    text, err = capture.communicate(timeout=30)
    text = legend + text
    assert capture.returncode == 0, err
    assert "192.168.100.1" in text and ".4789: VXLAN" in text and "vni 42" in text, text
    assert "10.0.0.2 > 10.0.0.3: ICMP echo request" in text, text
    assert "10.0.0.3 > 10.0.0.2: ICMP echo reply" in text, text
    tcpdump = sh("tcpdump", "-n", "-e", "-r", str(out))
    assert "vni 42" in tcpdump


def nsnet_argv() -> list[str]:
    import sys

    return [sys.executable, "-m", "nsnet"]


BAD = [
    ("host-and-hosts", "host: {bridges: {br0: {}}}\n", "host", "a lab with hosts: has no single host:"),
    ("underlay-alone", None, "underlay", "underlay: belongs to a lab of several hosts"),
    ("mtu-too-big", "mtu", "nodes.RED.interfaces.reth0.mtu", "mtu 1500 is more than the overlay carries"),
    ("vxlan-master", "master", "hosts.A.vxlans.vxlan1.master", "bridge 'br9' does not exist in A"),
    ("eth0-taken", "eth0", "hosts.A.interfaces.eth0", "eth0 is the host's underlay interface"),
    ("address-outside", "address", "hosts.A.address", "is not in the underlay 192.168.100.0/24"),
    ("node-named-like-host", "node", "nodes.A", "'A' is a host of this lab"),
    ("outside", "outside: {}\n", "outside", "an outside joins a single host"),
    ("switch-outside", "switch", "underlay.address", "10.9.9.9/24 is not in the underlay 192.168.100.0/24"),
    ("same-vni", "vni", "hosts.A.vxlans.vxlan2.vni", "VNI 42 on port 4789 is already vxlan1's here"),
]


def _bad(kind: str | None, extra: str | None) -> str:
    text = STATIC.read_text()
    if kind is None and extra is None:
        return "name: x\nunderlay: {subnet: 10.1.0.0/24}\nnodes: {RED: {}}\n"
    if extra and extra.endswith("\n"):
        return text + extra
    edits = {
        "mtu": ("reth0: {addresses: [10.0.0.2/24]}", "reth0: {addresses: [10.0.0.2/24], mtu: 1500}"),
        "master": (
            "vxlan1: {vni: 42, master: br0}\n    interfaces:\n      vred",
            "vxlan1: {vni: 42, master: br9}\n    interfaces:\n      vred",
        ),
        "eth0": ("      vred: {master: br0}", "      vred: {master: br0}\n      eth0: {}"),
        "address": ("  A:\n", "  A:\n    address: 10.9.9.9/24\n"),
        "switch": ("  mtu: 1500\n", "  mtu: 1500\n  address: 10.9.9.9/24\n"),
        "node": ("  RED:\n", "  A: {}\n  RED:\n"),
        "vni": (
            "      vxlan1: {vni: 42, master: br0}\n",
            "      vxlan1: {vni: 42, master: br0}\n      vxlan2: {vni: 42}\n",
        ),
    }
    old, new = edits[extra or ""]
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(("case", "extra", "path", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_overlay_topologies(case: str, extra: str | None, path: str, message: str) -> None:
    with pytest.raises(TopologyError) as info:
        loads(_bad(None if case == "underlay-alone" else case, extra), "lab.yaml")
    found = [(p.path, p.message) for p in info.value.problems]
    assert any(p == path and message in m for p, m in found), found
    assert len(found) == len(set(found)), f"a problem reported twice: {found}"
    assert all(p.line is not None for p in info.value.problems), info.value.problems


POINT_TO_POINT = """\
name: p2p
underlay: {subnet: 172.30.0.0/24, mtu: 1400}
hosts:
  A:
    bridges: {br0: {}}
    vxlans: {vx: {vni: 100, port: 8472, master: br0, remote: 172.30.0.2, learning: true}}
    interfaces: {va: {master: br0}}
  B:
    bridges: {br0: {}}
    vxlans: {vx: {vni: 100, port: 8472, master: br0, remote: 172.30.0.1, learning: true}}
    interfaces: {vb: {master: br0}}
nodes:
  N1: {interfaces: {eth0: {addresses: [10.8.0.1/24]}}}
  N2: {interfaces: {eth0: {addresses: [10.8.0.2/24]}}}
links:
  - [N1:eth0, A:va]
  - [N2:eth0, B:vb]
"""


def test_point_to_point_vxlan_learns(lab_name: str, tmp_path: Path) -> None:
    """With `remote`, a device floods to its one peer and learns MACs from what comes back: no entries to write."""
    path = tmp_path / "p2p.yaml"
    path.write_text(POINT_TO_POINT)
    result = nsnet("up", str(path), "--name", lab_name)
    assert result.code == 0, result.text
    assert "forward " not in result.out and "answer for" not in result.out
    a = f"{lab_name}-A"
    vx = link(a, "vx")["linkinfo"]["info_data"]
    assert (vx["id"], vx["port"], vx["remote"], vx["learning"], vx.get("proxy", False)) == (
        100,
        8472,
        "172.30.0.2",
        True,
        False,
    )
    assert link(f"{lab_name}-N1", "eth0")["mtu"] == 1350  # the underlay's 1400, less 50
    assert ping(f"{lab_name}-N1", "10.8.0.2")
    learned = json.loads(sh("bridge", "-n", a, "-j", "fdb", "show", "dev", "vx"))
    assert any(e["mac"] == "02:42:0a:08:00:02" and e.get("dst") == "172.30.0.2" for e in learned), learned
    assert nsnet("up", str(path), "--name", lab_name, "--json").out.count('"changed": false') == 1


def test_python_api_on_a_multi_host_lab(lab_name: str) -> None:
    """`nsnet.Lab` takes hosts like nodes: commands in them, pings between nodes on different hosts."""
    from nsnet import Lab

    with Lab(STATIC, name=lab_name) as lab:
        assert lab.nodes == ["RED", "BLUE"]
        assert lab.namespaces["A"] == f"{lab_name}-A" and lab.namespaces["underlay"] == f"{lab_name}-underlay"
        assert ping(lab.namespaces["RED"], "10.0.0.3")
        assert lab.ping("RED", "BLUE") and lab.ping("BLUE", "RED")
        entries = lab.node("A").run(["bridge", "fdb", "show", "dev", "vxlan1"], check=True)
        assert "02:42:0a:00:00:03 dst 192.168.100.2 self permanent" in entries.stdout
    assert not any(ns.startswith(f"{lab_name}-") for ns in sh("ip", "netns", "list").split())


def test_sigkill_during_up_of_an_overlay_always_converges(lab_name: str, tmp_path: Path) -> None:
    """Killed anywhere in `up`, the next `up` finishes the overlay (devices, MTUs, entries) and `down` clears it."""
    import signal
    import sys

    path = tmp_path / "three.yaml"
    path.write_text(THREE)
    started = time.monotonic()
    assert nsnet("up", str(path), "--name", lab_name, "-q").code == 0
    build = time.monotonic() - started
    assert nsnet("down", lab_name, "-q").code == 0
    points, killed = 10, 0
    for i in range(points):
        proc = subprocess.Popen([sys.executable, "-m", "nsnet", "up", str(path), "--name", lab_name, "-q"])
        time.sleep(build * (i + 0.5) / points)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
        result = nsnet("up", str(path), "--name", lab_name, "-q")
        assert result.code == 0, f"point {i}: {result.text}"
        assert "nothing to do" in nsnet("plan", str(path), "--name", lab_name).out, f"point {i}"
        a = f"{lab_name}-A"
        assert fdb(a) == {("02:42:0a:07:00:02", "192.168.100.2"), ("02:42:0a:07:00:03", "192.168.100.3")}, i
        assert link(a, "vxlan1")["mtu"] == 1450, i
        assert ping(f"{lab_name}-N1", "10.7.0.3"), f"point {i}"
        assert nsnet("down", lab_name, "-q").code == 0
        assert not [ns for ns in sh("ip", "netns", "list").split() if ns.startswith(f"{lab_name}-")], i
    assert killed >= points // 2, killed
