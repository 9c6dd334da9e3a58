"""Shell completion: lab names, node names, interfaces and sections, from the running labs.

Completion runs on every Tab press: each function here reads only the
journals (and, for interfaces, one namespace), and never fails: a lab
that cannot be read completes nothing.
"""

from __future__ import annotations

import contextlib
import os

import click
from click.shell_completion import CompletionItem

from nsnet.engine import directory
from nsnet.model import HOST

SHELLS = ("bash", "zsh", "fish")


def _lab_of(ctx: click.Context) -> str | None:
    lab = ctx.params.get("lab") or ctx.params.get("target")
    if lab is None and ctx.params.get("args"):
        lab = ctx.params["args"][0]
    return lab if isinstance(lab, str) else None


def labs(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The labs that are up (and, where a file is accepted, files)."""
    with contextlib.suppress(Exception):
        return [
            CompletionItem(info.name, help=info.source or info.status)
            for info in directory.labs()
            if info.name.startswith(incomplete)
        ]
    return []


def labs_or_files(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """A lab that is up, or a topology file."""
    return [*labs(ctx, param, incomplete), CompletionItem(incomplete, type="file")]


def nodes(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The nodes of the lab named earlier on the command line, ``host`` included."""
    lab = _lab_of(ctx)
    if lab is None:
        return []
    with contextlib.suppress(Exception):
        journal = directory.journal_of(lab)
        names = sorted({*journal.namespaces.values(), *([] if journal.hosts else [HOST])})
        return [CompletionItem(n) for n in names if n.startswith(incomplete)]
    return []


def points(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """For ``capture``: a lab first, then NODE or NODE:IFACE points."""
    if not ctx.params.get("args"):
        return labs(ctx, param, incomplete)
    node, sep, _ = incomplete.partition(":")
    if not sep:
        return [CompletionItem(c.value + ":", help="a node") for c in nodes(ctx, param, incomplete)] + nodes(
            ctx, param, incomplete
        )
    return [
        CompletionItem(f"{node}:{i}") for i in _interfaces(_lab_of(ctx), node) if f"{node}:{i}".startswith(incomplete)
    ]


def _interfaces(lab: str | None, node: str) -> list[str]:
    if lab is None or os.geteuid() != 0:
        return []
    with contextlib.suppress(Exception):
        from nsnet.kernel.netlink import Netlink

        ns = directory.namespace_of(lab, node)
        with Netlink() as nl:
            return sorted(m.name for m in nl.link_msgs(ns))
    return []


def sections(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """``--what``: the sections, comma-separated (completes the last one)."""
    from nsnet.inspect import SECTIONS

    done, _, last = incomplete.rpartition(",")
    prefix = f"{done}," if done else ""
    chosen = set(done.split(",")) if done else set()
    return [CompletionItem(prefix + s) for s in SECTIONS if s.startswith(last) and s not in chosen]


def script(shell: str, prog: str = "nsnet") -> str:
    """The completion script for ``shell`` (bash, zsh or fish), as ``eval`` or a completion file takes it."""
    from click.shell_completion import get_completion_class

    from nsnet.cli._common import main

    cls = get_completion_class(shell)
    if cls is None:
        raise click.BadParameter(f"no completion for {shell!r}: use one of {', '.join(SHELLS)}")
    complete_var = "_" + prog.replace("-", "_").upper() + "_COMPLETE"
    return cls(main, {}, prog, complete_var).source()
