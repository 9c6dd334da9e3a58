"""Firewall rules: what nsnet writes reads back identically, so `up` is idempotent."""

from __future__ import annotations

from pathlib import Path

from conftest import nsnet, sh

RULES = """
name: fw
host:
  firewall:
    policies: {FORWARD: DROP, INPUT: ACCEPT}
    rules:
      - {chain: FORWARD, source: 10.1.0.0/16, destination: 10.2.0.5, action: ACCEPT}
      - {chain: FORWARD, in: "veth+", out: br0, protocol: tcp, sport: "1000:2000", dport: 80, action: ACCEPT}
      - {chain: FORWARD, protocol: udp, dport: 53, state: [ESTABLISHED, NEW, RELATED], action: ACCEPT}
      - {chain: FORWARD, protocol: icmp, action: REJECT}
      - {chain: INPUT, protocol: all, state: [INVALID], action: DROP}
      - {chain: OUTPUT, destination: 192.0.2.0/24, action: RETURN}
      - {chain: FORWARD, protocol: sctp, dport: 9, action: LOG}
      - {table: nat, chain: POSTROUTING, source: 10.1.0.0/16, out: "!br0", action: MASQUERADE}
      - {table: mangle, chain: PREROUTING, protocol: tcp, dport: 443, action: ACCEPT}
      - {table: raw, chain: PREROUTING, protocol: icmp, action: ACCEPT}
      - {chain: FORWARD, source: "fd00::/64", protocol: icmpv6, action: ACCEPT}
      - {chain: INPUT, family: ipv6, protocol: tcp, dport: 22, action: REJECT}
nodes:
  A: {}
"""


def test_rules_read_back_identically(lab_name: str, tmp_path: Path) -> None:
    path = tmp_path / "fw.yaml"
    path.write_text(RULES.replace('out: "!br0", ', ""))
    result = nsnet("up", str(path), "--name", lab_name)
    assert result.code == 0, result.text
    again = nsnet("plan", str(path), "--name", lab_name)
    assert again.code == 0, again.text
    assert "nothing to do" in again.out, again.out

    host = f"{lab_name}-host"
    v4 = sh("ip", "netns", "exec", host, "iptables-save")
    assert '-A FORWARD -m comment --comment "nsnet:' in v4
    assert "-A NSNET-FORWARD -s 10.1.0.0/16 -d 10.2.0.5/32 -j ACCEPT" in v4
    assert "-A NSNET-POSTROUTING -s 10.1.0.0/16 -j MASQUERADE" in v4
    v6 = sh("ip", "netns", "exec", host, "ip6tables-save")
    assert "-A NSNET-INPUT -p tcp -m tcp --dport 22 -j REJECT --reject-with icmp6-port-unreachable" in v6

    # Removing every rule removes nsnet's chains and jumps, in both families.
    path.write_text("name: fw\nnodes:\n  A: {}\n")
    result = nsnet("up", str(path), "--name", lab_name)
    assert result.code == 0, result.text
    for tool in ("iptables-save", "ip6tables-save"):
        saved = sh("ip", "netns", "exec", host, tool)
        assert "NSNET" not in saved and "nsnet:" not in saved, saved
    assert ":FORWARD ACCEPT" in sh("ip", "netns", "exec", host, "iptables-save", "-t", "filter")
    assert "nothing to do" in nsnet("plan", str(path), "--name", lab_name).out
