"""The package's layers hold: no import circle, and each layer imports only what lies beneath it.

The pipeline is topology -> model -> plan -> engine -> kernel; the live
readers (inspect, watch, reach, graph, capture, explain) sit on the running-lab
directory and the kernel reader. These tests read the imports from the source
(every ``import`` at module level, outside ``if TYPE_CHECKING``) and, for what
a module pulls in at run time, import it in a fresh interpreter.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "nsnet"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(tree: ast.Module) -> list[ast.ImportFrom | ast.Import]:
    found: list[ast.ImportFrom | ast.Import] = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif (isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test)) or isinstance(node, ast.Try):
            found.extend(n for n in node.body if isinstance(n, (ast.Import, ast.ImportFrom)))
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the nsnet modules it imports at load time."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in _top_level_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.startswith("nsnet"))
            elif node.module and node.module.startswith("nsnet"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    targets.add(sub if sub in modules else node.module)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle() -> None:
    cycle = _cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def _loaded_by(module: str) -> set[str]:
    code = f"import sys, json; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out))


def _under(loaded: set[str], *prefixes: str) -> list[str]:
    return sorted(m for m in loaded if any(m == p or m.startswith(p + ".") for p in prefixes))


PURE = [
    "nsnet.topology.loader",
    "nsnet.topology.schema",
    "nsnet.model",
    "nsnet.kinds",
    "nsnet.plan.diff",
    "nsnet.explain.walk",
    "nsnet.explain.verdict",
    "nsnet.topology.inventory",
    "nsnet.machines.share",
]


@pytest.mark.parametrize("module", PURE)
def test_pure_layers_never_load_the_kernel_or_the_engine(module: str) -> None:
    assert _under(_loaded_by(module), "nsnet.kernel", "nsnet.engine") == []


@pytest.mark.parametrize(
    "module", sorted(_module_name(p) for p in (PACKAGE / "kernel").rglob("*.py") if p.name != "__init__.py")
)
def test_the_kernel_layer_loads_no_topology_and_no_pydantic(module: str) -> None:
    loaded = _loaded_by(module)
    assert _under(loaded, "nsnet.topology", "nsnet.engine", "nsnet.plan", "pydantic") == []


@pytest.mark.parametrize("module", ["nsnet.watch", "nsnet.overlay.controller", "nsnet.inspect", "nsnet.cni.bridge"])
def test_netlink_is_spoken_through_nsnets_one_codec(module: str) -> None:
    """No second decoder: pyroute2 is left to conntrack, imported only when a conntrack table is read."""
    assert _under(_loaded_by(module), "pyroute2") == []


def test_the_codec_loads_nothing_of_nsnet_but_itself() -> None:
    loaded = _loaded_by("nsnet.kernel.rtnl")
    assert [m for m in _under(loaded, "nsnet") if m not in ("nsnet", "nsnet.kernel")] == _under(
        loaded, "nsnet.kernel.rtnl"
    )


READERS = ["nsnet.inspect", "nsnet.watch", "nsnet.reach", "nsnet.capture.points", "nsnet.explain"]


@pytest.mark.parametrize("module", READERS)
def test_read_only_views_do_not_load_the_write_side(module: str) -> None:
    loaded = _loaded_by(module)
    assert _under(loaded, "nsnet.engine.apply", "nsnet.engine.lifecycle", "nsnet.plan", "nsnet.topology.loader") == []


@pytest.mark.parametrize("module", ["nsnet.machines.driver", "nsnet.machines.ssh"])
def test_the_driver_only_talks_to_machines(module: str) -> None:
    """The driver of a lab across machines changes nothing on its own machine: no kernel, no engine."""
    assert _under(_loaded_by(module), "nsnet.kernel", "nsnet.engine", "nsnet.plan") == []


def test_only_tests_load_the_fake_kernel() -> None:
    """``nsnet.testing`` is for tests: nothing of nsnet's own imports it, at load time or later."""
    users = []
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        if name.startswith("nsnet.testing"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                targets = [node.module or ""]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            users += [name for target in targets if target.startswith("nsnet.testing")]
    assert users == []


def test_the_engine_reaches_the_machine_only_through_its_seam() -> None:
    """up, down, plan, observe and apply open no netlink socket of their own: they use the kernel they are given."""
    graph = import_graph()
    for module in ("nsnet.engine.lifecycle", "nsnet.engine.apply", "nsnet.engine.observe"):
        assert not {"nsnet.kernel.netns", "nsnet.kernel.firewall", "nsnet.kernel.settle"} & graph[module], module
        source = (SRC / (module.replace(".", "/") + ".py")).read_text()
        assert "Netlink()" not in source, module


@pytest.mark.parametrize(
    "module", ["nsnet.engine.lifecycle", "nsnet.engine.directory", "nsnet.cli.lab", "nsnet.cli.inspect"]
)
def test_commands_on_a_running_lab_do_not_load_the_schema(module: str) -> None:
    # down, ls, exec and inspect read journals, not topology files: pydantic is for files being read.
    assert _under(_loaded_by(module), "pydantic", "nsnet.topology.schema") == []
