"""vxlan: a VXLAN tunnel device (``vxlans:`` of a host in a lab of several hosts)."""

from __future__ import annotations

from typing import Any

from nsnet.kinds.base import Kind, LinkSpec, Param, Setting, where
from nsnet.model import Link, Vxlan

VNI = Param("vni", 1, "u32")  # IFLA_VXLAN_ID
REMOTE = Param("remote", 2, "ipv4")  # IFLA_VXLAN_GROUP
DEV = Param("dev", 3, "ifindex")  # IFLA_VXLAN_LINK
LOCAL = Param("local", 4, "ipv4")
LEARNING = Param("learning", 7, "u8")
PROXY = Param("proxy", 11, "u8")
L2MISS = Param("l2miss", 13, "u8")
L3MISS = Param("l3miss", 14, "u8")
PORT = Param("port", 15, "be16")


class VxlanKind(Kind):
    name = "vxlan"
    order = 2  # after the veths: its underlay device is one
    params = (VNI, REMOTE, DEV, LOCAL, LEARNING, PROXY, L2MISS, L3MISS, PORT)

    def settings(self, link: Link) -> tuple[Setting, ...]:
        vx = link.vxlan
        assert vx is not None
        out = [Setting(VNI, vx.vni, f"id {vx.vni}"), Setting(PORT, vx.port, f"dstport {vx.port}")]
        if vx.local:
            out.append(Setting(LOCAL, vx.local, f"local {vx.local}"))
        if vx.remote:
            out.append(Setting(REMOTE, vx.remote, f"remote {vx.remote}"))
        if vx.dev:
            out.append(Setting(DEV, vx.dev, f"dev {vx.dev}"))
        out.append(Setting(LEARNING, int(vx.learning), "learning" if vx.learning else "nolearning"))
        for param, on in ((PROXY, vx.proxy), (L2MISS, vx.l2miss), (L3MISS, vx.l3miss)):
            out.append(Setting(param, int(on), param.key if on else ""))
        return tuple(out)

    def describe(self, spec: LinkSpec) -> str:
        vni = next(s.value for s in spec.data if s.param == VNI)
        return f"create VXLAN device {where(spec.ns)}:{spec.name} (VNI {vni})"

    def identity(self, link: Link) -> object:
        return link.vxlan

    def read(self, values: dict[str, Any]) -> dict[str, Any]:
        return {
            "vxlan": Vxlan(
                vni=values.get("vni") or 0,
                port=values.get("port") or 0,
                local=values.get("local"),
                remote=values.get("remote"),
                dev=values.get("dev"),
                learning=bool(values.get("learning")),
                proxy=bool(values.get("proxy")),
                l2miss=bool(values.get("l2miss")),
                l3miss=bool(values.get("l3miss")),
            )
        }

    def detail(self, link: Link) -> str:
        return f"VNI {link.vxlan.vni}" if link.vxlan else ""

    def probe(self) -> list[str]:
        return ["ip link add nsnet-probe type vxlan id 1 dstport 4789"]


KIND = VxlanKind()
