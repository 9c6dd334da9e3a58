"""Link shaping: a rate limit with tbf; delay and loss refused clearly where the kernel has no netem."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from nsnet.kernel.tc import netem_available

from conftest import netns_list, nsnet, sh

TOPOLOGY = """
name: shape
nodes:
  A:
    interfaces:
      a0: {addresses: [10.7.0.1/24]SHAPE}
  B:
    interfaces:
      b0: {addresses: [10.7.0.2/24]}
links:
  - [A:a0, B:b0]
"""
SERVER = (
    "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
    "s.bind(('10.7.0.2',5001))\ns.listen()\nprint('ready',flush=True)\nc,_=s.accept()\nn=0\n"
    "while True:\n    d=c.recv(65536)\n    if not d: break\n    n+=len(d)\nprint(n,flush=True)"
)
CLIENT = "import socket\nc=socket.create_connection(('10.7.0.2',5001))\nc.sendall(b'x'*1_000_000)\nc.close()"


def up(tmp_path: Path, lab: str, shape: str) -> None:
    path = tmp_path / "shape.yaml"
    path.write_text(TOPOLOGY.replace("SHAPE", shape))
    result = nsnet("up", str(path), "--name", lab)
    assert result.code == 0, result.text


def qdisc(lab: str) -> dict[str, object]:
    shown: list[dict[str, object]] = json.loads(sh("tc", "-n", f"{lab}-A", "-j", "qdisc", "show", "dev", "a0"))
    return shown[0]


def transfer(lab: str) -> float:
    """Seconds to send 1 MB from A to B over TCP."""
    server = subprocess.Popen(
        ["ip", "netns", "exec", f"{lab}-B", sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        start = time.monotonic()
        subprocess.run(["ip", "netns", "exec", f"{lab}-A", sys.executable, "-c", CLIENT], check=True, timeout=60)
        received = server.stdout.readline().strip()
        took = time.monotonic() - start
        assert received == "1000000"
        return took
    finally:
        server.kill()
        server.wait()


def test_rate_limit_shapes_the_link_and_comes_off_again(lab_name: str, tmp_path: Path) -> None:
    up(tmp_path, lab_name, ", rate: 4mbit")
    shaped = qdisc(lab_name)
    assert shaped["kind"] == "tbf"
    # 1 MB at 4 Mbit/s is 2 s at least; unshaped, the same transfer takes a few milliseconds.
    assert transfer(lab_name) >= 1.6
    assert "nothing to do" in nsnet("plan", str(tmp_path / "shape.yaml"), "--name", lab_name).out

    up(tmp_path, lab_name, "")
    assert qdisc(lab_name)["kind"] != "tbf"
    assert transfer(lab_name) < 1.6


def test_delay_and_loss_need_netem(lab_name: str, tmp_path: Path) -> None:
    path = tmp_path / "shape.yaml"
    path.write_text(TOPOLOGY.replace("SHAPE", ", delay: 20ms, loss: 1"))
    result = nsnet("up", str(path), "--name", lab_name)
    if netem_available():
        assert result.code == 0, result.text
        assert qdisc(lab_name)["kind"] == "netem"
    else:
        assert result.code == 6
        assert "delay and loss need the netem queueing discipline, which this kernel does not have" in result.err
        assert not [ns for ns in netns_list() if ns.startswith(f"{lab_name}-")]


def test_bad_shaping_values_are_refused() -> None:
    from nsnet import TopologyError, loads

    for shape, message in (
        (", rate: fast", "'fast' is not a rate: write it like 10mbit, 500kbit or 1gbit"),
        (", delay: soon", "'soon' is not a delay: write it like 20ms or 500us"),
        (", loss: 120", "Input should be less than or equal to 100"),
    ):
        try:
            loads(TOPOLOGY.replace("SHAPE", shape))
        except TopologyError as exc:
            assert message in str(exc), str(exc)
        else:
            raise AssertionError(f"{shape} was accepted")
