"""Pass 0 of the loader: a topology file's YAML, read with the line of every value.

libyaml parses; before anything is built from the nodes, :func:`parse` refuses
files that nest too deep or whose aliases expand too far, and records, for
every location in the file (a tuple of keys and list indexes, :data:`Loc`),
the line it starts on, so that every later pass can say where a problem is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml

from nsnet.errors import Problem, TopologyError

Loc = tuple[str | int, ...]
"""Where a value sits in the file: its keys and list indexes from the top, e.g. ("nodes", "RED", "routes", 0)."""

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


def parse(text: str, filename: str) -> tuple[Any, dict[Loc, int]]:
    """The data of ``text`` and the line of each of its locations; a :class:`TopologyError` if it is no YAML."""
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
                        path_text(loc),
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


def path_text(loc: Iterable[str | int]) -> str:
    """A location as a problem names it: ``nodes.RED.routes[0]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
