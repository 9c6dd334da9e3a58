"""What every pass of the loader writes to: the problems found so far, each placed at its line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from nsnet.errors import Problem
from nsnet.model import HOST, UNDERLAY
from nsnet.topology.source import Loc, path_text


class Report:
    """The problems of one topology file, and what the passes learn that later ones need to place them."""

    def __init__(self, filename: str, lines: dict[Loc, int]) -> None:
        self.filename = filename
        self.lines = lines
        """The line of each location of the file (empty for a topology given as Python data)."""
        self.problems: list[Problem] = []
        self.named_in_links: set[tuple[str, str]] = set()
        """(namespace, interface) of every well-formed link endpoint, even of rejected links."""
        self.hosts: set[str] = set()
        """The hosts of a multi-host lab."""

    def base(self, name: str) -> Loc:
        """Where a namespace is described in the file."""
        if name == HOST:
            return ("host",)
        if name == UNDERLAY:
            return ("underlay",)
        return ("hosts", name) if name in self.hosts else ("nodes", name)

    def add(self, loc: Loc, message: str, hint: str = "") -> None:
        """A problem at ``loc`` (placed at the line of its nearest enclosing location the file has)."""
        line = None
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                line = self.lines[loc[:end]]
                break
        self.problems.append(Problem(self.filename, line, path_text(loc), message, hint))


def suggest(word: str, options: Iterable[str]) -> str:
    """ "did you mean ...?" for the option closest to ``word``, or nothing."""
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}?" if match else ""
