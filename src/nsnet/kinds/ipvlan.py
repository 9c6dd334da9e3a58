"""ipvlan: a link sharing its parent's MAC address, told apart by its IP addresses."""

from __future__ import annotations

from nsnet.kinds.base import Param, UpperKind

MODE = Param("mode", 1, "u16")  # IFLA_IPVLAN_MODE


class Ipvlan(UpperKind):
    name = "ipvlan"
    config = "CONFIG_IPVLAN"
    module = "ipvlan"
    mode_param = MODE
    modes = ("l2", "l3", "l3s")
    numbers = {"l2": 0, "l3": 1, "l3s": 2}


KIND = Ipvlan()
