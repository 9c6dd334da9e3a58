"""Labs across machines: three simulated machines (private worlds with sshd), driven from a fourth over SSH."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from fleet import NSNET, Fleet, fleet
from nsnet.errors import NsnetError, TopologyError
from nsnet.machines.share import share
from nsnet.topology.loader import load, loads

from conftest import EXAMPLES


@pytest.fixture
def machines(tmp_path: Path) -> Iterator[Fleet]:
    yield from fleet(["A", "B", "C"], tmp_path)


def ping(f: Fleet, machine: str, node: str, address: str, count: int = 1) -> bool:
    result = f.machines[machine].run("ip", "netns", "exec", node, "ping", "-c", str(count), "-W", "1", address)
    return result.code == 0


def nothing_left(f: Fleet) -> None:
    for name, w in f.machines.items():
        assert f.links(name) == "", f"machine {name} kept links: {f.links(name)}"
        assert w.sh("ip netns list") == "", f"machine {name} kept namespaces"
        assert w.sh("ls /run/nsnet/labs 2>/dev/null || true").strip() == ""
        assert w.sh("ls /run/nsnet/machines 2>/dev/null || true").strip() == ""


def test_static_overlay_across_three_machines(machines: Fleet, tmp_path: Path) -> None:
    f = machines
    topo = f.inventory("overlay-static.yaml", tmp_path)
    up = f.drive("up", str(topo))
    assert up.code == 0, up.text
    assert "machine A: up" in up.out and "machine B: up" in up.out, up.out
    # Host A is machine A's root namespace: the bridge and VXLAN device are there, on its real eth1.
    vx = json.loads(f.machines["A"].sh("ip -d -j link show vxlan1"))[0]
    assert vx["linkinfo"]["info_data"]["local"] == "192.168.100.1"
    assert vx["mtu"] == 1450
    fdb = f.machines["A"].sh("bridge fdb show dev vxlan1")
    assert "02:42:0a:00:00:03 dst 192.168.100.2" in fdb
    assert ping(f, "A", "RED", "10.0.0.3", 2)
    assert ping(f, "B", "BLUE", "10.0.0.2")

    again = f.drive("up", str(topo))
    assert again.code == 0, again.text
    assert "machine A: up, nothing changed" in again.out, again.out

    # A third machine joins with GREEN: the others get its entries, and it theirs.
    three = with_green(f, "overlay-static.yaml", tmp_path / "three.yaml")
    up = f.drive("up", str(three))
    assert up.code == 0, up.text
    assert "[A] + forward 02:42:0a:00:00:04 on root:vxlan1 to VTEP 192.168.100.3" in up.out, up.out
    assert ping(f, "C", "GREEN", "10.0.0.2") and ping(f, "B", "BLUE", "10.0.0.4")

    listed = f.drive("ls", "--json")
    assert listed.code == 0, listed.text
    rows = {(r["machine"], r["status"], r["nodes"]) for r in json.loads(listed.out)}
    assert rows == {("A", "up", "RED"), ("B", "up", "BLUE"), ("C", "up", "GREEN")}, listed.out
    reach = f.drive("reach", "overlay", "--json")
    assert reach.code == 0, reach.text
    assert {(r["machine"], r["src"], r["dst"]) for r in json.loads(reach.out)["results"]} == {
        ("A", "RED", "10.0.0.3"),
        ("B", "BLUE", "10.0.0.2"),
    }
    explained = f.drive("explain", "overlay", "RED", "BLUE")
    assert explained.code == 0, explained.text
    assert "the request leaves machine A for machine B (VTEP 192.168.100.2, UDP 4789)" in explained.out
    assert "to 02:42:0a:00:00:03 (BLUE:beth0 on machine B)" in explained.out
    assert "the request leaves machine B for machine A" in explained.out  # the reply's side, explained on B
    assert "probe from machine A: RED reaches 10.0.0.3" in explained.out

    # On machine A itself: inspect and capture see the share, the encapsulated frames on the real eth1.
    a = f.machines["A"]
    view = json.loads(a.run(NSNET, "inspect", "overlay", "--json").out)
    vxlans = [v for ns in view["namespaces"] for v in ns.get("vxlans") or []]
    assert [(v["name"], v["local"], v["dev"]) for v in vxlans] == [("vxlan1", "192.168.100.1", "eth1")]
    capture = a.sh(
        f"{NSNET} capture overlay RED:reth0 host:eth1 'icmp or udp port 4789' --count 2 --duration 20 --json "
        f">{tmp_path}/capture.json 2>{tmp_path}/capture.err & cap=$!\n"
        f"for i in $(seq 300); do grep -q '^capturing' {tmp_path}/capture.err && break; sleep 0.1; done\n"
        "ip netns exec RED ping -c 1 10.0.0.3 >/dev/null\n"
        f"wait $cap; cat {tmp_path}/capture.json"
    )
    seen = [(p["point"], p["direction"]) for p in json.loads(capture)["packets"]]
    assert seen[:2] == [("RED:reth0", "out"), ("host:eth1", "out")], capture

    down = f.drive("down", "overlay")
    assert down.code == 0, down.text
    nothing_left(f)
    assert f.drive("ls", "--json").out.strip() == "[]"


GREEN_ON_C = {
    "hosts": {"C": {"bridges": {"br0": {}}, "vxlans": {"vxlan1": {"vni": 42, "master": "br0"}},
                    "interfaces": {"vgreen": {"master": "br0"}}}},
    "nodes": {"GREEN": {"interfaces": {"geth0": {"addresses": ["10.0.0.4/24"]}}}},
    "links": [["GREEN:geth0", "C:vgreen"]],
}  # fmt: skip


def with_green(f: Fleet, example: str, path: Path) -> Path:
    """``example`` (as :meth:`Fleet.inventory` writes it) with node GREEN on host C, at ``path``."""
    data = yaml.safe_load(f.inventory(example, path.parent).read_text())
    for key, more in GREEN_ON_C.items():
        data[key] = data[key] + more if isinstance(more, list) else {**data[key], **more}
    data["machines"]["C"] = {"underlay": {"interface": "eth1", "address": f.addresses["C"]}, "nsnet": NSNET}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_sigkill_of_the_driving_up_converges_on_the_next(machines: Fleet, tmp_path: Path) -> None:
    """The driver killed at 10 points of its work (connecting, planning, applying): the next `up` finishes."""
    f = machines
    small = f.inventory("overlay-static.yaml", tmp_path)
    big = with_green(f, "overlay-static.yaml", tmp_path / "three.yaml")
    for i, delay in enumerate([0.2, 0.5, 0.8, 1.0, 1.2, 1.4, 1.7, 2.0, 2.4, 3.0]):
        topo = big if i % 2 == 0 else small  # each killed `up` has something to change
        argv, env = f.drive_argv("up", str(topo), "-q")
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        up = f.drive("up", str(topo))
        assert up.code == 0, (delay, up.text)
        assert ping(f, "A", "RED", "10.0.0.3"), delay
        if topo == big:
            assert ping(f, "C", "GREEN", "10.0.0.2"), delay
        again = f.drive("up", str(topo))
        assert again.code == 0 and again.out.count("nothing changed") == len(
            yaml.safe_load(topo.read_text())["machines"]
        ), (
            delay,
            again.out,
        )
    down = f.drive("down", "overlay")
    assert down.code == 0, down.text
    nothing_left(f)


def test_a_failing_machine_is_named_and_nothing_is_half_done(machines: Fleet, tmp_path: Path) -> None:
    f = machines
    topo = with_green(f, "overlay-static.yaml", tmp_path / "three.yaml")
    f.machines["C"].sh("ip link add br0 type bridge")  # the machine's own: nsnet takes over nothing
    up = f.drive("up", str(topo))
    assert up.code == 2, up.text
    assert "machine C: interface br0 already exists in the root namespace" in up.err, up.err
    assert "failed on machine C" in up.err
    for name in ("A", "B"):
        assert f.links(name) == "", f"machine {name} was changed though C failed to plan"
    f.machines["C"].sh("ip link del br0")
    f.machines["C"].sh("kill $(cat /run/sshd-fleet.pid)")  # C unreachable (its sshd's own pid file)
    up = f.drive("up", str(topo))
    assert up.code == 2 and "machine C (root@192.168.100.3): cannot connect" in up.err, up.text
    # Down reaches what it can, and says which machine it could not.
    down = f.drive("down", "overlay")
    assert down.code == 2 and "failed on machine C" in down.err, down.text


def test_an_unknown_host_key_is_refused(machines: Fleet, tmp_path: Path) -> None:
    f = machines
    (f.home / ".ssh" / "known_hosts").write_text("")
    up = f.drive("up", str(f.inventory("overlay-static.yaml", tmp_path)))
    assert up.code == 2 and "its host key is not trusted" in up.err, up.text
    assert all(f.links(name) == "" for name in f.machines)


def registry(f: Fleet) -> str:
    """etcd on the operator's seat (the switch world), reached by the machines over the underlay."""
    url = "http://192.168.100.254:2379"
    f.switch.spawn(
        ["etcd", "--name", "fleet", "--data-dir", "/run/etcd", "--listen-client-urls", url,
         "--advertise-client-urls", url, "--listen-peer-urls", "http://127.0.0.1:2380",
         "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
         "--initial-cluster", "fleet=http://127.0.0.1:2380", "--log-level", "warn"],
        "/run/etcd.log",
    )  # fmt: skip
    f.switch.sh(
        "for i in $(seq 200); do ss -ltn | grep -q '192.168.100.254:2379 ' && exit 0; sleep 0.05; done; "
        "cat /run/etcd.log; exit 1"
    )
    return url


def wait_for(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
    return True


def test_dynamic_overlay_across_three_machines(
    machines: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """etcd on the underlay, `overlay serve --machine` on each machine; GREEN joins on C, reachable at once."""
    f = machines
    url = registry(f)
    base = f.inventory("overlay-dynamic.yaml", tmp_path, overlay={"mode": "dynamic", "registry": url})
    # The controllers run as services do, before the lab is up: each waits for its machine's share.
    for name, w in f.machines.items():
        w.spawn([NSNET, "overlay", "serve", "overlay-dyn", "--machine", name, "--json"], f"/run/serve-{name}.log")
    up = f.drive("up", str(base))
    assert up.code == 0, up.text
    assert "forward" not in up.out  # dynamic: the controllers write the entries
    assert wait_for(lambda: ping(f, "A", "RED", "10.0.0.3"), 10), f.machines["A"].sh("cat /run/serve-A.log")

    green = with_green(f, "overlay-dynamic.yaml", tmp_path / "green.yaml")
    data = yaml.safe_load(green.read_text())
    data["overlay"] = {"mode": "dynamic", "registry": url}
    green.write_text(yaml.safe_dump(data, sort_keys=False))
    up = f.drive("up", str(green))
    assert up.code == 0, up.text
    start = time.monotonic()  # GREEN is there on C: from now on, A's RED must reach it
    red = f.machines["A"].argv(["ip", "netns", "exec", "RED", "ping", "-c1", "-n", "-W", "0.2", "10.0.0.4"])
    assert wait_for(lambda: subprocess.run(red, capture_output=True, check=False).returncode == 0, 5)
    reached = time.monotonic() - start
    with capsys.disabled():
        print(f"\n  GREEN (on machine C) reachable from RED (on machine A) {reached:.3f}s after up")
    assert reached < 1.0, f.machines["C"].sh("cat /run/serve-C.log")
    log = f.machines["A"].sh("cat /run/serve-A.log")
    events = [json.loads(line) for line in log.splitlines()]
    assert any(e["event"] == "l3miss" and e.get("ip") == "10.0.0.4" for e in events), log
    fdb = f.machines["A"].sh("bridge fdb show dev vxlan1")
    assert "02:42:0a:00:00:04 dst 192.168.100.3 self permanent" in fdb, fdb

    listed = f.machines["B"].run(NSNET, "overlay", "ls", "overlay-dyn", "--registry", url, "--json")
    assert {(e["node"], e["vtep"], e["host"]) for e in json.loads(listed.out)} == {
        ("RED", "192.168.100.1", "A"), ("BLUE", "192.168.100.2", "B"), ("GREEN", "192.168.100.3", "C"),
    }  # fmt: skip

    down = f.drive("down", str(green))
    assert down.code == 0, down.text
    nothing_left(f)

    # The controllers withdrew their machines' nodes when the lab went down (and wait for it to come back).
    def registered() -> list[object]:
        listed = f.drive("overlay", "ls", "overlay-dyn", "--registry", url, "--json")
        assert listed.code == 0, listed.text
        return list(json.loads(listed.out))

    assert wait_for(lambda: registered() == [], 10)


def test_the_inventory_is_checked_with_file_and_line(tmp_path: Path) -> None:
    data = yaml.safe_load((EXAMPLES / "overlay-static.yaml").read_text())
    data["machines"] = {
        "A": {"underlay": {"interface": "eth1", "address": "192.168.104.2"}},
        "Z": {"underlay": {"interface": "eth1", "address": "192.168.104.3"}},
        "B": {"underlay": {"interface": "eth1", "address": "192.168.104.2/24"}, "ssh": "root@bad host"},
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(TopologyError) as caught:
        load(path)
    text = str(caught.value)
    assert "bad.yaml:" in text and "machines.Z: 'Z' is not a host of this lab" in text, text
    assert "machines.B.underlay.address: 192.168.104.2 is machine A's address too" in text, text
    del data["machines"]["B"], data["machines"]["Z"]
    data["machines"]["A"]["ssh"] = "root@bad host"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(TopologyError) as caught:
        load(path)
    text = str(caught.value)
    assert "machines.A.ssh: 'root@bad host' is not an SSH destination" in text, text
    assert "machines: no machine carries host B" in text, text


def test_a_share_is_the_host_in_the_root_namespace_on_the_real_underlay() -> None:
    data = yaml.safe_load((EXAMPLES / "overlay-static.yaml").read_text())
    data["machines"] = {
        h: {"ssh": f"admin@vm{h}:2222", "underlay": {"interface": "ens4", "address": a}}
        for h, a in (("A", "198.51.100.7"), ("B", "203.0.113.9"))
    }
    topology = loads(yaml.safe_dump(data))
    assert topology.machines["A"].ssh == "admin@vmA:2222"
    part = share(topology, "A", 1400)
    assert part.host_mode == "root" and part.machine == "A" and set(part.namespaces) == {"host", "RED"}
    vx = part.namespaces["host"].links["vxlan1"]
    assert vx.vxlan is not None and (vx.vxlan.local, vx.vxlan.dev) == ("198.51.100.7", "ens4")
    assert vx.fdb == frozenset({("02:42:0a:00:00:03", "203.0.113.9")})  # B's real address, not the simulated one
    assert "eth0" not in part.namespaces["host"].links
    assert {link.mtu for link in part.namespaces["host"].links.values()} == {1350}  # ens4's 1400, less 50
    assert part.namespaces["RED"].links["reth0"].mtu == 1350
    data["nodes"]["RED"]["interfaces"]["reth0"]["mtu"] = 1400
    with pytest.raises(NsnetError, match=r"ens4 carries 1350 bytes of overlay .* RED:reth0 \(mtu 1400\) is more"):
        share(loads(yaml.safe_dump(data)), "A", 1400)
