"""Published ports as Docker writes them: bound to a host address, ranges, UDP, IPv6, 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import nsnet, sh

TOPOLOGY = """
name: pub
host:
  bridges:
    br0: {addresses: [11.11.11.1/24, "fd11::1/64"], masquerade: true, forward: true}
  interfaces:
    reth1: {master: br0}
    beth1: {master: br0}
  publish:
    - 203.0.113.1:8081:RED:80
    - 8000-8001:RED:9000-9001
    - 5353:RED:53/udp
    - 127.0.0.1:8082:RED:80
    - "[fd11::1]:8083:RED:80"
nodes:
  RED:
    interfaces:
      reth0: {addresses: [11.11.11.2/24, "fd11::2/64"], gateway: true}
  BLUE:
    interfaces:
      beth0: {addresses: [11.11.11.3/24, "fd11::3/64"], gateway: true}
links:
  - [RED:reth0, host:reth1]
  - [BLUE:beth0, host:beth1]
outside:
  serve: null
"""
# Listens on TCP ports 80, 9000, 9001 (both families) and UDP 53: each answers with its own port.
SERVER = """
import socket, sys, threading
def tcp(port):
    s = socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True)
    while True:
        c, _ = s.accept(); c.sendall(b"tcp %d" % port); c.close()
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 53))
    while True:
        data, peer = s.recvfrom(100); s.sendto(b"udp 53 " + data, peer)
for p in (80, 9000, 9001):
    threading.Thread(target=tcp, args=(p,), daemon=True).start()
threading.Thread(target=udp, daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""
CLIENT = """
import socket, sys
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM)
s.settimeout(3)
s.connect((host, port))
if proto == "udp":
    s.send(b"ping")
print(s.recv(100).decode())
"""


def ask(ns: str, proto: str, host: str, port: int) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, proto, host, str(port)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else f"failed: {done.stderr.strip().splitlines()[-1:]}"


@pytest.fixture
def lab(lab_name: str) -> Iterator[str]:
    path = Path(f"/tmp/{lab_name}.yaml")
    path.write_text(TOPOLOGY)
    result = nsnet("up", str(path), "--name", lab_name)
    assert result.code == 0, result.text
    server = subprocess.Popen(
        ["ip", "netns", "exec", f"{lab_name}-RED", sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    yield lab_name
    server.kill()
    server.wait()
    path.unlink()


def test_a_port_bound_to_one_host_address_is_reached_there_only(lab: str) -> None:
    assert ask(f"{lab}-outside", "tcp", "203.0.113.1", 8081) == "tcp 80"
    assert ask(f"{lab}-BLUE", "tcp", "11.11.11.1", 8081).startswith("failed")  # another host address
    rules = sh("ip", "netns", "exec", f"{lab}-host", "iptables-save", "-t", "nat")
    dnat = "-A NSNET-PREROUTING -d 203.0.113.1/32 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 11.11.11.2:80"
    assert dnat in rules


def test_a_range_of_ports_and_udp(lab: str) -> None:
    assert ask(f"{lab}-outside", "tcp", "203.0.113.1", 8000) == "tcp 9000"
    assert ask(f"{lab}-outside", "tcp", "203.0.113.1", 8001) == "tcp 9001"
    assert ask(f"{lab}-outside", "udp", "203.0.113.1", 5353) == "udp 53 ping"
    rules = sh("ip", "netns", "exec", f"{lab}-host", "iptables-save", "-t", "nat")
    assert "--dport 8000:8001 -j DNAT --to-destination 11.11.11.2:9000-9001/8000" in rules
    again = nsnet("up", str(Path(f"/tmp/{lab}.yaml")), "--name", lab)  # the same: nothing to change
    assert again.code == 0 and "iptables" not in again.text and "+ " not in again.out, again.text


def test_127_0_0_1_from_the_host_and_ipv6(lab: str) -> None:
    assert ask(f"{lab}-host", "tcp", "127.0.0.1", 8082) == "tcp 80"
    assert ask(f"{lab}-outside", "tcp", "203.0.113.1", 8082).startswith("failed")
    assert ask(f"{lab}-host", "tcp", "fd11::1", 8083) == "tcp 80"
    assert ask(f"{lab}-BLUE", "tcp", "fd11::1", 8083) == "tcp 80"  # hairpin, through ip6tables
    rules = sh("ip", "netns", "exec", f"{lab}-host", "ip6tables-save", "-t", "nat")
    assert "-d fd11::1/128 -p tcp -m tcp --dport 8083 -j DNAT --to-destination [fd11::2]:80" in rules


@pytest.mark.unit
@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("8000-8010:RED:80", "ranges of different lengths"),
        ("8010-8000:RED:8010-8000", "is not a port or a range of ports"),
        ("192.0.2.9:8080:RED:80", "192.0.2.9 is not an address of the host"),
        ("[::1]:8080:RED:80", "does not forward from ::1"),
        ("8001:RED:80", "host port 8001/tcp is published twice"),
        ("1.2.3:80:RED:80", "'1.2.3' is not an IP address"),
        ("80:RED", "is not a published port"),
    ],
)
def test_publish_forms_are_checked(entry: str, message: str) -> None:
    from nsnet.errors import TopologyError
    from nsnet.topology.loader import loads

    with pytest.raises(TopologyError, match=message):
        loads(TOPOLOGY.replace("    - 5353:RED:53/udp", f"    - 5353:RED:53/udp\n    - {entry!r}"), "pub.yaml")
