"""Which link kinds this kernel can make.

A kernel may be built without macvlan, ipvlan or dummy (``CONFIG_IPVLAN``...):
a topology that uses one is refused before anything changes, naming the
option and the module. Each kind is tried once per process, in a private,
throwaway network namespace.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterable

from nsnet import kinds
from nsnet.errors import PreflightError


@functools.cache
def available(name: str) -> bool:
    """Whether this kernel makes links of kind ``name`` (tried with the kind's own probe commands)."""
    script = " && ".join(kinds.get(name).probe())
    probe = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, check=False)
    return probe.returncode == 0


def require(used: Iterable[str]) -> None:
    """Refuse kinds this kernel lacks, before anything changes."""
    missing = [kinds.get(name) for name in sorted(set(used)) if kinds.get(name).config and not available(name)]
    if missing:
        what = "; ".join(f"{k.name} interfaces need {k.config} (module {k.module})" for k in missing)
        raise PreflightError(
            f"this kernel cannot make the topology's {' and '.join(k.name for k in missing)} interfaces: {what}, "
            "which it lacks; load the module (modprobe), run on a kernel built with it, "
            "or use another kind of interface"
        )
