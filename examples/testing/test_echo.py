"""Testing the echo service with nsnet's pytest plugin: each test gets its own lab, torn down after it.

Run as root: ``python3 -m pytest examples/testing -n 2``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import echo
import pytest

import nsnet
from nsnet.pytest_plugin import LabFactory

HERE = Path(__file__).resolve().parent
ECHO = [sys.executable, str(HERE / "echo.py")]
SERVER = "10.7.0.3"


@pytest.fixture
def server(lab: nsnet.Lab) -> Iterator[subprocess.Popen[str]]:
    """The echo server, started in node ``server``; the lab stops it when it goes down."""
    proc = lab.node("server").popen([*ECHO, "serve"])
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("listening"), "the echo server did not start"
    yield proc


@pytest.mark.nsnet_topology("echo-lab.yaml")
def test_echo_works_across_the_bridge(lab: nsnet.Lab, server: subprocess.Popen[str]) -> None:
    result = lab.node("client").run([*ECHO, "send", SERVER, "hello"], check=True)
    assert result.stdout == "hello\n"


@pytest.mark.nsnet_topology("echo-lab.yaml")
def test_echo_from_a_python_socket_in_the_client(lab: nsnet.Lab, server: subprocess.Popen[str]) -> None:
    with lab.node("client").socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(b"ping", (SERVER, echo.PORT))
        assert sock.recvfrom(100)[0] == b"ping"


@pytest.mark.nsnet_topology("echo-lab.yaml")
def test_echo_client_function_run_in_the_client(lab: nsnet.Lab, server: subprocess.Popen[str]) -> None:
    assert lab.node("client").call(lambda: echo.request(SERVER, b"from a child")) == b"from a child"


@pytest.mark.nsnet_topology("echo-lab.yaml")
def test_python_server_in_a_node(lab: nsnet.Lab) -> None:
    """The server side in Python too: a socket bound in node ``server``, served by a child there."""
    with lab.node("server").socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 7100))
        child = lab.node("server").spawn(lambda: echo.serve(sock))
    result = lab.node("client").run([*ECHO, "send", SERVER, "quit", "--port", "7100"], check=True)
    assert result.stdout == "quit\n"
    child.result(timeout=5)


@pytest.mark.nsnet_topology("echo-lab.yaml")
def test_firewall_blocks_it_and_explain_says_why(lab: nsnet.Lab, server: subprocess.Popen[str]) -> None:
    lab.up(HERE / "echo-lab-blocked.yaml")  # apply the change to the running lab

    with lab.capture(["client:eth0", "server:eth0"], f"udp port {echo.PORT}") as seen:
        result = lab.node("client").run([*ECHO, "send", SERVER, "hello", "--timeout", "1"])
    assert result.returncode == 1
    assert "no reply" in result.stderr
    assert [p.point for p in seen.packets] == ["client:eth0"], "the request leaves the client, never reaches server"

    why = lab.explain("client", "server", f"udp:{echo.PORT}")
    assert not why.reachable
    assert "dport 7007 -j DROP" in why.verdict
    assert why.fix is not None and why.fix.topology == "remove that rule from host.firewall.rules"


def test_a_topology_built_in_code(nsnet_lab: LabFactory) -> None:
    """No file: two nodes on one veth pair, built in code, brought up by the factory fixture."""
    topology = nsnet.from_dict(
        {
            "name": "pair",
            "nodes": {
                "client": {"interfaces": {"eth0": {"addresses": ["10.8.0.2/24"]}}},
                "server": {"interfaces": {"eth0": {"addresses": ["10.8.0.3/24"]}}},
            },
            "links": [["client:eth0", "server:eth0"]],
        }
    )
    lab = nsnet_lab(topology)
    proc = lab.node("server").popen([*ECHO, "serve"])
    assert proc.stdout is not None and proc.stdout.readline().startswith("listening")
    assert lab.node("client").run([*ECHO, "send", "10.8.0.3", "direct"], check=True).stdout == "direct\n"


def _timed_requests(count: int, size: int) -> float:
    """Send ``count`` requests of ``size`` bytes one after the other; the seconds they took."""
    start = time.monotonic()
    for _ in range(count):
        assert echo.request(SERVER, b"x" * size, timeout=2) == b"x" * size
    return time.monotonic() - start


@pytest.mark.nsnet_topology("echo-lab-slow.yaml")
def test_echo_under_a_rate_limit(lab: nsnet.Lab, server: subprocess.Popen[str]) -> None:
    """At 1 Mbit/s, 50 requests of 1,000 bytes (53 kB on the wire, less the 4 kB burst) take at least 0.3 s."""
    assert "tbf" in lab.node("client").run(["tc", "qdisc", "show", "dev", "eth0"], check=True).stdout
    assert lab.node("client").call(lambda: _timed_requests(50, 1000)) >= 0.3
    lab.up(HERE / "echo-lab.yaml")  # the limit comes off with the change
    assert "tbf" not in lab.node("client").run(["tc", "qdisc", "show", "dev", "eth0"], check=True).stdout
    assert lab.node("client").call(lambda: _timed_requests(50, 1000)) < 0.3
