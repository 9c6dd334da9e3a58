"""What a running ``explain --probe`` installed, so that nothing of it outlives the probe.

A probe writes ``STATE_DIR/probes/<lab>.<pid>.json`` before it installs
anything, and updates it (atomically: write, fsync, rename) before each new
thing: the TRACE rules it inserts in each namespace's raw table (and whether
it had to create that table), the ``xtables-monitor`` processes, the
dropwatch child and its tracing instance. A probe removes what it installed
and then its record; a probe killed before that leaves its record behind,
and :func:`clean_stale` (run by ``up``, ``down`` and ``explain`` of the lab)
removes what it lists. A process is killed only while it is the one recorded:
same PID and same start time (``/proc/PID/stat``), so a reused PID is never
hit.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nsnet.engine.journal import check_lab_name
from nsnet.kernel import netns
from nsnet.kernel.firewall import in_ns
from nsnet.statedir import STATE_DIR

TRACE_COMMENT = "nsnet-trace"
"""The comment every TRACE rule of a probe carries; only rules with it are ever deleted."""


def start_time(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot), or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


@dataclass
class Child:
    """A process the probe started: killed only while ``pid`` still has ``start``."""

    what: str
    pid: int
    start: int


@dataclass
class ProbeRecord:
    """What one probe of a lab installed, written down before it is installed."""

    lab: str
    pid: int = field(default_factory=os.getpid)
    start: int = 0
    rules: dict[str, list[str]] = field(default_factory=dict)
    """Namespace -> raw-table rules as ``CHAIN SPEC`` (``PREROUTING -s ... -j TRACE``)."""
    created_raw: list[str] = field(default_factory=list)
    """Namespaces whose raw table the probe created (deleted again when empty)."""
    children: list[Child] = field(default_factory=list)
    instance: str | None = None
    """The tracing instance of the dropwatch child (``nsnet-<pid>-<random>``)."""
    family: int = 4
    """The IP family of the rules (an IPv6 probe traces with ip6tables)."""

    def __post_init__(self) -> None:
        check_lab_name(self.lab)
        if not self.start:
            self.start = start_time(self.pid) or 0

    @property
    def path(self) -> Path:
        return probes_dir() / f"{self.lab}.{self.pid}.json"

    @property
    def bin_dir(self) -> Path:
        """Where the probe keeps the link that gives its ping a name of its own."""
        return probes_dir() / f"{self.lab}.{self.pid}.bin"

    def save(self) -> None:
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w") as f:
            json.dump(asdict(self), f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def remove(self) -> None:
        shutil.rmtree(self.bin_dir, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def add_child(self, what: str, pid: int) -> None:
        """Record a child just started (before it can install anything of its own)."""
        self.children.append(Child(what, pid, start_time(pid) or 0))
        self.save()

    @classmethod
    def load(cls, path: Path) -> ProbeRecord | None:
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            data["children"] = [Child(**c) for c in data.get("children", [])]
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None

    def alive(self) -> bool:
        """Whether the probe that wrote this record is still running."""
        return self.start != 0 and start_time(self.pid) == self.start


def probes_dir() -> Path:
    return STATE_DIR / "probes"


def clean_stale(lab: str) -> list[ProbeRecord]:
    """Undo what killed probes of ``lab`` left (rules, raw tables, processes, tracing instances); returns their
    records. Records of probes still running are left alone."""
    check_lab_name(lab)
    cleaned = []
    for path in sorted(probes_dir().glob(f"{lab}.*.json")):
        if not path.name[len(lab) + 1 : -len(".json")].isdigit():
            continue  # another lab whose name starts with this one's and a dot
        record = ProbeRecord.load(path)
        if record is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        if record.alive():
            continue
        undo(record)
        record.remove()
        cleaned.append(record)
    return cleaned


def undo(record: ProbeRecord) -> None:
    """Remove everything ``record`` lists: kill its children, delete its rules and tracing instance."""
    for child in record.children:
        if start_time(child.pid) == child.start:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
    for ns, rules in record.rules.items():
        if netns.exists(ns):
            delete_rules(ns, rules, drop_table=ns in record.created_raw, family=record.family)
    if record.instance:
        remove_instance(record.instance)


def delete_rules(ns: str, rules: list[str], drop_table: bool, family: int = 4) -> None:
    """Delete ``rules`` (only those carrying the trace comment) from ``ns``'s raw table, each once if present;
    then the raw table itself if ``drop_table`` and it holds no rule any more."""
    tool, table = ("ip6tables", "ip6") if family == 6 else ("iptables", "ip")
    for rule in rules:
        if f"--comment {TRACE_COMMENT} " not in f"{rule} ":
            continue
        chain, spec = rule.split(" ", 1)
        subprocess.run(
            in_ns(ns, [tool, "-w", "-t", "raw", "-D", chain, *spec.split()]), capture_output=True, check=False
        )
    if drop_table:
        listed = subprocess.run(
            in_ns(ns, [f"{tool}-save", "-t", "raw"]), capture_output=True, text=True, check=False
        ).stdout
        if listed.strip() and not any(line.startswith("-A ") for line in listed.splitlines()):
            subprocess.run(in_ns(ns, ["nft", "delete", "table", table, "raw"]), capture_output=True, check=False)


def remove_instance(name: str) -> None:
    """Remove the tracing instance ``name`` (tracefs mounted, if need be, in a mount namespace of its own)."""
    argv = ["unshare", "--mount", "--propagation", "private"]
    argv += [sys.executable, "-m", "nsnet.explain.dropwatch", "--remove", name]
    subprocess.run(argv, capture_output=True, check=False, timeout=30)
