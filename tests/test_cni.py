"""nsnet-cni, run exactly as a container runtime runs it: environment, configuration on stdin, JSON on stdout.

Every test builds its own sandbox namespace to act as the node (the plugin
runs inside it, through ``ip netns exec``, never in the root namespace), and
named namespaces for its containers, whose paths it passes as ``CNI_NETNS``.
The IPAM plugin is the reference ``host-local`` (Debian's
``containernetworking-plugins``) with its ``dataDir`` in the test's temporary
directory; nsnet-cni's state goes there too (``NSNET_CNI_STATE_DIR``).
Everything is removed at the end, and the test fails if a namespace is left.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import ROOT, netns_list, sh, unique_name

PLUGIN = Path(sys.executable).parent / "nsnet-cni"
REFERENCE = Path("/usr/lib/cni")
FETCH = "import sys,urllib.request;print(urllib.request.urlopen(sys.argv[1],timeout=5).read().decode(),end='')"

pytestmark = pytest.mark.kernel

# -- the specification's shapes, as JSON Schemas ---------------------------------

_CIDR = {"type": "string", "pattern": r"^[0-9a-fA-F.:]+/\d{1,3}$"}
_IP = {"type": "string", "pattern": r"^[0-9a-fA-F.:]+$"}
_MAC = {"type": "string", "pattern": r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$"}
_STRINGS = {"type": "array", "items": {"type": "string"}}
RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["cniVersion"],
    "properties": {
        "cniVersion": {"enum": ["1.0.0", "1.1.0"]},
        "interfaces": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 15},
                    "mac": _MAC,
                    "mtu": {"type": "integer", "minimum": 0},
                    "sandbox": {"type": "string"},
                    "socketPath": {"type": "string"},
                    "pciID": {"type": "string"},
                },
            },
        },
        "ips": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["address"],
                "properties": {"address": _CIDR, "gateway": _IP, "interface": {"type": "integer", "minimum": 0}},
                "not": {"required": ["version"]},  # gone since 1.0.0
            },
        },
        "routes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["dst"],
                "properties": {
                    "dst": _CIDR,
                    "gw": _IP,
                    "mtu": {"type": "integer"},
                    "advmss": {"type": "integer"},
                    "priority": {"type": "integer"},
                    "table": {"type": "integer"},
                    "scope": {"type": "integer"},
                },
            },
        },
        "dns": {
            "type": "object",
            "properties": {
                "nameservers": _STRINGS,
                "domain": {"type": "string"},
                "search": _STRINGS,
                "options": _STRINGS,
            },
        },
    },
}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["cniVersion", "code", "msg"],
    "properties": {
        "cniVersion": {"type": "string"},
        "code": {"type": "integer", "minimum": 1},
        "msg": {"type": "string", "minLength": 1},
        "details": {"type": "string"},
    },
    "additionalProperties": False,
}
VERSION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["cniVersion", "supportedVersions"],
    "properties": {"cniVersion": {"type": "string"}, "supportedVersions": _STRINGS},
    "additionalProperties": False,
}


OUTSIDE_SERVER = "nsnet.engine.outside_server"


def valid_result(result: dict[str, Any], version: str = "1.1.0") -> None:
    jsonschema.validate(result, RESULT_SCHEMA)
    assert result["cniVersion"] == version
    for ip in result.get("ips", []):  # every address names a container interface of the result
        iface = result["interfaces"][ip["interface"]]
        assert iface.get("sandbox"), (ip, iface)


def valid_error(data: dict[str, Any], code: int) -> None:
    jsonschema.validate(data, ERROR_SCHEMA)
    assert data["code"] == code, data


# -- the node, its containers, and the runtime -------------------------------------


@dataclass
class Call:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Node:
    """A sandbox namespace acting as the CNI host, with containers (named namespaces) of the test."""

    base: str
    tmp: Path
    servers: list[subprocess.Popen[str]] = field(default_factory=list)
    count: int = 0

    @property
    def name(self) -> str:
        return f"{self.base}-node"

    @property
    def state(self) -> Path:
        return self.tmp / "state"

    @property
    def ipam_dir(self) -> Path:
        return self.tmp / "ipam"

    @property
    def cni_path(self) -> str:
        return f"{self.tmp / 'bin'}:{REFERENCE}"

    def container(self) -> str:
        """A new container namespace; returns its path (what a runtime passes as CNI_NETNS)."""
        self.count += 1
        name = f"{self.base}-c{self.count}"
        sh("ip", "netns", "add", name)
        return f"/run/netns/{name}"

    def run(self, *argv: str, ns: str | None = None, check: bool = True) -> str:
        """A command in the node (or in namespace ``ns``: a name or a /run/netns path)."""
        where = os.path.basename(ns) if ns else self.name
        proc = subprocess.run(["ip", "netns", "exec", where, *argv], capture_output=True, text=True, check=False)
        if check:
            assert proc.returncode == 0, f"{' '.join(argv)} in {where}: {proc.stderr}"
        return proc.stdout

    def cni(
        self,
        command: str,
        conf: dict[str, Any] | bytes | None,
        cid: str = "",
        netns: str = "",
        ifname: str = "eth0",
        plugin: Path = PLUGIN,
        **env: str,
    ) -> Call:
        """Run a plugin in the node as a runtime does: CNI_* in the environment, the configuration on stdin."""
        stdin = conf if isinstance(conf, bytes) else b"" if conf is None else json.dumps(conf).encode()
        environ = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_ARGS": "",
            "CNI_PATH": self.cni_path,
            "NSNET_CNI_STATE_DIR": str(self.state),
        }
        environ.update(env)
        proc = subprocess.run(
            ["ip", "netns", "exec", self.name, str(plugin)],
            input=stdin,
            capture_output=True,
            env={k: v for k, v in environ.items() if v is not None},
            timeout=120,
            check=False,
        )
        return Call(proc.returncode, proc.stdout.decode(), proc.stderr.decode())

    def add(self, conf: dict[str, Any], cid: str, netns: str, **kw: Any) -> dict[str, Any]:
        call = self.cni("ADD", conf, cid, netns, **kw)
        assert call.code == 0, call.out + call.err
        result: dict[str, Any] = call.json
        return result

    def ok(self, command: str, conf: dict[str, Any], cid: str = "", netns: str = "", **kw: Any) -> None:
        """A command that must succeed and, being no ADD, print nothing."""
        call = self.cni(command, conf, cid, netns, **kw)
        assert call.code == 0 and call.out == "", call.out + call.err

    def iptables(self) -> str:
        return self.run("iptables-save")

    def serve(self, netns: str, port: int) -> None:
        """The small web server that answers with the client's address, in a container."""
        server = subprocess.Popen(
            ["ip", "netns", "exec", os.path.basename(netns), sys.executable, "-m", OUTSIDE_SERVER, str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.servers.append(server)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"

    def fetch(self, url: str, ns: str | None = None) -> subprocess.CompletedProcess[str]:
        where = os.path.basename(ns) if ns else self.name
        return subprocess.run(
            ["ip", "netns", "exec", where, sys.executable, "-c", FETCH, url],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def ping(self, src: str, address: str) -> bool:
        proc = subprocess.run(
            ["ip", "netns", "exec", os.path.basename(src), "ping", "-c", "1", "-W", "1", address],
            capture_output=True,
            check=False,
        )
        return proc.returncode == 0


def _make_node(tmp: Path, forward_policy: str = "DROP") -> Node:
    node = Node(unique_name(), tmp)
    (tmp / "bin").mkdir()
    (tmp / "bin" / "nsnet-cni").symlink_to(PLUGIN)  # found by type on CNI_PATH, as a runtime finds it
    sh("ip", "netns", "add", node.name)
    node.run("ip", "link", "set", "lo", "up")
    # A Docker-style node: bridged IPv4 through iptables, FORWARD policy DROP.
    node.run("sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1")
    node.run("iptables", "-P", "FORWARD", forward_policy)
    return node


def _destroy(node: Node) -> None:
    for server in node.servers:
        server.kill()
        server.wait()
    mine = sorted(ns for ns in netns_list() if ns.startswith(f"{node.base}-"))
    for ns in mine:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    left = sorted(ns for ns in netns_list() if ns.startswith(f"{node.base}-"))
    assert not left, f"namespaces left behind: {left}"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    made = _make_node(tmp_path)
    try:
        yield made
    finally:
        _destroy(made)


def netconf(node: Node, version: str = "1.1.0", name: str = "net1", **extra: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "cniVersion": version,
        "name": name,
        "type": "nsnet-cni",
        "bridge": "cni0",
        "isDefaultGateway": True,
        "ipam": {
            "type": "host-local",
            "dataDir": str(node.ipam_dir),
            "ranges": [[{"subnet": "10.22.0.0/24"}]],
        },
    }
    conf.update(extra)
    return conf


def with_prev(conf: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    return {**conf, "prevResult": result}


def address(result: dict[str, Any]) -> str:
    return str(ipaddress.ip_interface(result["ips"][0]["address"]).ip)


def reserved(node: Node, network: str = "net1") -> set[str]:
    """Addresses host-local holds for the network (one file per address in its dataDir)."""
    directory = node.ipam_dir / network
    if not directory.is_dir():
        return set()
    return {p.name for p in directory.iterdir() if p.name[0].isdigit() and "last_reserved" not in p.name}


def nsnet_rules(node: Node) -> list[str]:
    return [line for line in node.iptables().splitlines() if "NSNETCNI" in line or "nsnet-cni" in line]


def records(node: Node, network: str = "net1") -> list[str]:
    directory = node.state / network
    return sorted(p.name for p in directory.glob("*.json")) if directory.is_dir() else []


# -- ADD, ping, CHECK, DEL --------------------------------------------------------


def test_two_containers_ping_through_forward_policy_drop(node: Node) -> None:
    conf = netconf(node)
    c1, c2 = node.container(), node.container()
    r1 = node.add(conf, "ctr-one", c1)
    r2 = node.add(conf, "ctr-two", c2)
    for r, netns in ((r1, c1), (r2, c2)):
        valid_result(r)
        assert r["interfaces"][0]["name"] == "cni0"
        assert r["interfaces"][2] == {**r["interfaces"][2], "name": "eth0", "sandbox": netns}
        assert r["ips"][0]["gateway"] == "10.22.0.1" and r["ips"][0]["interface"] == 2
        assert r["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.22.0.1"}]
    assert {address(r1), address(r2)} == {"10.22.0.2", "10.22.0.3"}
    assert "-P FORWARD DROP" in node.run("iptables", "-S", "FORWARD")
    assert node.ping(c1, address(r2)) and node.ping(c2, address(r1))
    rules = node.iptables()
    assert '--comment "nsnet-cni:net1:ctr-one:eth0"' in rules and '--comment "nsnet-cni:net1:ctr-two:eth0"' in rules
    assert f"-A NSNETCNI-FORWARD -d {address(r2)}/32 -i cni0 -o cni0 " in rules

    # The control: a second bridge of the same node without nsnet's forward rules, where
    # the policy DROP kills the ping, as it does under the reference bridge plugin.
    plain = netconf(node, name="net2", bridge="cni1", forward=False)
    plain["ipam"]["ranges"] = [[{"subnet": "10.23.0.0/24"}]]
    c3, c4 = node.container(), node.container()
    r3 = node.add(plain, "ctr-three", c3)
    node.add(plain, "ctr-four", c4)
    assert not node.ping(c4, address(r3))
    for cid, netns, c, r in (("ctr-one", c1, conf, r1), ("ctr-two", c2, conf, r2), ("ctr-three", c3, plain, r3)):
        node.ok("DEL", with_prev(c, r), cid, netns)
    node.ok("DEL", plain, "ctr-four", c4)
    assert nsnet_rules(node) == []


def test_check_passes_then_fails_without_the_interface_and_del_twice(node: Node) -> None:
    conf = netconf(node, ipMasq=True)
    c1 = node.container()
    result = node.add(conf, "ctr-check", c1)
    node.ok("CHECK", with_prev(conf, result), "ctr-check", c1)
    # A rule that went missing is a CHECK failure too.
    rule = next(line for line in node.iptables().splitlines() if "MASQUERADE" in line and "ctr-check" in line)
    node.run("iptables", "-t", "nat", "-D", *shlex.split(rule)[1:])
    broken = node.cni("CHECK", with_prev(conf, result), "ctr-check", c1)
    assert broken.code == 1
    valid_error(broken.json, 100)
    assert "MASQUERADE" in broken.json["details"]
    node.ok("DEL", with_prev(conf, result), "ctr-check", c1)
    result = node.add(conf, "ctr-check", c1)
    node.ok("CHECK", with_prev(conf, result), "ctr-check", c1)

    node.run("ip", "link", "del", "eth0", ns=c1)
    failed = node.cni("CHECK", with_prev(conf, result), "ctr-check", c1)
    assert failed.code == 1, failed.out
    valid_error(failed.json, 100)
    assert "eth0 is missing" in failed.json["details"]

    assert reserved(node) == {address(result)}
    for _ in range(2):  # DEL is idempotent
        node.ok("DEL", with_prev(conf, result), "ctr-check", c1)
    assert reserved(node) == set()
    assert nsnet_rules(node) == []
    assert records(node) == []
    assert "veth" not in node.run("ip", "-o", "link")


def test_del_after_the_namespace_is_gone_leaks_nothing(node: Node) -> None:
    conf = netconf(node, ipMasq=True, runtimeConfig={"portMappings": [{"hostPort": 8080, "containerPort": 80}]})
    c1 = node.container()
    result = node.add(conf, "ctr-gone", c1)
    assert "MASQUERADE" in node.iptables() and "DNAT" in node.iptables()
    sh("ip", "netns", "del", os.path.basename(c1))
    node.ok("DEL", with_prev(conf, result), "ctr-gone", c1)
    assert nsnet_rules(node) == []  # no NAT rule, no chain, no jump left
    assert reserved(node) == set()
    assert records(node) == []
    assert "veth" not in node.run("ip", "-o", "link")
    # Without CNI_NETNS (allowed for DEL) and with nothing left: still a success.
    node.ok("DEL", conf, "ctr-gone", "")


def test_prev_result_is_honoured_and_unknown_fields_pass_through(node: Node) -> None:
    """nsnet-cni second in a chain: the result it gets is extended, not replaced."""
    c1 = node.container()
    prev = {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": c1}],
        "ips": [{"address": "127.0.0.1/8", "interface": 0}],
        "dns": {"nameservers": ["192.0.2.53"]},
        "x-from-before": {"kept": True},
    }
    conf = netconf(node, prevResult=prev, **{"x-unknown-field": [1, 2], "args": {"cni": {"anything": "x"}}})
    result = node.add(conf, "ctr-chain", c1)
    valid_result(result)
    assert result["interfaces"][0]["name"] == "lo"
    assert result["interfaces"][1]["name"] == "cni0"
    assert result["ips"][0] == {"address": "127.0.0.1/8", "interface": 0}
    assert result["ips"][1]["address"] == "10.22.0.2/24" and result["ips"][1]["interface"] == 3
    assert result["dns"] == {"nameservers": ["192.0.2.53"]}
    assert result["x-from-before"] == {"kept": True}
    node.ok("CHECK", with_prev(conf, result), "ctr-chain", c1)
    node.ok("DEL", with_prev(conf, result), "ctr-chain", c1)


# -- VERSION, STATUS, errors ------------------------------------------------------


def test_version_status_and_errors_in_the_spec_shape(node: Node) -> None:
    for stdin in (None, {"cniVersion": "1.0.0"}):
        call = node.cni("VERSION", stdin)
        assert call.code == 0, call.out
        jsonschema.validate(call.json, VERSION_SCHEMA)
        assert {"0.4.0", "1.0.0", "1.1.0"} <= set(call.json["supportedVersions"])
        assert call.json["cniVersion"] == ("1.1.0" if stdin is None else "1.0.0")

    node.ok("STATUS", netconf(node))
    missing_ipam = netconf(node)
    missing_ipam["ipam"]["type"] = "no-such-ipam"
    valid_error(node.cni("STATUS", missing_ipam).json, 50)

    c1 = node.container()
    conf = netconf(node)
    cases: list[tuple[str, dict[str, Any] | bytes, dict[str, str], int]] = [
        ("FROB", conf, {}, 4),
        ("ADD", b"{not json", {}, 6),
        ("ADD", netconf(node, version="0.2.0"), {}, 1),
        ("ADD", conf, {"CNI_CONTAINERID": ""}, 4),
        ("ADD", conf, {"CNI_CONTAINERID": "bad/id"}, 4),
        ("ADD", conf, {"CNI_IFNAME": "a-name-far-too-long"}, 4),
        ("ADD", netconf(node, vlan=100), {}, 2),
        ("ADD", netconf(node, mtu="big"), {}, 7),
        ("ADD", netconf(node, name="bad name"), {}, 7),
        ("ADD", conf, {"CNI_NETNS": "/run/netns/no-such-namespace-here"}, 3),
        ("GC", netconf(node, version="1.0.0"), {}, 1),
        ("STATUS", netconf(node, version="1.0.0"), {}, 1),
        ("CHECK", conf, {}, 7),  # no prevResult
    ]
    for command, stdin, env, code in cases:
        environ = {"CNI_CONTAINERID": "ctr-err", "CNI_NETNS": c1, **env}
        call = node.cni(command, stdin, **environ)
        assert call.code != 0, (command, env, call.out)
        valid_error(call.json, code)
    assert reserved(node) == set() and records(node) == []
    assert "eth0" not in node.run("ip", "-o", "link", ns=c1)


def test_hostile_names_paths_and_documents_are_refused_and_change_nothing(node: Node, tmp_path: Path) -> None:
    """An interface name the kernel would rename (``e%d`` -> ``e0``) or refuse, a FIFO as the
    namespace, JSON nested 100,000 deep: each is one error of the right code, and nothing is made."""
    c1 = node.container()
    conf = netconf(node)
    node_links = node.run("ip", "-o", "link")
    for ifname in ("e%d", "e%x", "a b", "a/b", "a:b", "x\ty", "x" * 16):
        for command in ("ADD", "DEL"):
            call = node.cni(command, conf, "ctr-bad", c1, ifname=ifname)
            assert call.code != 0, (command, ifname, call.out)
            valid_error(call.json, 4)
            assert call.json["msg"] == f"CNI_IFNAME {ifname!r} is not a valid interface name", call.json
    assert node.run("ip", "-o", "link") == node_links
    assert [line.split(":")[1].strip() for line in node.run("ip", "-o", "link", ns=c1).splitlines()] == ["lo"]
    assert reserved(node) == set() and records(node) == []

    fifo = tmp_path / "netns-fifo"
    os.mkfifo(fifo)
    plain = tmp_path / "netns-file"
    plain.write_text("")
    for path in (fifo, plain):
        started = time.monotonic()
        call = node.cni("ADD", conf, "ctr-fifo", str(path))
        assert time.monotonic() - started < 30, "the plugin hung on CNI_NETNS"
        valid_error(call.json, 4)
        assert call.json["msg"] == f"CNI_NETNS {str(path)!r} is not a network namespace"
    assert node.run("ip", "-o", "link") == node_links

    deep = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    for command in ("ADD", "VERSION"):
        call = node.cni(command, deep, "ctr-deep", c1)
        assert call.code != 0, call.out
        valid_error(call.json, 6)
    assert node.run("ip", "-o", "link") == node_links
    assert reserved(node) == set() and records(node) == []


# -- GC and concurrency -------------------------------------------------------------


def test_gc_removes_attachments_not_in_valid_attachments(node: Node) -> None:
    conf = netconf(node, ipMasq=True)
    spaces = [node.container() for _ in range(3)]
    results = [node.add(conf, f"ctr-gc{i}", netns) for i, netns in enumerate(spaces)]
    (node.state / "net1" / "ctr-gc2:eth0.json").unlink()  # a record lost: GC finds it by its marks
    gc = {**conf, "cni.dev/valid-attachments": [{"containerID": "ctr-gc0", "ifname": "eth0"}]}
    node.ok("GC", gc)
    assert reserved(node) == {address(results[0])}
    assert records(node) == ["ctr-gc0:eth0.json"]
    rules = "\n".join(nsnet_rules(node))
    assert "ctr-gc0" in rules and "ctr-gc1" not in rules and "ctr-gc2" not in rules
    for netns in spaces[1:]:
        assert "eth0" not in node.run("ip", "-o", "link", ns=netns)
    node.ok("CHECK", with_prev(conf, results[0]), "ctr-gc0", spaces[0])
    node.ok("GC", {**conf, "cni.dev/valid-attachments": []})
    assert reserved(node) == set() and records(node) == [] and nsnet_rules(node) == []


def test_concurrent_add_and_del_of_many_containers(node: Node) -> None:
    conf = netconf(node, ipMasq=True, runtimeConfig={"portMappings": [{"hostPort": 9000, "containerPort": 80}]})
    count = 10
    spaces = [node.container() for _ in range(count)]
    with ThreadPoolExecutor(count) as pool:
        calls = list(pool.map(lambda i: node.cni("ADD", conf, f"ctr-many{i}", spaces[i]), range(count)))
    assert all(c.code == 0 for c in calls), [c.out for c in calls if c.code]
    results = [c.json for c in calls]
    addresses = {address(r) for r in results}
    assert len(addresses) == count and reserved(node) == addresses
    rules = node.iptables()
    for i in range(count):
        assert rules.count(f'"nsnet-cni:net1:ctr-many{i}:eth0"') == 8  # 4 forward, masquerade, 2 DNAT, hairpin
    assert rules.count("-j NSNETCNI-FORWARD") == 1  # one jump, however many containers
    assert node.ping(spaces[0], address(results[-1]))
    with ThreadPoolExecutor(count) as pool:
        calls = list(
            pool.map(lambda i: node.cni("DEL", with_prev(conf, results[i]), f"ctr-many{i}", spaces[i]), range(count))
        )
    assert all(c.code == 0 and c.out == "" for c in calls), [c.out for c in calls if c.code]
    assert reserved(node) == set() and records(node) == [] and nsnet_rules(node) == []


def test_add_puts_back_a_jump_that_was_deleted(node: Node) -> None:
    """ADD appends its rules without reading the ruleset only when its chains and jumps are there."""
    conf = netconf(node, ipMasq=True)
    c1, c2 = node.container(), node.container()
    r1 = node.add(conf, "ctr-jump1", c1)
    node.run("iptables", "-D", "FORWARD", "-m", "comment", "--comment", "nsnet-cni", "-j", "NSNETCNI-FORWARD")
    r2 = node.add(conf, "ctr-jump2", c2)
    assert node.run("iptables", "-S", "FORWARD").count("-j NSNETCNI-FORWARD") == 1
    assert node.ping(c1, address(r2)) and node.ping(c2, address(r1))
    node.ok("CHECK", with_prev(conf, r1), "ctr-jump1", c1)
    # Every chain gone (a firewall reloaded from scratch): the next ADD makes them again.
    node.ok("DEL", with_prev(conf, r2), "ctr-jump2", c2)
    node.run("iptables", "-F", "FORWARD")
    node.run("iptables", "-t", "nat", "-F", "POSTROUTING")
    for table, chain in (("filter", "NSNETCNI-FORWARD"), ("nat", "NSNETCNI-POSTROUTING")):
        node.run("iptables", "-t", table, "-F", chain)
        node.run("iptables", "-t", table, "-X", chain)
    r2 = node.add(conf, "ctr-jump2", c2)
    node.ok("CHECK", with_prev(conf, r2), "ctr-jump2", c2)
    for cid, netns, r in (("ctr-jump1", c1, r1), ("ctr-jump2", c2, r2)):
        node.ok("DEL", with_prev(conf, r), cid, netns)
    assert nsnet_rules(node) == []


# -- published ports ------------------------------------------------------------------


def _outside(node: Node) -> str:
    """A namespace beyond the node's uplink (203.0.113.0/24, a documentation range)."""
    name = f"{node.base}-out"
    sh("ip", "netns", "add", name)
    node.run("ip", "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", name)
    node.run("ip", "addr", "add", "203.0.113.1/24", "dev", "up0")
    node.run("ip", "link", "set", "up0", "up")
    node.run("ip", "addr", "add", "203.0.113.2/24", "dev", "eth0", ns=name)
    node.run("ip", "link", "set", "eth0", "up", ns=name)
    node.run("ip", "link", "set", "lo", "up", ns=name)
    return name


def _fetched(call: subprocess.CompletedProcess[str]) -> str:
    assert call.returncode == 0, call.stderr
    return call.stdout.splitlines()[1]


def test_published_port_reached_from_outside_the_node_and_hairpin(node: Node) -> None:
    conf = netconf(
        node,
        ipMasq=True,
        hairpinMode=True,
        runtimeConfig={"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
    )
    outside = _outside(node)
    c1, c2 = node.container(), node.container()
    r1 = node.add(conf, "ctr-web", c1)
    r2 = node.add(conf, "ctr-client", c2)
    node.serve(c1, 80)
    assert _fetched(node.fetch("http://203.0.113.1:8080/", outside)).startswith("client 203.0.113.2:")
    assert _fetched(node.fetch("http://203.0.113.1:8080/")).startswith("client 203.0.113.1:")  # the node itself
    # Another container through the node's bridge address: answered through the node (hairpin).
    assert _fetched(node.fetch("http://10.22.0.1:8080/", c2)).startswith("client 10.22.0.1:")
    node.ok("CHECK", with_prev(conf, r1), "ctr-web", c1)
    node.ok("DEL", with_prev(conf, r1), "ctr-web", c1)
    node.ok("DEL", with_prev(conf, r2), "ctr-client", c2)
    assert node.fetch("http://203.0.113.1:8080/", outside).returncode != 0
    assert nsnet_rules(node) == []


def _chain(node: Node, conflist: dict[str, Any], command: str, cid: str, netns: str, **runtime: Any) -> Any:
    """What libcni does with a configuration list: each plugin in turn (DEL in reverse), prevResult passed on."""
    plugins = conflist["plugins"]
    order = list(reversed(plugins)) if command == "DEL" else plugins
    result = runtime.pop("prevResult", None)
    for plugin in order:
        conf = copy.deepcopy(plugin)
        conf.update(cniVersion=conflist["cniVersion"], name=conflist["name"])
        wanted = {k: v for k, v in runtime.items() if conf.get("capabilities", {}).get(k)}
        if wanted:
            conf["runtimeConfig"] = wanted
        if result is not None:
            conf["prevResult"] = result
        kind = conf["type"]
        path = PLUGIN if kind == "nsnet-cni" else REFERENCE / kind
        call = node.cni(command, conf, cid, netns, plugin=path)
        assert call.code == 0, f"{kind} {command}: {call.out} {call.err}"
        if command == "ADD":
            result = call.json
    return result


def test_conflist_chain_with_the_reference_portmap_plugin(node: Node) -> None:
    assert (REFERENCE / "portmap").exists(), "apt-get install containernetworking-plugins"
    conflist = {
        "cniVersion": "1.0.0",
        "name": "chained",
        "plugins": [
            {
                "type": "nsnet-cni",
                "bridge": "cni0",
                "isDefaultGateway": True,
                "ipMasq": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(node.ipam_dir),
                    "ranges": [[{"subnet": "10.22.0.0/24"}]],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }
    ports = [{"hostPort": 8081, "containerPort": 80, "protocol": "tcp"}]
    outside = _outside(node)
    c1 = node.container()
    result = _chain(node, conflist, "ADD", "ctr-portmap", c1, portMappings=ports)
    valid_result(result, "1.0.0")
    node.serve(c1, 80)
    assert "CNI-HOSTPORT-DNAT" in node.iptables()  # portmap's own rules, in the node
    assert _fetched(node.fetch("http://203.0.113.1:8081/", outside)).startswith("client 203.0.113.2:")
    # CHECK of nsnet-cni with the chain's final result (the reference portmap's own CHECK looks for
    # IPv6 rules it never made: containernetworking/plugins#819, fixed after Debian 12's 1.1.1).
    ours = {**conflist["plugins"][0], "cniVersion": "1.0.0", "name": "chained", "prevResult": result}
    node.ok("CHECK", ours, "ctr-portmap", c1)
    _chain(node, conflist, "DEL", "ctr-portmap", c1, portMappings=ports, prevResult=result)
    rules = node.iptables()
    assert "ctr-portmap" not in rules and address(result) not in rules and nsnet_rules(node) == []
    assert reserved(node, "chained") == set()


def _documented_conflists() -> list[dict[str, Any]]:
    """The configuration lists docs/cni.md shows (its ```json blocks with ``plugins``)."""
    text = (ROOT / "docs" / "cni.md").read_text()
    blocks = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]
    return [block for block in blocks if "plugins" in block]


def _run_conflist(tmp: Path, conflist: dict[str, Any], reference: bool) -> list[str]:
    """ADD then DEL of one container with ``conflist`` in a fresh node (the reference ``bridge`` in place of
    nsnet-cni if ``reference``); the errors of the calls that failed."""
    node = _make_node(tmp, "ACCEPT")
    try:
        conflist = copy.deepcopy(conflist)
        for plugin in conflist["plugins"]:
            if "ipam" in plugin:
                plugin["ipam"]["dataDir"] = str(node.ipam_dir)
            if reference and plugin["type"] == "nsnet-cni":
                plugin["type"] = "bridge"
        netns = node.container()
        ports = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
        failed, result = [], None
        for command in ("ADD", "DEL"):
            plugins = conflist["plugins"] if command == "ADD" else list(reversed(conflist["plugins"]))
            for plugin in plugins:
                conf = {**plugin, "cniVersion": conflist["cniVersion"], "name": conflist["name"]}
                if plugin.get("capabilities", {}).get("portMappings"):
                    conf["runtimeConfig"] = {"portMappings": ports}
                if result is not None:
                    conf["prevResult"] = result
                path = PLUGIN if conf["type"] == "nsnet-cni" else REFERENCE / conf["type"]
                call = node.cni(command, conf, "ctr-doc", netns, plugin=path)
                if call.code != 0:
                    failed.append(f"{conf['type']} {command}: {call.out.strip()}")
                elif command == "ADD":
                    result = call.json
        return failed
    finally:
        _destroy(node)


def test_the_documented_configurations_and_the_reference_bridge_plugin(tmp_path: Path) -> None:
    """Every configuration list docs/cni.md shows works with nsnet-cni and with the reference bridge plugin in
    its place, except the one shown as what only nsnet-cni accepts: an IPAM default route with
    isDefaultGateway, where the reference fails ADD ("file exists") and then its DEL."""
    conflists = _documented_conflists()
    beyond = [c for c in conflists if any("0.0.0.0/0" in json.dumps(p.get("ipam", {})) for p in c["plugins"])]
    both = [c for c in conflists if c not in beyond]
    assert len(both) >= 2 and len(beyond) == 1, conflists
    for i, conflist in enumerate(both + beyond):
        for reference in (False, True):
            where = tmp_path / f"{i}-{'reference' if reference else 'nsnet'}"
            where.mkdir()
            failed = _run_conflist(where, conflist, reference)
            if reference and conflist in beyond:
                assert failed and "file exists" in failed[0], failed
            else:
                assert failed == [], (conflist["name"], reference, failed)


def test_bandwidth_capability_shapes_both_ends(node: Node) -> None:
    bandwidth = {"ingressRate": 8_000_000, "ingressBurst": 800_000, "egressRate": 4_000_000, "egressBurst": 400_000}
    conf = netconf(node, runtimeConfig={"bandwidth": bandwidth})
    c1 = node.container()
    result = node.add(conf, "ctr-bw", c1)
    host = result["interfaces"][1]["name"]
    assert "tbf" in node.run("tc", "qdisc", "show", "dev", host) and "rate 8Mbit" in node.run(
        "tc", "qdisc", "show", "dev", host
    )
    assert "rate 4Mbit" in node.run("tc", "qdisc", "show", "dev", "eth0", ns=c1)
    node.ok("DEL", with_prev(conf, result), "ctr-bw", c1)


# -- the same network as the reference bridge plugin --------------------------------------


def _links(node: Node, ns: str | None = None) -> dict[str, dict[str, Any]]:
    return {link["ifname"]: link for link in json.loads(node.run("ip", "-j", "-d", "link", "show", ns=ns))}


def _addresses(node: Node, ifname: str, ns: str | None = None) -> list[tuple[Any, ...]]:
    shown = json.loads(node.run("ip", "-j", "addr", "show", "dev", ifname, ns=ns))[0]["addr_info"]
    return sorted(
        (a["family"], a["local"], a["prefixlen"], a.get("broadcast"), a["scope"])
        for a in shown
        if a.get("scope") != "link"
    )


def _routes(node: Node, ns: str | None = None) -> list[tuple[Any, ...]]:
    shown = json.loads(node.run("ip", "-j", "route", "show", "table", "main", ns=ns))
    return sorted(
        (r["dst"], r.get("gateway"), r.get("dev"), r.get("protocol"), r.get("scope"), r.get("prefsrc")) for r in shown
    )


def _shape(result: dict[str, Any]) -> dict[str, Any]:
    """A result without what is random (host veth name, MACs)."""
    out = copy.deepcopy(result)
    for i, iface in enumerate(out["interfaces"]):
        iface.pop("mac", None)
        if i == 1:
            iface["name"] = "veth*"
    return out


def _seen(node: Node, netns: str, host: str) -> dict[str, Any]:
    links = _links(node)
    inside = _links(node, netns)["eth0"]
    port = links[host]
    return {
        "container addresses": _addresses(node, "eth0", netns),
        "container routes": _routes(node, netns),
        "container link": (inside["mtu"], inside["operstate"], inside["linkinfo"]["info_kind"]),
        "container lo": _links(node, netns)["lo"]["operstate"],
        "bridge addresses": _addresses(node, "cni0"),
        "bridge": (
            links["cni0"]["mtu"],
            links["cni0"]["linkinfo"]["info_kind"],
            links["cni0"]["operstate"],
            links["cni0"]["promiscuity"],
        ),
        "port": (
            port["master"],
            port["mtu"],
            port["operstate"],
            port["linkinfo"]["info_slave_data"]["hairpin"],
        ),
        "node routes": _routes(node),
        "ip_forward": node.run("sysctl", "-n", "net.ipv4.ip_forward").strip(),
    }


@pytest.mark.parametrize(
    "options",
    [{"hairpinMode": True}, {"promiscMode": True}],  # the reference refuses the two together
    ids=["hairpin", "promisc"],
)
def test_same_interfaces_addresses_and_routes_as_the_reference_bridge_plugin(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    nodes = [_make_node(ours, "ACCEPT"), _make_node(theirs, "ACCEPT")]
    try:
        seen = []
        for node, plugin in zip(nodes, (PLUGIN, REFERENCE / "bridge"), strict=True):
            conf = netconf(node, version="1.0.0", ipMasq=True, mtu=1400, **options)
            conf["type"] = plugin.name
            netns = node.container()
            call = node.cni("ADD", conf, "ctr-same", netns, plugin=plugin)
            assert call.code == 0, call.out + call.err
            valid_result(call.json, "1.0.0")
            seen.append((_shape(call.json), _seen(node, netns, call.json["interfaces"][1]["name"])))
            node.ok("DEL", with_prev(conf, call.json), "ctr-same", netns, plugin=plugin)
        (our_result, our_kernel), (their_result, their_kernel) = seen
        for key in their_kernel:
            assert our_kernel[key] == their_kernel[key], key
        their_result["interfaces"][2]["sandbox"] = our_result["interfaces"][2]["sandbox"]
        assert our_result == their_result
    finally:
        for node in nodes:
            _destroy(node)


def test_dual_stack_attachment(node: Node) -> None:
    node.run("sysctl", "-q", "-w", "net.bridge.bridge-nf-call-ip6tables=1")
    node.run("ip6tables", "-P", "FORWARD", "DROP")
    conf = netconf(node, ipMasq=True, runtimeConfig={"portMappings": [{"hostPort": 8082, "containerPort": 80}]})
    conf["ipam"]["ranges"] = [[{"subnet": "10.22.0.0/24"}], [{"subnet": "fd00:22::/64"}]]
    c1, c2 = node.container(), node.container()
    r1 = node.add(conf, "ctr-six1", c1)
    r2 = node.add(conf, "ctr-six2", c2)
    valid_result(r1)
    assert [ip["address"] for ip in r1["ips"]] == ["10.22.0.2/24", "fd00:22::2/64"]
    assert {"dst": "::/0", "gw": "fd00:22::1"} in r1["routes"]
    six = str(ipaddress.ip_interface(r2["ips"][1]["address"]).ip)
    assert node.ping(c1, six) and node.ping(c1, address(r2))
    assert '"nsnet-cni:net1:ctr-six1:eth0"' in node.run("ip6tables-save")
    node.ok("CHECK", with_prev(conf, r1), "ctr-six1", c1)
    node.ok("DEL", with_prev(conf, r1), "ctr-six1", c1)
    node.ok("DEL", with_prev(conf, r2), "ctr-six2", c2)
    assert "nsnet-cni" not in node.run("ip6tables-save") and nsnet_rules(node) == []
    assert reserved(node) == set()
