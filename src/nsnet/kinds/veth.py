"""veth: a pair of links, each end in its namespace (``links:`` of a topology)."""

from __future__ import annotations

from nsnet.kinds.base import Kind, LinkSpec, where
from nsnet.model import ROOT_NS, Endpoint, Link


class Veth(Kind):
    name = "veth"
    order = 1
    linked = "peer"

    def create(self, ns: str, link: Link, mark: str) -> LinkSpec:
        assert link.peer is not None
        here, there = Endpoint(ns, link.name), link.peer
        # Made from the end in the root namespace when there is one: a script's `netns 1`
        # would be PID 1's namespace, not necessarily the one the script runs in.
        if there.ns == ROOT_NS and here.ns != ROOT_NS:
            here, there = there, here
        return LinkSpec(here.ns, here.ifname, self.name, mark, peer=there)

    def describe(self, spec: LinkSpec) -> str:
        assert spec.peer is not None
        return f"create veth pair {where(spec.ns)}:{spec.name} <-> {where(spec.peer.ns)}:{spec.peer.ifname}"

    def identity(self, link: Link) -> object:
        return link.peer

    def probe(self) -> list[str]:
        return ["ip link add nsnet-probe type veth peer name nsnet-probe1"]


KIND = Veth()
