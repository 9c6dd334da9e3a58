"""The engine (journal, batches, rollback, ownership) over a kernel in memory: no root needed.

:class:`~nsnet.testing.fakekernel.FakeKernel` stands behind the engine's seam
(:mod:`nsnet.engine.seam`); each change it is asked for is one step, and
``fail_at`` makes any one of them fail, so every step of a run is tried as
the point of failure.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from nsnet.engine import lifecycle
from nsnet.engine.journal import Journal
from nsnet.errors import ApplyError, NsnetError, PreflightError
from nsnet.model import ROOT_NS, Route, Topology, bind, link_mark, namespace_mark
from nsnet.statedir import identity
from nsnet.testing import fakefirewall
from nsnet.testing.fakekernel import FakeKernel
from nsnet.topology.loader import load

from conftest import EXAMPLES

pytestmark = pytest.mark.unit

EXAMPLE_LABS = ["lab1-veth", "lab2-bridge", "lab4-outside", "overlay-static"]


def example(name: str) -> Topology:
    return load(str(EXAMPLES / f"{name}.yaml"))


def written(data: dict[str, Any], path: Path) -> Topology:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load(str(path))


def changed_lab4(tmp_path: Path) -> tuple[Topology, Topology]:
    """lab4, and lab4 changed every way: a node gone, one added, an address and the policies changed."""
    a = yaml.safe_load((EXAMPLES / "lab4-outside.yaml").read_text())
    b = copy.deepcopy(a)
    b["nodes"]["RED"]["interfaces"]["reth0"]["addresses"] = ["11.11.11.12/24"]
    b["nodes"]["GREEN"] = {
        "interfaces": {"geth0": {"addresses": ["11.11.11.4/24"], "gateway": True}},
        "sysctls": {"net.ipv4.ip_forward": 1},
    }
    b["host"]["interfaces"]["geth1"] = {"master": "br0"}
    b["links"].append(["GREEN:geth0", "host:geth1"])
    del b["nodes"]["BLUE"], b["host"]["interfaces"]["beth1"]
    b["links"] = [pair for pair in b["links"] if "BLUE:beth0" not in pair]
    b["host"]["firewall"]["policies"] = {"FORWARD": "ACCEPT", "INPUT": "DROP"}
    return written(a, tmp_path / "a.yaml"), written(b, tmp_path / "b.yaml")


def journal_file(lab: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Journal.path_for(lab).read_text())
    return data


EMPTY = FakeKernel().snapshot()


@pytest.mark.parametrize("name", EXAMPLE_LABS)
def test_up_builds_the_topology_and_a_second_up_changes_nothing(state_dir: Path, name: str) -> None:
    topology = example(name)
    kernel = FakeKernel()
    done = lifecycle.up(topology, kernel=kernel)
    assert done and kernel.steps >= len(done.actions)
    desired = bind(topology)
    for ns, want in desired.namespaces.items():
        space = kernel.spaces[ns]
        assert space.mark == namespace_mark(topology.name, want.label)
        assert set(space.links) == set(want.links), ns
        for ifname, link in want.links.items():
            have = space.links[ifname]
            assert (have.kind, have.alias, have.up) == (link.kind, link_mark(topology.name), link.up), ifname
            assert have.master == link.master and set(have.addresses) == set(link.addresses), ifname
            if link.peer:
                assert have.peer == link.peer
        assert {r.to for r in space.routes} == {r.to for r in want.routes}, ns
        assert {k: space.sysctls[k] for k in want.sysctls} == want.sysctls, ns
    journal = journal_file(topology.name)
    assert journal["status"] == "up" and set(journal["namespaces"]) == set(desired.namespaces) - {ROOT_NS}

    before, steps = kernel.snapshot(), kernel.steps
    assert not lifecycle.up(topology, kernel=kernel)
    assert not lifecycle.plan_up(topology, kernel=kernel)
    assert (kernel.steps, kernel.snapshot()) == (steps, before)

    lifecycle.down(topology.name, kernel=kernel)
    assert kernel.snapshot() == EMPTY
    assert not Journal.path_for(topology.name).exists()


def test_the_journal_lists_a_namespace_before_it_is_created_and_an_original_before_it_changes(
    state_dir: Path,
) -> None:
    topology = example("lab2-bridge")
    kernel = FakeKernel()
    seen: dict[str, Any] = {}

    def look(what: str) -> None:
        if what.startswith("create namespace "):
            ns = what.split()[-1]
            journal = journal_file("lab2")
            seen[ns] = (journal["namespaces"].get(ns), journal["status"])
        elif what.startswith("sysctl "):
            seen[what] = journal_file("lab2")["sysctls"]
        elif what.startswith("iptables-restore"):
            seen[what] = journal_file("lab2")["policies"]

    kernel.on_step = look
    lifecycle.up(topology, kernel=kernel)
    labels = {ns: space.label for ns, space in bind(topology).namespaces.items()}
    assert {ns: seen[ns] for ns in labels} == {ns: (label, "applying") for ns, label in labels.items()}
    assert seen["sysctl lab2-host net.bridge.bridge-nf-call-iptables=1"] == {
        "lab2-host": {"net.bridge.bridge-nf-call-iptables": "0"}
    }
    assert seen["iptables-restore (IPv4) in lab2-host"] == {"lab2-host": {"FORWARD": "ACCEPT"}}


def test_a_namespace_that_could_not_be_created_leaves_the_journal(state_dir: Path) -> None:
    topology = example("lab1-veth")
    kernel = FakeKernel(fail_at=2)  # the second namespace
    written_then: list[dict[str, str]] = []
    kernel.on_step = lambda what: written_then.append(dict(journal_file("lab1")["namespaces"]))
    with pytest.raises(ApplyError):
        lifecycle.up(topology, kernel=kernel)
    assert len(written_then[1]) == 3  # all were listed before any was made
    assert not Journal.path_for("lab1").exists() and kernel.snapshot() == EMPTY


def steps_of(topology: Topology, kernel: FakeKernel) -> int:
    """How many steps a first ``up`` of ``topology`` takes on ``kernel`` where nothing fails (brought down after)."""
    lifecycle.up(topology, kernel=kernel)
    steps = kernel.steps
    lifecycle.down(topology.name, kernel=kernel)
    return steps


@pytest.mark.parametrize("name", ["lab2-bridge", "lab4-outside", "overlay-static"])
def test_a_first_up_that_fails_at_any_step_leaves_nothing(state_dir: Path, name: str) -> None:
    topology = example(name)
    steps = steps_of(topology, FakeKernel())
    for n in range(1, steps + 1):
        kernel = FakeKernel(fail_at=n)
        with pytest.raises(ApplyError) as failed:
            lifecycle.up(topology, kernel=kernel)
        step = kernel.log[n - 1]
        assert failed.value.rolled_back, step
        assert "injected failure" in str(failed.value)
        assert kernel.snapshot() == EMPTY, step
        assert not Journal.path_for(topology.name).exists(), step


def test_a_change_that_fails_at_any_step_is_rolled_back_to_the_lab_as_it_was(state_dir: Path, tmp_path: Path) -> None:
    before, after = changed_lab4(tmp_path)

    def lab_as_before() -> FakeKernel:
        kernel = FakeKernel()
        lifecycle.up(before, kernel=kernel)
        return kernel

    kernel = lab_as_before()
    start, snapshot, journal = kernel.steps, kernel.snapshot(), journal_file("lab4")
    lifecycle.up(after, kernel=kernel)
    steps = kernel.steps - start
    assert steps > 10
    lifecycle.down("lab4", kernel=kernel)
    for n in range(1, steps + 1):
        kernel = lab_as_before()
        kernel.fail_at = kernel.steps + n
        with pytest.raises(ApplyError) as failed:
            lifecycle.up(after, kernel=kernel)
        step = kernel.log[kernel.fail_at - 1]
        assert failed.value.rolled_back, step
        assert kernel.snapshot() == snapshot, step
        now = journal_file("lab4")
        assert (now["status"], now["namespaces"]) == ("up", journal["namespaces"]), step
        lifecycle.down("lab4", kernel=kernel)


def test_a_changed_address_keeps_the_routes_through_it(state_dir: Path, tmp_path: Path) -> None:
    """Deleting a link's only address of a subnet takes the routes through it out of the kernel: up puts them back."""
    before, after = changed_lab4(tmp_path)
    kernel = FakeKernel()
    lifecycle.up(before, kernel=kernel)
    lifecycle.up(after, kernel=kernel)
    assert Route("0.0.0.0/0", via="11.11.11.1") in kernel.spaces["RED"].routes
    assert not lifecycle.up(after, kernel=kernel)


def test_down_removes_only_what_is_marked_as_the_labs(state_dir: Path) -> None:
    topology = example("lab2-bridge")
    kernel = FakeKernel()
    lifecycle.up(topology, kernel=kernel)
    kernel.add_namespace("other-RED", mark=f"nsnet:other:RED:{identity()}")  # another lab's
    kernel.add_namespace("lab2-spare")  # nobody's, with the lab's prefix
    kernel.add_link(ROOT_NS, "eth0")  # the machine's own
    kernel.delete_namespaces(["BLUE"])
    kernel.add_namespace("BLUE")  # BLUE was deleted and made again by someone else: no mark
    kernel.add_link("BLUE", "eth0")

    done = lifecycle.down("lab2", kernel=kernel)
    assert kernel.names() == ["BLUE", "lab2-spare", "other-RED"]
    assert set(kernel.spaces["BLUE"].links) == {"eth0"} and set(kernel.spaces[ROOT_NS].links) == {"eth0"}
    assert [k for k in done.kept if "BLUE" in k]
    assert not Journal.path_for("lab2").exists()


def root_host(tmp_path: Path) -> Topology:
    data = yaml.safe_load((EXAMPLES / "lab4-outside.yaml").read_text())
    data["host"]["mode"] = "root"
    del data["outside"]  # the machine's own uplink is the outside
    return written(data, tmp_path / "lab4-root.yaml")


def machine() -> FakeKernel:
    """A kernel whose root namespace holds the machine's own link, address, route, sysctl and rule."""
    kernel = FakeKernel()
    root = kernel.spaces[ROOT_NS]
    eth0 = kernel.add_link(ROOT_NS, "eth0")
    eth0.up, eth0.addresses = True, ["192.0.2.10/24"]
    root.routes.add(Route("0.0.0.0/0", via="192.0.2.1"))
    root.sysctls["net.ipv4.ip_forward"] = "1"
    root.firewall[4] = fakefirewall.restore({}, "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -i eth0 -j ACCEPT\nCOMMIT\n")
    return kernel


def test_a_root_host_lab_leaves_the_root_namespace_as_it_found_it(state_dir: Path, tmp_path: Path) -> None:
    topology = root_host(tmp_path)
    kernel = machine()
    machine_only = kernel.snapshot()
    lifecycle.up(topology, kernel=kernel)
    assert {"br0", "reth1", "beth1", "eth0"} <= set(kernel.spaces[ROOT_NS].links)
    assert not lifecycle.up(topology, kernel=kernel)
    lifecycle.down("lab4", kernel=kernel)
    assert kernel.snapshot() == machine_only

    steps = steps_of(topology, machine())
    for n in range(1, steps + 1):
        kernel = machine()
        kernel.fail_at = n
        with pytest.raises(ApplyError):
            lifecycle.up(topology, kernel=kernel)
        assert kernel.snapshot() == machine_only, kernel.log[n - 1]


def test_a_down_that_fails_at_any_step_finishes_when_run_again(state_dir: Path) -> None:
    topology = example("lab4-outside")

    def lab() -> FakeKernel:
        kernel = FakeKernel()
        lifecycle.up(topology, kernel=kernel)
        return kernel

    kernel = lab()
    start = kernel.steps
    lifecycle.down("lab4", kernel=kernel)
    for n in range(1, kernel.steps - start + 1):
        kernel = lab()
        kernel.fail_at = kernel.steps + n
        with pytest.raises(NsnetError, match="run `nsnet down lab4` again"):
            lifecycle.down("lab4", kernel=kernel)
        lifecycle.down("lab4", kernel=kernel)
        assert kernel.snapshot() == EMPTY and not Journal.path_for("lab4").exists()


def test_a_machine_that_cannot_run_the_lab_is_left_untouched(state_dir: Path) -> None:
    topology = example("lab2-bridge")
    kernel = FakeKernel(root=False)
    with pytest.raises(PreflightError, match="root"):
        lifecycle.up(topology, kernel=kernel)
    with pytest.raises(PreflightError, match="plan with --fresh"):
        lifecycle.plan_up(topology, kernel=kernel)
    assert lifecycle.plan_up(topology, fresh=True)  # needs no kernel at all
    kernel = FakeKernel()
    kernel.refuse = "iptables-restore is missing"
    with pytest.raises(PreflightError, match="missing"):
        lifecycle.up(topology, kernel=kernel)
    assert kernel.steps == 0 and kernel.snapshot() == EMPTY
    assert not Journal.path_for("lab2").exists()
