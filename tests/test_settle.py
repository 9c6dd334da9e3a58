"""``up`` returns only when the links it brought up carry packets (the kernel's link watcher is done)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from nsnet import Lab
from nsnet.kernel import rtnl, settle
from nsnet.kernel.netlink import Netlink

from conftest import EXAMPLES, unique_name


@pytest.fixture
def netns() -> Iterator[str]:
    name = unique_name()
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def ip(ns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", ns, *args], check=True)


def test_a_veth_up_with_carrier_but_not_operational_is_waited_for(netns: str) -> None:
    # A dormant link has carrier but is not operationally UP: the state a veth
    # end is in until the link watcher attaches its queue, held here at will.
    ip(netns, "link", "add", "name", "va", "type", "veth", "peer", "name", "vb")
    for end in ("va", "vb"):  # no link-local address, so no DAD to wait for here (see the test below)
        ip(netns, "link", "set", end, "addrgenmode", "none")
    ip(netns, "link", "set", "va", "mode", "dormant")
    ip(netns, "link", "set", "va", "up")
    ip(netns, "link", "set", "vb", "up")
    with Netlink() as nl:
        assert settle.unsettled(nl, netns) == ["va"]
        assert settle.wait(nl, [netns], timeout=0.2) == {netns: ["va"]}
        ip(netns, "link", "set", "va", "mode", "default")
        ip(netns, "link", "set", "vb", "down")
        ip(netns, "link", "set", "vb", "up")
        assert settle.wait(nl, [netns], timeout=10) == {}
        ip(netns, "link", "set", "vb", "down")  # no carrier: nothing to wait for
        assert settle.unsettled(nl, netns) == []


def test_every_link_of_a_lab_is_operational_when_up_returns(lab_name: str) -> None:
    with Lab(EXAMPLES / "lab2-bridge-fixed.yaml", name=lab_name) as lab, Netlink() as nl:
        for ns in lab.namespaces.values():
            states = {m.name: m.operstate for m in nl.link_msgs(ns) if m.kind in ("veth", "bridge")}
            assert states and set(states.values()) == {rtnl.IF_OPER_UP}, (ns, states)
        assert lab.ping("RED", "BLUE")


def test_tentative_ipv6_addresses_are_waited_for(netns: str) -> None:
    ip(netns, "link", "add", "name", "va", "type", "veth", "peer", "name", "vb")
    ip(netns, "addr", "add", "fd00::1/64", "dev", "va")  # with DAD: tentative once the link is up
    ip(netns, "link", "set", "va", "up")
    ip(netns, "link", "set", "vb", "up")
    with Netlink() as nl:
        assert "fd00::1" in settle.tentative(nl, netns)
        assert settle.wait(nl, [netns], timeout=10) == {}
        assert settle.tentative(nl, netns) == []
