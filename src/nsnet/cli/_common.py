"""Shared by the CLI commands: consoles, error handling, JSON output."""

from __future__ import annotations

import difflib
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


SCHEMA_VERSION = 1
"""The version of every ``--json`` document's shape; it grows when a key changes meaning or goes away."""


def schema_id(doc: str) -> str:
    """The ``schema`` key of a JSON document of kind ``doc``: ``nsnet/<doc>/<version>``."""
    return f"nsnet/{doc}/{SCHEMA_VERSION}"


def versioned(data: Any, doc: str) -> Any:
    """``data`` with its ``schema`` key first; a list keeps its shape (so ``jq '.[]'`` still works) and each
    of its objects carries the key."""
    if isinstance(data, dict):
        return {"schema": schema_id(doc), **data}
    if isinstance(data, list):
        return [versioned(item, doc) for item in data]
    return data


def emit_json(data: Any, doc: str | None) -> None:
    """Print a ``--json`` document, versioned as ``nsnet/<doc>/1`` (``doc`` None: a document with a schema
    of its own, such as ``nsnet schema``'s JSON Schema)."""
    click.echo(json.dumps(versioned(data, doc) if doc else data, indent=2, sort_keys=False))


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

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            close = difflib.get_close_matches(name, list(COMMANDS), n=2, cutoff=0.5)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint} (`nsnet --help` lists them)")
        return super().resolve_command(ctx, args)

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
