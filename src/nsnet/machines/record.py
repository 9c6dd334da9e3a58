"""The driver's record of a lab it spreads across machines: which machines, from which file.

Written before any machine is changed and removed once every share is down,
in the state directory (``drivers/<lab>.json``), so that ``nsnet down LAB``
and ``nsnet ls`` know the lab's machines, even after an ``up`` was killed.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nsnet import statedir
from nsnet.engine.journal import check_lab_name
from nsnet.errors import NsnetError
from nsnet.model import Machine


@dataclass
class Driven:
    """A lab this machine drives."""

    lab: str
    source: str | None
    machines: dict[str, Machine] = field(default_factory=dict)

    @staticmethod
    def path_for(lab: str) -> Path:
        check_lab_name(lab)
        return statedir.STATE_DIR / "drivers" / f"{lab}.json"

    @classmethod
    def load(cls, lab: str) -> Driven | None:
        if statedir.existing("drivers") is None:
            return None
        try:
            with open(statedir.open_file(cls.path_for(lab), os.O_RDONLY)) as f:
                data = json.load(f)
            machines = {n: Machine(**m) for n, m in data["machines"].items()}
            return cls(data["lab"], data.get("source"), machines)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise NsnetError(f"the driver's record of lab {lab!r} is unreadable: {exc}") from None

    def save(self) -> None:
        path = self.path_for(self.lab)
        statedir.directory("drivers", 0o755)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        with open(statedir.open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "w") as f:
            json.dump(
                {"lab": self.lab, "source": self.source, "machines": {n: asdict(m) for n, m in self.machines.items()}},
                f,
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_for(self.lab).unlink()


def driven() -> list[Driven]:
    """Every lab this machine drives."""
    where = statedir.existing("drivers")
    if where is None:
        return []
    out = []
    for path in sorted(where.glob("*.json")):
        with contextlib.suppress(NsnetError):
            found = Driven.load(path.stem)
            if found is not None:
                out.append(found)
    return out
