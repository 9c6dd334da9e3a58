"""The ``nsnet`` command: parse, call the library, render."""

from __future__ import annotations

from nsnet.cli._common import main


def run() -> None:
    """Console-script entry point."""
    main()


__all__ = ["main", "run"]
