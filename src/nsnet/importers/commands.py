"""Shell lines of a lab's start-up scripts (``ip``, ``ifconfig``, ``route``, ``sysctl``, ``iptables``)
translated into topology keys of one node.

:func:`translate` takes one line: it changes the node and returns None, or leaves the node as it was and
returns ``(kind, why)``: ``kept`` for a network command nsnet's topology cannot say (run as is after
``up``), ``unsupported`` for what nsnet does not do (daemons, files under /etc, routing suites).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable
from typing import Any

from nsnet.importers.draft import Node

Outcome = tuple[str, str] | None

DAEMONS = ("frr", "quagga", "zebra", "bgpd", "ospfd", "bird", "apache2", "nginx", "bind9", "named", "sshd", "ssh")
SHELL_OPERATORS = re.compile(r"(&&|\|\||;|\||>|<|`|\$\()")
_PROC_SYS = re.compile(r"^echo\s+(\S+)\s*>\s*/proc/sys/(net/\S+)$")


def translate(node: Node, line: str) -> Outcome:
    """Apply ``line`` to ``node``; None when taken, else why not."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    proc = _PROC_SYS.match(text)
    if proc:
        node.sysctls[proc.group(2).replace("/", ".")] = proc.group(1).strip("'\"")
        return None
    if SHELL_OPERATORS.search(text):
        return "kept", "a shell construct: run as written"
    try:
        words = shlex.split(text)
    except ValueError:
        return "unsupported", "not a command line shlex can read"
    command = words[0].rsplit("/", 1)[-1]
    handler = HANDLERS.get(command)
    if handler is not None:
        before = _snapshot(node)
        try:
            outcome = handler(node, words[1:])
        except (ValueError, IndexError, KeyError):
            outcome = ("kept", f"a form of {command} nsnet does not translate")
        if outcome is not None:
            _restore(node, before)
        return outcome
    if command in ("systemctl", "service") or words[0].startswith("/etc/init.d/"):
        return "unsupported", "a service: nsnet runs no daemons in nodes; start it with `nsnet exec` if installed"
    if command in DAEMONS or any(d in text for d in ("vtysh", "frr", "quagga")):
        return "unsupported", "a routing suite or daemon: not part of an nsnet topology"
    if command in ("tc", "bridge", "ethtool", "arp", "ping", "sleep", "modprobe"):
        return "kept", f"{command}: run as is in the node after up"
    return "unsupported", f"{command}: not a network command nsnet translates"


def _snapshot(node: Node) -> tuple[Any, ...]:
    import copy

    return copy.deepcopy((node.interfaces, node.bridges, node.routes, node.sysctls, node.policies, node.rules))


def _restore(node: Node, saved: tuple[Any, ...]) -> None:
    node.interfaces, node.bridges, node.routes, node.sysctls, node.policies, node.rules = saved


# -- ip ---------------------------------------------------------------------------------------------------


def _prefix(word: str, full: str) -> bool:
    """``ip``'s abbreviations: ``a`` for ``address``, ``r`` for ``route`` ..."""
    return bool(word) and full.startswith(word)


def _ip(node: Node, args: list[str]) -> Outcome:
    family = None
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in ("-4", "-6"):
            family = int(flag[1])
        elif flag in ("-n", "-netns"):
            return "kept", "ip -n reaches another namespace"
    obj, verb, rest = args[0], args[1] if len(args) > 1 else "", args[2:]
    if _prefix(obj, "address") or obj == "addr":
        if verb in ("add", "a", "replace", "change"):
            return _ip_addr_add(node, rest)
        return "kept", f"ip address {verb}"
    if _prefix(obj, "link"):
        if _prefix(verb, "set"):
            return _ip_link_set(node, rest)
        if verb in ("add", "a"):
            return _ip_link_add(node, rest)
        return "kept", f"ip link {verb}"
    if _prefix(obj, "route"):
        if verb in ("add", "a", "replace", "append"):
            return _ip_route_add(node, rest, family)
        return "kept", f"ip route {verb}"
    return "kept", f"ip {obj}: no topology key for it"


def _dev(args: list[str]) -> str:
    return args[args.index("dev") + 1]


def _ip_addr_add(node: Node, args: list[str]) -> Outcome:
    cidr = args[0]
    dev = _dev(args)
    extra = [a for a in args[1:] if a not in ("dev", dev)]
    if extra and extra not in (["nodad"],):
        return "kept", f"address options {' '.join(extra)}"
    iface = ipaddress.ip_interface(cidr)
    if "/" not in cidr:
        return "kept", "an address without a prefix length"
    node.add_address(dev, str(iface))
    return None


def _ip_link_set(node: Node, args: list[str]) -> Outcome:
    if args[0] == "dev":
        args = args[1:]
    name, rest = args[0], args[1:]
    iface = node.interface(name)
    while rest:
        word = rest.pop(0)
        if word == "up":
            iface.pop("up", None)
        elif word == "down":
            iface["up"] = False
        elif word == "mtu":
            iface["mtu"] = int(rest.pop(0))
        elif word == "address":
            iface["mac"] = rest.pop(0).lower()
        elif word == "master":
            master = rest.pop(0)
            if master not in node.bridges:
                return "kept", f"master {master} is not a bridge made in this node"
            iface["master"] = master
        else:
            return "kept", f"ip link set {word}"
    return None


def _ip_link_add(node: Node, args: list[str]) -> Outcome:
    if args[0] == "name":
        args = args[1:]
    name, rest = args[0], args[1:]
    if rest[:2] != ["type", "bridge"] or len(rest) > 2:
        return "kept", "ip link add of a kind other than a plain bridge"
    node.bridges.setdefault(name, {})
    return None


def _ip_route_add(node: Node, args: list[str], family: int | None) -> Outcome:
    to = args[0]
    route: dict[str, Any] = {"to": _network(to, family)}
    rest = args[1:]
    while rest:
        word = rest.pop(0)
        if word == "via":
            route["via"] = str(ipaddress.ip_address(rest.pop(0)))
        elif word == "dev":
            route["dev"] = rest.pop(0)
        elif word == "metric":
            route["metric"] = int(rest.pop(0))
        elif word in ("proto", "scope") and rest:
            rest.pop(0)
        else:
            return "kept", f"route option {word}"
    if "via" not in route and "dev" not in route:
        return "kept", "a route with neither via nor dev"
    node.routes.append(route)
    return None


def _network(text: str, family: int | None = None) -> str:
    if text in ("default", "0.0.0.0/0", "::/0"):
        return "::/0" if family == 6 or text == "::/0" else "default"
    net = ipaddress.ip_network(text, strict=False)
    return str(net)


# -- ifconfig and route (net-tools) ---------------------------------------------------------------------


def _ifconfig(node: Node, args: list[str]) -> Outcome:
    name, rest = args[0], args[1:]
    iface = node.interface(name)
    address: str | None = None
    netmask: str | None = None
    while rest:
        word = rest.pop(0)
        if word == "up":
            iface.pop("up", None)
        elif word == "down":
            iface["up"] = False
        elif word == "netmask":
            netmask = rest.pop(0)
        elif word == "mtu":
            iface["mtu"] = int(rest.pop(0))
        elif word == "hw" and rest[:1] == ["ether"]:
            rest.pop(0)
            iface["mac"] = rest.pop(0).lower()
        elif word in ("add", "inet6") and rest:
            address = rest.pop(0)
        elif address is None and re.match(r"^[0-9a-fA-F.:]+(/\d+)?$", word):
            address = word
        elif word == "broadcast" and rest:
            rest.pop(0)
        else:
            return "kept", f"ifconfig option {word}"
    if address is not None:
        if "/" not in address:
            if netmask is None:
                return "kept", "an address without a netmask (ifconfig would guess a classful one)"
            address = f"{address}/{ipaddress.ip_network(f'0.0.0.0/{netmask}').prefixlen}"
        node.add_address(name, str(ipaddress.ip_interface(address)))
    return None


def _route(node: Node, args: list[str]) -> Outcome:
    family = 6 if args and args[0] == "-A" and args[1:2] == ["inet6"] else 4
    if family == 6:
        args = args[2:]
    if args[0] != "add":
        return "kept", f"route {args[0]}"
    rest = args[1:]
    to: str | None = None
    netmask: str | None = None
    route: dict[str, Any] = {}
    while rest:
        word = rest.pop(0)
        if word == "default":
            to = "default" if family == 4 else "::/0"
        elif word in ("-net", "-host"):
            to = rest.pop(0)
            if word == "-host" and "/" not in to:
                to += "/32" if family == 4 else "/128"
        elif word == "netmask":
            netmask = rest.pop(0)
        elif word in ("gw", "via"):
            route["via"] = str(ipaddress.ip_address(rest.pop(0)))
        elif word == "dev":
            route["dev"] = rest.pop(0)
        elif word == "metric":
            route["metric"] = int(rest.pop(0))
        elif to is None:
            to = word
        else:
            route["dev"] = word  # `route add -net X netmask M eth0`
    if to is None:
        return "kept", "a route without a destination"
    if netmask is not None and "/" not in to:
        to = f"{to}/{ipaddress.ip_network(f'0.0.0.0/{netmask}').prefixlen}"
    route = {"to": _network(to, family), **route}
    if "via" not in route and "dev" not in route:
        return "kept", "a route with neither a gateway nor a device"
    node.routes.append(route)
    return None


# -- sysctl and iptables --------------------------------------------------------------------------------


def _sysctl(node: Node, args: list[str]) -> Outcome:
    settings = [a for a in args if not a.startswith("-")]
    if not settings or any("=" not in s for s in settings):
        return "kept", "sysctl without key=value"
    for setting in settings:
        key, value = setting.split("=", 1)
        key = key.strip().replace("/", ".")
        if not key.startswith("net."):
            return "unsupported", f"{key} is not a network sysctl"
        node.sysctls[key] = value.strip().strip("'\"")
    return None


_RULE_FLAGS = {"-s": "source", "--source": "source", "-d": "destination", "--destination": "destination",
               "-p": "protocol", "--protocol": "protocol", "-i": "in", "--in-interface": "in",
               "-o": "out", "--out-interface": "out", "--dport": "dport", "--sport": "sport",
               "--destination-port": "dport", "--source-port": "sport"}  # fmt: skip
_ACTIONS = ("ACCEPT", "DROP", "REJECT", "RETURN", "LOG", "MASQUERADE")


def _iptables(family: str) -> Callable[[Node, list[str]], Outcome]:
    def handler(node: Node, args: list[str]) -> Outcome:
        table = "filter"
        rule: dict[str, Any] = {}
        rest = list(args)
        while rest:
            word = rest.pop(0)
            if word in ("-t", "--table"):
                table = rest.pop(0)
            elif word in ("-P", "--policy"):
                chain, policy = rest[0], rest[1]
                if table != "filter" or policy not in ("ACCEPT", "DROP") or family == "ipv6":
                    return "kept", "a policy outside the IPv4 filter table"
                node.policies[chain] = policy
                return None
            elif word in ("-A", "--append"):
                rule["chain"] = rest.pop(0)
            elif word in _RULE_FLAGS:
                value = rest.pop(0)
                key = _RULE_FLAGS[word]
                rule[key] = "icmpv6" if key == "protocol" and value == "ipv6-icmp" else value
            elif word == "-m" and rest and rest[0] in ("tcp", "udp", "sctp"):
                rest.pop(0)
            elif word == "-m" and rest and rest[0] in ("state", "conntrack"):
                rest.pop(0)
                flag = rest.pop(0)
                if flag not in ("--state", "--ctstate"):
                    return "kept", f"conntrack match {flag}"
                rule["state"] = rest.pop(0).split(",")
            elif word in ("-j", "--jump"):
                action = rest.pop(0)
                if action not in _ACTIONS or rest:
                    return "kept", f"target {action}{' with options' if rest else ''}"
                rule["action"] = action
            else:
                return "kept", f"iptables option {word}"
        if "chain" not in rule or "action" not in rule:
            return "kept", "not an appended rule with a target (-A CHAIN ... -j ACTION)"
        if table != "filter":
            rule["table"] = table
        if family == "ipv6":
            rule["family"] = "ipv6"
        node.rules.append({"chain": rule.pop("chain"), **rule})
        return None

    return handler


HANDLERS: dict[str, Callable[[Node, list[str]], Outcome]] = {
    "ip": _ip,
    "ifconfig": _ifconfig,
    "route": _route,
    "sysctl": _sysctl,
    "iptables": _iptables("ipv4"),
    "ip6tables": _iptables("ipv6"),
}
