"""dummy: a link of one namespace that leads nowhere, for addresses of the node itself (a loopback of its own)."""

from __future__ import annotations

from nsnet.kinds.base import Kind, Problem
from nsnet.model import Link


class Dummy(Kind):
    name = "dummy"
    config = "CONFIG_DUMMY"
    module = "dummy"
    user = True

    def detail(self, link: Link) -> str:
        return "dummy"

    def check(self, spec: object) -> list[Problem]:
        return [
            ((key,), f"a dummy interface takes no {key}", f"remove {key}:")
            for key in ("parent", "mode")
            if getattr(spec, key, None) is not None
        ]


KIND = Dummy()
