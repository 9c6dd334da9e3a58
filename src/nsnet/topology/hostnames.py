"""Names that resolve: each namespace's ``hosts`` and ``resolv.conf`` (pure; the loader's last pass).

As on a Docker user-defined network, every node finds every other by name:
each namespace gets a ``hosts`` file listing ``localhost`` and every
namespace of the lab (nodes, ``host``, ``outside``) with its addresses, IPv4
and IPv6. A namespace with ``dns:`` gets a ``resolv.conf`` too. nsnet writes
them under ``/etc/netns/<namespace>/``, which ``ip netns exec`` (and so
``nsnet exec``, ``nsnet shell`` and :meth:`nsnet.Lab` commands) shows over
``/etc``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from nsnet.model import HOST, Namespace
from nsnet.topology.report import Report
from nsnet.topology.schema import DnsSpec, TopologySpec

LOCALHOST = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def add(report: Report, spec: TopologySpec, spaces: dict[str, Namespace]) -> dict[str, Namespace]:
    """Give every namespace its ``hosts`` file, and a ``resolv.conf`` where ``dns:`` asks for one."""
    table = hosts_text(spaces)
    out = {}
    for name, space in spaces.items():
        files = {"hosts": table}
        dns = _dns_of(spec, name)
        if dns is not None:
            if name == HOST and spec.host.mode == "root":
                report.add(
                    ("host", "dns"),
                    "a root host's resolv.conf is the machine's own: nsnet does not write it",
                    "remove dns: from the host, or give it to the nodes",
                )
            else:
                files["resolv.conf"] = resolv_text(dns)
        out[name] = replace(space, files=files)
    return out


def hosts_text(spaces: dict[str, Namespace]) -> str:
    """``localhost``, then each namespace's addresses (IPv4 first) under its name."""
    lines = [LOCALHOST]
    for name, space in spaces.items():
        ips = {ipaddress.ip_interface(cidr).ip for link in space.links.values() for cidr in link.addresses}
        lines += [f"{ip}\t{name}\n" for ip in sorted(ips, key=lambda ip: (ip.version, ip))]
    return "".join(lines)


def resolv_text(dns: DnsSpec) -> str:
    """A ``resolv.conf``: ``nameserver`` lines, then ``search`` and ``options``."""
    lines = [f"nameserver {server}\n" for server in dns.servers]
    if dns.search:
        lines.append(f"search {' '.join(dns.search)}\n")
    if dns.options:
        lines.append(f"options {' '.join(dns.options)}\n")
    return "".join(lines)


def _dns_of(spec: TopologySpec, name: str) -> DnsSpec | None:
    if name == HOST:
        return spec.host.dns
    node = spec.nodes.get(name) or spec.hosts.get(name)
    return node.dns if node is not None else None
