"""Pass 1 of the loader: the file's shape against the schema (:mod:`nsnet.topology.schema`).

pydantic checks types and keys; its errors are reworded here (unknown keys
with a "did you mean", unquoted values YAML read as numbers ...).
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from nsnet.errors import TopologyError
from nsnet.topology.report import Report, suggest
from nsnet.topology.schema import TopologySpec
from nsnet.topology.source import Loc


def check(report: Report, data: Any) -> TopologySpec:
    """``data`` as a :class:`TopologySpec`; a :class:`TopologyError` with every problem if it is not one."""
    if not isinstance(data, dict):
        report.add((), "a topology must be a mapping of keys (name, nodes, links, host)", "start with `name: mylab`")
        raise TopologyError(report.problems)
    try:
        return TopologySpec.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            _problem(report, err)
        raise TopologyError(report.problems) from None


def _problem(report: Report, err: Any) -> None:
    """One pydantic error in nsnet's words."""
    loc: Loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    kind = err["type"]
    if loc and loc[-1] == "[key]":
        key = err.get("input")
        report.add(
            (*loc[:-2], str(key)),
            f"this key is not text: YAML reads it as {key!r}",
            "put the name in quotes, e.g. 'yes' or '123'",
        )
    elif kind == "extra_forbidden":
        key = str(loc[-1])
        report.add(
            loc,
            f"unknown key {key!r}",
            suggest(key, _fields_at(loc[:-1])) or f"allowed keys: {', '.join(_fields_at(loc[:-1]))}",
        )
    elif kind == "missing":
        report.add(loc, f"missing required key {loc[-1]!r}")
    elif kind in ("too_short", "too_long") and len(loc) >= 2 and loc[-1] == "endpoints":
        report.add(
            loc[:-1],
            f"a link joins exactly two endpoints; this one has {_count(err.get('input'))}",
            "write both ends as NODE:IFACE, e.g. - [RED:eth0, host:veth0]",
        )
    elif kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        options = [o.strip(" '") for o in expected.replace(" or ", ",").split(",") if o.strip()]
        value = str(err.get("input"))
        report.add(loc, f"{value!r} is not allowed here", suggest(value, options) or f"use one of {expected}")
    else:
        msg = str(err["msg"]).removeprefix("Value error, ")
        if kind.endswith("_type") or kind.endswith("_parsing"):
            msg = f"wrong type: {msg[0].lower()}{msg[1:]} (got {err.get('input')!r})"
        hint = ""
        if kind == "string_type" and isinstance(err.get("input"), int | float):  # e.g. mac: 52:54:00:12:34:56
            hint = "put it in quotes (unquoted, YAML reads it as a number or true/false)"
        report.add(loc, msg, hint)


def _count(value: Any) -> str:
    n = len(value) if isinstance(value, list) else 0
    return f"{n} endpoint{'' if n == 1 else 's'}"


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
