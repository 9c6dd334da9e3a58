"""Bad input: every problem is reported at once, each with its line, field path, message and hint.

The first half checks :func:`nsnet.loads` directly, one bad input at a time,
with the exact :class:`~nsnet.Problem` expected. The second half runs the
CLI: ``validate`` output, and ``up`` refusing bad files, a non-root user, a
missing tool and a namespace that belongs to someone else -- each time
changing nothing in the kernel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nsnet import Problem, TopologyError, loads
from nsnet.topology.loader import MAX_NODES

from conftest import EXAMPLES, netns_list, nsnet, root_links, sh

pytestmark = pytest.mark.unit

FILE = "lab.yaml"
LAB2 = str(EXAMPLES / "lab2-bridge.yaml")

# A valid lab (the seed's lab 2, host last so that lines can be appended to it).
BASE = """\
name: lab
nodes:
  RED:
    interfaces:
      reth0: {addresses: [11.11.11.2/24]}
  BLUE:
    interfaces:
      beth0: {addresses: [11.11.11.3/24]}
links:
  - [RED:reth0, host:reth1]
  - [BLUE:beth0, host:beth1]
host:
  bridges:
    br0: {}
  interfaces:
    reth1: {master: br0}
    beth1: {master: br0}
"""
RED5 = "reth0: {addresses: [11.11.11.2/24]}"  # line 5
# "Billion laughs": 9**9 strings once every alias is expanded, in a few hundred bytes.
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)
BOMB_HINT = "write the values out, or use fewer, smaller aliases"
IFACE = "nodes.RED.interfaces.reth0"

LAB_NAME_HINT = "use up to 32 letters, digits, _ . - (no '/' or '..'), starting with a letter or digit"
YAML_HINT = "check indentation, colons and quotes"
CIDR_EXAMPLE = "write it like 11.11.11.2/24 or fd00::2/64"
NOT_UNICAST = "is a multicast, loopback or unspecified address: use a unicast address"
IFNAME_CHARS = "may only use letters, digits and _ . : -"
PORT_FORMAT = "is not a port or range: write 80 or 1000:2000 (1-65535)"
NET_SYSCTLS = "only net.* keys such as net.ipv4.ip_forward can be set per namespace"
START = "start with `name: mylab`"

Expected = tuple[int | None, str, str, str]
"""A problem as (line, path, message, hint)."""


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, f"{old!r} must occur once"
    return text.replace(old, new)


def rule(spec: str) -> str:
    """BASE with one firewall rule in the host; the rule is on line 20."""
    return BASE + f"  firewall:\n    rules:\n      - {spec}\n"


def host_lines(*lines: str) -> str:
    """BASE with more lines in the host mapping, from line 18."""
    return BASE + "".join(f"  {line}\n" for line in lines)


def problems(text: str) -> list[Expected]:
    with pytest.raises(TopologyError) as info:
        loads(text, FILE)
    assert all(p.file == FILE for p in info.value.problems)
    return [(p.line, p.path, p.message, p.hint) for p in info.value.problems]


def test_base_is_valid() -> None:
    topology = loads(BASE, FILE)
    assert topology.nodes == ["RED", "BLUE"]


# (id, text, the problem expected -- or the problems, in order -- as line, path, message, hint)
CASES: list[tuple[str, str, Expected | list[Expected]]] = [
    # -- YAML itself ---------------------------------------------------------
    (
        "yaml-syntax",
        edit(RED5, "reth0: addresses: [11.11.11.2/24]"),
        (5, "", "YAML syntax error: mapping values are not allowed here", YAML_HINT),
    ),
    (
        "yaml-unclosed-quote",
        "name: 'lab\nnodes: {}\n",
        (3, "", "YAML syntax error: while scanning a quoted scalar found unexpected end of stream", YAML_HINT),
    ),
    (
        "yaml-tab",
        "name: lab\nnodes:\n\tRED: {}\n",
        (
            3,
            "",
            "YAML syntax error: while scanning for the next token found character '\\t' that cannot start any token",
            YAML_HINT,
        ),
    ),
    (
        "duplicate-key",
        edit("  BLUE:\n", "  RED:\n"),
        (6, "nodes", "duplicate key 'RED'", "each key may appear once; merge the two entries"),
    ),
    (
        "duplicate-top-level-key",
        BASE + "name: lab3\n",
        (18, "", "duplicate key 'name'", "each key may appear once; merge the two entries"),
    ),
    ("empty-file", "", (1, "", "the file is empty", START)),
    ("only-comments", "# a lab\n\n# more\n", (1, "", "the file is empty", START)),
    (
        "top-level-list",
        "- name: lab\n- nodes: {}\n",
        (1, "", "a topology must be a mapping of keys (name, nodes, links, host)", START),
    ),
    (
        "top-level-scalar",
        "lab2\n",
        (1, "", "a topology must be a mapping of keys (name, nodes, links, host)", START),
    ),
    (
        "key-read-as-bool",
        edit("  BLUE:\n", "  yes:\n"),
        (6, "nodes.True", "this key is not text: YAML reads it as True", "put the name in quotes, e.g. 'yes' or '123'"),
    ),
    # -- keys and types ------------------------------------------------------
    (
        "unknown-key-did-you-mean",
        edit(RED5, "reth0: {adresses: [11.11.11.2/24]}"),
        (5, f"{IFACE}.adresses", "unknown key 'adresses'", "did you mean 'addresses'?"),
    ),
    (
        "unknown-key-top-level",
        edit("nodes:\n", "node:\n"),
        (2, "node", "unknown key 'node'", "did you mean 'nodes'?"),
    ),
    (
        "unknown-key-no-match",
        edit(RED5, "reth0: {addresses: [11.11.11.2/24], colour: red}"),
        (
            5,
            f"{IFACE}.colour",
            "unknown key 'colour'",
            "allowed keys: addresses, mtu, mac, up, master, gateway, link_local, rate, delay, loss, kind, parent, mode",
        ),
    ),
    (
        "unknown-key-in-route",
        host_lines("routes:", "  - {to: default, dev: br0, gw: 11.11.11.1}"),
        (19, "host.routes[0].gw", "unknown key 'gw'", "allowed keys: to, via, dev, metric"),
    ),
    (
        "unknown-key-in-rule",
        rule("{chain: FORWARD, souce: 11.11.11.0/24, action: ACCEPT}"),
        (20, "host.firewall.rules[0].souce", "unknown key 'souce'", "did you mean 'source'?"),
    ),
    ("missing-name", BASE.removeprefix("name: lab\n"), (1, "name", "missing required key 'name'", "")),
    (
        "wrong-type-mtu",
        edit(RED5, "reth0: {addresses: [11.11.11.2/24], mtu: big}"),
        (
            5,
            f"{IFACE}.mtu",
            "wrong type: input should be a valid integer, unable to parse string as an integer (got 'big')",
            "",
        ),
    ),
    (
        "mtu-too-big",
        edit(RED5, "reth0: {addresses: [11.11.11.2/24], mtu: 100000}"),
        (5, f"{IFACE}.mtu", "Input should be less than or equal to 65535", ""),
    ),
    (
        "wrong-type-addresses",
        edit(RED5, "reth0: {addresses: 11.11.11.2/24}"),
        (5, f"{IFACE}.addresses", "wrong type: input should be a valid list (got '11.11.11.2/24')", ""),
    ),
    (
        "mac-read-as-number",
        edit(RED5, "reth0: {addresses: [11.11.11.2/24], mac: 525400123456}"),
        (
            5,
            f"{IFACE}.mac",
            "wrong type: input should be a valid string (got 525400123456)",
            "put it in quotes (unquoted, YAML reads it as a number or true/false)",
        ),
    ),
    (
        "bad-host-mode",
        edit("host:\n  bridges", "host:\n  mode: jail\n  bridges"),
        (13, "host.mode", "'jail' is not allowed here", "use one of 'sandbox' or 'root'"),
    ),
    # -- addresses -----------------------------------------------------------
    (
        "bad-cidr",
        edit("11.11.11.2/24", "11.11.11.300/24"),
        (5, f"{IFACE}.addresses[0]", f"'11.11.11.300/24' is not an address in CIDR form: {CIDR_EXAMPLE}", ""),
    ),
    (
        "address-without-prefix",
        edit("11.11.11.2/24", "11.11.11.2"),
        (5, f"{IFACE}.addresses[0]", "'11.11.11.2' has no prefix length: write it like 11.11.11.2/24", ""),
    ),
    (
        "network-address",
        edit("11.11.11.2/24", "11.11.11.0/24"),
        (
            5,
            f"{IFACE}.addresses[0]",
            "'11.11.11.0/24' is the network address of 11.11.11.0/24: pick a host address inside it",
            "",
        ),
    ),
    (
        "broadcast-address",
        edit("11.11.11.2/24", "11.11.11.255/24"),
        (
            5,
            f"{IFACE}.addresses[0]",
            "'11.11.11.255/24' is the broadcast address of 11.11.11.0/24: pick a host address inside it",
            "",
        ),
    ),
    (
        "multicast-address",
        edit("11.11.11.2/24", "224.0.0.5/24"),
        (5, f"{IFACE}.addresses[0]", f"'224.0.0.5/24' {NOT_UNICAST}", ""),
    ),
    (
        "ipv6-multicast-address",
        edit("11.11.11.2/24", "ff02::5/64"),
        (5, f"{IFACE}.addresses[0]", f"'ff02::5/64' {NOT_UNICAST}", ""),
    ),
    (
        "loopback-address",
        edit("11.11.11.2/24", "127.0.0.2/8"),
        (5, f"{IFACE}.addresses[0]", f"'127.0.0.2/8' {NOT_UNICAST}", ""),
    ),
    (
        "zero-prefix",
        edit("11.11.11.2/24", "11.11.11.2/0"),
        (
            5,
            f"{IFACE}.addresses",
            "11.11.11.2/0 has a /0 prefix, which covers every address",
            "use the subnet's real prefix",
        ),
    ),
    (
        "duplicate-address-across-nodes",
        edit("11.11.11.3/24", "11.11.11.2/24"),
        (
            8,
            "nodes.BLUE.interfaces.beth0.addresses",
            "address 11.11.11.2 is used twice (RED:reth0 and BLUE:beth0)",
            "give each interface its own address",
        ),
    ),
    (
        "overlapping-bridge-subnets",
        edit("    br0: {}\n", "    br0: {addresses: [10.0.0.1/24]}\n    br1: {addresses: [10.0.0.129/25]}\n"),
        (
            15,
            "host.bridges.br1",
            "subnet 10.0.0.128/25 on bridge host:br1 overlaps 10.0.0.0/24 on bridge host:br0",
            "give each bridge its own subnet",
        ),
    ),
    (
        "bad-mac",
        edit(RED5, "reth0: {addresses: [11.11.11.2/24], mac: 'zz:00:00:00:00:01'}"),
        (5, f"{IFACE}.mac", "'zz:00:00:00:00:01' is not a MAC address: write it like 02:00:00:00:00:01", ""),
    ),
    (
        "multicast-mac",
        edit(RED5, "reth0: {addresses: [11.11.11.2/24], mac: '01:00:5e:00:00:01'}"),
        (
            5,
            f"{IFACE}.mac",
            "'01:00:5e:00:00:01' is a multicast MAC (lowest bit of the first octet set): "
            "use a unicast one such as 02:00:00:00:00:01",
            "",
        ),
    ),
    (
        "mac-with-trailing-newline",
        edit(RED5, 'reth0: {addresses: [11.11.11.2/24], mac: "02:00:00:00:00:01\\n"}'),
        (5, f"{IFACE}.mac", "'02:00:00:00:00:01\\n' is not a MAC address: write it like 02:00:00:00:00:01", ""),
    ),
    # -- names ---------------------------------------------------------------
    (
        "lab-name-with-slash",
        edit("name: lab\n", "name: ../etc/lab\n"),
        (1, "name", "lab name '../etc/lab' is not allowed", LAB_NAME_HINT),
    ),
    (
        "lab-name-with-dotdot",
        edit("name: lab\n", "name: lab..x\n"),
        (1, "name", "lab name 'lab..x' is not allowed", LAB_NAME_HINT),
    ),
    (
        "lab-name-with-trailing-newline",
        edit("name: lab\n", 'name: "lab\\n"\n'),
        (1, "name", "lab name 'lab\\n' is not allowed", LAB_NAME_HINT),
    ),
    (
        "node-named-host",
        edit("nodes:\n", "nodes:\n  host: {}\n"),
        (3, "nodes.host", "'host' is reserved for the lab's host", "give the node another name"),
    ),
    (
        "node-name-with-space",
        edit("  BLUE:\n", "  BLUE 2:\n").replace("BLUE:beth0", "'BLUE 2:beth0'"),
        (
            6,
            "nodes.BLUE 2",
            "node name 'BLUE 2' is not allowed",
            "use up to 48 letters, digits, _ . -, starting with a letter or digit",
        ),
    ),
    # -- interfaces and links ------------------------------------------------
    (
        "interface-name-too-long",
        BASE.replace("reth0", "reth0-much-too-long"),
        (
            10,
            "links[0][0]",
            "interface name 'reth0-much-too-long' is 19 bytes long; Linux allows 15",
            "use a shorter name",
        ),
    ),
    (
        "interface-name-too-long-in-bytes",  # 9 characters, 17 bytes in UTF-8
        BASE.replace("reth0", "ééééééééx"),
        (10, "links[0][0]", "interface name 'ééééééééx' is 17 bytes long; Linux allows 15", "use a shorter name"),
    ),
    (
        "bridge-name-too-long",
        BASE.replace("br0", "bridge-much-too-long"),
        (
            14,
            "host.bridges.bridge-much-too-long",
            "interface name 'bridge-much-too-long' is 20 bytes long; Linux allows 15",
            "use a shorter name",
        ),
    ),
    (
        "interface-named-lo",
        BASE.replace("reth1", "lo"),
        (10, "links[0][1]", "interface name 'lo' is not allowed", "use letters, digits and _ . - (not 'lo')"),
    ),
    (
        "duplicate-interface-in-one-namespace",
        edit("  - [BLUE:beth0, host:beth1]\n", "  - [BLUE:beth0, host:beth1]\n  - [RED:reth0, BLUE:beth2]\n"),
        (12, "links[2][0]", "interface 'reth0' appears twice in RED", "give each end its own name"),
    ),
    (
        "link-end-named-like-a-bridge",
        edit("host:beth1]", "host:br0]").replace("    beth1: {master: br0}\n", ""),
        (11, "links[1][1]", "interface 'br0' appears twice in host", "give each end its own name"),
    ),
    (
        "endpoint-node-does-not-exist",
        edit("[BLUE:beth0,", "[BLEU:beth0,"),
        [  # and so BLUE's interface is left without a link
            (
                11,
                "links[1][0]",
                "endpoint 'BLEU:beth0' names node 'BLEU', which does not exist",
                "did you mean 'BLUE'?",
            ),
            (
                8,
                "nodes.BLUE.interfaces.beth0",
                "interface 'beth0' is not an end of any link in BLUE",
                "add a link [BLUE:beth0, OTHER:IFACE] or remove it",
            ),
        ],
    ),
    (
        "endpoint-without-colon",
        edit("[BLUE:beth0,", "[BLUE-beth0,"),
        [
            (11, "links[1][0]", "endpoint 'BLUE-beth0' is not NODE:IFACE", "write it like RED:reth0 or host:reth1"),
            (
                8,
                "nodes.BLUE.interfaces.beth0",
                "interface 'beth0' is not an end of any link in BLUE",
                "add a link [BLUE:beth0, OTHER:IFACE] or remove it",
            ),
        ],
    ),
    (
        "endpoint-in-long-form",
        edit("  - [BLUE:beth0, host:beth1]\n", "  - endpoints:\n      - BLUE:beth0\n      - host\n").replace(
            "    beth1: {master: br0}\n", ""
        ),
        (13, "links[1].endpoints[1]", "endpoint 'host' is not NODE:IFACE", "write it like RED:reth0 or host:reth1"),
    ),
    (
        "link-with-one-end",
        edit("[BLUE:beth0, host:beth1]", "[BLUE:beth0]"),
        (
            11,
            "links[1]",
            "a link joins exactly two endpoints; this one has 1 endpoint",
            "write both ends as NODE:IFACE, e.g. - [RED:eth0, host:veth0]",
        ),
    ),
    (
        "link-both-ends-in-one-namespace",
        edit("host:beth1]", "BLUE:beth1]").replace("    beth1: {master: br0}\n", ""),
        (
            11,
            "links[1]",
            "both ends of this link are in BLUE",
            "a veth link joins two different namespaces (node or host)",
        ),
    ),
    (
        "interface-not-an-end-of-any-link",
        edit(RED5, RED5 + "\n      reth9: {addresses: [11.11.12.2/24]}"),
        (
            6,
            "nodes.RED.interfaces.reth9",
            "interface 'reth9' is not an end of any link in RED",
            "did you mean 'reth0'?",
        ),
    ),
    (
        "interface-that-is-a-bridge",
        edit("  interfaces:\n    reth1:", "  interfaces:\n    br0: {addresses: [11.11.11.1/24]}\n    reth1:"),
        (16, "host.interfaces.br0", "'br0' is a bridge; set its addresses under bridges.br0", ""),
    ),
    (
        "master-bridge-does-not-exist",
        edit("reth1: {master: br0}", "reth1: {master: br1}"),
        (16, "host.interfaces.reth1.master", "bridge 'br1' does not exist in host", "did you mean 'br0'?"),
    ),
    (
        "master-bridge-does-not-exist-no-suggestion",
        edit("reth1: {master: br0}", "reth1: {master: switch}"),
        (16, "host.interfaces.reth1.master", "bridge 'switch' does not exist in host", "declare it under bridges:"),
    ),
    # -- routes --------------------------------------------------------------
    (
        "route-gateway-not-in-any-subnet",
        host_lines("routes:", "  - {to: default, via: 10.9.9.1}"),
        (
            19,
            "host.routes[0].via",
            "gateway 10.9.9.1 is not in any subnet of this namespace's interfaces",
            "add an address in the gateway's subnet, or name the interface with dev:",
        ),
    ),
    (
        "route-dev-does-not-exist",
        host_lines("routes:", "  - {to: 10.0.0.0/8, dev: br1}"),
        (19, "host.routes[0].dev", "interface 'br1' does not exist here", "did you mean 'br0'?"),
    ),
    (
        "route-to-not-a-network",
        host_lines("routes:", "  - {to: 10.0.0.1/8, dev: br0}"),
        (
            19,
            "host.routes[0].to",
            "'10.0.0.1/8' is not a network: write it like 10.0.0.0/8 (10.0.0.1/8 has host bits set)",
            "",
        ),
    ),
    (
        "route-without-via-or-dev",
        host_lines("routes:", "  - {to: default}"),
        (19, "host.routes[0]", "a route needs 'via' (a gateway) or 'dev' (an interface), or both", ""),
    ),
    # -- sysctls -------------------------------------------------------------
    (
        "sysctl-outside-net",
        host_lines("sysctls:", "  kernel.panic: 1"),
        (19, "host.sysctls.kernel.panic", "sysctl 'kernel.panic' is not a per-namespace network setting", NET_SYSCTLS),
    ),
    (
        "sysctl-path-traversal",
        host_lines("sysctls:", "  net/../../kernel/panic: 1"),
        (
            19,
            "host.sysctls.net/../../kernel/panic",
            "sysctl 'net/../../kernel/panic' is not a per-namespace network setting",
            NET_SYSCTLS,
        ),
    ),
    (
        "sysctl-key-with-trailing-newline",
        host_lines("sysctls:", '  "net.ipv4.ip_forward\\n": 1'),
        (
            19,
            "host.sysctls.net.ipv4.ip_forward\n",
            "sysctl 'net.ipv4.ip_forward\\n' is not a per-namespace network setting",
            NET_SYSCTLS,
        ),
    ),
    (
        "sysctl-value-with-newline",
        host_lines("sysctls:", '  net.ipv4.ip_forward: "1\\nnet.ipv4.conf.all.forwarding=1"'),
        (
            19,
            "host.sysctls.net.ipv4.ip_forward",
            "value '1\\nnet.ipv4.conf.all.forwarding=1' is not allowed",
            "use a number or a simple word",
        ),
    ),
    (
        "sysctl-value-with-trailing-newline",
        host_lines("sysctls:", '  net.ipv4.ip_forward: "1\\n"'),
        (19, "host.sysctls.net.ipv4.ip_forward", "value '1\\n' is not allowed", "use a number or a simple word"),
    ),
    # -- firewall ------------------------------------------------------------
    (
        "rule-interface-with-quote",  # would close the quoted argument and add a -j DROP
        rule(r'{chain: FORWARD, in: "eth0\"; -j DROP", action: ACCEPT}'),
        (20, "host.firewall.rules[0].in", f"interface name 'eth0\"; -j DROP' {IFNAME_CHARS}", ""),
    ),
    (
        "rule-source-with-newline",  # would add a line of its own to iptables-restore's input
        rule(r'{chain: FORWARD, source: "1.2.3.4\n-A FORWARD -j DROP", action: ACCEPT}'),
        (
            20,
            "host.firewall.rules[0].source",
            "'1.2.3.4\\n-A FORWARD -j DROP' is not an address or network: write it like 11.11.11.0/24 or 11.11.11.3",
            "",
        ),
    ),
    (
        "rule-interface-with-trailing-newline",
        rule(r'{chain: FORWARD, out: "eth0\n", action: ACCEPT}'),
        (20, "host.firewall.rules[0].out", f"interface name 'eth0\\n' {IFNAME_CHARS}", ""),
    ),
    (
        "rule-interface-with-space",
        rule('{chain: FORWARD, in: "eth0 -j DROP", action: ACCEPT}'),
        (20, "host.firewall.rules[0].in", f"interface name 'eth0 -j DROP' {IFNAME_CHARS}", ""),
    ),
    (
        "rule-state-with-newline",
        rule(r'{chain: FORWARD, state: [ESTABLISHED, "NEW\n-A FORWARD"], action: ACCEPT}'),
        (
            20,
            "host.firewall.rules[0].state[1]",
            "'NEW\\n-A FORWARD' is not allowed here",
            "use one of 'NEW', 'ESTABLISHED', 'RELATED', 'INVALID' or 'UNTRACKED'",
        ),
    ),
    (
        "rule-chain-not-in-table",
        rule("{chain: PREROUTING, action: ACCEPT}"),
        (
            20,
            "host.firewall.rules[0].chain",
            "'PREROUTING' is not a built-in chain of the filter table",
            "use one of INPUT, FORWARD, OUTPUT",
        ),
    ),
    (
        "rule-chain-lower-case",
        rule("{table: nat, chain: postrouting, action: MASQUERADE}"),
        (
            20,
            "host.firewall.rules[0].chain",
            "'postrouting' is not a built-in chain of the nat table",
            "did you mean 'POSTROUTING'?",
        ),
    ),
    (
        "rule-action-misspelled",
        rule("{chain: FORWARD, action: ACCPET}"),
        (20, "host.firewall.rules[0].action", "'ACCPET' is not allowed here", "did you mean 'ACCEPT'?"),
    ),
    (
        "rule-masquerade-outside-nat",
        rule("{chain: FORWARD, action: MASQUERADE}"),
        (
            20,
            "host.firewall.rules[0].action",
            "MASQUERADE works only in table nat, chain POSTROUTING",
            "set table: nat and chain: POSTROUTING",
        ),
    ),
    (
        "rule-ports-without-protocol",
        rule("{chain: FORWARD, dport: 80, action: ACCEPT}"),
        (20, "host.firewall.rules[0]", "ports need a protocol that has them", "set protocol: tcp, udp or sctp"),
    ),
    (
        "rule-ports-with-icmp",
        rule("{chain: FORWARD, protocol: icmp, sport: 80, action: ACCEPT}"),
        (20, "host.firewall.rules[0]", "ports need a protocol that has them", "set protocol: tcp, udp or sctp"),
    ),
    (
        "rule-port-out-of-range",
        rule("{chain: FORWARD, protocol: tcp, dport: 70000, action: ACCEPT}"),
        (20, "host.firewall.rules[0].dport", f"'70000' {PORT_FORMAT}", ""),
    ),
    (
        "rule-port-zero",
        rule("{chain: FORWARD, protocol: udp, sport: 0, action: ACCEPT}"),
        (20, "host.firewall.rules[0].sport", f"'0' {PORT_FORMAT}", ""),
    ),
    (
        "rule-port-with-injection",
        rule('{chain: FORWARD, protocol: tcp, dport: "80 -j DROP", action: ACCEPT}'),
        (20, "host.firewall.rules[0].dport", f"'80 -j DROP' {PORT_FORMAT}", ""),
    ),
    (
        "rule-port-range-reversed",
        rule("{chain: FORWARD, protocol: tcp, dport: '2000:1000', action: ACCEPT}"),
        (
            20,
            "host.firewall.rules[0].dport",
            "port range '2000:1000' is backwards: write the smaller port first",
            "",
        ),
    ),
    (
        "rule-mixes-ipv4-and-ipv6",
        rule("{chain: FORWARD, source: 11.11.11.0/24, destination: 'fd00::/64', action: ACCEPT}"),
        (
            20,
            "host.firewall.rules[0]",
            "this rule mixes IPv4 and IPv6 (addresses, family or protocol)",
            "split it into one rule per IP version",
        ),
    ),
    (
        "rule-icmp-with-ipv6-family",
        rule("{chain: INPUT, family: ipv6, protocol: icmp, action: ACCEPT}"),
        (
            20,
            "host.firewall.rules[0]",
            "this rule mixes IPv4 and IPv6 (addresses, family or protocol)",
            "split it into one rule per IP version",
        ),
    ),
    (
        "policy-on-non-filter-chain",
        host_lines("firewall:", "  policies: {POSTROUTING: DROP}"),
        (
            19,
            "host.firewall.policies.POSTROUTING",
            "'POSTROUTING' is not a built-in filter chain",
            "use one of INPUT, FORWARD, OUTPUT",
        ),
    ),
    (
        "policy-chain-lower-case",
        host_lines("firewall:", "  policies: {forward: DROP}"),
        (19, "host.firewall.policies.forward", "'forward' is not a built-in filter chain", "did you mean 'FORWARD'?"),
    ),
    (
        "policy-not-accept-or-drop",
        host_lines("firewall:", "  policies: {FORWARD: REJECT}"),
        (19, "host.firewall.policies.FORWARD", "'REJECT' is not allowed here", "use one of 'ACCEPT' or 'DROP'"),
    ),
    # -- one namespace for two, a gateway off the link -----------------------
    (
        "node-named-like-the-host",
        edit("  BLUE:\n", "  lab-host: {}\n  BLUE:\n"),
        (
            6,
            "nodes.lab-host",
            "node 'lab-host' would be the same network namespace as the lab's host (lab-host)",
            "give the node another name",
        ),
    ),
    (
        "gateway-outside-the-bridge-subnet",
        edit(
            "br0: {}",
            "br0: {addresses: [11.11.11.1/24]}",
            edit(RED5, "reth0: {addresses: [10.0.0.2/24], gateway: true}"),
        ),
        (
            5,
            "nodes.RED.interfaces.reth0.gateway",
            "gateway: true routes through bridge br0 (11.11.11.1/24), but reth0 has 10.0.0.2/24, outside the "
            "bridge's subnet: the gateway would not be reachable",
            "give reth0 an address in 11.11.11.0/24, or the bridge one in reth0's subnet",
        ),
    ),
    # -- YAML that expands or nests without end ------------------------------
    ("yaml-alias-bomb", BOMB, (6, "", f"its aliases (*name) expand to more than {MAX_NODES} values", BOMB_HINT)),
    (
        "yaml-nested-1000-deep",
        "[" * 1000 + "]" * 1000 + "\n",
        (
            1,
            "",
            "the file nests deeper than 64 levels",
            "a topology needs about 10; look for runaway brackets or indentation",
        ),
    ),
    (
        "yaml-aliases-nested-deep",
        "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 40 + "*a" + "]" * 40 + "\n",
        (
            2,
            "",
            "with its aliases (*name) expanded, the file nests deeper than 64 levels",
            "use fewer nested aliases",
        ),
    ),
    (
        "yaml-alias-loop",
        "name: lab\nnodes: &a\n  RED: [*a]\n",
        (2, "", "an alias (*name) refers to a value that contains it", "remove the loop"),
    ),
]


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    """Composing counts what aliases stand for without expanding them: no time or memory blow-up."""
    started = time.process_time()
    with pytest.raises(TopologyError):
        loads(BOMB, FILE)
    assert time.process_time() - started < 1.0
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    result = nsnet("validate", str(path))
    assert result.code == 1 and "Traceback" not in result.text, result.text
    assert f"bomb.yaml:6: its aliases (*name) expand to more than {MAX_NODES} values" in result.text


def test_enough_distinct_cases() -> None:
    assert len(CASES) >= 25
    assert len({text for _, text, _ in CASES}) == len(CASES)
    assert len({str(expected) for _, _, expected in CASES}) >= 25
    assert len({case_id for case_id, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in CASES], ids=[i for i, _, _ in CASES])
def test_bad_input(text: str, expected: Expected | list[Expected]) -> None:
    assert problems(text) == (expected if isinstance(expected, list) else [expected])


def test_rejected_values_never_reach_a_rule() -> None:
    """The same rule without the injection is accepted and renders as one iptables line."""
    topology = loads(rule('{chain: FORWARD, in: "eth0", source: 1.2.3.4, action: ACCEPT}'), FILE)
    (only,) = topology.namespaces["host"].firewall.rules
    assert only.args == "-s 1.2.3.4/32 -i eth0 -j ACCEPT"


# Several problems in one file, all found in one pass, in file order within each check.
MANY = """\
name: a/b
nodes:
  host: {}
  RED:
    interfaces:
      reth0: {addresses: [11.11.11.2/24], master: br9}
    sysctls:
      kernel.panic: 1
  BLUE:
    interfaces:
      beth0: {addresses: [11.11.11.2/24]}
      beth7: {}
    routes:
      - {to: default, via: 10.0.0.1}
links:
  - [RED:reth0, BLUE:beth0]
  - [GREEN:g0, BLUE:beth1]
"""


MANY_PROBLEMS: list[Expected] = [
    (1, "name", "lab name 'a/b' is not allowed", LAB_NAME_HINT),
    (3, "nodes.host", "'host' is reserved for the lab's host", "give the node another name"),
    (
        17,
        "links[1][0]",
        "endpoint 'GREEN:g0' names node 'GREEN', which does not exist",
        "nodes are: RED, BLUE, host",
    ),
    (6, "nodes.RED.interfaces.reth0.master", "bridge 'br9' does not exist in RED", "declare it under bridges:"),
    (
        8,
        "nodes.RED.sysctls.kernel.panic",
        "sysctl 'kernel.panic' is not a per-namespace network setting",
        NET_SYSCTLS,
    ),
    (
        12,
        "nodes.BLUE.interfaces.beth7",
        "interface 'beth7' is not an end of any link in BLUE",
        "did you mean 'beth0'?",
    ),
    (
        14,
        "nodes.BLUE.routes[0].via",
        "gateway 10.0.0.1 is not in any subnet of this namespace's interfaces",
        "add an address in the gateway's subnet, or name the interface with dev:",
    ),
    (
        11,
        "nodes.BLUE.interfaces.beth0.addresses",
        "address 11.11.11.2 is used twice (RED:reth0 and BLUE:beth0)",
        "give each interface its own address",
    ),
]


def test_all_problems_are_reported_at_once() -> None:
    assert problems(MANY) == MANY_PROBLEMS


# Problems of shape (keys, types, values) are all reported too; references are checked once the shape is right.
MANY_SHAPES = """\
name: lab
nodes:
  RED:
    interfaces:
      reth0: {adresses: [11.11.11.2/24], mtu: big}
      reth1: {mac: '01:00:00:00:00:01'}
links:
  - [RED:reth0, NOWHERE:x0]
host:
  firewall:
    rules:
      - {chain: FORWARD, action: ACCPET}
"""


def test_all_shape_problems_are_reported_at_once() -> None:
    assert problems(MANY_SHAPES) == [
        (12, "host.firewall.rules[0].action", "'ACCPET' is not allowed here", "did you mean 'ACCEPT'?"),
        (
            5,
            f"{IFACE}.mtu",
            "wrong type: input should be a valid integer, unable to parse string as an integer (got 'big')",
            "",
        ),
        (5, f"{IFACE}.adresses", "unknown key 'adresses'", "did you mean 'addresses'?"),
        (
            6,
            "nodes.RED.interfaces.reth1.mac",
            "'01:00:00:00:00:01' is a multicast MAC (lowest bit of the first octet set): "
            "use a unicast one such as 02:00:00:00:00:01",
            "",
        ),
    ]


def test_all_duplicate_keys_are_reported_at_once() -> None:
    text = "name: lab\nnodes:\n  RED: {}\n  BLUE: {}\n  RED: {}\nname: lab2\n"
    assert problems(text) == [
        (5, "nodes", "duplicate key 'RED'", "each key may appear once; merge the two entries"),
        (6, "", "duplicate key 'name'", "each key may appear once; merge the two entries"),
    ]


def test_problem_text_format() -> None:
    with pytest.raises(TopologyError) as info:
        loads(edit(RED5, "reth0: {adresses: [11.11.11.2/24]}"), FILE)
    assert str(info.value) == (
        "1 problem in the topology:\n"
        "  lab.yaml:5: nodes.RED.interfaces.reth0.adresses: unknown key 'adresses' (did you mean 'addresses'?)"
    )
    assert str(Problem(FILE, None, "", "the file is empty")) == "lab.yaml: the file is empty"


# -- the CLI -----------------------------------------------------------------

# Bad files for `up`, each close to a lab that would otherwise be built: (text, *problems as LINE: ...).
BAD_FILES: dict[str, tuple[str, ...]] = {
    "yaml-syntax": (
        edit(RED5, "reth0: addresses: [11.11.11.2/24]"),
        "5: YAML syntax error: mapping values are not allowed here (check indentation, colons and quotes)",
    ),
    "unknown-key": (
        edit(RED5, "reth0: {adresses: [11.11.11.2/24]}"),
        "5: nodes.RED.interfaces.reth0.adresses: unknown key 'adresses' (did you mean 'addresses'?)",
    ),
    "injection": (
        rule(r'{chain: FORWARD, source: "1.2.3.4\n-A FORWARD -j DROP", action: ACCEPT}'),
        "20: host.firewall.rules[0].source: '1.2.3.4\\n-A FORWARD -j DROP' is not an address or network: "
        "write it like 11.11.11.0/24 or 11.11.11.3",
    ),
    "duplicate-address": (
        edit("11.11.11.3/24", "11.11.11.2/24"),
        "8: nodes.BLUE.interfaces.beth0.addresses: address 11.11.11.2 is used twice (RED:reth0 and BLUE:beth0) "
        "(give each interface its own address)",
    ),
    "missing-node": (
        edit("[BLUE:beth0,", "[BLEU:beth0,"),
        "11: links[1][0]: endpoint 'BLEU:beth0' names node 'BLEU', which does not exist (did you mean 'BLUE'?)",
        "8: nodes.BLUE.interfaces.beth0: interface 'beth0' is not an end of any link in BLUE "
        "(add a link [BLUE:beth0, OTHER:IFACE] or remove it)",
    ),
    "route-dev": (
        host_lines("routes:", "  - {to: 10.0.0.0/8, dev: br1}"),
        "19: host.routes[0].dev: interface 'br1' does not exist here (did you mean 'br0'?)",
    ),
    "empty": ("", "1: the file is empty (start with `name: mylab`)"),
}

LABS_DIR = Path("/run/nsnet/labs")
_UNIQUE = re.compile(r"[A-Za-z]+(\d+)x\d+")  # conftest.unique_name(prefix): <prefix><pid>x<n>
Snapshot = dict[str, dict[str, str]]


def _mark(ns: str) -> str:
    """The lab named by a namespace's mark (nsnet sets lo's alias to nsnet:<lab>:<node>), "" if unmarked."""
    proc = subprocess.run(["ip", "-n", ns, "-j", "link", "show", "lo"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return "?"  # removed while we looked
    parts = str(json.loads(proc.stdout)[0].get("ifalias", "")).split(":")
    return parts[1] if len(parts) == 3 and parts[0] == "nsnet" else ""


def kernel_snapshot() -> Snapshot:
    """The namespaces (with their marks), the root namespace's links and the lab journals. Read only."""
    return {
        "netns": {ns: _mark(ns) for ns in sorted(netns_list())},
        "root links": dict.fromkeys(root_links().splitlines(), ""),
        "journals": dict.fromkeys(sorted(os.listdir(LABS_DIR)) if LABS_DIR.is_dir() else [], ""),
    }


def assert_nothing_changed(before: Snapshot, after: Snapshot, lab: str, topology: str | None = None) -> None:
    """Nothing that ``nsnet up FILE --name LAB`` could have made or removed differs between the snapshots.

    Tests running in parallel (other pytest-xdist workers) bring their own labs up and down meanwhile;
    what they change is told apart by its name (another process's unique name) or by the lab its
    namespace mark or journal names. Everything else must be as it was: a namespace without a mark,
    one marked for this lab or for ``topology`` (the lab's name in the file), the root namespace's links,
    and this lab's journal.
    """
    suspects = {lab, topology}

    def foreign(kind: str, name: str, mark: str) -> bool:
        if kind == "root links" or name == lab or name.startswith(f"{lab}-"):
            return False
        unique = _UNIQUE.match(name)
        if unique and unique.group(1) != str(os.getpid() % 100000):
            return True
        if kind == "journals":  # <lab>.json, or <lab>.tmp<pid> while it is written
            return re.sub(r"\.(json|tmp\d+)$", "", name) not in suspects
        return mark == "?" or (mark != "" and mark not in suspects)

    for kind in before:
        changed = {
            name: after[kind].get(name, before[kind].get(name, ""))
            for name in before[kind].keys() | after[kind].keys()
            if before[kind].get(name) != after[kind].get(name)
        }
        ours = sorted(name for name, mark in changed.items() if not foreign(kind, name, mark))
        assert not ours, f"{kind} changed: {ours}"


def write(tmp_path: Path, text: str, name: str = "bad.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_validate_prints_file_line_path_message_hint(tmp_path: Path) -> None:
    path = write(tmp_path, MANY)
    result = nsnet("validate", path)
    assert result.code == 1
    assert result.out == ""
    lines = result.err.splitlines()
    assert lines[0] == "8 problems in the topology:"
    assert lines[1] == f"  {path}:1: name: lab name 'a/b' is not allowed ({LAB_NAME_HINT})"
    assert lines[4] == (
        f"  {path}:6: nodes.RED.interfaces.reth0.master: bridge 'br9' does not exist in RED (declare it under bridges:)"
    )
    assert lines[1:] == [
        f"  {path}:{line}: {where}: {message} ({hint})" for line, where, message, hint in MANY_PROBLEMS
    ]


def test_validate_json(tmp_path: Path) -> None:
    bad = write(tmp_path, edit(RED5, "reth0: {adresses: [11.11.11.2/24]}"))
    empty = write(tmp_path, "", "empty.yaml")
    result = nsnet("validate", "--json", LAB2, bad, empty)
    assert result.code == 1
    assert json.loads(result.out) == {
        "schema": "nsnet/validate/1",
        "valid": False,
        "problems": [
            {
                "file": bad,
                "line": 5,
                "path": "nodes.RED.interfaces.reth0.adresses",
                "message": "unknown key 'adresses'",
                "hint": "did you mean 'addresses'?",
            },
            {"file": empty, "line": 1, "path": "", "message": "the file is empty", "hint": START},
        ],
    }


def test_validate_json_valid() -> None:
    result = nsnet("validate", "--json", LAB2)
    assert result.code == 0
    assert json.loads(result.out) == {"schema": "nsnet/validate/1", "valid": True, "problems": []}


def test_validate_examples() -> None:
    files = sorted(str(p) for p in EXAMPLES.glob("*.yaml"))
    assert files
    result = nsnet("validate", *files)
    assert result.code == 0, result.text
    lines = result.out.splitlines()
    assert len(lines) == len(files)
    for file, line in zip(files, lines, strict=True):
        assert re.fullmatch(rf"{re.escape(file)}: ok \(lab [\w.-]+, \d+ nodes( on \d+ hosts)?\)", line), line
    assert f"{LAB2}: ok (lab lab2, 2 nodes)" in lines


def test_validate_missing_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    result = nsnet("validate", missing)
    assert result.code == 1
    assert result.err.splitlines() == [
        "1 problem in the topology:",
        f"  {missing}: cannot read the file: No such file or directory",
    ]


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_up_with_a_bad_file_changes_nothing(case: str, tmp_path: Path, lab_name: str) -> None:
    text, *lines = BAD_FILES[case]
    path = write(tmp_path, text)
    before = kernel_snapshot()
    result = nsnet("up", path, "--name", lab_name)
    after = kernel_snapshot()
    assert result.code == 2, result.text
    assert result.out == ""
    head = "1 problem" if len(lines) == 1 else f"{len(lines)} problems"
    assert result.err == f"{head} in the topology:\n" + "".join(f"  {path}:{line}\n" for line in lines)
    assert_nothing_changed(before, after, lab_name, topology="lab")
    assert not any(ns.startswith(lab_name) for ns in netns_list())
    assert not (LABS_DIR / f"{lab_name}.json").exists()


def test_up_as_non_root_changes_nothing(lab_name: str) -> None:
    # In a new user namespace this process is uid 65534 (nobody) and the files stay readable.
    probe = subprocess.run(
        ["unshare", "--user", sys.executable, "-c", f"import os; print(os.geteuid(), len(open({LAB2!r}).read()) > 0)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.split() == ["65534", "True"]

    before = kernel_snapshot()
    proc = subprocess.run(
        ["unshare", "--user", sys.executable, "-m", "nsnet", "up", LAB2, "--name", lab_name],
        capture_output=True,
        text=True,
        check=False,
    )
    # lab2 under its own name is left out: test_seed_labs.py may be bringing it up right now.
    assert_nothing_changed(before, kernel_snapshot(), lab_name)
    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert proc.stderr == (
        "error: nsnet must run as root to change network namespaces: run it with sudo (or as root)\n"
    )
    assert not Path(f"/run/nsnet/locks/{lab_name}.lock").exists()


def test_up_without_iptables_restore_changes_nothing(tmp_path: Path, lab_name: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in (
        "ip",
        "nsenter",
        "sysctl",
        "modprobe",
        "iptables",
        "iptables-save",
        "ip6tables",
        "ip6tables-save",
        "ip6tables-restore",
    ):
        found = shutil.which(tool)
        assert found, f"{tool} is needed for this test"
        (bin_dir / tool).symlink_to(found)
    (bin_dir / "python3").symlink_to(sys.executable)
    env = dict(os.environ, PATH=str(bin_dir))
    # The PATH works for everything but iptables-restore.
    assert sh("env", f"PATH={bin_dir}", "ip", "-V").startswith("ip utility")
    assert shutil.which("iptables-save", path=str(bin_dir))
    assert shutil.which("iptables-restore", path=str(bin_dir)) is None

    before = kernel_snapshot()
    result = nsnet("up", LAB2, "--name", lab_name, env=env)
    # lab2 under its own name is left out: test_seed_labs.py may be bringing it up right now.
    assert_nothing_changed(before, kernel_snapshot(), lab_name)
    assert result.code == 6, result.text
    assert result.err == "error: required tool missing: iptables-restore; install with: apt-get install iptables\n"
    assert not (LABS_DIR / f"{lab_name}.json").exists()


def test_up_when_a_namespace_belongs_to_someone_else(lab_name: str) -> None:
    foreign = f"{lab_name}-RED"
    sh("ip", "netns", "add", foreign)
    try:
        before = kernel_snapshot()
        foreign_links = sh("ip", "-n", foreign, "-o", "link", "show")
        result = nsnet("up", LAB2, "--name", lab_name)
        assert result.code == 5, result.text
        assert result.err == (
            f"error: network namespace {foreign!r} already exists and belongs to something other than nsnet; "
            "bring this lab up under another name (--name) or remove that namespace\n"
        )
        assert_nothing_changed(before, kernel_snapshot(), lab_name)
        assert foreign in netns_list()
        assert f"{lab_name}-BLUE" not in netns_list()
        assert f"{lab_name}-host" not in netns_list()
        assert sh("ip", "-n", foreign, "-o", "link", "show") == foreign_links
        assert not (LABS_DIR / f"{lab_name}.json").exists()
    finally:
        subprocess.run(["ip", "netns", "del", foreign], check=False)
    assert foreign not in netns_list()


def test_the_snapshot_check_sees_a_new_namespace(lab_name: str) -> None:
    """assert_nothing_changed() itself: a namespace of this lab, marked or not, is a change."""
    before = kernel_snapshot()
    ns = f"{lab_name}-probe"
    sh("ip", "netns", "add", ns)
    try:
        with pytest.raises(AssertionError, match=f"netns changed: \\['{ns}'\\]"):
            assert_nothing_changed(before, kernel_snapshot(), lab_name)
        sh("ip", "-n", ns, "link", "set", "lo", "alias", "nsnet:lab:RED")
        with pytest.raises(AssertionError, match=f"netns changed: \\['{ns}'\\]"):
            assert_nothing_changed(before, kernel_snapshot(), "other", topology="lab")
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert_nothing_changed(before, kernel_snapshot(), lab_name)


def test_colon_values_stay_text() -> None:
    """YAML 1.1 would read 10:20 and 52:54:00:12:34:56 as base-60 numbers; nsnet keeps them as written."""
    topology = loads(
        "name: lab\nnodes:\n  RED:\n    interfaces:\n      reth0: {mac: 52:54:00:12:34:56}\n"
        "    firewall:\n      rules:\n        - {chain: INPUT, protocol: tcp, dport: 10:20, action: ACCEPT}\n"
        "links:\n  - [RED:reth0, host:reth1]\n"
    )
    red = topology.namespaces["RED"]
    assert red.links["reth0"].mac == "52:54:00:12:34:56"
    assert red.firewall.rules[0].args == "-p tcp -m tcp --dport 10:20 -j ACCEPT"


def test_a_bridge_takes_at_most_1023_ports() -> None:
    def star(n: int) -> str:
        spec = {
            "name": "lab",
            "host": {"bridges": {"br0": {}}, "interfaces": {f"p{i}": {"master": "br0"} for i in range(n)}},
            "nodes": {f"n{i}": {} for i in range(n)},
            "links": [[f"n{i}:eth0", f"host:p{i}"] for i in range(n)],
        }
        return yaml.safe_dump(spec, sort_keys=False)

    assert star(1024).splitlines()[3] == "    br0: {}"
    assert problems(star(1024)) == [
        (
            4,
            "host.bridges.br0",
            "bridge br0 has 1024 ports; Linux allows at most 1023 on one bridge",
            "spread the ports over several bridges of up to 1023 ports, each its own subnet",
        )
    ]
    assert len(loads(star(1023)).namespaces["host"].links) == 1024  # the bridge and its ports


def test_a_file_validated_before_is_checked_again_once_changed(tmp_path: Path) -> None:
    """What `validate` and `up` keep of a valid file never hides a change to it."""
    path = write(tmp_path, Path(LAB2).read_text(), "lab.yaml")
    for _ in range(2):  # checked, then known
        result = nsnet("validate", path)
        assert result.code == 0 and result.out == f"{path}: ok (lab lab2, 2 nodes)\n", result.text
    text = Path(path).read_text()
    Path(path).write_text(text.replace("name: lab2", "name: 'a/b'", 1))
    result = nsnet("validate", path)
    assert result.code == 1
    assert f"{path}:4: name: lab name 'a/b' is not allowed" in result.err
    Path(path).write_text(text)
    assert nsnet("validate", path).code == 0


def test_the_cache_validates_the_bytes_it_keys_by(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A file read while it is being written: its key and its validation must come from the same bytes.
    from nsnet.topology import cache

    path = tmp_path / "lab.yaml"
    path.write_text((EXAMPLES / "lab1-veth.yaml").read_text())
    monkeypatch.setattr(Path, "read_bytes", lambda self: b"")
    with pytest.raises(TopologyError, match="the file is empty"):
        cache.load(path)
