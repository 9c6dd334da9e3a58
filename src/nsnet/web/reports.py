"""What the API answers, as plain JSON data, from nsnet's own functions (called in worker threads)."""

from __future__ import annotations

import io
import os
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from rich.console import Console

from nsnet import graph, inspect
from nsnet import reach as reach_
from nsnet.cli.inspect import print_sections
from nsnet.engine import lifecycle
from nsnet.engine.journal import Journal
from nsnet.errors import LabNotFoundError, NsnetError, TopologyError
from nsnet.explain import Explanation, Walker
from nsnet.explain.probe import probe
from nsnet.explain.snapshot import snapshot
from nsnet.inspect import SECTIONS
from nsnet.model import Topology
from nsnet.topology.loader import load
from nsnet.web.layout import layout

INSPECT_WIDTH = 200


_files: dict[tuple[str, int, int], Topology | None] = {}
_files_lock = threading.Lock()


def _topology_file(lab: str) -> Topology | None:
    """The file the lab was brought up from, loaded once per version of it (a 500-node file takes a second)."""
    journal = Journal.load(lab)
    if journal is None:
        raise LabNotFoundError(f"no lab named {lab!r} is up (see `nsnet ls`)")
    if not journal.source:
        return None
    try:
        st = os.stat(journal.source)
    except OSError:
        return None
    key = (journal.source, st.st_mtime_ns, st.st_size)
    with _files_lock:
        if key in _files:
            return _files[key]
    try:
        loaded: Topology | None = load(journal.source)
    except TopologyError:
        loaded = None  # gone or no longer valid: the picture is drawn from what the kernel holds
    with _files_lock:
        if len(_files) > 32:
            _files.clear()
        _files[key] = loaded
    return loaded


def topology(lab: str) -> dict[str, Any]:
    """The live picture of ``lab`` with positions, its neighbour tables and the bridges' fdb entries."""
    with ThreadPoolExecutor(1) as pool:  # the two kernel reads overlap
        tables = pool.submit(inspect.inspect, lab, (), ("neigh", "fdb"))
        picture = graph.from_lab(lab, _topology_file(lab))
        view = tables.result()
    return layout(picture, view)


def inspect_node(lab: str, node: str) -> dict[str, Any]:
    """One namespace as ``nsnet inspect LAB NODE`` prints it (``text``), and its JSON (``view``)."""
    view = inspect.inspect(lab, [node], SECTIONS)
    buffer = io.StringIO()
    console = Console(file=buffer, width=INSPECT_WIDTH, highlight=False, color_system=None, force_terminal=False)
    print_sections(console, view, SECTIONS, INSPECT_WIDTH)
    return {"lab": lab, "node": node, "text": buffer.getvalue(), "view": asdict(view.namespaces[0])}


def _dies(e: Explanation) -> dict[str, Any] | None:
    for number, leg in enumerate(e.legs):
        for index, step in enumerate(leg.steps):
            if not step.ok:
                return {"leg": number, "step": index, "node": step.node, "what": step.what, "text": step.text}
    return None


def explain(lab: str, src: str, dst: str, proto: str, size: int | None, send: bool) -> dict[str, Any]:
    """``nsnet explain`` as data: the legs, verdict and fix; ``dies``: the failing step; with ``send`` the probe."""
    snap = snapshot(lab)
    result = Walker(snap).explain(src, dst, proto, size)
    observed = probe(snap, result) if send else None
    return {**asdict(result), "dies": _dies(result), "observed": asdict(observed) if observed else None}


def reach(lab: str, proto: str) -> dict[str, Any]:
    """``nsnet reach`` as data: every node to every other node's addresses, with real probes."""
    probes = reach_.matrix(lab, proto=proto)
    results = reach_.run(lab, probes)
    nodes = sorted({p.src for p in probes} | {p.dst for p in probes})
    return {"lab": lab, "proto": proto, "nodes": nodes, "results": [asdict(r) for r in results]}


def up(path: str, name: str | None) -> dict[str, Any]:
    """``nsnet up FILE [--name NAME]``."""
    topology = load(path)
    plan = lifecycle.up(topology, name)
    return {"lab": name or topology.name, "done": plan.lines()}


def apply_fix(lab: str, src: str, dst: str, proto: str) -> dict[str, Any]:
    """Explain again and run the fix nsnet itself proposes (never a command the page sends)."""
    before = Walker(snapshot(lab)).explain(src, dst, proto)
    if before.fix is None or not before.fix.command:
        raise NsnetError(f"explain {src} -> {dst} ({proto}) proposes no fix to apply: {before.verdict}")
    done = subprocess.run(["sh", "-ec", before.fix.command], capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        raise NsnetError(f"the fix failed ({done.returncode}): {before.fix.command}\n{done.stderr.strip()}")
    after = explain(lab, src, dst, proto, None, False)
    return {"command": before.fix.command, "output": done.stdout + done.stderr, "after": after}
