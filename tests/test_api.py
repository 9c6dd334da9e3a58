"""The Python API on real namespaces: Lab, Node, commands, Python code and sockets in nodes, and the rest."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import nsnet
from nsnet.kernel import netexec
from nsnet.lab import Lab

from conftest import EXAMPLES, ROOT, netns_list, unique_name

BROKEN = EXAMPLES / "lab2-bridge.yaml"  # FORWARD policy DROP: RED and BLUE do not reach each other
FIXED = EXAMPLES / "lab2-bridge-fixed.yaml"


def spaces(name: str) -> set[str]:
    return {ns for ns in netns_list() if ns.startswith(f"{name}-")}


def alive_in_group(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that still run (zombies aside)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, _, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            found.append(int(entry))
    return found


def _read(path: Path) -> str:
    try:
        return path.read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_public_names_are_exact_and_typed() -> None:
    assert nsnet.__all__ == sorted(nsnet.__all__)
    assert len(set(nsnet.__all__)) == len(nsnet.__all__)
    assert all(hasattr(nsnet, name) for name in nsnet.__all__)
    public = {n for n in vars(nsnet) if not n.startswith("_") and not isinstance(getattr(nsnet, n), type(os))}
    assert public - {"annotations"} == set(nsnet.__all__) - {"__version__"}
    assert (ROOT / "src" / "nsnet" / "py.typed").exists()
    errors = [getattr(nsnet, n) for n in nsnet.__all__ if n.endswith("Error") and n != "NsnetError"]
    assert errors and all(issubclass(e, nsnet.NsnetError) for e in errors)


def test_with_block_brings_the_lab_up_and_always_down(lab_name: str) -> None:
    with Lab(FIXED, name=lab_name) as lab:
        assert lab.is_up
        assert lab.namespaces == {"RED": f"{lab_name}-RED", "BLUE": f"{lab_name}-BLUE", "host": f"{lab_name}-host"}
        assert spaces(lab_name) == set(lab.namespaces.values())
        assert [info.name for info in nsnet.labs() if info.name == lab_name] == [lab_name]
    assert not lab.is_up
    assert not spaces(lab_name)
    assert not lab.down()  # again: nothing to do

    with pytest.raises(RuntimeError, match="boom"), Lab(FIXED, name=lab_name):
        assert spaces(lab_name)
        raise RuntimeError("boom")
    assert not spaces(lab_name)


def test_ctrl_c_in_the_block_and_during_teardown_still_brings_everything_down(lab_name: str, tmp_path: Path) -> None:
    script = tmp_path / "interrupted.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, signal, sys
            from nsnet.lab import Lab

            class SlowLab(Lab):
                def down(self):
                    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while tearing down: held until done
                    print("teardown goes on", flush=True)
                    return super().down()

            with SlowLab({str(FIXED)!r}, name={lab_name!r}) as lab:
                print("up", flush=True)
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the block
                print("not reached", flush=True)
            """
        )
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == -signal.SIGINT, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == ["up", "teardown goes on"]
    assert "KeyboardInterrupt" in proc.stderr
    assert not spaces(lab_name)
    assert not Path(f"/run/nsnet/labs/{lab_name}.json").exists()


def test_a_lab_that_is_already_up_is_not_taken_over(lab_name: str) -> None:
    with Lab(FIXED, name=lab_name):
        with pytest.raises(nsnet.ConflictError, match="already up"), Lab(FIXED, name=lab_name):
            pass
        assert spaces(lab_name) == {f"{lab_name}-RED", f"{lab_name}-BLUE", f"{lab_name}-host"}
    assert not spaces(lab_name)


def test_run_commands_in_nodes(lab_name: str) -> None:
    with Lab(FIXED, name=lab_name) as lab:
        red = lab.node("RED")
        assert red.netns == f"{lab_name}-RED"
        done = red.run(["ip", "-o", "-4", "addr", "show", "reth0"])
        assert done.ok and done.returncode == 0 and "11.11.11.2/24" in done.stdout
        assert red.run("echo $((6 * 7)) >&2; exit 3").returncode == 3
        assert red.run("cat", input="in").stdout == "in"
        assert "br0" in lab.node("host").run(["ip", "-br", "link"]).stdout

        with pytest.raises(nsnet.CommandError) as failed:
            red.run(["ip", "link", "show", "nosuchdev"], check=True)
        assert failed.value.returncode != 0
        assert "nosuchdev" in failed.value.stderr and "nosuchdev" in str(failed.value)
        assert "[RED] ip link show nosuchdev" in str(failed.value)

        with pytest.raises(nsnet.CommandError, match=r"timed out after 0\.5 s") as slow:
            red.run(["sleep", "30"], timeout=0.5)
        assert slow.value.returncode is None
        marker = f"{os.getpid() % 1000}.{os.getpid() // 1000}"  # a sleep this test alone runs
        with pytest.raises(nsnet.CommandError, match="timed out") as slow:
            red.run(f"echo started; sleep {marker} & sleep {marker}; wait", timeout=0.5)
        assert slow.value.stdout == "started\n"
        assert not [p for p in Path("/proc").glob("[0-9]*/cmdline") if marker in _read(p)], "all of it was killed"
        with pytest.raises(nsnet.CommandError, match="command not found"):
            red.run(["no-such-command-here"])
        with pytest.raises(nsnet.LabNotFoundError, match="no node 'GREEN'"):
            lab.node("GREEN")


def test_popen_servers_are_stopped_when_the_lab_goes_down(lab_name: str) -> None:
    with Lab(FIXED, name=lab_name) as lab:
        server = lab.node("BLUE").popen("sleep 300 & sleep 300; wait")
        assert server.poll() is None
        pid = server.pid
    assert server.poll() is not None
    assert not alive_in_group(pid), "the whole process group is stopped"


def test_python_functions_run_in_a_node(lab_name: str) -> None:
    with Lab(FIXED, name=lab_name) as lab:
        red = lab.node("RED")
        assert [name for _, name in red.call(socket.if_nameindex)] == ["lo", "reth0"]
        outer = 20
        assert red.call(lambda: outer + 22) == 42  # closures: the function is never pickled

        with pytest.raises(nsnet.ChildError) as raised:
            red.call(lambda: int("not a number"))
        assert isinstance(raised.value.exception, ValueError)
        assert isinstance(raised.value.__cause__, ValueError)
        assert "Traceback (most recent call last)" in raised.value.traceback
        assert "in node RED raised ValueError" in str(raised.value)

        with pytest.raises(nsnet.ChildError, match=r"did not finish within 0\.5 s"):
            red.call(lambda: __import__("time").sleep(30), timeout=0.5)
        with pytest.raises(nsnet.ChildError, match="cannot pickle"):
            red.call(lambda: socket.socket())
        with pytest.raises(nsnet.ChildError, match="ended without a result"):
            red.call(lambda: os._exit(5))


def test_sockets_opened_in_nodes_and_a_python_server_in_a_child(lab_name: str) -> None:
    with Lab(FIXED, name=lab_name) as lab:
        with lab.node("BLUE").socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
            server.bind(("11.11.11.3", 9000))

            def echo_once() -> bytes:
                data, peer = server.recvfrom(100)
                server.sendto(data.upper(), peer)
                return data

            child = lab.node("BLUE").spawn(echo_once)
            with lab.node("RED").socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.settimeout(5)
                client.sendto(b"hello", ("11.11.11.3", 9000))
                assert client.recvfrom(100)[0] == b"HELLO"
            assert child.result(timeout=5) == b"hello"

        # The test process itself is not in RED: the same socket call there fails.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as here, pytest.raises(OSError):
            here.bind(("11.11.11.2", 9001))

        forever = lab.node("RED").spawn(lambda: __import__("time").sleep(300))
        assert forever.running
    assert not forever.running  # killed when the lab went down


def test_ping_reach_and_applying_a_change_to_a_running_lab(lab_name: str) -> None:
    with Lab(BROKEN, name=lab_name) as lab:
        assert not lab.ping("RED", "BLUE")
        steps = lab.up(FIXED)
        assert steps.lines() == [f"iptables in {lab_name}-host: + FORWARD -s 11.11.11.0/24 -j ACCEPT"]
        assert not lab.plan()
        assert lab.ping("RED", "BLUE") and lab.ping("BLUE", "11.11.11.2")
        results = lab.reach()
        assert {(r.src, r.dst, r.ok) for r in results} == {("RED", "BLUE", True), ("BLUE", "RED", True)}
        assert [r.detail for r in lab.reach(["RED"], ["BLUE"], "tcp:81")] == ["refused (RST)"]
        with pytest.raises(nsnet.NsnetError, match="not a protocol"):
            lab.reach(proto="tcp")


def test_expectations_of_a_topology_built_in_code(lab_name: str) -> None:
    data = {
        "name": "pair",
        "nodes": {
            "A": {"interfaces": {"a0": {"addresses": ["10.9.0.1/24"]}}},
            "B": {"interfaces": {"b0": {"addresses": ["10.9.0.2/24"]}}},
        },
        "links": [["A:a0", "B:b0"]],
        "expect": [{"from": "A", "to": "B"}, {"from": "B", "to": "A", "proto": "tcp:80", "reach": False}],
    }
    with Lab(nsnet.from_dict(data), name=lab_name) as lab:
        results = lab.expectations()
        assert [(r.src, r.dst, r.proto, r.ok, r.matches) for r in results] == [
            ("A", "B", "icmp", True, True),
            ("B", "A", "tcp:80", False, True),
        ]
        assert lab.node("B").addresses == ["10.9.0.2"]


def test_inspect_and_explain(lab_name: str) -> None:
    with Lab(BROKEN, name=lab_name) as lab:
        view = lab.inspect()
        assert [v.node for v in view.namespaces] == ["RED", "BLUE", "host"]
        host = lab.inspect(["host"], ["fw"]).namespaces[0]
        assert host.links is None and host.firewall
        policies = {c.name: c.policy for t in host.firewall if t.table == "filter" for c in t.chains}
        assert policies["FORWARD"] == "DROP"

        why = lab.explain("RED", "BLUE")
        assert not why.reachable
        assert "FORWARD" in why.verdict and "DROP" in why.verdict
        assert why.fix is not None and why.fix.command
        with pytest.raises(nsnet.NsnetError, match="no node 'GREEN'"):
            lab.explain("GREEN", "BLUE")
        with pytest.raises(nsnet.LabNotFoundError):
            lab.inspect(["GREEN"])


def test_capture_yields_decoded_packets(lab_name: str) -> None:
    with Lab(FIXED, name=lab_name) as lab:
        with lab.capture(["RED:reth0", "host:br0", "BLUE:beth0"], "icmp") as seen:
            assert lab.ping("RED", "BLUE")
            assert len(seen.wait(count=6, timeout=5)) >= 6
        kinds = [(p.point, p.direction, p.kind) for p in seen.packets]
        assert kinds[:3] == [
            ("RED:reth0", "out", "ICMP echo request"),
            ("host:br0", "in", "ICMP echo request"),
            ("BLUE:beth0", "in", "ICMP echo request"),
        ]
        assert ("RED:reth0", "in", "ICMP echo reply") in kinds
        assert all("11.11.11" in p.text and p.data for p in seen.packets)
        assert lab.captured == seen.packets

        with lab.capture(["BLUE"], "udp") as quiet:
            pass
        assert quiet.packets == [] and quiet.points == ["BLUE:beth0"]
        with pytest.raises(nsnet.LabNotFoundError), lab.capture(["RED:nosuch"]):
            pass


def test_netexec_needs_an_existing_namespace() -> None:
    with pytest.raises(nsnet.NsnetError, match="does not exist"):
        netexec.call("nsnet-no-such-namespace", lambda: 1)


GUIDE = ROOT / "docs" / "python.md"


def test_python_guide_examples_run(new_lab_name: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"^```python\n(.*?)^```$", GUIDE.read_text(), re.S | re.M)
    assert len(blocks) >= 3
    monkeypatch.chdir(ROOT)
    scope: dict[str, object] = {}
    for block in blocks:
        for name in re.findall(r'name="(\w+)"', block):
            new_lab_name.append(unique_name())
            block = block.replace(f'name="{name}"', f'name="{new_lab_name[-1]}"')
        exec(compile(block, str(GUIDE), "exec"), scope)
    assert new_lab_name and not any(spaces(name) for name in new_lab_name)


def test_the_guide_shows_the_real_exception_tree() -> None:
    tree = re.search(r"^```text\nNsnetError .*?^```$", GUIDE.read_text(), re.S | re.M)
    assert tree
    documented = set(re.findall(r"[├└]── (\w+)", tree.group(0)))
    exported = {
        name
        for name in nsnet.__all__
        if isinstance(getattr(nsnet, name), type) and issubclass(getattr(nsnet, name), nsnet.NsnetError)
    }
    assert documented == exported - {"NsnetError"}
    assert all(getattr(nsnet, name).__bases__ == (nsnet.NsnetError,) for name in documented)


@pytest.mark.parametrize("cls", [nsnet.Lab, nsnet.Node, nsnet.Capture, nsnet.Child, nsnet.Completed, nsnet.Packet])
def test_every_public_member_has_a_docstring_and_is_in_the_guide(cls: type) -> None:
    guide = GUIDE.read_text()
    assert cls.__doc__ and f"`{cls.__name__}`" in guide
    for name, member in vars(cls).items():
        if name.startswith("_") or (not callable(member) and not isinstance(member, property)):
            continue
        assert getattr(member, "__doc__", None), f"{cls.__name__}.{name} has no docstring"
        assert re.search(rf"[`.]{name}\b", guide), f"{cls.__name__}.{name} is not in docs/python.md"
