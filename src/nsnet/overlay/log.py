"""The overlay controller's log: one :class:`Record` per event, and a sink printing them."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Record:
    """One line of the controller's log: an event it saw (``event``) and what it did (in ``text``)."""

    time: float
    host: str
    event: str
    text: str
    data: dict[str, Any]

    def line(self) -> str:
        return f"{self.host} {self.event} {self.text}"

    def to_json(self) -> dict[str, Any]:
        return {"time": round(self.time, 6), "host": self.host, "event": self.event, "text": self.text, **self.data}


Sink = Callable[[Record], None]


def printer(as_json: bool = False, stop: threading.Event | None = None) -> Sink:
    """A sink printing each record on stdout, one line (JSON with ``as_json``) at a time, from any thread.

    In text mode a line starts with the local time. If stdout is closed (``| head``), printing
    stops quietly and ``stop`` is set.
    """
    lock = threading.Lock()

    def sink(record: Record) -> None:
        if as_json:
            line = json.dumps(record.to_json())
        else:
            line = f"{datetime.fromtimestamp(record.time).strftime('%H:%M:%S.%f')[:-3]} {record.line()}"
        with lock:
            try:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            except BrokenPipeError:
                with contextlib.suppress(OSError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                if stop is not None:
                    stop.set()

    return sink
