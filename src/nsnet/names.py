"""The syntax of the names nsnet gives to labs, nodes, namespaces, interfaces and sysctls (no pydantic needed)."""

from __future__ import annotations

import re

# \Z, not $: $ also matches before a trailing newline, which would let "eth0\n" through.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.:-]+\Z")
IFNAME_MAX = 15
"""Linux's limit on an interface name, in bytes (IFNAMSIZ less the final NUL)."""
SYSCTL_RE = re.compile(r"^net(\.[A-Za-z0-9_-]+)+\Z")
