"""Kathará labs: ``lab.conf`` and each ``NODE.startup``, read into a :class:`~nsnet.importers.draft.Draft`.

Each collision domain becomes a bridge in the lab's host; each ``node[N]="DOMAIN[/MAC]"`` an interface
``ethN`` of the node, a veth whose other end is a port of that bridge. ``node[sysctl]`` and ``node[ipv6]``
become sysctls; the start-up scripts' network commands become addresses, routes, sysctls and rules
(:mod:`.commands`). What does not translate is noted with its file and line.
"""

from __future__ import annotations

import re
from pathlib import Path

from nsnet.errors import NsnetError
from nsnet.importers.commands import translate
from nsnet.importers.draft import Draft, Node, ifname, lab_name, node_name

_ASSIGN = re.compile(r"^(?P<node>[^\s\[=#]+)\[(?P<key>[^\]]+)\]\s*=\s*(?P<value>.*)$")
_META = re.compile(r"^(?P<key>LAB_[A-Z_]+)\s*=\s*(?P<value>.*)$")
NOT_APPLICABLE = ("image", "mem", "cpus", "num_terms", "shell", "hosthome", "privileged", "ulimit", "env", "entrypoint")


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value.split("#", 1)[0].strip()


def read(directory: str | Path) -> Draft:
    """The Kathará lab in ``directory`` as a draft topology. Raises :class:`NsnetError` if it is not one."""
    root = Path(directory)
    conf = root / "lab.conf"
    if not conf.is_file():
        raise NsnetError(f"{root} is not a Kathará lab: it has no lab.conf")
    draft = Draft(name=lab_name(root.resolve().name), source=str(root))
    domains: dict[str, str] = {}
    for number, raw in enumerate(conf.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        meta = _META.match(line)
        if meta:
            draft.comment.append(f"{meta.group('key')}: {_unquote(meta.group('value'))}")
            continue
        m = _ASSIGN.match(line)
        if m is None:
            draft.note("lab.conf", number, "unsupported", line, "not a node[key]=value line")
            continue
        node, key, value = m.group("node"), m.group("key"), _unquote(m.group("value"))
        if node_name(node) is None:
            draft.note("lab.conf", number, "unsupported", line, f"{node!r} is not a name nsnet can give a node")
            continue
        _setting(draft, node, key, value, (line, number), domains)
    for spec in draft.nodes.values():
        # Kathará starts every device with IPv4 forwarding on: a node routes unless its lab says otherwise.
        spec.sysctls.setdefault("net.ipv4.ip_forward", "1")
    for node, spec in draft.nodes.items():
        _startup(draft, root, node, spec)
    return draft


def _setting(draft: Draft, node: str, key: str, value: str, where: tuple[str, int], domains: dict[str, str]) -> None:
    """One ``node[key]=value`` of lab.conf (``where``: the line and its number)."""
    line, number = where
    spec = draft.node(node)
    if key.isdigit():
        domain, _, mac = value.partition("/")
        bridge = domains.setdefault(domain, ifname(domain) if domain else "")
        if not bridge:
            draft.note("lab.conf", number, "unsupported", line, "no collision domain named")
            return
        draft.host.bridges.setdefault(bridge, {})
        iface = f"eth{key}"
        port = ifname(node, key)
        spec.interface(iface)
        if mac:
            spec.interface(iface)["mac"] = mac.lower()
        draft.host.interface(port)["master"] = bridge
        draft.links.append([f"{node}:{iface}", f"host:{port}"])
    elif key == "sysctl":
        k, _, v = value.partition("=")
        if not k.startswith("net."):
            draft.note("lab.conf", number, "unsupported", line, f"{k} is not a network sysctl")
        else:
            spec.sysctls[k.strip()] = v.strip()
    elif key == "ipv6":
        if value.lower() == "false":
            spec.sysctls["net.ipv6.conf.all.disable_ipv6"] = "1"
    elif key == "exec":
        spec.exec.append(value)
    elif key in NOT_APPLICABLE or key in ("bridged", "port"):
        draft.note("lab.conf", number, "not applicable", line, f"{key}: nodes are namespaces, not containers")
    else:
        draft.note("lab.conf", number, "unsupported", line, f"unknown node key {key!r}")


def _startup(draft: Draft, root: Path, node: str, spec: Node) -> None:
    """A node's start-up script, translated line by line (:mod:`.commands`)."""
    startup = root / f"{node}.startup"
    if not startup.is_file():
        return
    for number, line in enumerate(startup.read_text().splitlines(), 1):
        outcome = translate(spec, line)
        if outcome is None:
            continue
        kind, why = outcome
        if kind == "kept":
            spec.exec.append(line.strip())
        draft.note(startup.name, number, kind, line, why)
    if (root / node).is_dir():
        draft.note(node, None, "not applicable", f"{node}/ (files copied into the container)",
                   "nodes share the machine's files")  # fmt: skip
