"""Shared by the CLI commands: consoles, error handling, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console

from .. import __version__, engine
from ..errors import NsnetError, TopologyError
from ..loader import load
from ..model import Topology
from ..plan import Action

# When piped, print whole lines rather than cutting tables at 80 columns.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 1000)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 1000)
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    sys.exit(code)


def guard(func: F) -> F:
    """Turn nsnet errors into one clear message and exit code 2."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TopologyError as exc:
            err.print(str(exc), markup=False, soft_wrap=True)
            sys.exit(2)
        except NsnetError as exc:
            fail(str(exc))

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper  # type: ignore[return-value]


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def load_topology(path: str) -> Topology:
    return load(path)


def lab_and_topology(target: str, name: str | None) -> tuple[str, Topology | None]:
    if engine.is_file(target):
        topology = load_topology(target)
        return name or topology.name, topology
    return name or target, None


def step_printer(enabled: bool) -> Callable[[Action], None] | None:
    if not enabled:
        return None
    return lambda a: out.print(f"  [green]+[/] {a.describe()}", markup=True, soft_wrap=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nsnet")
def main() -> None:
    """Build, inspect and tear down container networks on plain Linux network namespaces.

    \b
    A topology file (YAML) describes nodes (network namespaces), veth links,
    bridges, addresses, routes, sysctls and firewall rules. Typical use:
      nsnet validate examples/lab2-bridge.yaml   check the file, every problem at once
      nsnet plan examples/lab2-bridge.yaml       what `up` would change
      nsnet up examples/lab2-bridge.yaml         build it (again: changes nothing)
      nsnet exec lab2 RED -- ping -c1 11.11.11.3 run a command in a node
      nsnet down lab2                            remove everything nsnet created
    """
