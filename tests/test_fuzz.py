"""Hostile and broken input, generated: never a traceback, never an injected rule, nothing changed."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nsnet import Topology, TopologyError, loads

from conftest import EXAMPLES, netns_list, nsnet, unique_name

pytestmark = pytest.mark.unit

BASES: list[dict[str, Any]] = [
    yaml.safe_load((EXAMPLES / name).read_text())
    for name in ("lab2-bridge-fixed.yaml", "overlay-static.yaml", "overlay-dynamic.yaml")
]
NASTY = st.sampled_from(
    ['"', "'", "\n", "\\", ";", "$(reboot)", "`id`", "-j ACCEPT\n-A FORWARD -j DROP", "..", "/", "\x00", " ", "+", "!"]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.text(max_size=20),
    st.builds(lambda a, b, c: a + b + c, st.text(max_size=6), NASTY, st.text(max_size=6)),
    st.lists(st.text(max_size=5), max_size=3),
)


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            out += paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += paths(value, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    data = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        where = draw(st.sampled_from(paths(data)[1:]))
        parent = data
        for part in where[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "rename", "add"]))
        key = where[-1]
        if action == "delete":
            del parent[key]
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = parent.pop(key)
        elif action == "add" and isinstance(parent[key], dict):
            parent[key][draw(st.text(min_size=1, max_size=12))] = draw(SCALARS)
        else:
            parent[key] = draw(SCALARS)
    return data


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_validation_never_crashes_and_never_lets_an_injection_through(data: dict[str, Any]) -> None:
    try:
        text = yaml.safe_dump(data)
    except yaml.YAMLError:
        return
    try:
        topology = loads(text, "fuzz.yaml")
    except TopologyError as exc:
        assert exc.problems and all(p.message for p in exc.problems)
        return
    assert isinstance(topology, Topology)
    for space in topology.namespaces.values():
        for rule in space.firewall.rules:
            assert not set(rule.args) & {"\n", "\r", '"', "'", "\\", "`", "$", ";", "\x00"}, rule
        for key, value in space.sysctls.items():
            assert "\n" not in key + value


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_is_an_error_or_a_topology(text: str) -> None:
    with contextlib.suppress(TopologyError):
        loads(text, "fuzz.yaml")


@pytest.mark.kernel
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutated())
def test_up_of_a_broken_file_changes_nothing(tmp_path_factory: Any, data: dict[str, Any]) -> None:
    text = yaml.safe_dump(data)
    try:
        loads(text, "fuzz.yaml")
    except TopologyError:
        pass
    else:
        return  # still valid after mutation: not what this test is about
    lab = unique_name()
    path = tmp_path_factory.mktemp("fuzz") / "bad.yaml"
    path.write_text(text)
    before = netns_list()
    result = nsnet("up", str(path), "--name", lab)
    assert result.code == 2
    assert "Traceback" not in result.err
    assert not {ns for ns in netns_list() - before if ns.startswith(f"{lab}-")}
