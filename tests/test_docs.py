"""The documentation stays true: its schema file, YAML examples and the examples directory.

Nothing here touches the kernel: topologies are only loaded and validated.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

import nsnet
from nsnet.topology.schema import json_schema

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"
SCHEMA_FILE = DOCS / "topology.schema.json"

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")


def yaml_blocks() -> list[tuple[str, int, str]]:
    """Every block fenced exactly as ```yaml in docs/*.md: (page, line of the fence, text)."""
    blocks = []
    for page in sorted(DOCS.glob("*.md")):
        lines = page.read_text().splitlines()
        i = 0
        while i < len(lines):
            match = _FENCE.match(lines[i])
            if not match:
                i += 1
                continue
            indent, fence, info = match.groups()
            start = i
            i += 1
            body = []
            while i < len(lines) and not (
                lines[i].strip().startswith(fence[0] * len(fence)) and not lines[i].strip().strip(fence[0])
            ):
                body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
                i += 1
            i += 1  # the closing fence
            if info.strip() == "yaml":
                blocks.append((page.name, start + 1, "\n".join(body) + "\n"))
    return blocks


BLOCKS = yaml_blocks()
BLOCK_IDS = [f"{page}:{line}" for page, line, _ in BLOCKS]
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return data


def _schema_errors(schema: dict[str, Any], data: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(data)]


def test_schema_file_is_the_output_of_nsnet_schema(schema: dict[str, Any]) -> None:
    expected = json.loads(json.dumps(json_schema()))
    assert schema == expected, "docs/topology.schema.json is stale: regenerate it with `nsnet schema`"


def test_schema_file_is_a_valid_json_schema(schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)


def test_docs_have_yaml_examples() -> None:
    pages = {page for page, _, _ in BLOCKS}
    assert {"topology.md", "getting-started.md"} <= pages, pages


@pytest.mark.parametrize(("page", "line", "text"), BLOCKS, ids=BLOCK_IDS)
def test_doc_yaml_block_loads(page: str, line: int, text: str) -> None:
    data = yaml.safe_load(text)
    assert isinstance(data, dict) and "name" in data, (
        f"{page}:{line}: a ```yaml block must be a complete topology with a top-level name:; fence fragments as ```text"
    )
    try:
        nsnet.loads(text, f"{page}:{line}")
    except nsnet.TopologyError as exc:
        pytest.fail(f"{page}:{line}: the example does not load:\n{exc}")


@pytest.mark.parametrize(("page", "line", "text"), BLOCKS, ids=BLOCK_IDS)
def test_doc_yaml_block_matches_schema(schema: dict[str, Any], page: str, line: int, text: str) -> None:
    errors = _schema_errors(schema, yaml.safe_load(text))
    assert not errors, f"{page}:{line}: the example does not match the JSON Schema:\n" + "\n".join(errors)


def test_there_are_examples() -> None:
    assert EXAMPLE_FILES


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.name for p in EXAMPLE_FILES])
def test_example_matches_schema_and_loads(schema: dict[str, Any], path: Path) -> None:
    errors = _schema_errors(schema, yaml.safe_load(path.read_text()))
    assert not errors, f"{path.name} does not match the JSON Schema:\n" + "\n".join(errors)
    topology = nsnet.load(path)
    assert topology.name


def test_api_reference_is_current() -> None:
    """docs/api.md is what tools/gen_api_docs.py writes from the docstrings now."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, str(root / "tools" / "gen_api_docs.py"), "--check"], check=False)
    assert result.returncode == 0, "docs/api.md is out of date: run python tools/gen_api_docs.py"
