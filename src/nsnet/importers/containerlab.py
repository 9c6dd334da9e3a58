"""containerlab topologies (``*.clab.yml``) read into a :class:`~nsnet.importers.draft.Draft`.

``kind: linux`` nodes become nodes; ``kind: bridge`` (and ``ovs-bridge``) nodes become bridges in the
lab's host, as containerlab makes them in the host's namespace; each link's two endpoints become a veth
pair (the end on a bridge is a port of it, with the endpoint's interface name). ``exec:`` lines are read
like start-up scripts (:mod:`.commands`). The management network becomes a host bridge ``mgmt0`` and an
``eth0`` in each node, addressed as containerlab would (``mgmt-ipv4``, else in order from the subnet).
Images, binds, ports and the other container settings are noted as not applicable.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import yaml

from nsnet.errors import NsnetError
from nsnet.importers.commands import translate
from nsnet.importers.draft import Draft, ifname, lab_name, node_name

BRIDGE_KINDS = ("bridge", "ovs-bridge")
NODE_KEYS_NOT_APPLICABLE = (
    "image", "binds", "ports", "env", "cmd", "entrypoint", "user", "startup-config",
    "license", "cpu", "memory", "labels", "publish", "network-mode",
)  # fmt: skip
DEFAULT_MGMT = "172.20.20.0/24"


def read(path: str | Path) -> Draft:
    """The containerlab topology in ``path`` as a draft topology. Raises :class:`NsnetError`."""
    file = Path(path)
    try:
        text = file.read_text()
        data = yaml.safe_load(text)
        tree = yaml.compose(text, Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError) as exc:
        raise NsnetError(f"cannot read {file}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("topology"), dict):
        raise NsnetError(f"{file} is not a containerlab topology: it has no `topology:` mapping")
    lines = _node_lines(tree)
    name = str(data.get("name") or file.name.split(".")[0])
    draft = Draft(name=lab_name(name), source=str(file))
    topology = data["topology"]
    bridges = _nodes(draft, topology, file.name, lines)
    for number, link in enumerate(topology.get("links") or []):
        _link(draft, number, link, bridges, file.name, lines)
    _management(draft, data.get("mgmt") or {}, topology.get("nodes") or {}, file.name, lines)
    return draft


def _nodes(draft: Draft, topology: dict[str, Any], file: str, lines: dict[Any, int]) -> set[str]:
    """The nodes (and bridges, in the host) of the topology; the names of the bridges."""
    kinds = topology.get("kinds") or {}
    defaults = topology.get("defaults") or {}
    bridges: set[str] = set()
    for node, spec in (topology.get("nodes") or {}).items():
        spec = spec or {}
        kind = spec.get("kind") or defaults.get("kind")
        where = lines.get(("nodes", str(node)))
        if kind in BRIDGE_KINDS:
            bridge = ifname(str(node))
            draft.host.bridges.setdefault(bridge, {})
            bridges.add(str(node))
            continue
        if kind != "linux":
            draft.note(file, where, "unsupported", f"{node}: kind {kind}", "nsnet builds linux nodes only")
            continue
        if node_name(str(node)) is None:
            draft.note(file, where, "unsupported", str(node), "not a name nsnet can give a node")
            continue
        draft.node(str(node))
        _node(draft, str(node), {**(kinds.get(kind) or {}), **defaults, **spec}, file, lines)
    return bridges


def _node(draft: Draft, node: str, merged: dict[str, Any], file: str, lines: dict[Any, int]) -> None:
    """A linux node's settings (``merged``: its kind's, the defaults and its own): its ``exec:`` lines."""
    where = lines.get(("nodes", node))
    for key in merged:
        if key in NODE_KEYS_NOT_APPLICABLE:
            draft.note(file, where, "not applicable", f"{node}: {key}", "nodes are namespaces, not containers")
    for number, command in enumerate(merged.get("exec") or []):
        line = lines.get(("exec", node, number), where)
        outcome = translate(draft.nodes[node], str(command))
        if outcome is None:
            continue
        kind_, why = outcome
        if kind_ == "kept":
            draft.nodes[node].exec.append(str(command))
        draft.note(file, line, kind_, str(command), why)


def _link(draft: Draft, number: int, link: Any, bridges: set[str], file: str, lines: dict[Any, int]) -> None:
    """A link between two nodes, or a node and a bridge, as a veth pair."""
    where = lines.get(("links", number))
    ends = (link or {}).get("endpoints") if isinstance(link, dict) else None
    if not isinstance(ends, list) or len(ends) != 2:
        draft.note(file, where, "unsupported", str(link), "a link needs two endpoints NODE:IFACE")
        return
    mapped = []
    for end in ends:
        node, _, iface = str(end).partition(":")
        if node == "host" or node.startswith("macvlan") or node == "mgmt-net":
            draft.note(file, where, "unsupported", str(end), "an endpoint outside the lab's nodes")
            return
        if node in bridges:
            port = ifname(iface)
            draft.host.interface(port)["master"] = ifname(node)
            mapped.append(f"host:{port}")
        elif node in draft.nodes:
            draft.nodes[node].interface(iface)
            mapped.append(f"{node}:{iface}")
        else:
            draft.note(file, where, "unsupported", str(end), f"{node} is not a node of the lab")
            return
    draft.links.append(mapped)


def _management(draft: Draft, mgmt: dict[str, Any], nodes: dict[str, Any], file: str, lines: dict[Any, int]) -> None:
    """containerlab's management network: a bridge in the host, an ``eth0`` per node on it."""
    if not draft.nodes or mgmt.get("network") == "none":
        return
    subnet = ipaddress.ip_network(str(mgmt.get("ipv4-subnet") or DEFAULT_MGMT), strict=False)
    hosts = subnet.hosts()
    gateway = next(hosts)
    draft.host.bridges["mgmt0"] = {"addresses": [f"{gateway}/{subnet.prefixlen}"]}
    taken = {str((nodes.get(n) or {}).get("mgmt-ipv4")) for n in draft.nodes}
    for name, node in draft.nodes.items():
        if "eth0" in node.interfaces:
            why = "eth0 is the management interface in containerlab; the data link keeps its name here"
            draft.note(file, lines.get(("nodes", name)), "unsupported", f"{name}:eth0", why)
            continue
        fixed = (nodes.get(name) or {}).get("mgmt-ipv4")
        address = str(fixed) if fixed else str(next(a for a in hosts if str(a) not in taken))
        node.add_address("eth0", f"{address}/{subnet.prefixlen}")
        port = ifname("m", name)
        draft.host.interface(port)["master"] = "mgmt0"
        draft.links.append([f"{name}:eth0", f"host:{port}"])


def _node_lines(tree: yaml.Node | None) -> dict[Any, int]:
    """Line numbers of the nodes, their exec lines and the links, for the notes."""
    out: dict[Any, int] = {}
    topology = _get(tree, "topology")
    for key, value in _items(_get(topology, "nodes")):
        name = str(key.value)
        out[("nodes", name)] = key.start_mark.line + 1
        for number, item in enumerate(_seq(_get(value, "exec"))):
            out[("exec", name, number)] = item.start_mark.line + 1
    for number, item in enumerate(_seq(_get(topology, "links"))):
        out[("links", number)] = item.start_mark.line + 1
    return out


def _get(node: yaml.Node | None, key: str) -> yaml.Node | None:
    for k, v in _items(node):
        if k.value == key:
            found: yaml.Node = v
            return found
    return None


def _items(node: yaml.Node | None) -> list[tuple[Any, Any]]:
    return list(node.value) if isinstance(node, yaml.MappingNode) else []


def _seq(node: yaml.Node | None) -> list[Any]:
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []
