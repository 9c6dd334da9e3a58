"""The overlay's dynamic side on a real kernel and a real etcd: the registry and the controllers.

Each test builds, with ``ip``, an underlay namespace (a bridge at
192.168.100.254/24, where etcd listens) and host namespaces joined to it by
veths (192.168.100.1, .2, .3), each with br0, vxlan1 (``nolearning proxy
l2miss l3miss``) and one node namespace (10.0.0.x/24). Controllers run in
threads of this process (each moves itself into its host's namespace), or in
a child process where a signal is part of the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

import pytest

from nsnet.engine import directory
from nsnet.kernel import netns
from nsnet.overlay.controller import Controller
from nsnet.overlay.endpoints import HostView, OverlayEndpoint, VxlanDevice, lab_views
from nsnet.overlay.etcd import running as registry_running
from nsnet.overlay.log import Record
from nsnet.overlay.registry import Registry, RegistryEvent

from conftest import EXAMPLES, ROOT, netns_list, nsnet, sh, unique_name

pytestmark = pytest.mark.kernel
# Not a skip: without etcd these tests fail, loudly (scripts/setup.sh installs etcd-server).
assert shutil.which("etcd"), "etcd is not installed: run scripts/setup.sh (it installs etcd-server)"

ETCD_ADDR = "192.168.100.254"
ETCD_PORT = 2379
VNI = 42
T = TypeVar("T")


@dataclass
class Host:
    label: str
    netns: str
    node_ns: str
    index: int

    @property
    def vtep(self) -> str:
        return f"192.168.100.{self.index}"

    @property
    def ip(self) -> str:
        return f"10.0.0.{self.index}"

    @property
    def mac(self) -> str:
        return f"02:42:0a:00:00:{self.index:02x}"

    def endpoint(self) -> OverlayEndpoint:
        return OverlayEndpoint(VNI, self.ip, self.mac, self.vtep, self.label, f"n{self.label}", "eth0")

    def view(self, registered: bool = True) -> HostView:
        local = (self.endpoint(),) if registered else ()
        return HostView(self.label, self.netns, self.vtep, (VxlanDevice("vxlan1", VNI),), local)


@dataclass
class World:
    lab: str
    underlay: str
    hosts: dict[str, Host]
    url: str
    views: dict[str, HostView | None] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    controllers: list[Controller] = field(default_factory=list)

    def sink(self, record: Record) -> None:
        self.records.append(record)  # list.append is atomic: no lock needed

    def serve(self, *labels: str, announce: bool = True) -> None:
        for label in labels:
            ctl = Controller(self.lab, _view_of(self.views, label), self.url, self.sink, ttl=3, announce=announce)
            ctl.start()
            self.controllers.append(ctl)

    def seen(self, host: str, event: str, **match: Any) -> list[Record]:
        return [
            r
            for r in list(self.records)
            if r.host == host and r.event == event and all(r.data.get(k) == v for k, v in match.items())
        ]

    def knows(self, host: str, *ips: str) -> bool:
        """Whether ``host``'s controller has every one of ``ips`` in its cache (from its snapshot, or a put)."""
        snapshot = {ip for r in self.seen(host, "snapshot") for ip in r.data["ips"]}
        return all(ip in snapshot or self.seen(host, "put", ip=ip) for ip in ips)

    def log(self) -> str:
        return "\n".join(r.line() for r in self.records)


def _view_of(views: dict[str, HostView | None], label: str) -> Callable[[], HostView | None]:
    return lambda: views.get(label)


def ip(*args: str) -> str:
    return sh("ip", *args)


def in_ns(ns: str, work: Callable[[], T]) -> T:
    """Run ``work`` in a thread inside namespace ``ns`` (its sockets, and the threads it starts, are made there)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            with netns.entered(ns):
                box["value"] = work()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


@contextlib.contextmanager
def json_lines(argv: list[str]) -> Iterator[tuple[subprocess.Popen[str], list[dict[str, Any]]]]:
    """``argv`` running, and the JSON objects it prints, one per line, as they come; killed at the end if alive."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    lines: list[dict[str, Any]] = []
    reader = threading.Thread(target=lambda: lines.extend(json.loads(line) for line in proc.stdout or ()))
    reader.start()
    try:
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)


def wait_for(check: Callable[[], T], timeout: float = 5.0, step: float = 0.02) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def ping(src: Host, dst: Host, wait: float = 1.0) -> bool:
    cmd = ["ip", "netns", "exec", src.node_ns, "ping", "-c1", "-n", "-W", str(wait), dst.ip]
    return subprocess.run(cmd, capture_output=True, check=False).returncode == 0


def neighbours(host: Host) -> str:
    return ip("-n", host.netns, "neigh", "show", "dev", "vxlan1")


def fdb(host: Host) -> str:
    return sh("bridge", "-n", host.netns, "fdb", "show", "dev", "vxlan1")


def _build(base: str, count: int) -> tuple[str, dict[str, Host]]:
    underlay = f"{base}u"
    ip("netns", "add", underlay)
    ip("-n", underlay, "link", "set", "lo", "up")
    ip("-n", underlay, "link", "add", "br-u", "type", "bridge")
    ip("-n", underlay, "addr", "add", f"{ETCD_ADDR}/24", "dev", "br-u")
    ip("-n", underlay, "link", "set", "br-u", "up")
    hosts = {}
    for i, label in enumerate("ABC"[:count], start=1):
        host = Host(label, f"{base}h{label.lower()}", f"{base}n{label.lower()}", i)
        hosts[label] = host
        h, n = host.netns, host.node_ns
        ip("netns", "add", h)
        ip("netns", "add", n)
        ip("-n", h, "link", "set", "lo", "up")
        ip("-n", underlay, "link", "add", f"h{label}", "type", "veth", "peer", "name", "eth0", "netns", h)
        ip("-n", underlay, "link", "set", f"h{label}", "master", "br-u", "up")
        ip("-n", h, "addr", "add", f"{host.vtep}/24", "dev", "eth0")
        ip("-n", h, "link", "set", "eth0", "up")
        ip("-n", h, "link", "add", "br0", "type", "bridge")
        ip("-n", h, "link", "set", "br0", "up")
        vxlan = ["id", str(VNI), "dstport", "4789", "local", host.vtep, "dev", "eth0"]
        ip("-n", h, "link", "add", "vxlan1", "type", "vxlan", *vxlan, "nolearning", "proxy", "l2miss", "l3miss")
        ip("-n", h, "link", "set", "vxlan1", "master", "br0", "up")
        ip("-n", h, "link", "add", "v0", "mtu", "1450", "type", "veth", "peer", "name", "eth0", "netns", n)
        ip("-n", h, "link", "set", "v0", "master", "br0", "up")
        ip("-n", n, "link", "set", "eth0", "address", host.mac, "mtu", "1450")
        ip("-n", n, "addr", "add", f"{host.ip}/24", "dev", "eth0")
        ip("-n", n, "link", "set", "eth0", "up")
        ip("-n", n, "link", "set", "lo", "up")
    return underlay, hosts


@contextlib.contextmanager
def etcd(ns: str, url: str = f"http://{ETCD_ADDR}:{ETCD_PORT}") -> Iterator[str]:
    """An etcd listening at ``url`` (an underlay address), inside ``ns``; stopped and its data removed at the end."""
    with registry_running(ns, url):
        yield url


def _make_world(count: int) -> Iterator[World]:
    base = unique_name()
    try:
        underlay, hosts = _build(base, count)
        with etcd(underlay) as url:
            world = World(base, underlay, hosts, url)
            try:
                yield world
            finally:
                for ctl in world.controllers:
                    ctl.stop()
                for ctl in world.controllers:
                    ctl.join(timeout=10)
                    assert not ctl.alive, "a controller did not stop"
    finally:
        mine = sorted(ns for ns in netns_list() if ns.startswith(base))
        for ns in mine:
            subprocess.run(["ip", "netns", "del", ns], check=False)
        assert not [ns for ns in netns_list() if ns.startswith(base)], "namespaces left behind"


@pytest.fixture
def world() -> Iterator[World]:
    """Three hosts (A, B, C), each with one node, and etcd on the underlay."""
    yield from _make_world(3)


# -- the registry ----------------------------------------------------------------------


def test_registry_publish_snapshot_watch_withdraw(world: World) -> None:
    a, b, c = (world.hosts[x].endpoint() for x in "ABC")

    def scenario() -> dict[str, Any]:
        events: list[RegistryEvent] = []
        watcher = Registry(world.url, world.lab)
        one = Registry(world.url, world.lab)
        crashed = Registry(world.url, world.lab)
        try:
            assert watcher.snapshot() == {}
            watcher.watch(events.append)
            one.publish([a, b], ttl=2)
            snap = Registry(world.url, world.lab).snapshot()
            one.withdraw(b)
            crashed.publish([c], ttl=2)
            crashed.close(withdraw=False)  # as if killed: its key lives until the lease expires
            assert wait_for(lambda: any(e.kind == "delete" and e.key == c.key(world.lab) for e in events), 8)
            one.close()  # revokes the lease: a's key goes at once
            assert wait_for(lambda: any(e.kind == "delete" and e.key == a.key(world.lab) for e in events), 2)
            return {"snap": snap, "events": list(events), "after": watcher.snapshot()}
        finally:
            for reg in (watcher, one, crashed):
                reg.close()

    got = in_ns(world.hosts["A"].netns, scenario)  # etcd is reached over the underlay, from a host
    assert got["snap"] == {a.key(world.lab): a, b.key(world.lab): b}
    kinds = [(e.kind, e.key) for e in got["events"]]
    assert kinds[:4] == [
        ("put", a.key(world.lab)),
        ("put", b.key(world.lab)),
        ("delete", b.key(world.lab)),
        ("put", c.key(world.lab)),
    ]
    assert got["events"][0].endpoint == a
    assert got["after"] == {}


def test_registry_invalid_value_and_withdraw_of_a_taken_key(world: World) -> None:
    a = world.hosts["A"].endpoint()
    taken = replace(a, host="B", vtep=world.hosts["B"].vtep)

    def scenario() -> tuple[list[RegistryEvent], dict[str, OverlayEndpoint]]:
        events: list[RegistryEvent] = []
        with Registry(world.url, world.lab) as watcher, Registry(world.url, world.lab) as mine:
            watcher.watch(events.append)
            mine.publish([a])
            with Registry(world.url, world.lab) as other:
                other.publish([taken])  # another host takes the key over
                mine.withdraw(a)  # must not delete the other host's value
                snap = watcher.snapshot()
                key = f"/nsnet/{world.lab}/overlay/{VNI}/10.0.0.99"
                other._post("/kv/put", {"key": _b64(key), "value": _b64("{not json")})
                assert wait_for(lambda: any(e.key == key for e in events), 3)
            return events, snap

    events, snap = in_ns(world.hosts["A"].netns, scenario)
    assert snap == {a.key(world.lab): taken}
    bad = [e for e in events if e.error]
    assert len(bad) == 1 and bad[0].endpoint is None and "not JSON" in bad[0].error


def test_registry_publishes_again_when_its_lease_is_lost(world: World) -> None:
    a, b = world.hosts["A"].endpoint(), world.hosts["B"].endpoint()

    def scenario() -> tuple[dict[str, OverlayEndpoint], list[str]]:
        errors: list[str] = []
        with Registry(world.url, world.lab, on_error=errors.append) as reg:
            reg.publish([a], ttl=3)
            lost = reg._lease
            reg._post("/kv/lease/revoke", {"ID": lost})  # as etcd does when a lease expires
            reg.publish([b])  # the put fails on the lost lease: a new one, with a and b
            assert reg._lease != lost
            return Registry(world.url, world.lab).snapshot(), errors

    snap, errors = in_ns(world.hosts["A"].netns, scenario)
    assert snap == {a.key(world.lab): a, b.key(world.lab): b}, errors


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


# -- the controllers ---------------------------------------------------------------------


def test_ping_across_hosts_through_l3_misses(world: World) -> None:
    # A controller logs what it did right after doing it: its effect (a ping answered) may come first, hence wait_for.
    a, b = world.hosts["A"], world.hosts["B"]
    world.views.update(A=a.view(), B=b.view())
    world.serve("A", "B")
    assert wait_for(lambda: world.knows("A", b.ip) and world.knows("B", a.ip), 5), world.log()

    assert ping(a, b, wait=3), world.log()  # misses on both sides: ARP retransmits, hence the wait

    assert wait_for(lambda: world.seen("A", "l3miss", ip=b.ip, result="answered"), 2), world.log()
    assert wait_for(lambda: world.seen("B", "l3miss", ip=a.ip, result="answered"), 2), world.log()
    line = next(r.line() for r in world.seen("A", "l3miss", ip=b.ip, result="answered"))
    assert line == f"A l3miss {b.ip} dev vxlan1 -> {b.mac} via {b.vtep} (announced on br0)"
    assert f"{b.ip} lladdr {b.mac} PERMANENT" in neighbours(a)
    assert f"{b.mac} dst {b.vtep} self permanent" in fdb(a)
    assert f"{a.ip} lladdr {a.mac} PERMANENT" in neighbours(b)
    assert f"{a.mac} dst {a.vtep} self permanent" in fdb(b)
    assert ping(a, b, wait=1) and ping(b, a, wait=1)
    # Nobody answers for its own endpoints, nor for what nobody published.
    assert not world.seen("A", "l3miss", ip=a.ip, result="answered")


def test_l2_miss_is_answered_with_the_fdb_entry(world: World) -> None:
    a, b = world.hosts["A"], world.hosts["B"]
    world.views.update(A=a.view(), B=b.view())
    # The nodes know each other's MAC already: no ARP, so the first frame finds no fdb entry.
    ip("-n", a.node_ns, "neigh", "replace", b.ip, "lladdr", b.mac, "dev", "eth0", "nud", "permanent")
    ip("-n", b.node_ns, "neigh", "replace", a.ip, "lladdr", a.mac, "dev", "eth0", "nud", "permanent")
    world.serve("A", "B")
    assert wait_for(lambda: world.knows("A", b.ip) and world.knows("B", a.ip), 5), world.log()

    assert wait_for(lambda: ping(a, b, wait=0.5), 3), world.log()
    assert wait_for(lambda: world.seen("A", "l2miss", mac=b.mac, result="answered"), 2), world.log()
    assert wait_for(lambda: world.seen("B", "l2miss", mac=a.mac, result="answered"), 2), world.log()
    assert f"{b.mac} dst {b.vtep} self permanent" in fdb(a)
    assert b.ip not in neighbours(a)  # an L2 miss asks for the fdb entry only


def reachable_after(start: float, src: Host, dst: Host, results: dict[str, float], timeout: float = 5.0) -> None:
    """Ping until ``dst`` answers; record the seconds since ``start`` (absent if it never did)."""
    deadline = start + timeout
    while time.monotonic() < deadline:
        if ping(src, dst, wait=0.2):
            results[src.label] = time.monotonic() - start
            return


@pytest.mark.parametrize("announce", [True, False], ids=["announce", "no-announce"])
def test_late_node_is_reachable_quickly_and_its_withdrawal_cleans_up(world: World, announce: bool, capsys: Any) -> None:
    a, b, c = (world.hosts[x] for x in "ABC")
    world.views.update(A=a.view(), B=b.view(), C=c.view(registered=False))
    world.serve("A", "B", "C", announce=announce)
    assert wait_for(lambda: all(world.knows(h, a.ip, b.ip) for h in "ABC"), 5), world.log()

    # A asks for C's node before it exists: the miss is remembered.
    assert not ping(a, c, wait=0.3)
    assert wait_for(lambda: world.seen("A", "l3miss", ip=c.ip, result="pending"), 2), world.log()

    start = time.monotonic()
    world.views["C"] = c.view(registered=True)
    reached: dict[str, float] = {}
    pingers = [threading.Thread(target=reachable_after, args=(start, h, c, reached)) for h in (a, b)]
    for thread in pingers:
        thread.start()
    assert wait_for(lambda: world.seen("A", "put", ip=c.ip) and world.seen("B", "put", ip=c.ip), 3), world.log()
    propagated = time.monotonic() - start
    for thread in pingers:
        thread.join()
    assert set(reached) == {"A", "B"}, world.log()
    with capsys.disabled():
        print(
            f"\n  late node ({'announce' if announce else 'no announce'}): in A's and B's caches {propagated:.3f}s,"
            f" reachable from A {reached['A']:.3f}s, from B {reached['B']:.3f}s"
        )
    assert wait_for(lambda: world.seen("A", "answer", ip=c.ip), 2), world.log()  # the pending miss, answered on arrival
    # How fast is measured and printed above (docs/overlay.md reports it), never asserted: a loaded machine is
    # slower, not wrong. Without the announcement each side's node waits for one ARP retransmit (1 s).

    assert c.ip in neighbours(a) and c.ip in neighbours(b)
    start = time.monotonic()
    world.views["C"] = c.view(registered=False)

    def cleaned() -> bool:  # (the bridge's own learned entry, "master br0", is not the controller's)
        return all(c.ip not in neighbours(h) and f"{c.mac} dst" not in fdb(h) for h in (a, b))

    assert wait_for(cleaned, 3), world.log()
    gone = time.monotonic() - start
    with capsys.disabled():
        print(f"  withdrawn: entries gone from A and B {gone:.3f}s")
    assert wait_for(lambda: world.seen("C", "withdraw", ip=c.ip), 2)
    assert [r for r in world.seen("A", "delete", ip=c.ip) if "removed" in r.text], world.log()
    assert not ping(a, c, wait=0.3)
    # A and B still reach each other: only C's entries went.
    assert ping(a, b, wait=3)


def test_controller_follows_view_changes_and_device_recreation(world: World) -> None:
    a, b = world.hosts["A"], world.hosts["B"]
    world.views.update(A=a.view(), B=b.view())
    world.serve("A", "B")
    assert ping(a, b, wait=3), world.log()
    # B's node changes its MAC: B publishes the new value, A replaces what it wrote.
    new_mac = "02:42:0a:00:00:42"
    ip("-n", b.node_ns, "link", "set", "eth0", "address", new_mac)
    world.views["B"] = replace(b.view(), local=(replace(b.endpoint(), mac=new_mac),))
    assert wait_for(lambda: f"{b.ip} lladdr {new_mac} PERMANENT" in neighbours(a), 3), world.log()
    assert wait_for(lambda: f"{b.mac} dst" not in fdb(a) and f"{new_mac} dst {b.vtep}" in fdb(a), 3), world.log()
    assert [r for r in world.seen("A", "put", ip=b.ip) if "replaced on vxlan1" in r.text], world.log()
    ip("-n", a.node_ns, "neigh", "flush", "dev", "eth0")
    assert wait_for(lambda: ping(a, b, wait=0.5), 4), world.log()

    # vxlan1 of A is made anew (as a re-applied topology would): the controller follows the new index.
    ip("-n", a.netns, "link", "del", "vxlan1")
    vxlan = [
        "id",
        str(VNI),
        "dstport",
        "4789",
        "local",
        a.vtep,
        "dev",
        "eth0",
        "nolearning",
        "proxy",
        "l2miss",
        "l3miss",
    ]
    ip("-n", a.netns, "link", "add", "vxlan1", "type", "vxlan", *vxlan)
    ip("-n", a.netns, "link", "set", "vxlan1", "master", "br0", "up")
    assert wait_for(lambda: world.seen("A", "link", dev="vxlan1", gone=False), 3), world.log()
    ip("-n", a.node_ns, "neigh", "flush", "dev", "eth0")
    assert wait_for(lambda: ping(a, b, wait=0.5), 4), world.log()
    assert f"{b.ip} lladdr {new_mac} PERMANENT" in neighbours(a)

    # B leaves the lab: its controller withdraws B's endpoint and stops; A removes what it wrote for it.
    world.views["B"] = None
    ctl_b = world.controllers[1]
    ctl_b.join(timeout=5)
    assert not ctl_b.alive and ctl_b.reason == "host gone from the lab"
    assert wait_for(lambda: [r for r in world.seen("A", "delete", ip=b.ip) if "removed" in r.text], 3), world.log()
    assert b.ip not in neighbours(a)


def test_sigterm_withdraws_and_leaves_the_entries(world: World) -> None:
    """A child process serves A and B; SIGTERM: keys revoked at once, neighbour and fdb entries kept."""
    a, b = world.hosts["A"], world.hosts["B"]
    views = {x: asdict(world.hosts[x].view()) for x in "AB"}
    script = """
import json, signal, sys, threading
from nsnet.overlay.log import printer
from nsnet.overlay.serve import serve
from nsnet.overlay.etcd import running as registry_running
from nsnet.overlay.endpoints import HostView, OverlayEndpoint, VxlanDevice
lab, url, raw = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
views = {h: HostView(v["host"], v["netns"], v["vtep"], tuple(VxlanDevice(**d) for d in v["devices"]),
                     tuple(OverlayEndpoint(**e) for e in v["local"])) for h, v in raw.items()}
stop = threading.Event()
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda *_: stop.set())
serve(lab, lambda: views, url, printer(as_json=True, stop=stop), stop, ttl=30)
"""
    with json_lines([sys.executable, "-c", script, world.lab, world.url, json.dumps(views)]) as (proc, lines):
        assert wait_for(lambda: sum(1 for r in list(lines) if r["event"] == "publish") == 2, 10), lines
        assert ping(a, b, wait=3), lines
        snap = in_ns(a.netns, lambda: Registry(world.url, world.lab).snapshot())
        assert set(snap) == {a.endpoint().key(world.lab), b.endpoint().key(world.lab)}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, proc.stderr.read() if proc.stderr else ""
    # The lease (30 s) was revoked: the keys are gone now, not when it expires.
    assert in_ns(a.netns, lambda: Registry(world.url, world.lab).snapshot()) == {}
    events = [(r["host"], r["event"]) for r in lines]
    assert ("A", "l3miss") in events and ("A", "stop") in events and ("B", "withdraw") in events
    assert all({"time", "host", "event", "text"} <= set(r) for r in lines)
    # Nothing it wrote was removed.
    assert f"{b.ip} lladdr {b.mac} PERMANENT" in neighbours(a)
    assert f"{b.mac} dst {b.vtep} self permanent" in fdb(a)


def test_overlay_ls_prints_the_registry(world: World) -> None:
    a, b = world.hosts["A"], world.hosts["B"]
    with contextlib.ExitStack() as stack:
        reg = in_ns(a.netns, lambda: _published(world, [a.endpoint(), b.endpoint()]))
        stack.callback(lambda: in_ns(a.netns, reg.close))
        as_json = nsnet("overlay", "ls", world.lab, "--registry", world.url, "--netns", a.netns, "--json")
        assert as_json.code == 0, as_json.text
        rows = json.loads(as_json.out)
        assert [(r["ip"], r["mac"], r["vtep"], r["host"]) for r in rows] == [
            (a.ip, a.mac, a.vtep, "A"),
            (b.ip, b.mac, b.vtep, "B"),
        ]
        table = nsnet("overlay", "ls", world.lab, "--registry", world.url, "--netns", a.netns)
        assert table.code == 0, table.text
        assert b.ip in table.out and b.vtep in table.out and "nB" in table.out
    unreachable = nsnet("overlay", "ls", world.lab, "--registry", "http://192.168.100.77:2379", "--netns", a.netns)
    assert unreachable.code == 2 and "192.168.100.77" in unreachable.err


def _published(world: World, endpoints: list[OverlayEndpoint]) -> Registry:
    reg = Registry(world.url, world.lab)
    reg.publish(endpoints, ttl=10)
    return reg


def test_overlay_serve_cli_on_a_dynamic_lab(lab_name: str) -> None:
    """`nsnet overlay serve` on the example's lab: nodes on two hosts talk; SIGTERM withdraws, removes nothing."""
    up = nsnet("up", str(EXAMPLES / "overlay-dynamic.yaml"), "--name", lab_name, "-q")
    assert up.code == 0, up.text
    views, url = lab_views(lab_name)
    assert url is not None
    local = sorted((e for v in views.values() for e in v.local), key=lambda e: e.host)
    assert len(local) >= 2, views
    first, second = local[0], local[1]
    with etcd(directory.namespace_of(lab_name, "underlay"), url):
        serve = [sys.executable, "-m", "nsnet", "overlay", "serve", lab_name, "--json"]
        with json_lines(serve) as (proc, lines):

            def seen(event: str, host: str) -> bool:
                return any(r["event"] == event and r["host"] == host for r in list(lines))

            assert wait_for(lambda: all(seen("snapshot", h) for h in views), 10), lines
            assert wait_for(lambda: all(seen("publish", e.host) for e in local), 10), lines
            pinged = nsnet("exec", lab_name, first.node, "--", "ping", "-c1", "-W2", second.ip)
            assert pinged.code == 0, (pinged.text, lines)
            listed = nsnet("overlay", "ls", lab_name, "--json")
            assert listed.code == 0, listed.text
            assert {(r["ip"], r["host"]) for r in json.loads(listed.out)} == {(e.ip, e.host) for e in local}
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0, proc.stderr.read() if proc.stderr else ""
        misses = [r for r in lines if r["event"] == "l3miss" and r["host"] == first.host and r["ip"] == second.ip]
        assert misses and misses[0]["result"] == "answered", lines
        assert nsnet("overlay", "ls", lab_name, "--json").out.strip() == "[]"
        host_ns = views[first.host].netns
        assert f"{second.ip} lladdr {second.mac} PERMANENT" in ip("-n", host_ns, "neigh", "show", "dev", "vxlan1")


GREEN = """\
  GREEN:
    interfaces: {geth0: {addresses: [10.0.0.4/24]}}
"""
HOST_C = "  C:\n    bridges: {br0: {}}\n    vxlans: {vxlan1: {vni: 42, master: br0}}\n"


def with_green(base: str) -> str:
    """The dynamic example with node GREEN (10.0.0.4) on host C."""
    text = base.replace(HOST_C, HOST_C + "    interfaces: {vgreen: {master: br0}}\n")
    text = text.replace("links:\n", f"{GREEN}links:\n  - [GREEN:geth0, C:vgreen]\n")
    assert text.count("GREEN") == 2 and "vgreen: {master" in text
    return text


def test_a_node_added_on_host_c_is_reachable_from_a_and_b_within_a_second(
    lab_name: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's scenario on a lab brought up by nsnet: GREEN joins host C while the controllers run.

    Nothing is run on A or B: C's controller publishes GREEN, A's and B's
    answer the misses their nodes' ARP requests cause. When GREEN leaves,
    its entries leave A and B.
    """
    base = (EXAMPLES / "overlay-dynamic.yaml").read_text()
    path = tmp_path / "overlay.yaml"
    path.write_text(base)
    assert nsnet("up", str(path), "--name", lab_name, "-q").code == 0
    _, url = lab_views(lab_name)
    assert url == "http://192.168.100.254:2379"
    ns = {n: directory.namespace_of(lab_name, n) for n in ("RED", "BLUE", "A", "B", "C", "underlay")}
    with etcd(ns["underlay"], url):
        serve = [sys.executable, "-m", "nsnet", "overlay", "serve", lab_name, "--json"]
        with json_lines(serve) as (proc, lines):
            assert wait_for(lambda: {r["host"] for r in list(lines) if r["event"] == "snapshot"} >= {"A", "B", "C"}, 10)
            assert nsnet("exec", lab_name, "RED", "--", "ping", "-c1", "-W2", "10.0.0.3").code == 0, lines
            # GREEN arrives on C, by a change of the topology: nothing is run on A or B.
            path.write_text(with_green(base))
            start = time.monotonic()
            assert nsnet("up", str(path), "--name", lab_name, "-q").code == 0
            reached = {}
            for src in ("RED", "BLUE"):
                ok = wait_for(
                    lambda src=src: subprocess.run(
                        ["ip", "netns", "exec", ns[src], "ping", "-c1", "-n", "-W", "0.2", "10.0.0.4"],
                        capture_output=True, check=False,
                    ).returncode == 0,
                    timeout=5, step=0.0,
                )  # fmt: skip
                reached[src] = time.monotonic() - start
                assert ok, (src, lines)
            with capsys.disabled():  # measured, not asserted (docs/overlay.md): a loaded machine is slower
                print(
                    f"\n  GREEN reachable from RED after {reached['RED']:.3f}s, from BLUE after {reached['BLUE']:.3f}s"
                )
            for host in ("A", "B"):
                # The miss was seen, and answered at once or as soon as C's publication arrived (the
                # controller logs right after it acts, and the line crosses a pipe: it may come after the ping).
                def answered(host: str = host) -> bool:
                    seen = [r for r in list(lines) if r["host"] == host and r.get("ip") == "10.0.0.4"]
                    return any(r["event"] == "l3miss" for r in seen) and any(
                        r.get("result") == "answered" and (r["event"] == "l3miss" or r.get("miss") == "l3miss")
                        for r in seen
                    )

                assert wait_for(answered, 2), (host, lines)
                assert "10.0.0.4 lladdr 02:42:0a:00:00:04 PERMANENT" in ip(
                    "-n", ns[host], "neigh", "show", "dev", "vxlan1"
                )
                assert "02:42:0a:00:00:04 dst 192.168.100.3 self permanent" in sh(
                    "bridge", "-n", ns[host], "fdb", "show", "dev", "vxlan1"
                )
            # GREEN leaves: C withdraws it, A and B remove what they wrote for it.
            path.write_text(base)
            assert nsnet("up", str(path), "--name", lab_name, "-q").code == 0

            def gone() -> bool:
                return all(
                    "10.0.0.4" not in ip("-n", ns[h], "neigh", "show", "dev", "vxlan1")
                    # (the bridge's own learned entry, "master br0", ages out by itself)
                    and "02:42:0a:00:00:04 dst" not in sh("bridge", "-n", ns[h], "fdb", "show", "dev", "vxlan1")
                    for h in ("A", "B")
                )

            assert wait_for(gone, 3), lines
            assert nsnet("exec", lab_name, "RED", "--", "ping", "-c1", "-W2", "10.0.0.3").code == 0
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0, proc.stderr.read() if proc.stderr else ""
        print(f"GREEN reachable after {reached['RED']:.2f} s from RED (on A), {reached['BLUE']:.2f} s from BLUE (on B)")


def test_only_nodes_that_exist_are_published(lab_name: str, tmp_path: Any) -> None:
    """A node written in the file but not brought up yet is not announced to the other hosts."""
    base = (EXAMPLES / "overlay-dynamic.yaml").read_text()
    path = tmp_path / "overlay.yaml"
    path.write_text(base)
    assert nsnet("up", str(path), "--name", lab_name, "-q").code == 0
    path.write_text(with_green(base))
    views, _ = lab_views(lab_name)
    assert [e.node for e in views["C"].local] == []
    assert nsnet("up", str(path), "--name", lab_name, "-q").code == 0
    views, _ = lab_views(lab_name)
    assert [(e.node, e.ip, e.vtep) for e in views["C"].local] == [("GREEN", "10.0.0.4", "192.168.100.3")]


def test_overlay_registry_runs_etcd_on_the_underlay_until_the_lab_goes(lab_name: str) -> None:
    assert nsnet("up", str(EXAMPLES / "overlay-dynamic.yaml"), "--name", lab_name, "-q").code == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "nsnet", "overlay", "registry", lab_name], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        first = proc.stdout.readline() if proc.stdout else ""
        assert f"http://192.168.100.254:2379 in {lab_name}-underlay" in first, first
        pid = int(first.split("(pid ")[1].split(")")[0])
        listed = nsnet("overlay", "ls", lab_name)
        assert listed.code == 0 and "no endpoints registered" in listed.out, listed.text
        assert nsnet("down", lab_name, "-q").code == 0
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not os.path.exists(f"/proc/{pid}"), "etcd outlived its lab"
