"""Build and tear down a lab of N nodes — each a network namespace joined by a veth to one
bridge, with an address, all up — with nsnet and with other tools, side by side in one run.

Run as root, from the repository (see bench/README.md):

    python bench/bench_build.py                      # N = 10 100 500 1000, 3 runs each
    python bench/bench_build.py --sizes 10 100 --repeat 5 --no-plot

Methods (same lab each time; IPv6 link-local off on the links, as nsnet does):
  nsnet           nsnet.up() / nsnet.down() from Python (one process, what the CLI calls)
  nsnet CLI       `nsnet up FILE -q` / `nsnet down LAB -q`: the same, plus Python start-up and YAML
  raw netlink     the floor: one thread, hand-packed netlink, veth made with its peer in place,
                  requests batched, no journal, no checks
  ip -batch       one `ip -batch` per namespace (ip cannot switch namespace inside a batch)
  ip (shell)      one `ip` process per step, as the seed's tutorial does it
  CNI bridge      the reference CNI bridge plugin (+ host-local IPAM), one ADD/DEL per node
                  (when /usr/lib/cni/bridge or /opt/cni/bin/bridge is installed)
  Mininet         Linux bridge, no controller (when Debian's `mininet` is installed)

Each median is printed with its ratio to `ip -batch`; results/build.md, build.csv and
build.png are written. nsnet's extras: `up` again on the unchanged lab, `plan`, `inspect`,
the CLI's peak memory, and start-up time of `import nsnet` and `nsnet --help`.
Everything is built in namespaces whose names carry this process's id, and removed in
`finally` blocks (SIGINT and SIGTERM included).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import nsnet
from nsnet.inspect import inspect
from nsnet.kernel import netns, rtnl

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PID = os.getpid()
PREFIX = f"bb{PID}x"  # <letters><pid>x<n>: what the test suite tells apart as another process's
CNI_DIRS = ("/opt/cni/bin", "/usr/lib/cni")
SYSTEM_PYTHON = "/usr/bin/python3"


PORTS = 1000
"""Nodes per bridge: Linux takes at most 1023 ports on a bridge, so above 1000 nodes there is one
bridge per 1000 (br0, br1...), each its own subnet."""


def bridge(i: int) -> str:
    return f"br{i // PORTS}"


def bridges(n: int) -> list[str]:
    return [f"br{b}" for b in range((n + PORTS - 1) // PORTS)]


def address(i: int, n: int) -> str:
    # One bridge: all of 10/8. Several: a /14 each (second octets 4b to 4b+3), which never overlap.
    return f"10.{i // 250}.{i % 250}.2/{8 if n <= PORTS else 14}"


def topology(n: int) -> dict[str, object]:
    return {
        "name": "bench",
        "host": {
            "bridges": {b: {} for b in bridges(n)},
            "interfaces": {f"p{i}": {"master": bridge(i)} for i in range(n)},
        },
        "nodes": {f"n{i}": {"interfaces": {"eth0": {"addresses": [address(i, n)]}}} for i in range(n)},
        "links": [[f"n{i}:eth0", f"host:p{i}"] for i in range(n)],
    }


def run(argv: list[str], stdin: str | None = None) -> str:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])} ... failed: {proc.stderr.strip()[:500]}")
    return proc.stdout


def bridge_ports(host: str) -> int:
    return sum(" master br" in line for line in run(["ip", "-n", host, "-o", "link", "show"]).splitlines())


def delete_namespaces(names: list[str]) -> None:
    """Remove namespaces this bench made (by their exact names), whatever state they are in."""
    existing = [ns for ns in names if os.path.exists(f"/run/netns/{ns}")]
    if existing:
        subprocess.run(
            ["ip", "-batch", "-"], input="".join(f"netns del {ns}\n" for ns in existing), text=True, check=False
        )


# -- the methods -----------------------------------------------------------------


class Method:
    name = ""
    slow = False
    """Slow methods run --slow-repeat times (default: as often as the others)."""

    def available(self) -> str | None:
        """None if usable here, else why not."""
        return None

    def up(self, n: int, tag: str) -> float:
        raise NotImplementedError

    def down(self) -> float:
        raise NotImplementedError

    def ports(self) -> int:
        """Ports on the lab's bridge (a check that the lab was really built)."""
        raise NotImplementedError

    def cleanup(self) -> None:
        """Remove whatever is left (after an error or an interruption)."""


class NsnetApi(Method):
    name = "nsnet"

    def __init__(self) -> None:
        self.lab = ""

    def up(self, n: int, tag: str) -> float:
        self.lab = f"{PREFIX}{tag}"
        self.topo = nsnet.from_dict(topology(n))
        started = time.perf_counter()
        nsnet.up(self.topo, self.lab)
        return time.perf_counter() - started

    def down(self) -> float:
        started = time.perf_counter()
        nsnet.down(self.lab)
        return time.perf_counter() - started

    def ports(self) -> int:
        return bridge_ports(f"{self.lab}-host")

    def cleanup(self) -> None:
        if self.lab and Path(f"/run/nsnet/labs/{self.lab}.json").exists():
            nsnet.down(self.lab)


class NsnetCli(NsnetApi):
    name = "nsnet CLI"
    peak_kib = 0

    def _cli(self, *args: str) -> float:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "nsnet", *args, "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"nsnet {' '.join(args)} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
        if proc.stderr:
            proc.stderr.close()
        self.peak_kib = max(self.peak_kib, usage.ru_maxrss)
        return took

    def up(self, n: int, tag: str) -> float:
        self.lab = f"{PREFIX}{tag}"
        self.tmp = tempfile.mkdtemp(prefix=f"{PREFIX}-")
        path = Path(self.tmp) / "lab.yaml"
        path.write_text(yaml.safe_dump(topology(n)))
        return self._cli("up", str(path), "--name", self.lab)

    def down(self) -> float:
        took = self._cli("down", self.lab)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return took


_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET, MS_BIND, MNT_DETACH = 0x40000000, 0x1000, 2


class RawNetlink(Method):
    """The floor: what the kernel must do, asked for as directly as Python can, in one thread."""

    name = "raw netlink"

    def __init__(self) -> None:
        self.spaces: list[str] = []

    def _create(self, ns: str, back: int) -> rtnl.Socket:
        path = f"/run/netns/{ns}"
        if _libc.unshare(CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "unshare")
        try:
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
            self.spaces.append(ns)
            if _libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND, None) != 0:
                raise OSError(ctypes.get_errno(), "mount")
            return rtnl.Socket.open()
        finally:
            _libc.setns(back, CLONE_NEWNET)

    def up(self, n: int, tag: str) -> float:
        host, nodes = f"{PREFIX}{tag}-h", [f"{PREFIX}{tag}-n{i}" for i in range(n)]
        self.host = host
        started = time.perf_counter()
        back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        socks: dict[str, rtnl.Socket] = {}
        try:
            for ns in [host, *nodes]:
                socks[ns] = self._create(ns, back)
            failures = self._configure(socks, host, nodes)
        finally:
            os.close(back)
            for sock in socks.values():
                sock.close()
        took = time.perf_counter() - started
        if failures:
            raise RuntimeError(f"raw netlink: {failures[0]}")
        return took

    def _configure(self, socks: dict[str, rtnl.Socket], host: str, nodes: list[str]) -> list[rtnl.Failure]:
        n = len(nodes)
        lo_up = (rtnl.RTM_NEWLINK, rtnl.CHANGE, rtnl.ifinfo(1, 1, 1))
        br = rtnl.nest(rtnl.IFLA_LINKINFO, rtnl.string(rtnl.IFLA_INFO_KIND, "bridge"))
        reqs = [lo_up]
        names = bridges(n)
        first = 2 + len(names)  # ifindex of p0: lo is 1, the bridges 2, 3...
        for b, name in enumerate(names):
            reqs += [
                (rtnl.RTM_NEWLINK, rtnl.NEW, rtnl.ifinfo(2 + b) + rtnl.string(rtnl.IFLA_IFNAME, name) + br),
                (rtnl.RTM_NEWLINK, rtnl.CHANGE, rtnl.ifinfo(2 + b) + rtnl.NO_LINK_LOCAL),
                (rtnl.RTM_NEWLINK, rtnl.CHANGE, rtnl.ifinfo(2 + b, 1, 1)),
            ]
        for i in range(n):
            master = rtnl.u32(rtnl.IFLA_MASTER, 2 + i // PORTS) + rtnl.NO_LINK_LOCAL
            reqs.append((rtnl.RTM_NEWLINK, rtnl.CHANGE, rtnl.ifinfo(first + i) + master))
            reqs.append((rtnl.RTM_NEWLINK, rtnl.CHANGE, rtnl.ifinfo(first + i, 1, 1)))
        creations: list[tuple[int, int, bytes]] = []
        failures: list[rtnl.Failure] = []
        for start in range(0, n, PORTS):  # a descriptor per peer namespace, a thousand at a time
            fds = [os.open(f"/run/netns/{ns}", os.O_RDONLY) for ns in nodes[start : start + PORTS]]
            try:
                creations = []
                for i, fd in enumerate(fds, start):
                    peer = rtnl.ifinfo(2) + rtnl.string(rtnl.IFLA_IFNAME, "eth0") + rtnl.u32(rtnl.IFLA_NET_NS_FD, fd)
                    data = rtnl.nest(rtnl.IFLA_INFO_DATA, rtnl.nest(rtnl.VETH_INFO_PEER, peer))
                    info = rtnl.nest(rtnl.IFLA_LINKINFO, rtnl.string(rtnl.IFLA_INFO_KIND, "veth"), data)
                    port = rtnl.ifinfo(first + i) + rtnl.string(rtnl.IFLA_IFNAME, f"p{i}")
                    creations.append((rtnl.RTM_NEWLINK, rtnl.NEW, port + info))
                head = reqs[: 1 + 3 * len(names)] if start == 0 else []
                failures += [f for f in socks[host].transact(head + creations) if f]
            finally:
                for fd in fds:
                    os.close(fd)
        failures += [f for f in socks[host].transact(reqs[1 + 3 * len(names) :]) if f]
        for i, ns in enumerate(nodes):
            ip = address(i, n).split("/")[0]
            packed = bytes(int(b) for b in ip.split("."))
            prefix = 8 if n <= PORTS else 14
            addr = rtnl.ifaddr(2, prefix, 2) + rtnl.attr(rtnl.IFA_ADDRESS, packed) + rtnl.attr(rtnl.IFA_LOCAL, packed)
            failures += [
                f
                for f in socks[ns].transact(
                    [
                        lo_up,
                        (rtnl.RTM_NEWLINK, rtnl.CHANGE, rtnl.ifinfo(2) + rtnl.NO_LINK_LOCAL),
                        (rtnl.RTM_NEWADDR, rtnl.NEW, addr),
                        (rtnl.RTM_NEWLINK, rtnl.CHANGE, rtnl.ifinfo(2, 1, 1)),
                    ]
                )
                if f
            ]
        return failures

    def down(self) -> float:
        started = time.perf_counter()
        for ns in self.spaces:
            path = f"/run/netns/{ns}"
            _libc.umount2(path.encode(), MNT_DETACH)
            os.unlink(path)
        took = time.perf_counter() - started
        self.spaces = []
        return took

    def ports(self) -> int:
        return bridge_ports(self.host)

    def cleanup(self) -> None:
        delete_namespaces(self.spaces)
        self.spaces = []


class IpBatch(Method):
    name = "ip -batch"

    def __init__(self) -> None:
        self.spaces: list[str] = []

    def up(self, n: int, tag: str) -> float:
        host, nodes = f"{PREFIX}{tag}-h", [f"{PREFIX}{tag}-n{i}" for i in range(n)]
        self.host, self.spaces = host, [host, *nodes]
        root = [f"netns add {ns}" for ns in self.spaces]
        root += [f"link add p{i} netns {host} type veth peer name eth0 netns {ns}" for i, ns in enumerate(nodes)]
        in_host = ["link set lo up"]
        for name in bridges(n):
            in_host += [f"link add {name} type bridge", f"link set {name} addrgenmode none", f"link set {name} up"]
        for i in range(n):
            in_host += [f"link set p{i} addrgenmode none", f"link set p{i} master {bridge(i)}", f"link set p{i} up"]
        started = time.perf_counter()
        run(["ip", "-batch", "-"], "\n".join(root) + "\n")
        run(["ip", "-n", host, "-batch", "-"], "\n".join(in_host) + "\n")
        for i, ns in enumerate(nodes):
            lines = ["link set lo up", "link set eth0 addrgenmode none", f"addr add {address(i, n)} dev eth0"]
            run(["ip", "-n", ns, "-batch", "-"], "\n".join([*lines, "link set eth0 up"]) + "\n")
        return time.perf_counter() - started

    def down(self) -> float:
        started = time.perf_counter()
        run(["ip", "-batch", "-"], "".join(f"netns del {ns}\n" for ns in self.spaces))
        self.spaces = []
        return time.perf_counter() - started

    def ports(self) -> int:
        return bridge_ports(self.host)

    def cleanup(self) -> None:
        delete_namespaces(self.spaces)
        self.spaces = []


class IpShell(IpBatch):
    name = "ip (shell)"
    slow = True

    def up(self, n: int, tag: str) -> float:
        host, nodes = f"{PREFIX}{tag}-h", [f"{PREFIX}{tag}-n{i}" for i in range(n)]
        self.host, self.spaces = host, [host, *nodes]
        steps = [
            ["ip", "netns", "add", host],
            ["ip", "-n", host, "link", "set", "lo", "up"],
            ["ip", "-n", host, "link", "add", "br0", "type", "bridge"],
            ["ip", "-n", host, "link", "set", "br0", "addrgenmode", "none"],
            ["ip", "-n", host, "link", "set", "br0", "up"],
        ]
        for i, ns in enumerate(nodes):
            steps += [
                ["ip", "netns", "add", ns],
                ["ip", "-n", ns, "link", "set", "lo", "up"],
                ["ip", "-n", host, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", ns],
                ["ip", "-n", host, "link", "set", f"p{i}", "addrgenmode", "none"],
                ["ip", "-n", ns, "link", "set", "eth0", "addrgenmode", "none"],
                ["ip", "-n", host, "link", "set", f"p{i}", "master", bridge(i)],
                ["ip", "-n", ns, "addr", "add", address(i, n), "dev", "eth0"],
                ["ip", "-n", ns, "link", "set", "eth0", "up"],
                ["ip", "-n", host, "link", "set", f"p{i}", "up"],
            ]
        started = time.perf_counter()
        for argv in steps:
            run(argv)
        return time.perf_counter() - started

    def down(self) -> float:
        started = time.perf_counter()
        for ns in self.spaces:
            run(["ip", "netns", "del", ns])
        self.spaces = []
        return time.perf_counter() - started


def cni_dir() -> str | None:
    return next((d for d in CNI_DIRS if os.access(os.path.join(d, "bridge"), os.X_OK)), None)


class Cni(IpBatch):
    """The reference CNI bridge plugin, run by this process from inside the lab's host namespace."""

    name = "CNI bridge"
    slow = True

    def available(self) -> str | None:
        return None if cni_dir() else "no CNI plugins (apt-get install containernetworking-plugins)"

    def _plugin(self, command: str, ns: str, index: int) -> None:
        plugins = cni_dir() or ""
        config = {
            "cniVersion": "1.0.0",
            "name": f"{PREFIX}net",
            "type": "bridge",
            "bridge": "br0",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/8"}]], "dataDir": self.tmp},
        }
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": f"{PREFIX}c{index}",
            "CNI_NETNS": f"/run/netns/{ns}",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": plugins,
        }
        with netns.entered(self.host):
            proc = subprocess.Popen(
                [os.path.join(plugins, "bridge")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                text=True,
            )
        out, err = proc.communicate(json.dumps(config))
        if proc.returncode != 0:
            raise RuntimeError(f"CNI bridge {command} in {ns}: {out.strip()} {err.strip()}")

    def up(self, n: int, tag: str) -> float:
        host, self.nodes = f"{PREFIX}{tag}-h", [f"{PREFIX}{tag}-n{i}" for i in range(n)]
        self.host, self.spaces = host, [host, *self.nodes]
        self.tmp = tempfile.mkdtemp(prefix=f"{PREFIX}-cni-")
        started = time.perf_counter()
        run(["ip", "-batch", "-"], "".join(f"netns add {ns}\n" for ns in self.spaces))
        for i, ns in enumerate(self.nodes):
            self._plugin("ADD", ns, i)
        return time.perf_counter() - started

    def down(self) -> float:
        started = time.perf_counter()
        for i, ns in enumerate(self.nodes):
            self._plugin("DEL", ns, i)
        run(["ip", "-batch", "-"], "".join(f"netns del {ns}\n" for ns in self.spaces))
        self.spaces = []
        took = time.perf_counter() - started
        shutil.rmtree(self.tmp, ignore_errors=True)
        return took

    def cleanup(self) -> None:
        super().cleanup()
        if getattr(self, "tmp", None):
            shutil.rmtree(self.tmp, ignore_errors=True)


class Mininet(Method):
    """Mininet in a child process (the system's python3), inside a private namespace of its own."""

    name = "Mininet"
    slow = True

    def available(self) -> str | None:
        if not os.access(SYSTEM_PYTHON, os.X_OK) or shutil.which("brctl") is None:
            return "no Mininet (apt-get install --no-install-recommends mininet bridge-utils)"
        probe = subprocess.run([SYSTEM_PYTHON, "-c", "import mininet.net"], capture_output=True, check=False)
        return None if probe.returncode == 0 else "no Mininet (apt-get install --no-install-recommends mininet)"

    def up(self, n: int, tag: str) -> float:
        self.sandbox = f"{PREFIX}{tag}-mn"
        run(["ip", "netns", "add", self.sandbox])
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.sandbox, SYSTEM_PYTHON, str(HERE / "mininet_lab.py"), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = self.proc.communicate()
        if self.proc.returncode != 0:
            raise RuntimeError(f"Mininet failed: {err.strip()[-800:]}")
        self.result = json.loads(out.strip().splitlines()[-1])
        return float(self.result["up"])

    def down(self) -> float:
        delete_namespaces([self.sandbox])
        return float(self.result["down"])

    def ports(self) -> int:
        return int(self.result["ports"])

    def cleanup(self) -> None:
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()  # it stops its network on SIGTERM
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=120)
        if getattr(self, "sandbox", None):
            delete_namespaces([self.sandbox])


METHODS: list[Callable[[], Method]] = [NsnetApi, NsnetCli, RawNetlink, IpBatch, IpShell, Cni, Mininet]
BASELINE = "ip -batch"


# -- running -----------------------------------------------------------------------


@dataclass
class Row:
    n: int
    method: str
    up: list[float] = field(default_factory=list)
    down: list[float] = field(default_factory=list)

    def median(self, phase: str) -> float | None:
        runs = self.up if phase == "up" else self.down
        return statistics.median(runs) if runs else None


@dataclass
class Extras:
    """nsnet only, per N: up again on the unchanged lab, plan, inspect; peak memory of the CLI."""

    again: dict[int, list[float]] = field(default_factory=dict)
    plan: dict[int, list[float]] = field(default_factory=dict)
    inspect: dict[int, list[float]] = field(default_factory=dict)
    peak_kib: dict[int, int] = field(default_factory=dict)
    startup: dict[str, list[float]] = field(default_factory=dict)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """SIGTERM ends the bench like Ctrl-C: through the `finally` blocks that clean up."""

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def measure_startup(runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import nsnet": [sys.executable, "-c", "import nsnet"],
        "nsnet --help": [sys.executable, "-m", "nsnet", "--help"],
    }
    for label, argv in commands.items():
        out[label] = [timed(lambda argv=argv: run(argv)) for _ in range(runs)]
    return out


def bench(args: argparse.Namespace) -> tuple[list[Row], Extras, dict[str, str]]:
    methods = [make() for make in METHODS]
    skipped: dict[str, str] = {}
    chosen = []
    for m in methods:
        why = m.available()
        if args.methods and m.name not in args.methods:
            continue
        if why:
            skipped[m.name] = why
            print(f"skipping {m.name}: {why}", flush=True)
            continue
        chosen.append(m)
    rows = {(n, m.name): Row(n, m.name) for n in args.sizes for m in chosen}
    extras = Extras()
    for n in args.sizes:
        for rep in range(args.repeat):
            for index, m in enumerate(chosen):
                if m.slow and rep >= args.slow_repeat:
                    continue
                if m.slow and args.slow_max and n > args.slow_max:
                    skipped.setdefault(m.name, f"not run above N={args.slow_max} (--slow-max)")
                    continue
                tag = f"{n}r{rep}m{index}"
                try:
                    up = m.up(n, tag)
                    if rep == 0 and m.ports() != n:
                        raise RuntimeError(f"{m.name} built {m.ports()} bridge ports, not {n}")
                    if isinstance(m, NsnetApi) and not isinstance(m, NsnetCli):
                        nsnet_extras(m, n, rep, args, extras)
                    if isinstance(m, NsnetCli):
                        extras.peak_kib[n] = max(extras.peak_kib.get(n, 0), m.peak_kib)
                    down = m.down()
                finally:
                    m.cleanup()
                rows[(n, m.name)].up.append(up)
                rows[(n, m.name)].down.append(down)
                print(f"N={n:<5} {m.name:<12} run {rep + 1}: up {up:8.3f} s   down {down:8.3f} s", flush=True)
                time.sleep(args.settle * (1 + n / 250))  # let the kernel finish freeing the last lab
    extras.startup = measure_startup(args.startup_runs)
    return list(rows.values()), extras, skipped


def nsnet_extras(m: NsnetApi, n: int, rep: int, args: argparse.Namespace, extras: Extras) -> None:
    extras.again.setdefault(n, []).append(timed(lambda: nsnet.up(m.topo, m.lab)))
    extras.plan.setdefault(n, []).append(timed(lambda: nsnet.plan_up(m.topo, m.lab)))
    if rep == 0 and n <= args.inspect_max:
        extras.inspect.setdefault(n, []).append(timed(lambda: inspect(m.lab)))


# -- reporting ---------------------------------------------------------------------


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def ratio(value: float | None, base: float | None) -> str:
    return "–" if value is None or not base else f"{value / base:.2f}×"


def report(rows: list[Row], extras: Extras, skipped: dict[str, str], args: argparse.Namespace) -> str:
    by = {(r.n, r.method): r for r in rows}
    lines = [
        "# Building and tearing down a lab of N nodes",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')} · Linux {platform.release()} · {os.cpu_count()} CPUs · "
        f"Python {platform.python_version()} · `{' '.join(['python bench/bench_build.py', *args.argv])}`",
        "",
        "Each lab: N network namespaces, each joined by a veth to one bridge in a host namespace, "
        "with an IPv4 address, everything up. Medians of "
        f"{args.repeat} runs ({args.slow_repeat} for the slow methods); ratios are to `ip -batch` (lower is faster).",
        "",
        "| N | method | up | up ÷ ip -batch | down | down ÷ ip -batch | runs |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in args.sizes:
        base = by.get((n, BASELINE))
        for r in rows:
            if r.n != n or not r.up:
                continue
            lines.append(
                f"| {n} | {r.method} | {fmt(r.median('up'))} | {ratio(r.median('up'), base and base.median('up'))} "
                f"| {fmt(r.median('down'))} | {ratio(r.median('down'), base and base.median('down'))} | {len(r.up)} |"
            )
    lines += ["", "## nsnet, more", "", "| N | up, unchanged lab | plan, unchanged lab | inspect | CLI peak memory |"]
    lines.append("| ---: | ---: | ---: | ---: | ---: |")
    for n in args.sizes:
        again, plan_ = extras.again.get(n), extras.plan.get(n)
        insp, peak = extras.inspect.get(n), extras.peak_kib.get(n)
        lines.append(
            f"| {n} | {fmt(statistics.median(again) if again else None)} "
            f"| {fmt(statistics.median(plan_) if plan_ else None)} "
            f"| {fmt(statistics.median(insp) if insp else None)} | {f'{peak / 1024:.0f} MiB' if peak else '–'} |"
        )
    lines += ["", "Start-up (median of a fresh process each time):", ""]
    for label, runs in extras.startup.items():
        lines.append(f"- `{label}`: {fmt(statistics.median(runs))}")
    targets = check_targets(by, extras)
    if targets:
        lines += ["", "## Targets, from this run", ""] + [f"- {t}" for t in targets]
    if skipped:
        lines += ["", "Not run: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()) + "."]
    return "\n".join(lines) + "\n"


def check_targets(by: dict[tuple[int, str], Row], extras: Extras) -> list[str]:
    out = []

    def med(method: str, phase: str, n: int = 500) -> float | None:
        row = by.get((n, method))
        return row.median(phase) if row else None

    up, down = med("nsnet", "up"), med("nsnet", "down")
    if up is None:
        return out

    def check(ok: bool) -> str:
        return "met" if ok else "**not met**"

    floor, batch, shell = med("raw netlink", "up"), med(BASELINE, "up"), med("ip (shell)", "up")
    if floor:
        out.append(f"up N=500 ≤ 1.3× the raw-netlink floor: {up / floor:.2f}× — {check(up <= 1.3 * floor)}")
    if batch:
        out.append(f"up N=500 faster than ip -batch: {batch / up:.1f}× faster — {check(up < batch)}")
    if shell:
        out.append(f"up N=500 ≥ 8× faster than the ip shell way: {shell / up:.1f}× — {check(shell >= 8 * up)}")
    for other in ("Mininet", "CNI bridge"):
        o_up, o_down = med(other, "up"), med(other, "down")
        if o_up:
            out.append(f"up N=500 ≥ 4× faster than {other}: {o_up / up:.1f}× — {check(o_up >= 4 * up)}")
        if o_down and down:
            out.append(f"down N=500 ≥ 10× faster than {other}: {o_down / down:.1f}× — {check(o_down >= 10 * down)}")
    if down is not None:
        out.append(f"down N=500 ≤ 1 s: {fmt(down)} — {check(down <= 1)}")
    again = extras.again.get(500)
    if again:
        a = statistics.median(again)
        out.append(f"up on an unchanged N=500 lab ≤ 0.5 s: {fmt(a)} — {check(a <= 0.5)}")
    for label in ("import nsnet", "nsnet --help"):
        runs = extras.startup.get(label)
        if runs:
            s = statistics.median(runs)
            out.append(f"`{label}` < 150 ms: {fmt(s)} — {check(s < 0.15)}")
    return out


def write_csv(rows: list[Row], path: Path) -> None:
    base = {r.n: r for r in rows if r.method == BASELINE}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["n", "method", "phase", "median_s", "ratio_to_ip_batch", "runs_s"])
        for r in rows:
            for phase in ("up", "down"):
                m = r.median(phase)
                b = base.get(r.n)
                bm = b.median(phase) if b else None
                runs = r.up if phase == "up" else r.down
                w.writerow(
                    [
                        r.n,
                        r.method,
                        phase,
                        f"{m:.4f}" if m is not None else "",
                        f"{m / bm:.3f}" if m is not None and bm else "",
                        " ".join(f"{x:.4f}" for x in runs),
                    ]
                )


def plot(rows: list[Row], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plot", flush=True)
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, phase in zip(axes, ("up", "down"), strict=True):
        for method in dict.fromkeys(r.method for r in rows):
            points = [(r.n, r.median(phase)) for r in rows if r.method == method and r.median(phase) is not None]
            if points:
                xs, ys = zip(*sorted(points), strict=True)
                style = "-o" if method.startswith("nsnet") else "--."
                ax.plot(xs, ys, style, label=method, linewidth=2.2 if method == "nsnet" else 1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("nodes (N)")
        ax.set_ylabel("seconds (median)")
        ax.set_title("build (up)" if phase == "up" else "teardown (down)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("N namespaces, each joined by a veth to one bridge, with an address")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 500, 1000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per method and N (median reported)")
    parser.add_argument("--slow-repeat", type=int, default=3, help="runs of the slow methods (shell, CNI, Mininet)")
    parser.add_argument("--slow-max", type=int, default=0, help="skip the slow methods above this N (0: never)")
    parser.add_argument("--methods", nargs="+", help="only these (names as printed, e.g. nsnet 'ip -batch')")
    parser.add_argument("--inspect-max", type=int, default=500, help="time inspect up to this N")
    parser.add_argument("--settle", type=float, default=0.5, help="seconds to let the kernel free a lab (× 1+N/250)")
    parser.add_argument("--startup-runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where build.md, build.csv, build.png go")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    args.argv = argv
    if os.geteuid() != 0:
        sys.exit("run as root: the bench builds real namespaces")
    with interrupts_raise():
        rows, extras, skipped = bench(args)
    text = report(rows, extras, skipped, args)
    print("\n" + text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "build.md").write_text(text)
    write_csv(rows, args.out / "build.csv")
    if not args.no_plot and plot(rows, args.out / "build.png"):
        print(f"wrote {args.out / 'build.png'}")
    print(f"wrote {args.out / 'build.md'} and {args.out / 'build.csv'}")


if __name__ == "__main__":
    main(sys.argv[1:])
