"""macvlan: a link with a MAC address of its own on a parent device of the host."""

from __future__ import annotations

from nsnet.kinds.base import Param, UpperKind

MODE = Param("mode", 1, "u32")  # IFLA_MACVLAN_MODE


class Macvlan(UpperKind):
    name = "macvlan"
    config = "CONFIG_MACVLAN"
    module = "macvlan"
    mode_param = MODE
    modes = ("bridge", "private", "vepa", "passthru")
    numbers = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8}


KIND = Macvlan()
