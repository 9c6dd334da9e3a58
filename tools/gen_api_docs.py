"""Write docs/api.md: the public API of nsnet, from its docstrings.

Run: python tools/gen_api_docs.py (tests/test_docs.py checks that the page is current).
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import nsnet

PAGE = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def _doc(obj: object) -> str:
    return inspect.cleandoc(inspect.getdoc(obj) or "").strip()


def _signature(obj: object) -> str:
    try:
        return str(inspect.signature(obj))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""


def render() -> str:
    lines = [
        "# API reference",
        "",
        "Generated from the docstrings by `tools/gen_api_docs.py`; every name here is in `nsnet.__all__`.",
        "The guide is [python.md](python.md).",
        "",
    ]
    for name in sorted(n for n in nsnet.__all__ if not n.startswith("_")):
        obj = getattr(nsnet, name)
        if inspect.isclass(obj):
            bases = ", ".join(b.__name__ for b in obj.__bases__ if b is not object)
            lines += [f"## class `{name}`" + (f" ({bases})" if bases else ""), ""]
            if _doc(obj):
                lines += [_doc(obj), ""]
            for member, value in sorted(vars(obj).items()):
                if member.startswith("_") or not (inspect.isfunction(value) or isinstance(value, property)):
                    continue
                target = value.fget if isinstance(value, property) else value
                kind = "property" if isinstance(value, property) else "method"
                signature = "" if isinstance(value, property) else _signature(target)
                lines += [f"### {kind} `{name}.{member}{signature}`", ""]
                if _doc(target):
                    lines += [_doc(target), ""]
        elif callable(obj):
            lines += [f"## `{name}{_signature(obj)}`", ""]
            if _doc(obj):
                lines += [_doc(obj), ""]
        else:
            lines += [f"## `{name}`", "", f"`{obj!r}`", ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.exit(0 if PAGE.read_text() == render() else 1)
    PAGE.write_text(render())
