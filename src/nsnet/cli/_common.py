"""Shared by the CLI commands: consoles, error handling, JSON output."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from nsnet import __version__
from nsnet.errors import NsnetError, TopologyError

if TYPE_CHECKING:
    from nsnet.model import Topology

# When piped, print whole lines rather than cutting tables at 80 columns.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 1000)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 1000)
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    sys.exit(code)


def guard(func: F) -> F:
    """Turn nsnet errors into one clear message and the error's exit code (:attr:`NsnetError.exit_code`)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TopologyError as exc:
            err.print(str(exc), markup=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except NsnetError as exc:
            fail(str(exc), exc.exit_code)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper  # type: ignore[return-value]


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def load_topology(path: str) -> Topology:
    # Loaded with the command that needs it: `nsnet --help` stays fast; an unchanged file is not validated again.
    from nsnet.topology.cache import load

    return load(path)


def is_topology_file(arg: str) -> bool:
    """Whether a CLI argument names a topology file rather than a lab."""
    return os.path.isfile(arg) or arg.endswith((".yaml", ".yml"))


def lab_and_topology(target: str, name: str | None) -> tuple[str, Topology | None]:
    if is_topology_file(target):
        topology = load_topology(target)
        return name or topology.name, topology
    return name or target, None


# Each command lives in a module loaded only when the command runs, so that
# start-up (and `nsnet --help`) does not pay for every command's imports.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("validate", "Check topology files and report every problem."),
    "plan": ("lab", "Show what `up` would do to the live kernel."),
    "up": ("lab", "Build a lab, or bring it in line with its file."),
    "down": ("lab", "Remove everything nsnet created for a lab, nothing else."),
    "ls": ("lab", "List the labs that are up."),
    "exec": ("lab", "Run a command in a node's namespace."),
    "shell": ("lab", "Open a shell in a node's namespace."),
    "inspect": ("inspect", "Every namespace of a lab side by side."),
    "watch": ("watch", "Netlink events of a lab's namespaces, live."),
    "capture": ("capture", "Capture at several points, one timeline."),
    "reach": ("reach", "Who reaches whom, with real probes."),
    "explain": ("explain", "Where and why a packet dies, and the fix."),
    "graph": ("graph", "Draw a topology or a live lab."),
    "web": ("web", "The labs live in a browser: capture, explain, reach, inspect."),
    "gc": ("lab", "Remove a lab's namespaces by their marks."),
    "schema": ("lab", "Print the JSON Schema of the topology format."),
    "import": ("importing", "Import a Kathará or containerlab lab as a topology."),
    "overlay": ("overlay", "VXLAN overlay registry (etcd) and miss-answering controllers."),
    "completion": ("completion", "Print the shell completion script (bash, zsh, fish)."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"nsnet.cli.{COMMANDS[cmd_name][0]}")
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, summary) for name, (_, summary) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
