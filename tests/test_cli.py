"""The command line: every command is listed, loads, and explains itself."""

from __future__ import annotations

import importlib

import pytest

from nsnet.cli._common import COMMANDS, main

from conftest import nsnet

pytestmark = pytest.mark.unit


def test_every_command_module_registers_exactly_the_listed_commands() -> None:
    for module in {m for m, _ in COMMANDS.values()}:
        importlib.import_module(f"nsnet.cli.{module}")
    assert set(main.commands) == set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_of_every_command(name: str) -> None:
    result = nsnet(name, "--help")
    assert result.code == 0, result.text
    assert result.out.startswith(f"Usage: python -m nsnet {name}")


def test_top_level_help_lists_every_command() -> None:
    result = nsnet("--help")
    assert result.code == 0
    for name, (_, summary) in COMMANDS.items():
        assert f"  {name}" in result.out and summary in result.out
