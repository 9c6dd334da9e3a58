"""The command line as a user runs it, at N nodes, against the raw-netlink floor and `ip -batch`.

Run as root, from the repository (see bench/README.md):

    python bench/bench_cli.py                          # N = 100 500 1000 10000
    python bench/bench_cli.py --sizes 100 500 --repeat 5

The lab is bench_build.py's: N namespaces, each joined by a veth to one bridge in a host
namespace, with an IPv4 address. Every nsnet figure is a new process (`python -m nsnet`):
Python's start-up, imports, reading and validating the file included. Per N and run, in
turn: nsnet `up` of a file it has never seen, `up` again (nothing to do), `validate` of
the same file (as checked before) and of a changed one (a comment added: read and
checked afresh), `inspect` (up to --inspect-max nodes), `reach --from` one node, `down`;
then the raw-netlink floor and `ip -batch` build and remove the same lab. It prints every
run, then medians with ratios to the floor, and the per-node cost of each N against the
smallest. Every name carries this process's id; everything is removed in `finally` blocks.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_build import PREFIX, IpBatch, Method, RawNetlink, interrupts_raise, topology

NSNET = [sys.executable, "-m", "nsnet"]
PHASES = ("up", "up again", "validate", "validate (changed)", "inspect", "reach --from", "down")


CPU: dict[tuple[int, str], list[float]] = {}
"""CPU seconds (user + system) of the same runs: on a busy machine, steadier than the wall clock."""


def cli(*args: str, ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """Wall and CPU seconds of one nsnet command (which must exit with a code in ``ok``)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen([*NSNET, *args], stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) not in ok:
            errors.seek(0)
            raise RuntimeError(f"nsnet {' '.join(args)} failed: {errors.read().decode()[-2000:]}")
    return took, usage.ru_utime + usage.ru_stime


def cpu_of(fn: Callable[[], float]) -> tuple[float, float]:
    """Wall seconds ``fn`` reports, and the CPU seconds it used (this process and its children)."""
    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    took = fn()
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return took, sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, before, strict=True))


class NsnetCommands:
    """Every nsnet command of one run, each in a new process."""

    def __init__(self) -> None:
        self.lab = ""
        self.tmp = ""

    def run(self, n: int, tag: str, inspect_max: int) -> dict[str, tuple[float, float]]:
        self.lab = f"{PREFIX}{tag}"
        self.tmp = tempfile.mkdtemp(prefix=f"{PREFIX}-")
        path = Path(self.tmp) / "lab.yaml"
        changed = Path(self.tmp) / "changed.yaml"
        text = yaml.safe_dump(topology(n))
        # A new lab name in the file: bytes never seen before, so nothing is known of them.
        path.write_text(f"# {self.lab}\n{text}")
        changed.write_text(f"# {self.lab}, changed\n{text}")
        out = {"up": cli("up", str(path), "--name", self.lab, "-q")}
        out["up again"] = cli("up", str(path), "--name", self.lab, "-q")
        out["validate"] = cli("validate", str(path))
        out["validate (changed)"] = cli("validate", str(changed))
        if n <= inspect_max:
            out["inspect"] = cli("inspect", self.lab)
        # Exit code 1: some probe failed (above 1000 nodes, the other bridges are other subnets, unrouted).
        out["reach --from"] = cli("reach", self.lab, "--from", "n0", ok=(0, 1))
        out["down"] = cli("down", self.lab, "-q")
        self.lab = ""
        return out

    def cleanup(self) -> None:
        if self.lab and Path(f"/run/nsnet/labs/{self.lab}.json").exists():
            subprocess.run([*NSNET, "down", self.lab, "-q"], check=False)
        self.lab = ""
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def median(runs: list[float]) -> float | None:
    return statistics.median(runs) if runs else None


def spread(runs: list[float]) -> str:
    return "–" if not runs else f"{fmt(min(runs))}–{fmt(max(runs))}" if len(runs) > 1 else fmt(runs[0])


def bench(args: argparse.Namespace, times: dict[tuple[int, str], list[float]]) -> None:
    """Fill ``times`` (wall seconds; CPU seconds go to ``CPU``) run by run."""
    floors: list[Method] = [RawNetlink(), IpBatch()]
    for n in args.sizes:
        for rep in range(args.repeat if n < 10000 else min(args.repeat, args.big_repeat)):
            tag = f"{n}c{rep}"
            runner = NsnetCommands()
            try:
                for phase, (took, cpu) in runner.run(n, tag, args.inspect_max).items():
                    times.setdefault((n, f"nsnet {phase}"), []).append(took)
                    CPU.setdefault((n, f"nsnet {phase}"), []).append(cpu)
            finally:
                runner.cleanup()
            time.sleep(args.settle * (1 + n / 250))
            for index, m in enumerate(floors):
                try:
                    up, up_cpu = cpu_of(lambda m=m, name=f"{tag}m{index}", n=n: m.up(n, name))
                    if rep == 0 and m.ports() != n:
                        raise RuntimeError(f"{m.name} built {m.ports()} bridge ports, not {n}")
                    down, down_cpu = cpu_of(m.down)
                finally:
                    m.cleanup()
                times.setdefault((n, f"{m.name} up"), []).append(up)
                times.setdefault((n, f"{m.name} down"), []).append(down)
                CPU.setdefault((n, f"{m.name} up"), []).append(up_cpu)
                CPU.setdefault((n, f"{m.name} down"), []).append(down_cpu)
                time.sleep(args.settle * (1 + n / 250))
            row = {k: v[-1] for (size, k), v in times.items() if size == n}
            print(f"N={n:<6} run {rep + 1}: " + "  ".join(f"{k} {fmt(v)}" for k, v in row.items()), flush=True)


def report(times: dict[tuple[int, str], list[float]], sizes: list[int]) -> str:
    def med(n: int, key: str) -> float | None:
        return median(times.get((n, key), []))

    def ratio(value: float | None, base: float | None) -> str:
        return "–" if value is None or not base else f"{value / base:.2f}×"

    lines = [
        "| N | nsnet `up` | raw netlink | `ip -batch` | `up` / floor | nsnet `down` | raw netlink | `ip -batch` "
        "| `down` / floor |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in sizes:
        up, floor_up, batch_up = med(n, "nsnet up"), med(n, "raw netlink up"), med(n, "ip -batch up")
        down, floor_down, batch_down = med(n, "nsnet down"), med(n, "raw netlink down"), med(n, "ip -batch down")
        lines.append(
            f"| {n} | {spread(times.get((n, 'nsnet up'), []))} | {fmt(floor_up)} | {fmt(batch_up)} "
            f"| {ratio(up, floor_up)} | {spread(times.get((n, 'nsnet down'), []))} | {fmt(floor_down)} "
            f"| {fmt(batch_down)} | {ratio(down, floor_down)} |"
        )
    lines += [
        "",
        "| N | `up` again | `validate` | `validate`, changed file | `inspect` | `reach --from` |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in sizes:
        cells = [spread(times.get((n, f"nsnet {p}"), [])) for p in PHASES[1:-1]]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "CPU seconds of the same runs (user + system; median), steadier than the wall clock on a busy machine:",
        "",
        "| N | nsnet `up` | raw netlink | `ip -batch` | `up` / floor | `up` again | `validate` | "
        "`validate`, changed | nsnet `down` | raw netlink | `down` / floor |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in sizes:

        def cpu(key: str, n: int = n) -> float | None:
            return median(CPU.get((n, key), []))

        up, floor_up, down, floor_down = (
            cpu("nsnet up"),
            cpu("raw netlink up"),
            cpu("nsnet down"),
            cpu("raw netlink down"),
        )
        lines.append(
            f"| {n} | {fmt(up)} | {fmt(floor_up)} | {fmt(cpu('ip -batch up'))} | {ratio(up, floor_up)} "
            f"| {fmt(cpu('nsnet up again'))} | {fmt(cpu('nsnet validate'))} | {fmt(cpu('nsnet validate (changed)'))} "
            f"| {fmt(down)} | {fmt(floor_down)} | {ratio(down, floor_down)} |"
        )
    base = sizes[0]
    lines += [
        "",
        f"Per node, against N={base} (µs per node; growth 1.00 = linear):",
        "",
        "| N | nsnet `up` | growth | nsnet `down` | growth | floor `up` | growth |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in sizes:
        cells = []
        for key in ("nsnet up", "nsnet down", "raw netlink up"):
            value, first = med(n, key), med(base, key)
            per, per0 = (value / n if value else None), (first / base if first else None)
            cells += [f"{per * 1e6:.0f}" if per else "–", ratio(per, per0)]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 1000, 10000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per N (default 3)")
    parser.add_argument("--big-repeat", type=int, default=1, help="runs at N >= 10000 (default 1)")
    parser.add_argument("--inspect-max", type=int, default=10000, help="inspect only up to this N")
    parser.add_argument("--settle", type=float, default=0.2, help="pause after a teardown, scaled by N")
    parser.add_argument("--out", type=Path, help="also write the tables to this file")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("run as root: the bench builds namespaces")
    times: dict[tuple[int, str], list[float]] = {}
    try:
        with interrupts_raise():
            bench(args, times)
    finally:  # what was measured before an error or Ctrl-C is reported too
        text = report(times, args.sizes)
        print()
        print(text)
        if args.out:
            args.out.write_text(text + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
