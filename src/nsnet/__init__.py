"""nsnet: container networks on plain Linux network namespaces, built, seen and explained."""

from __future__ import annotations

__version__ = "0.1.0"

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
from .load import from_dict, load, loads
from .model import Topology, netns_names
from .netexec import Child
from .plan import Plan

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
