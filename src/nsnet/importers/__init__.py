"""Labs written for other tools, imported as nsnet topologies: Kathará (``lab.conf`` and start-up scripts)
and containerlab (``*.clab.yml``).

:func:`import_lab` reads a lab into a :class:`Draft`; :func:`render` writes it as a topology file whose
header lists, with file and line, every line that was not translated and why.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from nsnet.errors import NsnetError
from nsnet.importers.draft import Draft, Note

FORMATS = ("kathara", "containerlab")


def import_lab(kind: str, path: str | Path) -> Draft:
    """Read the lab at ``path`` (a Kathará lab directory, or a containerlab file)."""
    if kind == "kathara":
        from nsnet.importers.kathara import read

        return read(path)
    if kind == "containerlab":
        from nsnet.importers.containerlab import read as read_clab

        return read_clab(path)
    raise NsnetError(f"{kind!r} is not a format nsnet imports: use one of {', '.join(FORMATS)}")


def render(draft: Draft) -> str:
    """The draft as a topology file: a header (the source, its description, the notes), then the YAML."""
    head = [f"Imported by `nsnet import` from {draft.source}."]
    head += draft.comment
    if draft.notes:
        head.append("Not translated (file:line: what: line (why)):")
        head += [f"  {note.describe()}" for note in draft.notes]
    commands = draft.exec_commands()
    if commands:
        head.append("Kept as commands to run in the node after `nsnet up` (`nsnet import --check` runs them):")
        head += [f"  {node}: {cmd}" for node, cmds in commands.items() for cmd in cmds]
    text = "".join(f"# {line}\n" for line in head)
    return text + yaml.safe_dump(draft.topology(), sort_keys=False, default_flow_style=None, width=100)


__all__ = ["FORMATS", "Draft", "Note", "import_lab", "render"]
