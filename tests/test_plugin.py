"""The pytest plugin, tested by running inner test suites that use it (pytester), and the examples/testing suite."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXAMPLES, ROOT, netns_list

pytest_plugins = ["pytester"]

INNER = """
import os
from pathlib import Path

import pytest

import nsnet

NAMES = Path(__file__).parent / "names.txt"


def record(lab: nsnet.Lab) -> None:
    assert all(os.path.exists(f"/run/netns/{ns}") for ns in lab.namespaces.values())
    with NAMES.open("a") as f:
        f.write(f"{lab.name}\\n")


@pytest.mark.nsnet_topology("fixed.yaml")
def test_marker(lab: nsnet.Lab) -> None:
    record(lab)
    assert lab.ping("RED", "BLUE")


def test_factory(nsnet_lab) -> None:
    first = nsnet_lab("fixed.yaml")
    second = nsnet_lab(nsnet.load(Path(__file__).parent / "fixed.yaml"))
    record(first)
    record(second)
    assert first.name != second.name


@pytest.mark.parametrize("lab", ["fixed.yaml", "fixed.yaml"], indirect=True)
def test_indirect(lab: nsnet.Lab) -> None:
    record(lab)
    assert lab.node("BLUE").run(["ip", "-br", "addr", "show", "beth0"]).stdout.split()[-1] == "11.11.11.3/24"
"""

FAILING = """
import pytest


@pytest.mark.nsnet_topology("broken.yaml")
def test_red_reaches_blue(lab):
    with lab.capture(["RED:reth0", "host:br0"], "icmp"):
        reached = lab.ping("RED", "BLUE")
    assert reached, "RED does not reach BLUE"


def test_no_marker(lab):
    pass


@pytest.mark.nsnet_topology("root.yaml")
def test_root_host_is_refused(lab):
    pass
"""

ROOT_HOST = """
name: roothost
host: root
nodes:
  A: {}
"""


def inner_suite(pytester: pytest.Pytester, tests: str) -> None:
    pytester.makepyfile(test_inner=tests)
    for name, example in (("fixed", "lab2-bridge-fixed.yaml"), ("broken", "lab2-bridge.yaml")):
        pytester.makefile(".yaml", **{name: (EXAMPLES / example).read_text()})
    pytester.makefile(".yaml", root=ROOT_HOST)


def recorded(pytester: pytest.Pytester) -> list[str]:
    return (pytester.path / "names.txt").read_text().split()


def assert_all_gone(names: list[str]) -> None:
    left = sorted(ns for ns in netns_list() for name in names if ns.startswith(f"{name}-"))
    assert not left, f"namespaces left behind: {left}"
    assert not [n for n in names if Path(f"/run/nsnet/labs/{n}.json").exists()]


def test_marker_factory_and_indirect_labs_get_unique_names_and_are_torn_down(pytester: pytest.Pytester) -> None:
    inner_suite(pytester, INNER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=180)
    result.assert_outcomes(passed=4)
    names = recorded(pytester)
    assert len(names) == 5 and len(set(names)) == 5
    assert all(re.fullmatch(r"nsn\d+x\d+", n) for n in names), names
    assert_all_gone(names)


def test_parallel_workers_do_not_collide(pytester: pytest.Pytester) -> None:
    inner_suite(pytester, INNER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", timeout=180)
    result.assert_outcomes(passed=4)
    names = recorded(pytester)
    assert len(names) == 5 and len(set(names)) == 5
    pids = {re.fullmatch(r"nsn(\d+)x\d+", n).group(1) for n in names}  # type: ignore[union-attr]
    assert len(pids) == 2, f"both workers ran labs: {names}"
    assert_all_gone(names)


def test_a_failing_test_reports_inspect_and_the_last_packets(pytester: pytest.Pytester) -> None:
    inner_suite(pytester, FAILING)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=180)
    result.assert_outcomes(failed=1, errors=2)
    out = result.stdout.str()
    inspect = re.search(r"-+ nsnet inspect (nsn\d+x\d+) -+\n(.*?)\n-+ nsnet last (\d+) packets \1 -+\n", out, re.S)
    assert inspect, out
    lab, text, count = inspect.groups()
    for expected in (
        "== firewall (iptables-save -c; native tables: nft list ruleset)",
        "filter/FORWARD",
        "policy DROP",
        f"[RED] {lab}-RED",
        f"[host] {lab}-host",
        "11.11.11.3/24",
        "ports: beth1 reth1",
    ):
        assert expected in text, f"{expected!r} not in the inspect section:\n{text}"
    packets = out[inspect.end() :].split("\n=")[0]
    assert int(count) >= 3 and packets.count("ICMP echo request") == int(count), packets
    assert "RED:reth0 out" in packets and "host:br0 in" in packets
    assert "AssertionError: RED does not reach BLUE" in out
    assert "the `lab` fixture needs a topology: @pytest.mark.nsnet_topology" in out
    assert "has `host: root`: the nsnet plugin only runs sandboxed labs" in out
    assert out.count("nsnet inspect") == 1, "only the failed test that had a lab gets the section"
    assert_all_gone([lab])


def test_the_examples_testing_suite_passes() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", str(EXAMPLES / "testing")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tests = (EXAMPLES / "testing" / "test_echo.py").read_text().count("\ndef test_")
    assert re.search(rf"\b{tests} passed\b", proc.stdout), proc.stdout
    assert "failed" not in proc.stdout and "skipped" not in proc.stdout


INTERRUPTED = """
import os
import signal
import time
from pathlib import Path

import pytest


@pytest.mark.nsnet_topology("fixed.yaml")
def test_interrupted(lab):
    lab.node("BLUE").popen(["sleep", "300"])
    (Path(__file__).parent / "names.txt").write_text(lab.name)
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C
    time.sleep(30)


def test_never_run():
    pass
"""


def test_ctrl_c_in_a_test_still_tears_its_lab_down(pytester: pytest.Pytester) -> None:
    inner_suite(pytester, INTERRUPTED)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    assert result.ret == pytest.ExitCode.INTERRUPTED, result.stdout.str()
    assert "KeyboardInterrupt" in result.stdout.str()
    assert result.duration < 25
    assert_all_gone(recorded(pytester))


def test_the_lab_name_prefix_is_an_option(pytester: pytest.Pytester) -> None:
    inner_suite(pytester, INNER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--nsnet-prefix", "mine", timeout=180)
    result.assert_outcomes(passed=4)
    names = recorded(pytester)
    assert len(names) == 5 and all(re.fullmatch(r"mine\d+x\d+", n) for n in names), names
    assert_all_gone(names)
    (pytester.path / "names.txt").unlink()
    pytester.makeini("[pytest]\nnsnet_prefix = fromini\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "marker", timeout=180)
    result.assert_outcomes(passed=1)
    assert all(n.startswith("fromini") for n in recorded(pytester))
    bad = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--nsnet-prefix", "no/slash", timeout=60)
    assert bad.ret == pytest.ExitCode.USAGE_ERROR and "no/slash" in bad.stderr.str()


def test_a_failure_report_fits_the_terminal_and_leaves_out_empty_sections(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    inner_suite(pytester, FAILING)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=180)
    out = result.stdout.str()
    inspect = re.search(r"-+ nsnet inspect (nsn\d+x\d+) -+\n(.*?)\n-+ nsnet last", out, re.S)
    assert inspect, out
    text = inspect.group(2)
    assert "== links (ip link)" in text and "== overlay" not in text  # lab 2 has no VXLAN device
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 100
