"""``@record``: a class of named fields, as a frozen-less dataclass, without importing :mod:`dataclasses`.

:mod:`dataclasses` imports :mod:`inspect` (with :mod:`ast`, :mod:`dis` and
:mod:`tokenize`) and compiles code for every class it makes: several
milliseconds of a plugin that runs once per container and command. A record
has the dataclass's ``__init__`` (fields in order, keyword or positional,
class-level defaults; a list default is copied), ``__eq__``, ``__hash__``
and ``__repr__``; type checkers treat it as a dataclass (:pep:`681`).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:

    def dataclass_transform(**_: object) -> object:
        return lambda decorated: decorated


@dataclass_transform(eq_default=True)
def record(cls: type[T]) -> type[T]:
    names = tuple(cls.__annotations__)
    defaults = {name: cls.__dict__[name] for name in names if name in cls.__dict__}

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__}() takes {len(names)} fields, not {len(args)}")
        values = dict(zip(names, args, strict=False))
        for name, value in kwargs.items():
            if name not in names or name in values:
                raise TypeError(f"{cls.__name__}() got an unexpected or repeated field {name!r}")
            values[name] = value
        for name in names:
            if name not in values:
                if name not in defaults:
                    raise TypeError(f"{cls.__name__}() misses field {name!r}")
                default = defaults[name]
                values[name] = list(default) if isinstance(default, list) else default
            object.__setattr__(self, name, values[name])

    def _fields(self: Any) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in names)

    def __eq__(self: Any, other: object) -> bool:
        return other.__class__ is self.__class__ and _fields(self) == _fields(other)

    def __hash__(self: Any) -> int:
        return hash(_fields(self))

    def __repr__(self: Any) -> str:
        return f"{cls.__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in names)})"

    for method in (__init__, __eq__, __hash__, __repr__):
        method.__qualname__ = f"{cls.__qualname__}.{method.__name__}"
        setattr(cls, method.__name__, method)
    return cls
