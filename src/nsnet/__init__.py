"""nsnet: container networks on plain Linux network namespaces, built, seen and explained.

The public names load on first use (PEP 562), so that ``import nsnet`` and
the ``nsnet-cni`` plugin, started once per container, stay fast.
"""

from __future__ import annotations

import importlib as _importlib

__version__ = "0.1.0"

_TYPE_CHECKING = False  # typing is not imported at run time (nsnet-cni starts once per container)
if _TYPE_CHECKING:
    import typing as _typing

    from nsnet.engine.directory import (
        LabInfo as LabInfo,
    )
    from nsnet.engine.directory import (
        labs as labs,
    )
    from nsnet.engine.lifecycle import (
        down as down,
    )
    from nsnet.engine.lifecycle import (
        plan_down as plan_down,
    )
    from nsnet.engine.lifecycle import (
        plan_up as plan_up,
    )
    from nsnet.engine.lifecycle import (
        up as up,
    )
    from nsnet.errors import (
        ApplyError as ApplyError,
    )
    from nsnet.errors import (
        ChildError as ChildError,
    )
    from nsnet.errors import (
        CommandError as CommandError,
    )
    from nsnet.errors import (
        ConflictError as ConflictError,
    )
    from nsnet.errors import (
        KernelError as KernelError,
    )
    from nsnet.errors import (
        LabNotFoundError as LabNotFoundError,
    )
    from nsnet.errors import (
        NsnetError as NsnetError,
    )
    from nsnet.errors import (
        PreflightError as PreflightError,
    )
    from nsnet.errors import (
        Problem as Problem,
    )
    from nsnet.errors import (
        TopologyError as TopologyError,
    )
    from nsnet.kernel.netexec import (
        Child as Child,
    )
    from nsnet.lab import (
        Capture as Capture,
    )
    from nsnet.lab import (
        Completed as Completed,
    )
    from nsnet.lab import (
        Lab as Lab,
    )
    from nsnet.lab import (
        Node as Node,
    )
    from nsnet.lab import (
        Packet as Packet,
    )
    from nsnet.model import (
        Topology as Topology,
    )
    from nsnet.model import (
        netns_names as netns_names,
    )
    from nsnet.plan.actions import (
        Plan as Plan,
    )
    from nsnet.topology.loader import (
        from_dict as from_dict,
    )
    from nsnet.topology.loader import (
        load as load,
    )
    from nsnet.topology.loader import (
        loads as loads,
    )

# Each public name and the module that defines it: the one list (``__all__`` is made from it).
_WHERE = {
    **dict.fromkeys(["LabInfo", "labs"], "engine.directory"),
    **dict.fromkeys(["down", "plan_down", "plan_up", "up"], "engine.lifecycle"),
    **dict.fromkeys(
        [
            "ApplyError",
            "ChildError",
            "CommandError",
            "ConflictError",
            "KernelError",
            "LabNotFoundError",
            "NsnetError",
            "PreflightError",
            "Problem",
            "TopologyError",
        ],
        "errors",
    ),
    **dict.fromkeys(["Capture", "Completed", "Lab", "Node", "Packet"], "lab"),
    **dict.fromkeys(["from_dict", "load", "loads"], "topology.loader"),
    **dict.fromkeys(["Topology", "netns_names"], "model"),
    "Child": "kernel.netexec",
    "Plan": "plan.actions",
}


def __getattr__(name: str) -> _typing.Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'nsnet' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = sorted([*_WHERE, "__version__"])
