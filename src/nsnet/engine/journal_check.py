"""What a journal read from disk may contain: every name is checked before nsnet uses it.

A journal names namespaces nsnet deletes, links, sysctl keys and chains it
changes, and processes it stops. One edited by hand or by someone else must
not make nsnet act outside the lab: a namespace name ``../../etc/x`` would
make ``down`` unmount and unlink a file elsewhere. :func:`check` refuses any
value nsnet itself would never have written.
"""

from __future__ import annotations

from typing import Any

from nsnet.model import IP6_POLICY, NETNS_FILES
from nsnet.names import IFNAME_MAX, IFNAME_RE, NAME_RE, SYSCTL_RE

NETNS_MAX = 255
CHAINS = ("INPUT", "FORWARD", "OUTPUT")
POLICIES = ("ACCEPT", "DROP")
QDISC_WORDS = ("tbf", "netem", "rate", "burst", "latency", "delay", "loss", "limit")


class Corrupt(ValueError):
    """A journal value nsnet would never have written."""


def netns_name(value: Any, root: bool = False) -> str:
    """A namespace name as nsnet makes them (``root``: the root namespace, ``""``, too)."""
    if root and value == "":
        return ""
    if not isinstance(value, str) or not NAME_RE.match(value) or ".." in value or len(value) > NETNS_MAX:
        raise Corrupt(f"{value!r} is not a namespace name")
    return str(value)


def ifname(value: Any) -> str:
    if not isinstance(value, str) or not IFNAME_RE.match(value) or value in (".", "..") or len(value) > IFNAME_MAX:
        raise Corrupt(f"{value!r} is not an interface name")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise Corrupt(f"{what} {value!r} is not text")
    return value


def _mapping(value: Any, what: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise Corrupt(f"{what} is not a mapping")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise Corrupt(f"{what} is not a list")
    return value


def _qdisc(value: Any) -> str:
    words = _text(value, "shaping").split()
    for word in words:
        number = word[:1].isdigit() and all(c.isalnum() or c in ".%-" for c in word)  # 10mbit, 20ms, 1%
        if word not in QDISC_WORDS and not number:
            raise Corrupt(f"shaping {value!r} is not one nsnet writes")
    return str(value)


def check(data: Any, lab: str) -> dict[str, Any]:
    """``data`` if it is a journal of ``lab`` nsnet could have written; :class:`Corrupt` names the first bad value."""
    journal = _mapping(data, "the journal")
    for part in (_header, _names, _sysctls, _firewall, _shaping, _servers, _files):
        part(journal, lab)
    return journal


def _header(journal: dict[str, Any], lab: str) -> None:
    if journal.get("lab") != lab:
        raise Corrupt(f"it is the journal of {journal.get('lab')!r}, not of {lab!r}")
    if journal.get("host_mode", "sandbox") not in ("sandbox", "root"):
        raise Corrupt(f"host mode {journal.get('host_mode')!r} is neither sandbox nor root")
    for key in ("topology", "status"):
        _text(journal.get(key, ""), key)
    if journal.get("source") is not None:
        _text(journal["source"], "source")
    if not isinstance(journal.get("updated", 0.0), int | float):
        raise Corrupt("updated is not a time")


def _names(journal: dict[str, Any], lab: str) -> None:
    """Namespaces, hosts, links and routes the lab made."""
    for ns, label in _mapping(journal.get("namespaces", {}), "namespaces").items():
        netns_name(ns)
        if not isinstance(label, str) or not NAME_RE.match(label):
            raise Corrupt(f"{label!r} is not a node name")
    for host in _list(journal.get("hosts", []), "hosts"):
        if not isinstance(host, str) or not NAME_RE.match(host):
            raise Corrupt(f"{host!r} is not a host name")
    for name in _list(journal.get("root_links", []), "root_links"):
        ifname(name)
    for route in _list(journal.get("root_routes", []), "root_routes"):
        _text(route, "route")


def _sysctls(journal: dict[str, Any], lab: str) -> None:
    for ns, values in _mapping(journal.get("sysctls", {}), "sysctls").items():
        netns_name(ns, root=True)
        for key, value in _mapping(values, "sysctls").items():
            if not isinstance(key, str) or not SYSCTL_RE.match(key) or ".." in key:
                raise Corrupt(f"{key!r} is not a sysctl nsnet sets")
            # An original value as the kernel gave it (whitespace made single spaces): any text on one line.
            if not isinstance(value, str) or len(value) > 4096 or not value.isprintable():
                raise Corrupt(f"{value!r} is not a sysctl value")


def _firewall(journal: dict[str, Any], lab: str) -> None:
    for ns, chains in _mapping(journal.get("policies", {}), "policies").items():
        netns_name(ns, root=True)
        for chain, policy in _mapping(chains, "policies").items():
            if chain.removeprefix(IP6_POLICY) not in CHAINS or policy not in POLICIES:
                raise Corrupt(f"policy {chain!r} {policy!r} is not one nsnet sets")
    for ns in _list(journal.get("firewall", []), "firewall"):
        netns_name(ns, root=True)


def _shaping(journal: dict[str, Any], lab: str) -> None:
    for ns, links in _mapping(journal.get("shaping", {}), "shaping").items():
        netns_name(ns, root=True)
        for name, qdisc in _mapping(links, "shaping").items():
            ifname(name)
            _qdisc(qdisc)


def _servers(journal: dict[str, Any], lab: str) -> None:
    for ns, entry in _mapping(journal.get("servers", {}), "servers").items():
        netns_name(ns, root=True)
        entry = _list(entry, "a server")
        # [pid, port, start time]; [0, port, 0] while it starts (written before it runs); [pid, port] of old.
        if len(entry) not in (2, 3) or not all(isinstance(n, int) and not isinstance(n, bool) for n in entry):
            raise Corrupt(f"server {entry!r} is not a pid, a port and a start time")
        pid, port = entry[0], entry[1]
        pending = pid == 0 and entry[2:] in ([0], [])
        if not (pending or pid > 1) or not 0 < port < 65536 or (len(entry) == 3 and entry[2] < 0):
            raise Corrupt(f"server {entry!r} is not a pid, a port and a start time")


def _files(journal: dict[str, Any], lab: str) -> None:
    """Files nsnet wrote under /etc/netns ("/": the directory, made by nsnet)."""
    for ns, names in _mapping(journal.get("files", {}), "files").items():
        netns_name(ns)
        for name in _list(names, "files"):
            if name not in (*NETNS_FILES, "/"):
                raise Corrupt(f"{name!r} is not a file nsnet writes under /etc/netns")
