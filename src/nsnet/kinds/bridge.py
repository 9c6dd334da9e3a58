"""bridge: a Linux bridge (``bridges:`` of a namespace)."""

from __future__ import annotations

from typing import Any

from nsnet.kinds.base import Kind, LinkSpec, Param, Setting, where
from nsnet.model import Link

STP = Param("stp", 5, "u32")  # IFLA_BR_STP_STATE
AGEING = Param("ageing", 4, "u32")  # IFLA_BR_AGEING_TIME, in centiseconds


def _stp(on: bool, always: bool) -> Setting:
    return Setting(STP, int(on), f"stp_state {int(on)}" if on or always else "")


def _ageing(seconds: int) -> Setting:
    return Setting(AGEING, seconds * 100, f"ageing_time {seconds * 100}")


class Bridge(Kind):
    name = "bridge"
    params = (STP, AGEING)

    def describe(self, spec: LinkSpec) -> str:
        return f"create bridge {where(spec.ns)}:{spec.name}"

    def settings(self, link: Link) -> tuple[Setting, ...]:
        out = [_stp(bool(link.stp), always=False)]
        if link.ageing is not None:
            out.append(_ageing(link.ageing))
        return tuple(out)

    def changes(self, want: Link, have: Link) -> tuple[Setting, ...]:
        out = []
        if want.stp is not None and have.stp != want.stp:
            out.append(_stp(want.stp, always=True))
        if want.ageing is not None and have.ageing != want.ageing:
            out.append(_ageing(want.ageing))
        return tuple(out)

    def read(self, values: dict[str, Any]) -> dict[str, Any]:
        return {"stp": bool(values.get("stp")), "ageing": (values.get("ageing") or 0) // 100}

    def detail(self, link: Link) -> str:
        return "stp" if link.stp else ""


KIND = Bridge()
