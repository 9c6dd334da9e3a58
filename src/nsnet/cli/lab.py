"""Lab lifecycle commands: plan, up, down, ls, exec, shell, gc, schema."""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict
from pathlib import Path

import click
from rich.markup import escape

from nsnet.cli import complete, progress
from nsnet.cli import machines as machines_cli
from nsnet.cli._common import (
    emit_json,
    err,
    fail,
    guard,
    lab_and_topology,
    load_topology,
    main,
    out,
    plural,
)
from nsnet.cli.panels import Panel
from nsnet.engine import directory, lifecycle, preflight, recover
from nsnet.engine.journal import check_lab_name
from nsnet.errors import LabNotFoundError
from nsnet.kernel import netns, procs
from nsnet.model import ROOT_NS, Topology, netns_names
from nsnet.plan.actions import Plan

# Single quotes: bash expands \w and \$ (# for root) when it draws the prompt, not when it reads the file.
SHELL_RC = """[ -f ~/.bashrc ] && . ~/.bashrc
PS1='[nsnet $NSNET_LAB:$NSNET_NODE] \\w\\$ '
"""


@main.command()
@click.argument("target", shell_complete=complete.labs_or_files)
@click.option("--name", help="Lab name (default: the topology's name).")
@click.option("--script", is_flag=True, help="Print the steps as an equivalent shell script.")
@click.option("--fresh", is_flag=True, help="Plan as if nothing existed yet (no root needed).")
@click.option("--down", "for_down", is_flag=True, help="Plan `down` instead of `up`.")
@click.option("--json", "as_json", is_flag=True, help="Print the steps as JSON.")
@click.option("--machine", metavar="M", help="Plan machine M's share of a lab across machines, here.")
@click.option("--ssh-config", type=click.Path(dir_okay=False), help="OpenSSH client config (default ~/.ssh/config).")
@guard
def plan(
    target: str,
    name: str | None,
    script: bool,
    fresh: bool,
    for_down: bool,
    as_json: bool,
    machine: str | None,
    ssh_config: str | None,
) -> None:
    """Show what `up` would do to the live kernel (TARGET: a topology file, or a lab with --down).

    \b
    For a topology with machines:, every machine's plan of its share (over
    SSH); with --machine M, machine M's share here (TARGET - reads the file
    from standard input).
    """
    topology: Topology | None
    if (machine is not None or target == "-") and not for_down:
        topology = machines_cli.read(target, name, machine, keep=False)
        lab = name or topology.name
        if not fresh:
            topology = machines_cli.share(topology, machine or "")
    else:
        lab, topology = lab_and_topology(target, name)
    if topology is not None and topology.machines and not for_down and machine is None:
        machines_cli.drive_plan(target, topology, name, as_json, ssh_config)
        return
    if for_down:
        steps = lifecycle.plan_down(lab)
    elif topology is None:
        fail(f"{target!r} is not a topology file; `nsnet plan FILE` or `nsnet plan --down LAB`")
    elif machine is not None and fresh:
        from nsnet.machines.local import plan as plan_share

        steps = plan_share(topology, machine, name, fresh=True)
    else:
        steps = lifecycle.plan_up(topology, lab, fresh=fresh)
    for kept in steps.kept:
        err.print(f"nsnet: would keep {kept}", markup=False, soft_wrap=True)
    _print_plan(steps, script, as_json)


def _print_plan(steps: Plan, script: bool, as_json: bool) -> None:
    if script:
        click.echo(steps.script(), nl=False)
    elif as_json:
        emit_json(
            {
                "lab": steps.lab,
                "steps": [
                    {
                        "action": type(a).__name__,
                        "namespace": a.ns,
                        "description": a.describe(),
                        "commands": a.commands(),
                    }
                    for a in steps.actions
                ],
            },
            "plan",
        )
    elif not steps:
        out.print(f"lab {steps.lab}: nothing to do, the kernel matches the topology", markup=False)
    else:
        out.print(f"lab {steps.lab}: {plural(len(steps.actions), 'step')}", markup=False)
        for line in steps.lines():
            out.print(f"  {line}", markup=False, soft_wrap=True)


@main.command()
@click.argument("file", type=click.Path())
@click.option(
    "--name",
    help="Lab name (default: the file's name:). Under another name than the file's, nodes become NAME-NODE.",
)
@click.option("--replace", is_flag=True, help="Rebuild a lab of that name that is up from another topology.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("-v", "--verbose", is_flag=True, help="Print every step, even on a terminal (a progress bar otherwise).")
@click.option("--json", "as_json", is_flag=True, help="Print the steps done as JSON.")
@click.option("--machine", metavar="M", help="Build machine M's share of a lab across machines, on this machine.")
@click.option("--ssh-config", type=click.Path(dir_okay=False), help="OpenSSH client config (default ~/.ssh/config).")
@guard
def up(
    file: str,
    name: str | None,
    replace: bool,
    quiet: bool,
    verbose: bool,
    as_json: bool,
    machine: str | None,
    ssh_config: str | None,
) -> None:
    """Build the lab in FILE, or bring it in line with FILE (only the difference is applied).

    \b
    On a terminal a progress bar counts the steps (one line per step with
    -v, or when the output is piped). Ctrl-C stops it (exit 130) and says
    what state the lab is in: the next `nsnet up` or `nsnet down` converges
    from there.

    \b
    A topology with machines: is built across them: each machine is reached
    over SSH and builds its share (see docs/machines.md). With --machine M,
    this machine builds M's share (FILE - reads the file from standard input).
    """
    topology = machines_cli.read(file, name, machine, keep=True) if machine or file == "-" else load_topology(file)
    if topology.machines and machine is None:
        machines_cli.drive_up(file, topology, name, quiet, as_json, ssh_config)
        return
    if machine is not None:
        topology = machines_cli.share(topology, machine)
    lab = name or topology.name
    check_lab_name(lab)
    talk = not quiet and not as_json
    if talk:
        out.print(f"lab {lab}: bringing up {file}", markup=False)
    try:
        with progress.reporter(talk, verbose) as report:
            steps = lifecycle.up(topology, name, on_step=report.step, on_plan=report.start, replace=replace)
    except KeyboardInterrupt:
        again = f"nsnet up {file}" + (f" --name {name}" if name else "")
        fail(f"interrupted: {directory.state_of(lab)}; `{again}` finishes it, `nsnet down {lab}` removes it", 130)
    if as_json:
        emit_json({"lab": lab, "changed": bool(steps), "steps": steps.lines()}, "up")
    elif talk:
        names = netns_names(topology, lab)
        if steps:
            out.print(f"lab {lab}: up ({plural(len(steps.actions), 'change')})", markup=False)
        else:
            out.print(f"lab {lab}: already up to date, nothing changed", markup=False)
        hosts = [f"{h}={names[h] or 'root'}" for h in topology.hosts]
        nodes = [f"{n}={names[n]}" for n in topology.nodes]
        listed = _first(nodes, wide=verbose)
        if len(nodes) > LS_NODES and not verbose:
            listed = f"{len(nodes)} nodes: " + listed.replace("--wide lists all", "`nsnet ls --wide` or -v list all")
        out.print("  " + ", ".join([listed, *hosts]), markup=False)


@main.command()
@click.argument("target", shell_complete=complete.labs_or_files)
@click.option("--name", help="Lab name, when TARGET is a file brought up under another name.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("-v", "--verbose", is_flag=True, help="Print every step, even on a terminal (a progress bar otherwise).")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed and stopped as JSON.")
@click.option("--machine", metavar="M", help="Remove machine M's share of a lab across machines, here.")
@click.option("--ssh-config", type=click.Path(dir_okay=False), help="OpenSSH client config (default ~/.ssh/config).")
@guard
def down(
    target: str,
    name: str | None,
    quiet: bool,
    verbose: bool,
    as_json: bool,
    machine: str | None,
    ssh_config: str | None,
) -> None:
    """Remove everything nsnet created for a lab (TARGET: lab name or topology file), nothing else.

    \b
    Every process still running in one of the lab's namespaces (started with
    `nsnet exec`, a server, etcd) is stopped first: SIGTERM, then SIGKILL.
    A lab that is not up is nothing to do (exit 0). A lab across machines
    is removed from every machine (over SSH); --machine M removes M's share here.
    """
    lab, topology = lab_and_topology(target, name)
    driven = None if machine else machines_cli.driven_machines(target, topology, name)
    if driven is not None:
        machines_cli.drive_down(driven[0], driven[1], quiet, as_json, ssh_config)
        return
    if machine is not None:
        machines_cli.local_down(lab, machine)
    talk = not quiet and not as_json
    killed: list[procs.Proc] = []

    def on_kill(found: list[procs.Proc]) -> None:
        killed.extend(found)
        if talk:
            for line in procs.describe(found):
                out.print(f"  [green]-[/] {escape(line)}", markup=True, soft_wrap=True)

    try:
        with progress.reporter(talk, verbose) as report:
            steps = lifecycle.down(lab, on_step=report.step, on_plan=report.start, on_kill=on_kill)
    except KeyboardInterrupt:
        fail(f"interrupted: {directory.state_of(lab)}; `nsnet down {lab}` again finishes removing it", 130)
    except LabNotFoundError:
        if machine is not None:
            machines_cli.forget(lab)
        if as_json:
            emit_json({"lab": lab, "was_up": False, "steps": [], "killed": []}, "down")
        elif not quiet:
            out.print(f"lab {lab} is not up: nothing to do", markup=False)
        return
    if machine is not None:
        machines_cli.forget(lab)
    for kept in steps.kept:
        err.print(f"nsnet: kept {kept}", markup=False, soft_wrap=True)
    if as_json:
        emit_json(
            {
                "lab": lab,
                "was_up": True,
                "steps": steps.lines(),
                "kept": list(steps.kept),
                "killed": [{"pid": p.pid, "name": p.name, "node": p.node, "namespace": p.ns} for p in killed],
            },
            "down",
        )
    elif talk:
        out.print(f"lab {lab}: down ({plural(len(steps.actions), 'step')})", markup=False)


@main.command(name="ls")
@click.option("--wide", is_flag=True, help="List every node (by default a lab's first few, and how many more).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@guard
def ls(wide: bool, as_json: bool) -> None:
    """List the labs that are up, with their nodes and namespaces."""
    labs = directory.labs()
    across = machines_cli.driven_rows()
    if as_json:
        emit_json([asdict(lab) for lab in labs] + across, "lab")
        return
    if across:
        table = Panel("", "LAB", "MACHINE", "STATUS", "NODES", "FILE")
        for row in across:
            table.add_row(row["lab"], f"{row['machine']} ({row['ssh']})", row["status"], row["nodes"], row["source"])
        for _, line in table.lines():
            click.echo(line.rstrip())
        if not labs:
            return
    if not labs:
        out.print("no labs are up", markup=False)
        return
    table = Panel("", "LAB", "STATUS", "HOST", "NODES", "FILE")
    for lab in labs:
        status = lab.status + (f" (missing: {_first(lab.missing, wide)})" if lab.missing else "")
        if lab.problem:
            status += f" ({lab.problem})"
        table.add_row(lab.name, status, lab.host, _nodes(lab.nodes, wide), lab.source or "")
    for _, line in table.lines():
        click.echo(line.rstrip())


LS_NODES = 6
"""Nodes ``ls`` names per lab without --wide."""


def _nodes(nodes: dict[str, str], wide: bool) -> str:
    named = [n if n == ns else f"{n} ({ns})" for n, ns in nodes.items()]
    if wide or len(named) <= LS_NODES:
        return ", ".join(named)
    return f"{len(named)} nodes: " + _first(named, wide)


def _first(items: list[str], wide: bool) -> str:
    if wide or len(items) <= LS_NODES:
        return ", ".join(items)
    return ", ".join(items[: LS_NODES - 1]) + f", ... (+{len(items) - LS_NODES + 1} more; --wide lists all)"


def _enter_argv(lab: str, node: str, argv: list[str]) -> list[str]:
    ns = directory.namespace_of(lab, node)
    preflight.require_root("enter a namespace")
    if ns == ROOT_NS:
        return argv
    if not netns.exists(ns):
        fail(
            f"node {node}'s namespace {ns} is gone (deleted outside nsnet): "
            f"{directory.up_again(directory.journal_of(lab))} makes it again, `nsnet down {lab}` removes the rest"
        )
    preflight.require_tools("ip")
    return ["ip", "netns", "exec", ns, *argv]


@main.command(name="exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("lab", shell_complete=complete.labs)
@click.argument("node", shell_complete=complete.nodes)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@guard
def exec_(lab: str, node: str, command: tuple[str, ...]) -> None:
    """Run COMMAND in NODE's namespace (NODE may be `host`): nsnet exec lab2 RED -- ip addr."""
    argv = list(command[1:] if command and command[0] == "--" else command)
    if not argv:
        fail("no command given: nsnet exec LAB NODE -- COMMAND...")
    full = _enter_argv(lab, node, argv)
    if shutil.which(argv[0]) is None:
        fail(f"command not found: {argv[0]}", 127)
    try:
        os.execvp(full[0], full)
    except FileNotFoundError:
        fail(f"command not found: {full[0]}", 127)


@main.command()
@click.argument("lab", shell_complete=complete.labs)
@click.argument("node", shell_complete=complete.nodes)
@guard
def shell(lab: str, node: str) -> None:
    """Open an interactive shell in NODE's namespace, with a prompt that names it."""
    env = dict(os.environ, NSNET_LAB=lab, NSNET_NODE=node, PS1=f"[nsnet {lab}:{node}] \\$ ")
    shell_path = os.environ.get("SHELL") or "/bin/sh"
    argv = [shell_path]
    if os.path.basename(shell_path) == "bash":
        rc = Path(os.environ.get("NSNET_STATE_DIR", "/run/nsnet")) / "shellrc"
        rc.parent.mkdir(parents=True, exist_ok=True)
        rc.write_text(SHELL_RC)
        argv = [shell_path, "--rcfile", str(rc), "-i"]
    full = _enter_argv(lab, node, argv)
    os.execvpe(full[0], full, env)


@main.command()
def schema() -> None:
    """Print the JSON Schema of the topology file format (for editors)."""
    from nsnet.topology.schema import json_schema

    emit_json(json_schema(), None)


@main.command()
@click.argument("lab", required=False, shell_complete=complete.labs)
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Print what was (or would be) removed as JSON.")
@guard
def gc(lab: str | None, dry_run: bool, as_json: bool) -> None:
    """Remove namespaces nsnet marked for LAB (or any lab) that no journal knows of.

    \b
    After a crash, a reboot of /run, or a deleted journal, nsnet still finds
    its namespaces by their mark (the alias of their `lo`: nsnet:LAB:NODE:STATE)
    and removes those, and nothing else, after stopping the processes still
    running in them. `nsnet down LAB` does the same for one lab whose
    journal is gone.
    """
    found = recover.gc(lab, dry_run=dry_run)
    if as_json:
        emit_json([asdict(m) for m in found], "gc")
        return
    verb = "would remove" if dry_run else "removed"
    for m in found:
        out.print(f"{verb} namespace {m.netns} (lab {m.lab}, node {m.node})", markup=False)
    if not found:
        out.print("nothing to collect: every marked namespace belongs to a lab nsnet knows", markup=False)
