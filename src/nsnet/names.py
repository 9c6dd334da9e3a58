"""The syntax of the names nsnet gives to labs, nodes, namespaces, interfaces and sysctls (no pydantic needed)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

# \Z, not $: $ also matches before a trailing newline, which would let "eth0\n" through.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.:-]+\Z")
IFNAME_MAX = 15
"""Linux's limit on an interface name, in bytes (IFNAMSIZ less the final NUL)."""
SYSCTL_RE = re.compile(r"^net(\.[A-Za-z0-9_-]+)+\Z")


def no_node(lab: str, node: str, known: Iterable[str]) -> str:
    """The message for a node ``lab`` lacks: a "did you mean" for a close name, and the nodes it has."""
    names = list(dict.fromkeys(known))
    close = difflib.get_close_matches(node, names, n=1, cutoff=0.6) or [n for n in names if n.lower() == node.lower()]
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"lab {lab!r} has no node {node!r}; {hint}nodes: {', '.join(names)}"
