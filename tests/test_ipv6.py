"""IPv6 as Docker does it: ip6tables policies, link-local addresses and DAD, NDP through bridged ip6tables,
gateway, masquerade and forwarding for IPv6 subnets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nsnet import TopologyError, loads
from nsnet.model import HOST, Route, Rule, State, bind
from nsnet.plan.diff import plan

from conftest import EXAMPLES, nsnet, sh

LAB2V6 = EXAMPLES / "lab2-bridge-ipv6.yaml"
LAB2V6_FIXED = EXAMPLES / "lab2-bridge-ipv6-fixed.yaml"
LAB4V6 = EXAMPLES / "lab4-outside-ipv6.yaml"
FETCH = "import sys,urllib.request;print(urllib.request.urlopen(sys.argv[1],timeout=3).read().decode(),end='')"


def up(path: str | Path, lab: str) -> None:
    result = nsnet("up", str(path), "--name", lab)
    assert result.code == 0, result.text


def ping6(lab: str, node: str, address: str, tries: int = 3) -> int:
    """ping's exit code, of the first of ``tries`` pings answered: a neighbour entry that failed before a fix
    fails the first packet sent after it (the kernel drops what it had queued for it)."""
    argv = ["ip", "netns", "exec", f"{lab}-{node}", "ping", "-6", "-c", "1", "-W", "2", address]
    code = 1
    for _ in range(tries):
        code = subprocess.run(argv, capture_output=True, check=False).returncode
        if code == 0:
            break
    return code


# -- the loader and the plan (no root) -----------------------------------------------------


@pytest.mark.unit
def test_policies6_are_ip6tables_policies_planned_apart_from_iptables_ones() -> None:
    topology = loads(LAB2V6.read_text())
    host = topology.namespaces[HOST]
    assert host.firewall.policies == {"ip6:FORWARD": "DROP"}
    desired = bind(topology)
    actions = plan(desired, State(desired.lab, {}), None).actions
    firewall = [a for a in actions if type(a).__name__ == "ApplyFirewall"]
    assert [a.family for a in firewall] == [6]
    assert ":FORWARD DROP" in firewall[0].text
    assert "ip6tables-restore" in firewall[0].commands()[0]


@pytest.mark.unit
def test_link_local_is_opt_in_and_needs_the_link_up() -> None:
    base = LAB2V6.read_text()
    topology = loads(
        base.replace('reth0: {addresses: ["fd00::2/64"]}', 'reth0: {addresses: ["fd00::2/64"], link_local: true}')
    )
    assert topology.namespaces["RED"].links["reth0"].link_local
    assert not topology.namespaces["BLUE"].links["beth0"].link_local
    with pytest.raises(TopologyError) as caught:
        loads(
            base.replace(
                'reth0: {addresses: ["fd00::2/64"]}', 'reth0: {addresses: ["fd00::2/64"], link_local: true, up: false}'
            )
        )
    assert "link_local: true needs the link up" in str(caught.value)


@pytest.mark.unit
def test_the_outside_world_in_ipv6_gateway_masquerade_forwarding() -> None:
    topology = loads(LAB4V6.read_text())
    red, host = topology.namespaces["RED"], topology.namespaces[HOST]
    assert {Route("0.0.0.0/0", "11.11.11.1"), Route("::/0", "fd00::1")} <= set(red.routes)
    assert host.sysctls["net.ipv6.conf.all.forwarding"] == "1"
    assert Rule(6, "nat", "POSTROUTING", "-s fd00::/64 ! -o br0 -j MASQUERADE") in host.firewall.rules
    assert Rule(6, "filter", "FORWARD", "-i br0 ! -o br0 -j ACCEPT") in host.firewall.rules
    assert "2001:db8::2/64" in topology.namespaces["outside"].links["eth0"].addresses
    assert "2001:db8::1/64" in host.links["up0"].addresses
    v4only = loads((EXAMPLES / "lab4-outside.yaml").read_text())
    assert not any(r.family == 6 for r in v4only.namespaces[HOST].firewall.rules)
    assert "net.ipv6.conf.all.forwarding" not in v4only.namespaces[HOST].sysctls


# -- the kernel ----------------------------------------------------------------------------


def test_ndp_dies_at_the_ip6tables_forward_policy_and_explain_says_so(lab_name: str) -> None:
    up(LAB2V6, lab_name)
    # The probe first: after a failed resolution the kernel solicits again only a second later,
    # after the probe's wait (a ping right before it would leave that FAILED entry).
    result = nsnet("explain", "--probe", "--json", lab_name, "RED", "fd00::3")
    assert result.code == 1, result.text
    explained = json.loads(result.out)
    verdict = explained["verdict"]
    assert "neighbour solicitation for fd00::3 (NDP, ICMPv6 type 135)" in verdict
    assert "policy DROP of FORWARD" in verdict
    assert explained["observed"]["agrees"], explained["observed"]
    assert ping6(lab_name, "RED", "fd00::3", tries=1) == 1
    command = explained["fix"]["command"]
    assert "ip6tables" in command and "fd00::/64" in command
    subprocess.run(command, shell=True, check=True)
    assert ping6(lab_name, "RED", "fd00::3") == 0


def test_the_fixed_lab_reaches(lab_name: str) -> None:
    up(LAB2V6_FIXED, lab_name)
    result = nsnet("reach", lab_name)
    assert result.code == 0, result.text


def test_link_local_addresses_are_out_of_dad_when_up_returns(lab_name: str, tmp_path: Path) -> None:
    path = tmp_path / "ll.yaml"
    path.write_text(
        LAB2V6_FIXED.read_text()
        .replace("br0: {}", "br0: {link_local: true}")
        .replace('reth0: {addresses: ["fd00::2/64"]}', 'reth0: {addresses: ["fd00::2/64"], link_local: true}')
        .replace('beth0: {addresses: ["fd00::3/64"]}', 'beth0: {addresses: ["fd00::3/64"], link_local: true}')
    )
    up(path, lab_name)
    shown = sh("ip", "-n", f"{lab_name}-RED", "-6", "addr", "show", "reth0")
    assert "scope link" in shown and "tentative" not in shown
    assert "tentative" not in sh("ip", "-n", f"{lab_name}-host", "-6", "addr", "show", "br0")
    link_local = next(
        w for line in shown.splitlines() if "scope link" in line for w in line.split() if w.startswith("fe80")
    )
    ll_blue = sh("ip", "-n", f"{lab_name}-BLUE", "-6", "addr", "show", "beth0")
    assert "fe80" in ll_blue
    assert (
        nsnet("plan", str(path), "--name", lab_name)
        .out.strip()
        .endswith("nothing to do, the kernel matches the topology")
    )
    assert ping6(lab_name, "BLUE", "fd00::2", tries=1) == 0
    # From fe80:: the solicitation is not in fd00::/64: the host's FORWARD policy drops it, as it should.
    assert ping6(lab_name, "BLUE", link_local.split("/")[0] + "%beth0", tries=1) == 1


def test_masquerade_to_the_outside_in_ipv6(lab_name: str) -> None:
    up(LAB4V6, lab_name)
    page = subprocess.run(
        ["ip", "netns", "exec", f"{lab_name}-RED", sys.executable, "-c", FETCH, "http://[2001:db8::2]/"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert page.returncode == 0, page.stderr
    assert page.stdout.splitlines()[1].startswith("client 2001:db8::1")  # the host's uplink: masquerade
    result = nsnet("reach", lab_name)
    assert result.code == 0, result.text
