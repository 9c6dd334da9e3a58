"""Load a topology file: YAML -> validated :class:`~nsnet.model.Topology`.

Every problem is collected before anything is returned, each with the file,
line, field path, what is wrong and how to fix it.
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import ipaddress
import re
import types
import typing
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError

from nsnet.errors import Problem, TopologyError
from nsnet.kinds import checks as kind_checks
from nsnet.model import (
    BUILTIN_CHAINS,
    HOST,
    POLICY_CHAINS,
    PORT_PROTOCOLS,
    UNDERLAY,
    Endpoint,
    Expectation,
    Firewall,
    Link,
    Namespace,
    Overlay,
    Route,
    Topology,
    Vxlan,
)
from nsnet.overlay.build import UNDERLAY_IFACE
from nsnet.overlay.build import build as build_overlay
from nsnet.topology import inventory, ipcache, outside, shaping
from nsnet.topology.rules import render_rule
from nsnet.topology.schema import (
    IFNAME_MAX,
    NAME_RE,
    SYSCTL_RE,
    SYSCTL_VALUE_RE,
    BridgeSpec,
    HostSpec,
    InterfaceSpec,
    LinkSpec,
    MachineSpec,
    NamespaceSpec,
    NodeSpec,
    OverlaySpec,
    TopologySpec,
    UnderlaySpec,
)

LAB_NAME_MAX = 32
LINK_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+\Z")
NODE_NAME_MAX = 48
BRIDGE_PORTS_MAX = 1023
"""BR_MAX_PORTS (1024) less port number 0, which the kernel never gives."""
Loc = tuple[str | int, ...]


def load(path: str | Path) -> Topology:
    """Read and validate a topology file. Raises :class:`TopologyError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TopologyError([Problem(str(path), None, "", f"cannot read the file: {exc.strerror}")]) from None
    topology = loads(text, str(path))
    return replace(topology, source=str(path.resolve()))


def loads(text: str, filename: str = "<string>") -> Topology:
    """Validate a topology given as YAML text."""
    with _gc_paused():
        data, lines = _parse_yaml(text, filename)
        return _Validator(filename, lines).run(data)


def from_dict(data: dict[str, Any], filename: str = "<dict>") -> Topology:
    """Validate a topology given as plain Python data (same shape as the file)."""
    with _gc_paused():
        return _Validator(filename, {}).run(data)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a file is read: it makes no cycles, and every
    collection would walk all it has made so far (10,000 nodes: 3 s instead of 1.3 s)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# -- YAML with line numbers ------------------------------------------------


MAX_DEPTH = 64
"""Deepest nesting of a topology file (a real one needs about 10)."""
MAX_NODES = 200_000
"""Most values a topology file may hold, every alias counted as the values it stands for."""


class _TooBig(Exception):
    """The file nests too deep or its aliases expand too far; ``line`` and ``message`` say where and how."""

    def __init__(self, line: int, message: str, hint: str) -> None:
        super().__init__(message)
        self.line, self.message, self.hint = line, message, hint


class _Loader(yaml.CSafeLoader):
    """YAML 1.1 without its base-60 integers, so that ``dport: 10:20`` stays the text "10:20".

    libyaml (through PyYAML's C parser) scans and composes; only the resolver
    and the constructors run in Python. libyaml refuses nesting deeper than
    1000 itself; :func:`_check_size` refuses more than :data:`MAX_DEPTH`.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:int"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)


def _parse_yaml(text: str, filename: str) -> tuple[Any, dict[Loc, int]]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise TopologyError([Problem(filename, 1, "", "the file is empty", "start with `name: mylab`")])
        _check_size(node)
        lines: dict[Loc, int] = {}
        problems: list[Problem] = []
        _index(loader, node, (), lines, problems, filename)
        if problems:
            raise TopologyError(problems)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise TopologyError([_yaml_problem(_python_wording(text) or exc, filename)]) from None
    except _TooBig as exc:
        raise TopologyError([Problem(filename, exc.line, "", exc.message, exc.hint)]) from None
    finally:
        loader.dispose()
    return data, lines


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _has_aliases(root: yaml.Node) -> bool:
    """Whether a value of the file is met twice (an alias, ``*name``, stands for it)."""
    seen: set[int] = set()
    todo = [root]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            return True
        seen.add(id(node))
        todo.extend(_children(node))
    return False


def _check_size(root: yaml.Node) -> None:
    """Refuse aliases that expand too far ("billion laughs"), nest too deep, or contain themselves.

    Each distinct node is visited once (no recursion): its size and depth
    count every alias as the values it stands for.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    started: set[int] = set()
    shared = _has_aliases(root)
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        line = node.start_mark.line + 1
        if done:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            if size[key] > MAX_NODES:
                raise _TooBig(
                    line,
                    f"its aliases (*name) expand to more than {MAX_NODES} values",
                    "write the values out, or use fewer, smaller aliases",
                )
            if depth[key] > MAX_DEPTH:
                if not shared:
                    raise _TooBig(
                        line,
                        f"the file nests deeper than {MAX_DEPTH} levels",
                        "a topology needs about 10; look for runaway brackets or indentation",
                    )
                raise _TooBig(
                    line,
                    f"with its aliases (*name) expanded, the file nests deeper than {MAX_DEPTH} levels",
                    "use fewer nested aliases",
                )
            continue
        if key in size:
            continue
        if key in started:
            raise _TooBig(line, "an alias (*name) refers to a value that contains it", "remove the loop")
        started.add(key)
        stack.append((node, True))
        stack.extend((kid, False) for kid in _children(node) if id(kid) not in size)


def _yaml_problem(exc: yaml.YAMLError, filename: str) -> Problem:
    if isinstance(exc, yaml.reader.ReaderError):
        return Problem(filename, None, "", f"the file is not YAML text: {exc.reason}", "save it as UTF-8 text")
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        return Problem(filename, line, "", f"YAML syntax error: {what}", "check indentation, colons and quotes")
    return Problem(filename, None, "", f"YAML error: {exc}")


def _python_wording(text: str) -> yaml.YAMLError | None:
    """The error PyYAML's pure-Python parser finds in ``text``, whose wording nsnet has always printed.

    Called only once libyaml has found an error; None where the pure parser
    finds none (or cannot tell: libyaml also refuses nesting deeper than 1000).
    """
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        loader.get_single_node()
    except yaml.YAMLError as exc:
        return exc
    except RecursionError:
        pass
    finally:
        if loader is not None:
            loader.dispose()
    return None


def _index(
    loader: _Loader,
    node: yaml.Node,
    loc: Loc,
    lines: dict[Loc, int],
    problems: list[Problem],
    filename: str,
) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):  # every key must be text; index the others by str()
                key = str(key)
            if key in seen:
                problems.append(
                    Problem(
                        filename,
                        key_node.start_mark.line + 1,
                        _path(loc),
                        f"duplicate key {key!r}",
                        "each key may appear once; merge the two entries",
                    )
                )
            seen.add(key)
            _index(loader, value_node, (*loc, key), lines, problems, filename)
            lines[(*loc, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(loader, item, (*loc, i), lines, problems, filename)


def _path(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# -- validation ------------------------------------------------------------


def _fields_at(loc: Loc) -> list[str]:
    """Known keys of the model found at ``loc`` (for "did you mean")."""
    model: Any = TopologySpec
    for part in loc:
        model = _unwrap(model, None)  # NodeSpec | None -> NodeSpec
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get(str(part)) or next(
                (f for f in model.model_fields.values() if f.alias == part), None
            )
            if field is None:
                return []
            model = field.annotation
            continue
        model = _unwrap(model, part)
        if model is None:
            return []
    model = _unwrap(model, None) if not (isinstance(model, type) and issubclass(model, BaseModel)) else model
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or n for n, f in model.model_fields.items()]
    return []


def _unwrap(tp: Any, part: str | int | None) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _unwrap(inner[0], part) if len(inner) == 1 else None
    if origin is dict and part is not None:
        return args[1]
    if origin is list and part is not None:
        return args[0]
    return tp if part is None else None


def _suggest(word: str, options: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}?" if match else ""


class _Validator:
    def __init__(self, filename: str, lines: dict[Loc, int]) -> None:
        self.filename = filename
        self.lines = lines
        self.problems: list[Problem] = []
        self.named_in_links: set[tuple[str, str]] = set()
        """(namespace, interface) of every well-formed link endpoint, even of rejected links."""
        self.hosts: set[str] = set()
        """The hosts of a multi-host lab."""

    def _base(self, name: str) -> Loc:
        """Where a namespace is described in the file."""
        if name == HOST:
            return ("host",)
        if name == UNDERLAY:
            return ("underlay",)
        return ("hosts", name) if name in self.hosts else ("nodes", name)

    def add(self, loc: Loc, message: str, hint: str = "") -> None:
        line = None
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                line = self.lines[loc[:end]]
                break
        self.problems.append(Problem(self.filename, line, _path(loc), message, hint))

    def run(self, data: Any) -> Topology:
        if not isinstance(data, dict):
            self.add((), "a topology must be a mapping of keys (name, nodes, links, host)", "start with `name: mylab`")
            raise TopologyError(self.problems)
        try:
            spec = TopologySpec.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                self._pydantic_problem(err)
            raise TopologyError(self.problems) from None
        topology = self._semantics(spec)
        if self.problems:
            raise TopologyError(self.problems)
        assert topology is not None
        return topology

    def _pydantic_problem(self, err: Any) -> None:
        loc: Loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        kind = err["type"]
        if loc and loc[-1] == "[key]":
            key = err.get("input")
            self.add(
                (*loc[:-2], str(key)),
                f"this key is not text: YAML reads it as {key!r}",
                "put the name in quotes, e.g. 'yes' or '123'",
            )
        elif kind == "extra_forbidden":
            key = str(loc[-1])
            self.add(
                loc,
                f"unknown key {key!r}",
                _suggest(key, _fields_at(loc[:-1])) or f"allowed keys: {', '.join(_fields_at(loc[:-1]))}",
            )
        elif kind == "missing":
            self.add(loc, f"missing required key {loc[-1]!r}")
        elif kind == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            options = [o.strip(" '") for o in expected.replace(" or ", ",").split(",") if o.strip()]
            value = str(err.get("input"))
            self.add(loc, f"{value!r} is not allowed here", _suggest(value, options) or f"use one of {expected}")
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            if kind.endswith("_type") or kind.endswith("_parsing"):
                msg = f"wrong type: {msg[0].lower()}{msg[1:]} (got {err.get('input')!r})"
            hint = ""
            if kind == "string_type" and isinstance(err.get("input"), int | float):  # e.g. mac: 52:54:00:12:34:56
                hint = "put it in quotes (unquoted, YAML reads it as a number or true/false)"
            self.add(loc, msg, hint)

    # -- cross-references --------------------------------------------------

    def _semantics(self, spec: TopologySpec) -> Topology | None:
        if not NAME_RE.match(spec.name) or ".." in spec.name or len(spec.name) > LAB_NAME_MAX:
            self.add(
                ("name",),
                f"lab name {spec.name!r} is not allowed",
                f"use up to {LAB_NAME_MAX} letters, digits, _ . - (no '/' or '..'), starting with a letter or digit",
            )
        spec, overlay = self._with_underlay(spec)
        spec = self._with_outside(spec)
        spaces: dict[str, NamespaceSpec] = {}
        reserved = (HOST, "root", UNDERLAY)
        for node, node_spec in spec.nodes.items():
            loc: Loc = ("nodes", node)
            if node in reserved or node in spec.hosts:
                what = "a host of this lab" if node in spec.hosts else "reserved for the lab's host"
                what += " (underlay)" if node == UNDERLAY else ""
                self.add(loc, f"{node!r} is {what}", "give the node another name")
                continue
            if not NAME_RE.match(node) or len(node) > NODE_NAME_MAX:
                self.add(
                    loc,
                    f"node name {node!r} is not allowed",
                    f"use up to {NODE_NAME_MAX} letters, digits, _ . -, starting with a letter or digit",
                )
            # Under the lab's own name a node's namespace is its name, a host's `<lab>-<host>`.
            taken = next((h for h in (HOST, UNDERLAY, *spec.hosts) if node == f"{spec.name}-{h}"), None)
            if taken is not None:
                self.add(
                    loc,
                    f"node {node!r} would be the same network namespace as the lab's "
                    f"{'host' if taken == HOST else taken} ({node})",
                    "give the node another name",
                )
                continue
            spaces[node] = node_spec or NamespaceSpec()
        if overlay is None:
            spaces[HOST] = spec.host
        else:
            spaces.update({h: h_spec or MachineSpec() for h, h_spec in spec.hosts.items()})
            spaces[UNDERLAY] = self._underlay_space(overlay)

        links = self._links(spec, spaces)
        result: dict[str, Namespace] = {}
        for name, space in spaces.items():
            role: Literal["node", "host"] = "host" if name in (HOST, UNDERLAY) or name in self.hosts else "node"
            result[name] = self._namespace(name, self._base(name), space, links.get(name, {}), role)
        if overlay is not None:
            result, problems = build_overlay(result, overlay, {n: self._base(n) for n in result})
            for loc, message, hint in problems:
                self.add(loc, message, hint)
        for ns, ifname, (sub, message, hint) in kind_checks.lab_problems(result):
            self.add((*self._base(ns), "interfaces", ifname, *sub), message, hint)
        self._addresses(result)
        self._bridge_subnets(result)
        self._bridge_ports(result)
        result = self._outside_world(spec, result)
        expectations = self._expectations(spec, result)
        return Topology(
            name=spec.name,
            host_mode=spec.host.mode,
            namespaces=result,
            expectations=expectations,
            overlay=overlay,
            machines=inventory.machines(spec.machines, spec.hosts, self.add),
        )

    def _with_underlay(self, spec: TopologySpec) -> tuple[TopologySpec, Overlay | None]:
        """``hosts:``: each host gets ``eth0`` on the underlay, an address there, and a port on its switch."""
        if not spec.hosts:
            for key in ("underlay", "overlay"):
                if getattr(spec, key) is not None:
                    self.add((key,), f"{key}: belongs to a lab of several hosts", "declare them under hosts:")
            return spec, None
        self.hosts = set(spec.hosts)
        if spec.host != HostSpec():
            self.add(
                ("host",),
                "a lab with hosts: has no single host:",
                "move these settings under one of hosts:, or remove hosts:",
            )
        if spec.outside is not None:
            self.add(("outside",), "an outside joins a single host", "remove outside: (or hosts:)")
            spec = spec.model_copy(update={"outside": None})
        under = spec.underlay or UnderlaySpec()
        net = ipaddress.IPv4Network(under.subnet)
        taken: set[ipaddress.IPv4Address] = set()
        vteps: dict[str, str] = {}
        explicit = {ipcache.ip_interface(o.address).ip for o in spec.hosts.values() if o and o.address}
        pool = (a for a in net.hosts() if a not in explicit)
        hosts: dict[str, MachineSpec] = {}
        for h, h_spec in spec.hosts.items():
            loc: Loc = ("hosts", h)
            h_spec = h_spec or MachineSpec()
            if h in (HOST, "root", UNDERLAY) or not NAME_RE.match(h) or len(h.encode()) > IFNAME_MAX:
                self.add(
                    loc,
                    f"host name {h!r} is not allowed",
                    f"use up to {IFNAME_MAX} letters, digits, _ . - (it names the host's port on the underlay), "
                    "other than host, root and underlay",
                )
                continue
            if (
                UNDERLAY_IFACE in h_spec.interfaces
                or UNDERLAY_IFACE in h_spec.bridges
                or UNDERLAY_IFACE in h_spec.vxlans
            ):
                self.add(
                    (*loc, "interfaces", UNDERLAY_IFACE),
                    f"{UNDERLAY_IFACE} is the host's underlay interface, which nsnet makes",
                    "give your interface another name",
                )
                continue
            address = self._host_address(loc, h_spec, net, pool, explicit)
            if address is None:
                continue
            taken.add(address)
            vteps[h] = str(address)
            eth0 = InterfaceSpec(addresses=[f"{address}/{net.prefixlen}"], mtu=under.mtu)
            hosts[h] = h_spec.model_copy(update={"interfaces": {UNDERLAY_IFACE: eth0, **h_spec.interfaces}})
        links = [*spec.links, *(LinkSpec(endpoints=[f"{h}:{UNDERLAY_IFACE}", f"{UNDERLAY}:{h}"]) for h in hosts)]
        o = spec.overlay or OverlaySpec()
        switch = self._switch_address(under, taken)
        registry = o.registry or (f"http://{ipcache.ip_interface(switch).ip}:2379" if switch else None)
        overlay = Overlay(mode=o.mode, subnet=str(net), mtu=under.mtu, vteps=vteps, address=switch, registry=registry)
        return spec.model_copy(update={"hosts": hosts, "links": links}), overlay

    def _host_address(
        self,
        loc: Loc,
        h_spec: MachineSpec,
        net: ipaddress.IPv4Network,
        pool: Iterator[ipaddress.IPv4Address],
        explicit: set[Any],
    ) -> ipaddress.IPv4Address | None:
        """A host's underlay address: its own, or the next one of the subnet nobody asked for."""
        if h_spec.address is None:
            address = next(pool, None)
            if address is None:
                self.add(loc, f"the underlay {net} has no address left for this host", "use a larger underlay.subnet")
            return address
        ip = ipcache.ip_interface(h_spec.address)
        if not isinstance(ip, ipaddress.IPv4Interface) or ip.ip not in net:
            self.add((*loc, "address"), f"{h_spec.address} is not in the underlay {net}", f"use an address of {net}")
            return None
        return ip.ip

    def _switch_address(self, under: UnderlaySpec, taken: set[ipaddress.IPv4Address]) -> str | None:
        net = ipaddress.IPv4Network(under.subnet)
        if under.address is None:
            last = net.broadcast_address - 1 if net.prefixlen < 31 else net.broadcast_address
            return None if last in taken else f"{last}/{net.prefixlen}"
        ip = ipcache.ip_interface(under.address)
        if ip.version != 4 or ip.ip not in net:
            self.add(
                ("underlay", "address"), f"{under.address} is not in the underlay {net}", f"use an address of {net}"
            )
            return None
        return f"{ip.ip}/{net.prefixlen}"

    def _underlay_space(self, overlay: Overlay) -> NamespaceSpec:
        bridge = BridgeSpec(addresses=[overlay.address] if overlay.address else [], mtu=overlay.mtu)
        ports: dict[str, InterfaceSpec | None] = {
            h: InterfaceSpec(master="ul0", mtu=overlay.mtu) for h in overlay.vteps
        }
        return NamespaceSpec(bridges={"ul0": bridge}, interfaces=ports)

    def _with_outside(self, spec: TopologySpec) -> TopologySpec:
        """``outside:`` is a node named outside, linked to the host by the uplink."""
        if spec.outside is None:
            return spec
        o = spec.outside
        if spec.host.mode == "root":
            self.add(
                ("outside",),
                "an outside namespace stands in for the world only in a sandbox lab",
                "with host: root the machine's real uplink is the outside; remove outside:",
            )
            return spec
        if "outside" in spec.nodes:
            self.add(
                ("nodes", "outside"),
                "the name 'outside' is taken by the outside: block",
                "rename the node or remove outside:",
            )
            return spec
        nodes = dict(spec.nodes)
        nodes["outside"] = NodeSpec(interfaces={"eth0": InterfaceSpec(addresses=[o.address])})
        interfaces = dict(spec.host.interfaces)
        interfaces[o.uplink] = InterfaceSpec(addresses=[o.host_address])
        host = spec.host.model_copy(update={"interfaces": interfaces})
        links = [*spec.links, LinkSpec(endpoints=["outside:eth0", f"host:{o.uplink}"])]
        return spec.model_copy(update={"nodes": nodes, "host": host, "links": links})

    def _outside_world(self, spec: TopologySpec, spaces: dict[str, Namespace]) -> dict[str, Namespace]:
        """Gateways, NAT, published ports, isolation and forwarding (see :mod:`nsnet.topology.outside`)."""
        gateways = False
        for name, space in list(spaces.items()):
            node_spec = spec.host if name == HOST else spec.hosts.get(name) or spec.nodes.get(name) or NamespaceSpec()
            extra = []
            for ifname, if_spec in node_spec.interfaces.items():
                if if_spec is None or not if_spec.gateway:
                    continue
                loc = self._base(name)
                bridge = outside.bridge_of(spaces, name, ifname)
                gw = [i for i in sorted(bridge.addresses) if ipcache.ip_interface(i).version == 4] if bridge else []
                if not gw:
                    self.add(
                        (*loc, "interfaces", ifname, "gateway"),
                        "gateway: true needs the other end of this link to be a port of a host bridge "
                        "that has an IPv4 address",
                        "give the bridge an address, e.g. addresses: [10.0.0.1/24]",
                    )
                    continue
                link = space.links.get(ifname)
                mine = [ipcache.ip_interface(a) for a in sorted(link.addresses)] if link else []
                on_link = [g for g in gw if any(a.ip in ipcache.ip_interface(g).network for a in mine)]
                if not on_link:
                    assert bridge is not None
                    has = ", ".join(str(a) for a in mine if a.version == 4) or "no IPv4 address"
                    self.add(
                        (*loc, "interfaces", ifname, "gateway"),
                        f"gateway: true routes through bridge {bridge.name} ({', '.join(gw)}), but {ifname} "
                        f"has {has}, outside the bridge's subnet: the gateway would not be reachable",
                        f"give {ifname} an address in {ipcache.ip_interface(gw[0]).network}, "
                        f"or the bridge one in {ifname}'s subnet",
                    )
                    continue
                extra.append(Route(to="0.0.0.0/0", via=str(ipcache.ip_interface(on_link[0]).ip)))
                gateways = True
            if extra:
                spaces[name] = replace(space, routes=space.routes | frozenset(extra))
        if HOST not in spaces:  # a multi-host lab: its hosts take no NAT or published ports (yet)
            return spaces
        host = spaces[HOST]
        published: list[outside.Published] = []
        for i, p in enumerate(spec.host.publish):
            loc = ("host", "publish", i)
            if p.node not in spaces or p.node == HOST:
                self.add((*loc, "node"), f"node {p.node!r} does not exist", _suggest(p.node, spaces) or "")
                continue
            behind = outside.node_behind_bridge(spaces, p.node)
            if behind is None:
                self.add(
                    (*loc, "node"),
                    f"{p.node} has no IPv4 address on a link to a host bridge",
                    "publish a node that sits behind one of the host's bridges",
                )
                continue
            if any((q.host_port, q.proto) == (p.host_port, p.proto) for q in published):
                self.add(
                    (*loc, "host_port"),
                    f"host port {p.host_port}/{p.proto} is published twice",
                    "use another host port",
                )
                continue
            published.append(outside.Published(p.host_port, p.node, behind[0], p.port, p.proto, behind[1].name))
        bridges = {n for n, link in host.links.items() if link.kind == "bridge"}
        allowed = set()
        for i, pair in enumerate(spec.host.allow):
            if len(pair) != 2 or not set(pair) <= bridges:
                self.add(
                    ("host", "allow", i),
                    f"{pair} is not a pair of the host's bridges",
                    f"write two of: {', '.join(sorted(bridges)) or 'no bridges yet'}",
                )
                continue
            allowed.add(frozenset(pair))
        if spec.host.docker and host.firewall.policies:
            self.add(
                ("host", "firewall", "policies"),
                "with docker: true the host's policies are Docker's",
                "remove firewall.policies from the host",
            )
        rules = outside.firewall_rules(host, published, allowed)
        sysctls = dict(host.sysctls)
        if outside.needs_forwarding(host, published, gateways, spec.outside is not None):
            sysctls.setdefault("net.ipv4.ip_forward", "1")
        spaces[HOST] = replace(
            host,
            firewall=replace(host.firewall, rules=host.firewall.rules + tuple(rules)),
            sysctls=sysctls,
            docker=spec.host.docker,
        )
        if spec.outside is not None and "outside" in spaces:
            spaces["outside"] = replace(spaces["outside"], server=spec.outside.serve)
        return spaces

    def _expectations(self, spec: TopologySpec, spaces: dict[str, Namespace]) -> tuple[Expectation, ...]:
        out = []
        for i, e in enumerate(spec.expect):
            loc: Loc = ("expect", i)
            if e.from_ not in spaces:
                self.add(
                    (*loc, "from"),
                    f"node {e.from_!r} does not exist",
                    _suggest(e.from_, spaces) or f"nodes are: {', '.join(spaces)}",
                )
                continue
            if e.to not in spaces:
                try:
                    ipcache.ip_address(e.to)
                except ValueError:
                    self.add(
                        (*loc, "to"),
                        f"{e.to!r} is neither a node nor an address",
                        _suggest(e.to, spaces) or f"nodes are: {', '.join(spaces)}",
                    )
                    continue
            out.append(Expectation(src=e.from_, dst=e.to, proto=e.proto, reach=e.reach))
        return tuple(out)

    def _links(self, spec: TopologySpec, spaces: dict[str, NamespaceSpec]) -> dict[str, dict[str, Endpoint]]:
        """Veth ends per namespace: {ns: {ifname: peer}}."""
        ends: dict[str, dict[str, Endpoint]] = {}
        for i, link in enumerate(spec.links):
            parsed: list[Endpoint] = []
            for j, text in enumerate(link.endpoints):
                long_form = ("links", i, "endpoints") in self.lines
                loc: Loc = ("links", i, "endpoints", j) if long_form else ("links", i, j)
                ns, sep, ifname = text.partition(":")
                if not sep or not ns or not ifname:
                    self.add(loc, f"endpoint {text!r} is not NODE:IFACE", "write it like RED:reth0 or host:reth1")
                    continue
                self.named_in_links.add((ns, ifname))
                if ns not in spaces:
                    self.add(
                        loc,
                        f"endpoint {text!r} names node {ns!r}, which does not exist",
                        _suggest(ns, spaces) or f"nodes are: {', '.join(spaces)}",
                    )
                    continue
                if not self._ifname_ok(loc, ifname):
                    continue
                if ifname in ends.get(ns, {}) or ifname in spaces[ns].bridges:
                    self.add(loc, f"interface {ifname!r} appears twice in {ns}", "give each end its own name")
                    continue
                parsed.append(Endpoint(ns, ifname))
            if len(parsed) == 2:
                a, b = parsed
                if a.ns == b.ns:
                    self.add(
                        ("links", i),
                        f"both ends of this link are in {a.ns}",
                        "a veth link joins two different namespaces (node or host)",
                    )
                    continue
                ends.setdefault(a.ns, {})[a.ifname] = b
                ends.setdefault(b.ns, {})[b.ifname] = a
        return ends

    def _ifname_ok(self, loc: Loc, name: str) -> bool:
        if len(name.encode()) > IFNAME_MAX:
            self.add(
                loc,
                f"interface name {name!r} is {len(name.encode())} bytes long; Linux allows {IFNAME_MAX}",
                "use a shorter name",
            )
            return False
        if name == "lo" or not LINK_NAME_RE.match(name) or name in (".", ".."):
            self.add(loc, f"interface name {name!r} is not allowed", "use letters, digits and _ . - (not 'lo')")
            return False
        return True

    def _namespace(
        self, name: str, base: Loc, space: NamespaceSpec, ends: dict[str, Endpoint], role: Literal["node", "host"]
    ) -> Namespace:
        links: dict[str, Link] = {}
        for br, br_spec in space.bridges.items():
            loc = (*base, "bridges", br)
            if not self._ifname_ok(loc, br):
                continue
            b = br_spec or BridgeSpec()
            links[br] = Link(
                name=br,
                kind="bridge",
                mtu=b.mtu,
                mac=b.mac,
                up=b.up,
                addresses=self._norm_addresses(b.addresses),
                stp=b.stp,
                ageing=b.ageing,
                masquerade=b.masquerade,
                forward=b.forward,
            )
        for vx, vx_spec in getattr(space, "vxlans", {}).items():
            loc = (*base, "vxlans", vx)
            if not self._ifname_ok(loc, vx):
                continue
            if vx in space.bridges or vx in ends:
                self.add(
                    loc, f"{vx!r} is already the name of another interface here", "give the VXLAN device its own name"
                )
                continue
            if vx_spec.master is not None and vx_spec.master not in space.bridges:
                self.add(
                    (*loc, "master"),
                    f"bridge {vx_spec.master!r} does not exist in {name}",
                    _suggest(vx_spec.master, space.bridges) or "declare it under bridges:",
                )
                continue
            same = next(
                (o for o, v in links.items() if v.vxlan and (v.vxlan.vni, v.vxlan.port) == (vx_spec.vni, vx_spec.port)),
                None,
            )
            if same is not None:
                self.add(
                    (*loc, "vni"),
                    f"VNI {vx_spec.vni} on port {vx_spec.port} is already {same}'s here; the kernel allows one",
                    "attach that device to every bridge that needs the network, or use another VNI",
                )
                continue
            settings = Vxlan(vni=vx_spec.vni, port=vx_spec.port, remote=vx_spec.remote, learning=vx_spec.learning)
            links[vx] = Link(name=vx, kind="vxlan", master=vx_spec.master, mtu=vx_spec.mtu, vxlan=settings)
        for ifname, peer in ends.items():
            links[ifname] = Link(name=ifname, kind="veth", peer=peer)
        for ifname, if_spec in space.interfaces.items():
            loc = (*base, "interfaces", ifname)
            own, problems = kind_checks.declared(if_spec, ifname in ends)  # a link of its own kind (macvlan, dummy...)
            for sub, message, hint in problems:
                self.add((*loc, *sub), message, hint)
            if problems or (own is not None and not self._own_link_ok(loc, ifname, space)):
                continue
            if ifname not in ends and own is None:
                if ifname in space.bridges:
                    self.add(loc, f"{ifname!r} is a bridge; set its addresses under bridges.{ifname}")
                elif (name, ifname) not in self.named_in_links:  # else its link's problem is reported
                    where = name
                    self.add(
                        loc,
                        f"interface {ifname!r} is not an end of any link in {where}",
                        _suggest(ifname, ends) or f"add a link [{where}:{ifname}, OTHER:IFACE] or remove it",
                    )
                continue
            if if_spec is None:
                continue
            master = if_spec.master
            if master is not None and master not in space.bridges:
                self.add(
                    (*loc, "master"),
                    f"bridge {master!r} does not exist in {name}",
                    _suggest(master, space.bridges) or "declare it under bridges:",
                )
                master = None  # reported; no subnet checks against a bridge that does not exist
            links[ifname] = Link(
                name=ifname,
                **(own or {"kind": "veth", "peer": ends[ifname]}),
                master=master,
                mtu=if_spec.mtu,
                mac=if_spec.mac,
                up=if_spec.up,
                addresses=self._norm_addresses(if_spec.addresses),
                shaping=shaping.qdisc(if_spec.rate, if_spec.delay, if_spec.loss),
            )
        routes = self._routes(base, space, links)
        sysctls: dict[str, str] = {}
        for key, value in space.sysctls.items():
            loc = (*base, "sysctls", key)
            text = value
            if not SYSCTL_RE.match(key):
                self.add(
                    loc,
                    f"sysctl {key!r} is not a per-namespace network setting",
                    "only net.* keys such as net.ipv4.ip_forward can be set per namespace",
                )
            elif not SYSCTL_VALUE_RE.match(text):
                self.add(loc, f"value {text!r} is not allowed", "use a number or a simple word")
            else:
                sysctls[key] = text
        return Namespace(
            name=name,
            label=name,
            role=role,
            links=links,
            routes=frozenset(routes),
            sysctls=sysctls,
            firewall=self._firewall(base, space),
        )

    def _own_link_ok(self, loc: Loc, ifname: str, space: NamespaceSpec) -> bool:
        if not self._ifname_ok(loc, ifname):
            return False
        if ifname in space.bridges or ifname in getattr(space, "vxlans", {}):
            self.add(
                loc, f"{ifname!r} is already the name of another interface here", "give the interface its own name"
            )
            return False
        return True

    def _norm_addresses(self, addresses: list[str]) -> frozenset[str]:
        return frozenset(str(ipcache.ip_interface(a)) for a in addresses)

    def _routes(self, base: Loc, space: NamespaceSpec, links: dict[str, Link]) -> list[Route]:
        routes: list[Route] = []
        subnets = [ipcache.ip_interface(a).network for link in links.values() for a in link.addresses]
        for i, r in enumerate(space.routes):
            loc = (*base, "routes", i)
            family = ipcache.ip_address(r.via).version if r.via else 4
            to = ("0.0.0.0/0" if family == 4 else "::/0") if r.to == "default" else r.to
            if r.via and ipcache.ip_network(to).version != family:
                self.add((*loc, "via"), f"gateway {r.via} and destination {r.to} are of different IP versions")
                continue
            if r.dev is not None and r.dev not in links:
                self.add(
                    (*loc, "dev"),
                    f"interface {r.dev!r} does not exist here",
                    _suggest(r.dev, links) or f"interfaces here: {', '.join(links) or 'none'}",
                )
                continue
            if r.via and r.dev is None and not any(ipcache.ip_address(r.via) in n for n in subnets):
                self.add(
                    (*loc, "via"),
                    f"gateway {r.via} is not in any subnet of this namespace's interfaces",
                    "add an address in the gateway's subnet, or name the interface with dev:",
                )
                continue
            route = Route(to=str(ipcache.ip_network(to)), via=r.via, dev=r.dev, metric=r.metric)
            if route in routes:
                self.add(loc, f"route {route} is listed twice", "remove one")
                continue
            routes.append(route)
        return routes

    def _firewall(self, base: Loc, space: NamespaceSpec) -> Firewall:
        loc0: Loc = (*base, "firewall")
        policies: dict[str, str] = {}
        for chain, policy in space.firewall.policies.items():
            if chain not in POLICY_CHAINS:
                self.add(
                    (*loc0, "policies", chain),
                    f"{chain!r} is not a built-in filter chain",
                    _suggest(chain.upper(), POLICY_CHAINS) or f"use one of {', '.join(POLICY_CHAINS)}",
                )
            else:
                policies[chain] = policy
        rules = []
        for i, r in enumerate(space.firewall.rules):
            loc = (*loc0, "rules", i)
            chains = BUILTIN_CHAINS[r.table]
            if r.chain not in chains:
                self.add(
                    (*loc, "chain"),
                    f"{r.chain!r} is not a built-in chain of the {r.table} table",
                    _suggest(r.chain.upper(), chains) or f"use one of {', '.join(chains)}",
                )
                continue
            if r.action == "MASQUERADE" and (r.table, r.chain) != ("nat", "POSTROUTING"):
                self.add(
                    (*loc, "action"),
                    "MASQUERADE works only in table nat, chain POSTROUTING",
                    "set table: nat and chain: POSTROUTING",
                )
                continue
            if (r.sport or r.dport) and r.protocol not in PORT_PROTOCOLS:
                self.add(loc, "ports need a protocol that has them", "set protocol: tcp, udp or sctp")
                continue
            families = {ipcache.ip_network(a).version for a in (r.source, r.destination) if a}
            if r.family:
                families.add(4 if r.family == "ipv4" else 6)
            if r.protocol in ("icmp", "icmpv6"):
                families.add(4 if r.protocol == "icmp" else 6)
            if len(families) > 1:
                self.add(
                    loc,
                    "this rule mixes IPv4 and IPv6 (addresses, family or protocol)",
                    "split it into one rule per IP version",
                )
                continue
            rules.append(render_rule(r))
        return Firewall(policies=policies, rules=tuple(rules))

    # -- whole-lab checks --------------------------------------------------

    def _iter_addresses(self, spaces: dict[str, Namespace]) -> Iterator[tuple[Loc, str, str, Link]]:
        for ns, space in spaces.items():
            base = self._base(ns)
            for link in space.links.values():
                group = "bridges" if link.kind == "bridge" else "interfaces"
                for addr in sorted(link.addresses):
                    yield (*base, group, link.name, "addresses"), ns, addr, link

    def _addresses(self, spaces: dict[str, Namespace]) -> None:
        seen: dict[str, str] = {}
        for loc, ns, addr, link in self._iter_addresses(spaces):
            if ipcache.ip_interface(addr).network.prefixlen == 0:
                self.add(loc, f"{addr} has a /0 prefix, which covers every address", "use the subnet's real prefix")
            ip = str(ipcache.ip_interface(addr).ip)
            where = f"{ns}:{link.name}"
            if ip in seen:
                self.add(
                    loc, f"address {ip} is used twice ({seen[ip]} and {where})", "give each interface its own address"
                )
            else:
                seen[ip] = where

    def _bridge_ports(self, spaces: dict[str, Namespace]) -> None:
        """A Linux bridge numbers its ports in 10 bits: it takes at most ``BRIDGE_PORTS_MAX``."""
        for ns, space in spaces.items():
            ports: dict[str, int] = {}
            for link in space.links.values():
                if link.master:
                    ports[link.master] = ports.get(link.master, 0) + 1
            for bridge, count in ports.items():
                if count > BRIDGE_PORTS_MAX and bridge in space.links:
                    self.add(
                        (*self._base(ns), "bridges", bridge),
                        f"bridge {bridge} has {count} ports; Linux allows at most {BRIDGE_PORTS_MAX} on one bridge",
                        f"spread the ports over several bridges of up to {BRIDGE_PORTS_MAX} ports, each its own subnet",
                    )

    def _bridge_subnets(self, spaces: dict[str, Namespace]) -> None:
        """Subnets seen on different bridges must not overlap where their namespace routes to both (each bridge
        has an address of its own); bridges without one are plain switches, as a Kathará collision domain."""
        segments: dict[str, set[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {}
        routed: set[str] = set()
        # Bridges joined by a VXLAN network are one segment, whatever host they are on.
        first: dict[int, str] = {}
        joined = {
            f"{ns}:{link.master}": first.setdefault(link.vxlan.vni, f"{ns}:{link.master}")
            for ns, space in spaces.items()
            for link in space.links.values()
            if link.vxlan and link.master
        }
        for ns, space in spaces.items():
            for link in space.links.values():
                if link.kind == "bridge":
                    key = joined.get(f"{ns}:{link.name}", f"{ns}:{link.name}")
                    segments.setdefault(key, set()).update(ipcache.ip_interface(a).network for a in link.addresses)
                    if link.addresses:
                        routed.add(key)
        for space in spaces.values():
            for link in space.links.values():
                if link.kind != "veth" or link.peer is None:
                    continue
                peer = spaces.get(link.peer.ns)
                peer_link = peer.links.get(link.peer.ifname) if peer else None
                if peer_link and peer_link.master:
                    key = f"{link.peer.ns}:{peer_link.master}"
                    key = joined.get(key, key)
                    segments.setdefault(key, set()).update(ipcache.ip_interface(a).network for a in link.addresses)
        names = sorted(key for key in segments if key in routed)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                for na in segments[a]:
                    for nb in segments[b]:
                        if na.version == nb.version and na.overlaps(nb):
                            ns, br = b.split(":", 1)
                            loc = self._base(ns)
                            self.add(
                                (*loc, "bridges", br),
                                f"subnet {nb} on bridge {b} overlaps {na} on bridge {a}",
                                "give each bridge its own subnet",
                            )
