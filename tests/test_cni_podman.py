"""nsnet-cni under a real runtime: podman 4.3 with its CNI backend, in a private world (never the machine's).

The world's root namespace is the node, set up as a Docker host (FORWARD
policy DROP, bridged traffic through iptables). Podman runs containers of a
busybox image on docs/cni.md's configuration: they reach each other, their
gateway, and a published port from the node, from beyond the node's uplink
and from themselves (hairpin); removing the container whose MAC a bridge
without a MAC of its own would have taken leaves the others' gateway where
it was; removing every container leaves no rule, veth, record or address.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dockerd import remove_cgroups
from podman import PRIVATE_DIRS, Podman, missing
from world import World, world

pytestmark = pytest.mark.kernel

NETWORK = "nsnet"
GATEWAY = "10.88.0.1"
FETCH = "import sys,urllib.request;print(urllib.request.urlopen(sys.argv[1],timeout=5).read().decode(),end='')"
MACHINE_DIRS = ("/var/lib/containers", "/var/lib/cni", "/run/containers", "/etc/cni/net.d")
"""Where a podman without a world of its own would write on the machine."""


def conflist() -> dict[str, Any]:
    """docs/cni.md's first example: a configuration the reference bridge plugin accepts as well."""
    return {
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "plugins": [
            {
                "type": "nsnet-cni",
                "bridge": "cni0",
                "isGateway": True,
                "isDefaultGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "forward": True,
                "capabilities": {"portMappings": True, "bandwidth": True},
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]]},
            }
        ],
    }


def _listing(path: str) -> list[str] | None:
    return sorted(os.listdir(path)) if os.path.isdir(path) else None


@pytest.fixture
def podman(lab_name: str) -> Iterator[Podman]:
    """podman in a private world whose root namespace is a Docker-style node, with the test image."""
    lacking = missing()
    if lacking:
        pytest.fail(lacking)  # a machine set up by scripts/setup.sh has podman: its absence is a failure
    parent = f"nsnet-test-{lab_name}"
    machine_dirs = {path: _listing(path) for path in MACHINE_DIRS}
    private = world(private_dirs=PRIVATE_DIRS)
    w = next(private)
    try:
        w.sh("sysctl -q -w net.bridge.bridge-nf-call-iptables=1; iptables -P FORWARD DROP")
        runtime = Podman(w, parent)
        runtime.setup()
        runtime.conflist(conflist(), "10-nsnet.conflist")
        info = json.loads(runtime.ok("info", "--format", "json"))
        assert (info["host"]["networkBackend"], info["host"]["cgroupManager"]) == ("cni", "cgroupfs"), info["host"]
        assert info["host"]["ociRuntime"]["name"] == "runc"
        assert NETWORK in runtime.ok("network", "ls", "--format", "{{.Name}}").split()
        yield runtime
    finally:
        try:
            next(private, None)  # closes the world and checks that nothing of it is left
        finally:
            left = remove_cgroups(parent)
            assert not left, f"cgroups left behind: {left}"
            now = {path: _listing(path) for path in MACHINE_DIRS}
            assert now == machine_dirs, "podman wrote to the machine's own directories"


def _uplink(w: World) -> str:
    """A namespace beyond the node's uplink (203.0.113.0/24, a documentation range); the node's address."""
    w.sh(
        "ip netns add outside\n"
        "ip link add up0 type veth peer name eth0 netns outside\n"
        "ip addr add 203.0.113.1/24 dev up0 && ip link set up0 up\n"
        "ip -n outside addr add 203.0.113.2/24 dev eth0\n"
        "ip -n outside link set eth0 up && ip -n outside link set lo up"
    )
    return "203.0.113.1"


def _fetch(w: World, url: str, netns: str | None = None) -> str:
    argv = [sys.executable, "-c", FETCH, url]
    done = w.run(*(["ip", "netns", "exec", netns, *argv] if netns else argv), timeout=30)
    assert done.code == 0, f"{url} from {netns or 'the node'}: {done.text}"
    return done.out


def _links(w: World) -> dict[str, dict[str, Any]]:
    return {link["ifname"]: link for link in json.loads(w.sh("ip -j -d link show"))}


def _ports(w: World) -> dict[str, str]:
    """The bridge's ports: the container each veth leads to (by its alias) -> the veth's MAC."""
    out = {}
    for link in _links(w).values():
        if link.get("master") == "cni0":
            out[link["ifalias"].split(":")[2]] = link["address"]
    return out


def _container_ids(podman: Podman, *names: str) -> dict[str, str]:
    return {name: podman.ok("inspect", "--format", "{{.Id}}", name).strip() for name in names}


def _nsnet_rules(w: World) -> list[str]:
    return [line for line in w.sh("iptables-save").splitlines() if "NSNETCNI" in line or "nsnet-cni" in line]


def test_podman_add_ping_publish_hairpin_and_remove(podman: Podman) -> None:
    w = podman.world
    node = _uplink(w)
    podman.run("web", NETWORK, "httpd", "-f", "-p", "80", "-h", "/www", publish="8080:80")
    podman.run("client", NETWORK, "sleep", "600")
    web, client = podman.address("web"), podman.address("client")
    assert {web, client} <= {f"10.88.0.{i}" for i in range(2, 10)}
    assert "-P FORWARD DROP" in w.sh("iptables -S FORWARD")
    for src, dst in (("web", client), ("client", web), ("client", GATEWAY)):
        done = podman.exec(src, "ping", "-c", "1", "-W", "2", dst)
        assert done.code == 0, f"{src} -> {dst}: {done.text}"
    assert podman.exec("client", "ip", "route").out.startswith(f"default via {GATEWAY} dev eth0")

    # The published port: from beyond the uplink, from the node itself, and from the container
    # itself through the node's address (hairpin).
    assert _fetch(w, f"http://{node}:8080/", "outside") == "nsnet-podman\n"
    assert _fetch(w, f"http://{node}:8080/") == "nsnet-podman\n"
    # (busybox-static's wget crashes resolving even an address: the request is made from the
    # container's network namespace by the node's Python instead.)
    sandbox = os.path.basename(podman.ok("inspect", "--format", "{{.NetworkSettings.SandboxKey}}", "web").strip())
    assert _fetch(w, f"http://{node}:8080/", sandbox) == "nsnet-podman\n"
    ids = _container_ids(podman, "web", "client")
    rules = "\n".join(_nsnet_rules(w))
    assert f'"nsnet-cni:{NETWORK}:{ids["web"]}:eth0"' in rules and "--to-destination " + f"{web}:80" in rules

    podman.ok("rm", "-f", "-t", "0", "web", "client")
    assert _nsnet_rules(w) == []
    assert not [name for name in _links(w) if name.startswith("veth")]
    assert w.sh(f"ls /run/nsnet/cni/{NETWORK}") == "lock\n"  # no attachment record left
    reserved = w.sh(f"ls /var/lib/cni/networks/{NETWORK}").split()
    assert not [name for name in reserved if re.match(r"^\d", name)], reserved
    assert w.run("ip", "netns", "exec", "outside", sys.executable, "-c", FETCH, f"http://{node}:8080/").code != 0


def test_podman_removing_a_container_keeps_the_gateway_mac(podman: Podman) -> None:
    """The bridge's MAC is its own: removing the container whose veth MAC the kernel would
    otherwise give the bridge (the lowest of its ports') changes nothing for the others."""
    w = podman.world
    podman.run("one", NETWORK, "sleep", "600")
    podman.run("two", NETWORK, "sleep", "600")
    ids = _container_ids(podman, "one", "two")
    bridge = _links(w)["cni0"]
    assert w.sh("cat /sys/class/net/cni0/addr_assign_type").strip() == "3"  # set, as the reference plugin does
    ports = _ports(w)
    assert set(ports) == set(ids.values())
    assert bridge["address"] not in ports.values()
    lowest = min(ports, key=lambda cid: bytes.fromhex(ports[cid].replace(":", "")))
    gone, other = ("one", "two") if ids["one"] == lowest else ("two", "one")

    assert podman.exec(other, "ping", "-c", "1", "-W", "2", GATEWAY).code == 0
    neigh = podman.exec(other, "ip", "neigh", "show", GATEWAY).out
    assert bridge["address"] in neigh, neigh  # the other container's entry for its gateway
    podman.ok("rm", "-f", "-t", "0", gone)
    started = time.monotonic()
    reached = podman.exec(other, "ping", "-c", "1", "-W", "1", GATEWAY)
    took = time.monotonic() - started
    assert reached.code == 0, f"{other} lost its gateway when {gone} was removed: {reached.text}"
    assert took < 2, took  # one echo answered within its one-second wait (plus podman exec's own start)
    assert _links(w)["cni0"]["address"] == bridge["address"]
    podman.ok("rm", "-f", "-t", "0", other)
    assert _nsnet_rules(w) == []
