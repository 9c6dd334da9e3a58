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

    from .engine import LabInfo, down, labs, plan_down, plan_up, up
    from .errors import (
        ApplyError,
        ChildError,
        CommandError,
        ConflictError,
        KernelError,
        LabNotFoundError,
        NsnetError,
        PreflightError,
        Problem,
        TopologyError,
    )
    from .lab import Capture, Completed, Lab, Node, Packet
    from .loader import from_dict, load, loads
    from .model import Topology, netns_names
    from .netexec import Child
    from .plan import Plan

_WHERE = {
    **dict.fromkeys(["LabInfo", "down", "labs", "plan_down", "plan_up", "up"], "engine"),
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
    **dict.fromkeys(["from_dict", "load", "loads"], "loader"),
    **dict.fromkeys(["Topology", "netns_names"], "model"),
    "Child": "netexec",
    "Plan": "plan",
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


__all__ = [
    "ApplyError",
    "Capture",
    "Child",
    "ChildError",
    "CommandError",
    "Completed",
    "ConflictError",
    "KernelError",
    "Lab",
    "LabInfo",
    "LabNotFoundError",
    "Node",
    "NsnetError",
    "Packet",
    "Plan",
    "PreflightError",
    "Problem",
    "Topology",
    "TopologyError",
    "__version__",
    "down",
    "from_dict",
    "labs",
    "load",
    "loads",
    "netns_names",
    "plan_down",
    "plan_up",
    "up",
]
