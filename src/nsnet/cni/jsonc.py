"""JSON for the plugin's hot path: :mod:`json`'s own C scanner and encoder (``_json``), without :mod:`json`.

Importing :mod:`json` compiles its regular expressions, which brings
:mod:`re` and :mod:`enum`: about a third of what a plugin started once per
container and command spends before it does anything. The parsing and
encoding here are the C code :func:`json.loads` and :func:`json.dumps` use;
what differs: input is UTF-8 (as the CNI specification says), and
:func:`dumps` with ``indent`` (and the error path, for its
``JSONDecodeError``) falls back on :mod:`json` itself.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

WHITESPACE = " \t\n\r"


class _Decoding:
    """What ``_json.make_scanner`` reads from a ``json.JSONDecoder``: its defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


_scan = _json.make_scanner(_Decoding())  # type: ignore[arg-type]  # (typeshed wants the class itself)


def _default(value: Any) -> Any:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


_encode = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True)


def loads(data: bytes | bytearray | str) -> Any:
    """:func:`json.loads`; :class:`ValueError` (a ``json.JSONDecodeError``) if ``data`` is not JSON."""
    text = data if isinstance(data, str) else bytes(data).decode()
    start = len(text) - len(text.lstrip(WHITESPACE))
    try:
        value, end = _scan(text, start)
    except RecursionError:
        raise
    except Exception:  # StopIteration, or a SystemError: the C scanner finds JSONDecodeError only once json is loaded
        end = -1
    if end < 0 or text[end:].strip(WHITESPACE):
        import json  # for its exact error (position, "Expecting value", "Extra data")

        return json.loads(text)
    return value


def dumps(value: Any, indent: int | None = None) -> str:
    """:func:`json.dumps` (with ``indent``, by :mod:`json` itself)."""
    if indent is not None:
        import json

        return json.dumps(value, indent=indent)
    return "".join(_encode(value, 0))


def load(f: IO[str]) -> Any:
    return loads(f.read())


def dump(value: Any, f: IO[str]) -> None:
    f.write(dumps(value))
