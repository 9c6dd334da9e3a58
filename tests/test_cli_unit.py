"""The CLI in this process (click's runner) for what needs no root, and the exit code of every kind of error."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from nsnet.cli import main
from nsnet.cli._common import guard
from nsnet.errors import (
    ApplyError,
    ConflictError,
    ExplainError,
    KernelError,
    LabNotFoundError,
    NsnetError,
    PreflightError,
    Problem,
    TopologyError,
)

from conftest import EXAMPLES

pytestmark = pytest.mark.unit

LAB2 = str(EXAMPLES / "lab2-bridge.yaml")


def invoke(*args: str) -> click.testing.Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_validate_plan_fresh_and_schema(state_dir: Path, tmp_path: Path) -> None:
    assert invoke("validate", LAB2).exit_code == 0
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nnodes:\n  A:\n    interfaces:\n      a0: {addresses: [10.0.0.300/24]}\n")
    bad = invoke("validate", str(broken))
    assert bad.exit_code == 1 and "broken.yaml:5" in bad.output
    plan = invoke("plan", LAB2, "--fresh", "--json")
    assert plan.exit_code == 0
    steps = [s["description"] for s in json.loads(plan.stdout)["steps"]]
    assert steps[0] == "create namespace RED" and "iptables in lab2-host: FORWARD policy DROP" in steps
    schema = invoke("schema")
    assert schema.exit_code == 0 and json.loads(schema.stdout)["title"]
    assert invoke("up", str(broken)).exit_code == 2  # invalid before anything else


def test_graph_of_a_file_and_import(tmp_path: Path) -> None:
    dot = invoke("graph", LAB2)
    assert dot.exit_code == 0 and "br0" in dot.stdout and "RED" in dot.stdout
    imported = invoke("import", "containerlab", str(Path(__file__).parent / "data" / "clab" / "two-nodes.clab.yml"))
    assert imported.exit_code == 0, imported.output
    assert yaml.safe_load(imported.stdout)["nodes"]


def test_a_lab_that_is_not_up_is_not_found(state_dir: Path) -> None:
    assert invoke("graph", "t-nothing-here").exit_code == 4


def test_every_json_document_says_its_schema(state_dir: Path) -> None:
    assert json.loads(invoke("validate", "--json", LAB2).stdout)["schema"] == "nsnet/validate/1"
    plan = json.loads(invoke("plan", LAB2, "--fresh", "--json").stdout)
    assert next(iter(plan)) == "schema" and plan["schema"] == "nsnet/plan/1"  # first, before the keys it versions
    assert json.loads(invoke("ls", "--json").stdout) == []  # a list stays a list (its objects carry the key)
    assert "schema" not in json.loads(invoke("schema").stdout)["properties"]  # a JSON Schema names its own


def test_a_mistyped_command_gets_a_did_you_mean() -> None:
    result = CliRunner().invoke(main, ["inpsect", "lab2"])
    assert result.exit_code == 2
    assert "No such command 'inpsect'. Did you mean 'inspect'?" in result.output
    assert "Did you mean" not in CliRunner().invoke(main, ["zzzzzz"]).output


def test_a_link_with_one_end_says_what_a_link_is(tmp_path: Path) -> None:
    one = tmp_path / "one.yaml"
    one.write_text("name: one\nnodes:\n  RED: {}\nlinks:\n  - [RED:eth0]\n")
    result = invoke("validate", str(one))
    assert result.exit_code == 1
    assert "one.yaml:5: links[0]: a link joins exactly two endpoints; this one has 1 endpoint" in result.output
    assert "e.g. - [RED:eth0, host:veth0]" in result.output and "at least 2 items" not in result.output


def test_an_unknown_node_gets_a_did_you_mean() -> None:
    from nsnet.names import no_node

    assert no_node("lab2", "REDD", ["BLUE", "RED", "host"]) == (
        "lab 'lab2' has no node 'REDD'; did you mean 'RED'? nodes: BLUE, RED, host"
    )
    assert no_node("lab2", "red", ["BLUE", "RED"]).count("did you mean 'RED'?") == 1
    assert "did you mean" not in no_node("lab2", "GREEN", ["BLUE", "RED", "host"])


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NsnetError("generic"), 2),
        (TopologyError([Problem("f.yaml", 3, "nodes", "bad")]), 2),
        (ExplainError("'tcp' is not a protocol"), 2),
        (LabNotFoundError("no lab named 'x'"), 4),
        (ConflictError("taken"), 5),
        (PreflightError("not root"), 6),
        (KernelError("refused"), 7),
        (ApplyError("create namespace RED", KernelError("refused"), rolled_back=True), 7),
    ],
)
def test_every_error_exits_with_its_code(error: NsnetError, code: int) -> None:
    @click.command()
    @guard
    def failing() -> None:
        raise error

    result = CliRunner().invoke(failing, [])
    assert result.exit_code == code == error.exit_code
    assert str(error).splitlines()[0] in result.output
