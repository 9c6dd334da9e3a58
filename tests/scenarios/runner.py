"""Scenarios from a seed, the labs they run on, and one scenario run: real traffic, explain, the fix, the undo."""

from __future__ import annotations

import contextlib
import random
import re
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from nsnet.engine.directory import lab_namespaces
from nsnet.explain import Walker
from nsnet.explain.snapshot import snapshot

from . import state, traffic
from .labs import BASE_LABS, ROOT_HANDLE, TCP_PORT, UDP_PORT, BaseLab, Flow
from .mutations import BUILDERS, CATALOGUE, Ctx, Mutation

SEED = 15
COUNT = 320


@dataclass(frozen=True)
class Scenario:
    """One scenario, fixed by the seed: a lab, one of its flows, a mutation builder and the builder's own seed."""

    index: int
    lab: str
    flow: int
    builder: str
    seed: int

    @property
    def id(self) -> str:
        return f"{self.index:03d}-{self.lab}-{self.builder}"


def generate(seed: int = SEED, count: int = COUNT, labs: dict[str, BaseLab] = BASE_LABS) -> list[Scenario]:
    """``count`` scenarios, the same for the same seed: labs taken in turn, flow and mutation drawn by weight."""
    rng = random.Random(seed)
    keys = sorted(labs)
    out = []
    for i in range(count):
        lab = labs[keys[i % len(keys)]]
        flow_index = rng.randrange(len(lab.flows))
        flow = lab.flows[flow_index]
        usable = [(name, weight) for name, _, weight, ok in CATALOGUE if ok(lab, flow)]
        name = rng.choices([n for n, _ in usable], weights=[w for _, w in usable])[0]
        out.append(Scenario(i, lab.key, flow_index, name, rng.randrange(2**32)))
    return out


@dataclass
class Result:
    """What one scenario measured. ``problems`` is empty when explain was right on every count."""

    scenario: Scenario
    kind: str = ""
    desc: str = ""
    flow: str = ""
    real: bool | None = None
    real_detail: str = ""
    predicted: bool | None = None
    verdict: str = ""
    said: str = ""
    """The failing steps and reasons explain gave (what the words are looked for in)."""
    crash: str = ""
    named: bool | None = None
    words: tuple[tuple[str, ...], ...] = ()
    fix: str | None = None
    fix_works: bool | None = None
    reverted: bool = True
    revert_diff: list[str] = field(default_factory=list)
    error: str = ""
    """A problem of the scenario itself (the harness, not explain): a command that failed, a broken baseline."""
    harmless: bool = False
    seconds: float = 0.0

    @property
    def agrees(self) -> bool:
        return not self.crash and self.predicted is not None and self.predicted == self.real

    @property
    def problems(self) -> list[str]:
        if self.error:
            return [f"harness: {self.error}"]
        out = []
        if self.crash:
            out.append(f"crash: {self.crash}")
        elif not self.agrees:
            out.append(
                f"verdict: explain says {'reachable' if self.predicted else 'unreachable'}, "
                f"traffic {'passes' if self.real else 'fails'} ({self.real_detail})"
            )
        if self.harmless and self.real is False:
            out.append("harness: a harmless mutation broke the traffic")
        if self.named is False and self.agrees:
            out.append(f"not named: wanted {' and '.join('/'.join(w) for w in self.words)}")
        if self.fix_works is False and self.agrees:
            out.append(f"fix fails: {self.fix!r}" if self.fix else "no fix command")
        if not self.reverted:
            out.append("harness: revert left " + "; ".join(self.revert_diff)[:300])
        return out


def words_met(words: tuple[tuple[str, ...], ...], text: str) -> bool:
    """Every group of ``words`` has one alternative in ``text``, as a whole word (any case)."""

    def has(word: str) -> bool:
        return re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", text, re.IGNORECASE) is not None

    return all(any(has(w) for w in group) for group in words)


class LabRun:
    """A base lab brought up once under a unique name, with its listeners and its baseline state."""

    def __init__(self, lab: BaseLab, name: str) -> None:
        self.lab = lab
        self.name = name
        self.ns: dict[str, str] = {}
        self.listeners: list[traffic.Listener] = []
        self.base: dict[str, state.NsState] = {}
        self.rebuilds = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def _nsnet(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "nsnet", *args], capture_output=True, text=True, timeout=120, check=False
        )

    def up(self) -> None:
        # The file stays while the lab is up, as a user's does: explain reads the topology's plan from it.
        self._dir = tempfile.TemporaryDirectory()
        path = Path(self._dir.name) / "lab.yaml"
        path.write_text(self.lab.text)
        done = self._nsnet("up", str(path), "--name", self.name, "-q")
        if done.returncode != 0:
            self._nsnet("down", self.name, "-q")
            raise RuntimeError(f"nsnet up {self.lab.key} failed: {done.stdout}{done.stderr}")
        try:
            self._ready()
        except BaseException:
            self.down()
            raise

    def _ready(self) -> None:
        # The root namespace (``host: root``, in a private world) is reached by the name the world gave it.
        self.ns = {label: ns or ROOT_HANDLE for ns, label in lab_namespaces(self.name).items()}
        if any(f.family == 6 for f in self.lab.flows):
            self._no_dad()
        for cmd in self.lab.setup:
            state.run(cmd.format(**self.ns))
        for node in self._listening_nodes():
            tcp = sorted({TCP_PORT, *self.lab.tcp_ports.get(node, ())})
            self.listeners.append(traffic.listen(self.ns[node], tcp, [UDP_PORT]))
        self.base = {label: state.read(ns) for label, ns in self.ns.items()}
        bad = [f.label for f in self.lab.flows if not traffic.passes(self.ns[f.src], f.addr, f.proto, tries=5)[0]]
        if bad:
            raise RuntimeError(f"base lab {self.lab.key} does not pass its own flows: {bad}")

    def _listening_nodes(self) -> list[str]:
        nodes = {f.dst for f in self.lab.flows if f.dst in self.lab.nodes and f.dst != "outside"}
        return sorted(nodes | set(self.lab.tcp_ports))

    def _no_dad(self) -> None:
        """No duplicate address detection (a link coming back would hold IPv6 addresses tentative for a second)."""
        for ns in self.ns.values():
            state.run(f"ip netns exec {ns} sh -c 'for f in /proc/sys/net/ipv6/conf/*/accept_dad; do echo 0 > $f; done'")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not any(state.run(f"ip -n {ns} -6 addr show tentative").stdout.strip() for ns in self.ns.values()):
                return
            time.sleep(0.1)

    def down(self) -> None:
        for listener in self.listeners:
            with contextlib.suppress(Exception):
                listener.stop()
        self.listeners = []
        done = self._nsnet("down", self.name, "-q")
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
        if done.returncode != 0:
            raise RuntimeError(f"nsnet down {self.name} failed: {done.stdout}{done.stderr}")

    def diff(self) -> list[str]:
        out = []
        for label, ns in self.ns.items():
            out += [f"{label}: {d}" for d in state.read(ns).diff(self.base[label])]
        return out

    def restore(self) -> list[str]:
        """Back to baseline whatever is left; rebuilds the lab when that fails. Returns what had to be restored."""
        diff = []
        for label, ns in self.ns.items():
            now = state.read(ns)
            changes = now.diff(self.base[label])
            if changes:
                diff += [f"{label}: {d}" for d in changes]
                state.restore(ns, self.base[label], now)
        for ns in self.ns.values():
            state.run(f"ip -n {ns} neigh flush all", check=False)
        if diff and self.diff():
            self.rebuild()
        return diff

    def rebuild(self) -> None:
        self.rebuilds += 1
        self.down()
        self.up()

    def as_user_runs(self, command: str) -> str:
        """``command`` where a user runs it: in the root namespace, which for a ``host: root`` lab in a private
        world is the world's (``state.run`` itself runs in a throwaway namespace)."""
        if ROOT_HANDLE not in self.ns.values():
            return command
        return f"ip netns exec {ROOT_HANDLE} bash -c {shlex.quote(command)}"

    def baseline_ok(self, flow: Flow) -> bool:
        return traffic.passes(self.ns[flow.src], flow.addr, flow.proto, tries=3)[0]

    def run_scenario(self, sc: Scenario) -> Result:
        return run_scenario(self, sc)


def _explain(run: LabRun, flow: Flow, size: int | None, result: Result) -> None:
    try:
        expl = Walker(snapshot(run.name)).explain(flow.src, flow.dst, flow.proto, size)
    except Exception as exc:  # explain must never raise on a lab's state: that is what is measured
        last = traceback.extract_tb(exc.__traceback__)[-1]
        result.crash = f"{type(exc).__name__}: {exc} ({Path(last.filename).name}:{last.lineno})"
        return
    result.predicted = expl.reachable
    result.verdict = expl.verdict
    said = [s.text for leg in expl.legs for s in leg.steps if not s.ok] + [
        leg.reason for leg in expl.legs if leg.reason
    ]
    result.said = " | ".join(said) or expl.verdict
    result.fix = expl.fix.command if expl.fix else None


def run_scenario(run: LabRun, sc: Scenario) -> Result:
    """One scenario on a lab that is at its baseline; leaves the lab at its baseline."""
    started = time.monotonic()
    flow = run.lab.flows[sc.flow]
    result = Result(sc, flow=flow.label)
    if not run.baseline_ok(flow):
        run.restore()
        if not run.baseline_ok(flow):
            run.rebuild()
    ctx = Ctx(run.lab, run.ns, run.base, flow, random.Random(sc.seed), uid=sc.index)
    try:
        mutation: Mutation = BUILDERS[sc.builder](ctx)
    except Exception as exc:
        result.error = f"builder {sc.builder}: {type(exc).__name__}: {exc}"
        return result
    result.kind, result.desc, result.words, result.harmless = (
        mutation.kind,
        mutation.desc,
        mutation.words,
        mutation.harmless,
    )
    fix_applied = False
    try:
        for cmd in mutation.apply:
            state.run(cmd)
        src = run.ns[flow.src]
        result.real, result.real_detail = traffic.passes(src, flow.addr, flow.proto, mutation.size)
        _explain(run, flow, mutation.size, result)
        if result.predicted is not None and result.predicted != result.real:
            # Make sure the kernel's answer is not a fluke before calling explain wrong.
            result.real, result.real_detail = traffic.passes(src, flow.addr, flow.proto, mutation.size, tries=2)
        if result.real is False:
            result.named = result.predicted is False and words_met(mutation.words, result.said)
            if result.predicted is False:
                result.fix_works = False
                if result.fix:
                    fix_applied = True
                    state.run(run.as_user_runs(result.fix), check=False)
                    result.fix_works = traffic.passes(src, flow.addr, flow.proto, mutation.size, tries=3)[0]
            else:
                result.fix_works = False
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        for cmd in mutation.revert:
            state.run(cmd, check=False)
        if not fix_applied:  # what a fix adds is the harness's to remove; the mutation's undo must be exact
            result.revert_diff = run.diff()
            result.reverted = not result.revert_diff
        run.restore()
        result.seconds = time.monotonic() - started
    return result
