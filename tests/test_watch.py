"""`nsnet watch`: live netlink events of a lab's namespaces, on the real kernel.

The watcher runs as a child process (or through the library API), real
packets cross lab 2 fixed, and the tests assert on the events the kernel
sent: RED's and BLUE's ARP caches filling in, the host's bridge learning
both MACs (and forgetting them again), links going down and up, addresses
added. Every wait has a deadline, so nothing can hang.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from nsnet.errors import LabNotFoundError
from nsnet.watch import Event, watch

from conftest import EXAMPLES, nsnet, sh

LAB2_FIXED = EXAMPLES / "lab2-bridge-fixed.yaml"
READY_WITHIN = 30.0


def up(path: Path | str, name: str) -> None:
    result = nsnet("up", str(path), "--name", name)
    assert result.code == 0, result.text


def mac(ns: str, dev: str) -> str:
    data: list[dict[str, Any]] = json.loads(sh("ip", "-n", ns, "-j", "link", "show", "dev", dev))
    return str(data[0]["address"])


def ping(ns: str, address: str, count: int = 2) -> None:
    sh("ip", "netns", "exec", ns, "ping", "-c", str(count), "-W", "1", "-i", "0.2", address)


class Watch:
    """`nsnet watch ...` as a child process, ready (its heading printed) once built."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nsnet", "watch", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.heading = self._ready_line()

    def _ready_line(self) -> str:
        """Read stderr up to the ready line, byte by byte (so that nothing after it is buffered away)."""
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        deadline = time.monotonic() + READY_WITHIN
        line = b""
        while time.monotonic() < deadline:
            readable, _, _ = select.select([fd], [], [], deadline - time.monotonic())
            if not readable:
                break
            byte = os.read(fd, 1)
            if not byte:  # exited before it was ready
                code, out, err = self.finish(10)
                pytest.fail(f"nsnet watch exited with {code} before it was ready:\n{out}{line.decode()}{err}")
            line += byte
            if byte == b"\n":
                if line.startswith(b"watching lab "):
                    return line.decode()
                line = b""
        self.proc.kill()
        self.proc.communicate()
        pytest.fail(f"nsnet watch printed no ready line within {READY_WITHIN} s")

    def finish(self, timeout: float = 30, interrupt: bool = False) -> tuple[int, str, str]:
        """Wait for the watcher to stop (after SIGINT, with ``interrupt``): exit code, stdout, stderr."""
        if interrupt:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            pytest.fail(f"nsnet watch did not stop within {timeout} s:\n{out.decode()}{err.decode()}")
        return self.proc.returncode, out.decode(), err.decode()

    def events(self, timeout: float = 30) -> tuple[list[dict[str, Any]], str]:
        code, out, err = self.finish(timeout)
        assert code == 0, out + err
        return [json.loads(line) for line in out.splitlines()], err


def found(events: list[dict[str, Any]], **expected: Any) -> list[dict[str, Any]]:
    return [e for e in events if all(e.get(k) == v for k, v in expected.items())]


def test_ping_shows_arp_caches_filling_and_the_bridge_learning(lab_name: str) -> None:
    up(LAB2_FIXED, lab_name)
    red, blue, host = (f"{lab_name}-{n}" for n in ("RED", "BLUE", "host"))
    red_mac, blue_mac = mac(red, "reth0"), mac(blue, "beth0")

    watcher = Watch(lab_name, "--json", "--timeout", "8")
    assert f"RED ({red})" in watcher.heading and f"host ({host})" in watcher.heading
    ping(red, "11.11.11.3")
    events, err = watcher.events()

    # Every line is one object of the documented schema.
    assert events and all(list(e)[:6] == ["schema", "time", "namespace", "node", "kind", "action"] for e in events)
    assert {e["schema"] for e in events} == {"nsnet/watch-event/1"}
    assert {(e["node"], e["namespace"]) for e in events} <= {("RED", red), ("BLUE", blue), ("host", host)}

    # RED's ARP cache learns BLUE's MAC, in RED only.
    in_red = found(events, kind="neigh", namespace=red, node="RED", address="11.11.11.3", family="inet")
    assert in_red, events
    assert {e["mac"] for e in in_red} == {blue_mac}
    assert {e["ifname"] for e in in_red} == {"reth0"}
    assert in_red[0]["action"] == "new"
    assert "REACHABLE" in {e["state"] for e in in_red}
    assert not [e for e in events if e["kind"] == "neigh" and e["address"] == "11.11.11.3" and e["node"] != "RED"]

    # BLUE learns RED's MAC from the ARP request (and the ping).
    in_blue = found(events, kind="neigh", namespace=blue, node="BLUE", address="11.11.11.2", mac=red_mac)
    assert in_blue, events
    assert {e["ifname"] for e in in_blue} == {"beth0"}
    assert {e["state"] for e in in_blue} <= {"STALE", "DELAY", "PROBE", "REACHABLE"}

    # The host's bridge learns both MACs, each behind its port.
    for port, learned_mac in (("reth1", red_mac), ("beth1", blue_mac)):
        fdb = found(events, kind="fdb", namespace=host, node="host", mac=learned_mac, action="new")
        assert fdb, f"no fdb event for {learned_mac} in {host}: {events}"
        assert fdb[0]["ifname"] == port and fdb[0]["master"] == "br0"
        assert fdb[0]["learned"] is True and fdb[0]["permanent"] is False
        assert fdb[0]["family"] == "bridge" and fdb[0]["vlan"] is None
    assert not [e for e in events if e["kind"] == "fdb" and e["node"] != "host"]

    # Ordered by receipt; the summary says how many.
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    assert f"{len(events)} event" in err


def test_links_down_and_up_and_an_address_in_one_node(lab_name: str) -> None:
    up(LAB2_FIXED, lab_name)
    red = f"{lab_name}-RED"

    watcher = Watch(lab_name, "RED", "--json", "--timeout", "5")
    assert "RED (" in watcher.heading and "host" not in watcher.heading
    sh("ip", "-n", red, "link", "set", "reth0", "down")
    sh("ip", "-n", red, "link", "set", "reth0", "up")
    sh("ip", "-n", red, "addr", "add", "10.99.0.1/24", "dev", "reth0")
    sh("ip", "-n", red, "addr", "del", "10.99.0.1/24", "dev", "reth0")
    events, _ = watcher.events()

    assert events and {e["node"] for e in events} == {"RED"}, "NODE arguments restrict the namespaces"
    links = found(events, kind="link", ifname="reth0", action="change")
    states = [e["state"] for e in links]
    assert "down" in states and "up" in states[states.index("down") :], links
    down = links[states.index("down")]
    assert down["carrier"] is False and down["operstate"] == "DOWN" and down["mac"] == mac(red, "reth0")
    assert links[-1]["state"] == "up" and links[-1]["carrier"] is True and links[-1]["operstate"] == "UP"

    added = found(events, kind="addr", action="new", address="10.99.0.1/24")
    assert added and added[0]["ifname"] == "reth0" and added[0]["family"] == "inet"
    assert added[0]["scope"] == "global"
    assert found(events, kind="addr", action="del", address="10.99.0.1/24")
    # The kernel adds the connected route with the address.
    route = found(events, kind="route", action="new", dst="10.99.0.0/24")
    assert route and route[0]["ifname"] == "reth0" and route[0]["proto"] == "kernel" and route[0]["table"] == "main"
    assert events.index(added[0]) < events.index(found(events, kind="addr", action="del")[0])


def test_count_stops_after_n_events(lab_name: str) -> None:
    up(LAB2_FIXED, lab_name)
    red = f"{lab_name}-RED"
    watcher = Watch(lab_name, "--json", "--count", "2", "--timeout", "60")
    started = time.monotonic()
    sh("ip", "-n", red, "link", "set", "reth0", "down")
    sh("ip", "-n", red, "link", "set", "reth0", "up")
    events, err = watcher.events(timeout=30)
    assert len(events) == 2
    assert time.monotonic() - started < 30, "--count stops at once, long before --timeout"
    assert "2 events in" in err


def test_human_output_and_ctrl_c(lab_name: str) -> None:
    up(LAB2_FIXED, lab_name)
    red, blue = f"{lab_name}-RED", f"{lab_name}-BLUE"
    red_mac, blue_mac = mac(red, "reth0"), mac(blue, "beth0")

    watcher = Watch(lab_name)
    ping(red, "11.11.11.3")
    time.sleep(1)  # the events are printed as they come; give the last ones a moment
    code, out, err = watcher.finish(interrupt=True)

    assert code == 0, out + err
    lines = out.splitlines()
    assert any(
        "[RED]" in line and " neigh " in line and f"11.11.11.3 lladdr {blue_mac}" in line and "dev reth0" in line
        for line in lines
    ), out
    assert any(
        "[host]" in line and " fdb " in line and f"{red_mac} dev reth1 master br0 (learned)" in line for line in lines
    ), out
    assert all(line[2] == ":" and line[15] == " " for line in lines), "each line starts with HH:MM:SS.ffffff"
    assert "neigh" in err.splitlines()[0], "a legend follows the heading"
    assert err.rstrip().endswith("(interrupted)"), err


def test_fdb_entries_age_out(lab_name: str, tmp_path: Path) -> None:
    data = yaml.safe_load(LAB2_FIXED.read_text())
    data["host"]["bridges"]["br0"] = {"ageing": 2}
    path = tmp_path / "lab2-ageing.yaml"
    path.write_text(yaml.safe_dump(data))
    up(path, lab_name)
    red, host = f"{lab_name}-RED", f"{lab_name}-host"
    red_mac = mac(red, "reth0")

    seen: list[Event] = []
    with watch(lab_name, ["host"], timeout=20) as events:
        ping(red, "11.11.11.3", count=1)
        for event in events:
            seen.append(event)
            if event.kind == "fdb" and event.mac == red_mac and event.action == "del":
                break
    learned = [e for e in seen if e.kind == "fdb" and e.mac == red_mac]
    assert learned and learned[0].action == "new" and learned[-1].action == "del", seen
    assert learned[-1].namespace == host and learned[-1].ifname == "reth1" and learned[-1].master == "br0"
    assert learned[-1].learned is True
    assert "(learned)" in learned[-1].describe()


def test_library_api(lab_name: str) -> None:
    up(LAB2_FIXED, lab_name)
    red, blue, host = (f"{lab_name}-{n}" for n in ("RED", "BLUE", "host"))
    blue_mac = mac(blue, "beth0")

    got: list[Event] = []
    with watch(lab_name, timeout=15) as events:
        assert events.namespaces == {"RED": red, "BLUE": blue, "host": host}
        ping(red, "11.11.11.3")
        for event in events:
            got.append(event)
            kinds = {(e.node, e.kind) for e in got}
            if {("RED", "neigh"), ("BLUE", "neigh"), ("host", "fdb")} <= kinds and len(
                [e for e in got if e.kind == "fdb"]
            ) >= 2:
                break
    assert all(isinstance(e, Event) for e in got)
    neigh = next(e for e in got if e.node == "RED" and e.kind == "neigh")
    assert (neigh.namespace, neigh.address, neigh.mac, neigh.ifname) == (red, "11.11.11.3", blue_mac, "reth0")
    assert neigh.describe().startswith(f"11.11.11.3 lladdr {blue_mac} ")
    with pytest.raises(dataclasses.FrozenInstanceError):
        neigh.state = "FAILED"  # type: ignore[misc]
    assert json.loads(json.dumps(neigh.to_json()))["address"] == "11.11.11.3"

    # count=, and a closed watcher yields nothing more.
    with watch(lab_name, ["RED"], count=1, timeout=15) as one:
        sh("ip", "-n", red, "link", "set", "reth0", "down")
        first = list(one)
        assert len(first) == 1 and first[0].node == "RED"
        assert list(one) == []


def test_watch_ends_when_the_lab_goes_down(lab_name: str) -> None:
    up(LAB2_FIXED, lab_name)
    watcher = Watch(lab_name, "--json")  # no limit: it stops because the lab is gone
    result = nsnet("down", lab_name)
    assert result.code == 0, result.text
    events, err = watcher.events(timeout=20)
    gone = found(events, kind="netns", action="del")
    assert {e["node"] for e in gone} == {"RED", "BLUE", "host"}
    assert "gone: " in err


def test_unknown_lab_and_node(lab_name: str) -> None:
    result = nsnet("watch", "no-such-lab", "--timeout", "1")
    assert result.code == 4 and "no lab named 'no-such-lab'" in result.err
    with pytest.raises(LabNotFoundError):
        watch("no-such-lab")
    up(LAB2_FIXED, lab_name)
    result = nsnet("watch", lab_name, "GREEN", "--timeout", "1")
    assert result.code == 4 and "has no node 'GREEN'" in result.err and "RED" in result.err
