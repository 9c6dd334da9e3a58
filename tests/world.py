"""A private world: the root namespace of a lab's host, without touching the machine's.

``unshare --net --mount --pid --fork --mount-proc`` starts a small init in new
network, mount and PID namespaces. Its mounts are private (``mount
--make-rprivate /``); ``/run`` (named namespaces, nsnet's journals, daemon
sockets) and the directories asked for (a daemon's data) are fresh tmpfs;
``/sys`` is mounted again so that ``/sys/class/net`` shows the world's links
(the machine's cgroup hierarchy is moved back under it, for container
runtimes); ``lo`` is up. Inside, the world's network namespace is the root
namespace for nsnet and for any daemon alike.

Commands run in the world with ``nsenter`` into all three namespaces. Every
process started there dies with the world: closing it kills its init, and
the kernel kills the rest of its PID namespace. :func:`residue` lists
whatever of a world is still alive after it is closed (it must be nothing).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from conftest import EXAMPLES, Result

_SETUP = r"""
set -e
mount --make-rprivate /
mount -t tmpfs -o mode=755 world-run /run
mkdir /run/.cgroup
mount --rbind /sys/fs/cgroup /run/.cgroup
mount -t sysfs sysfs /sys
mount --move /run/.cgroup /sys/fs/cgroup
rmdir /run/.cgroup
# The files nsnet writes for a lab's namespaces stay in the world, like its namespaces.
[ -d /etc/netns ] || mkdir -m 755 /etc/netns
mount -t tmpfs -o mode=755 world-etc-netns /etc/netns
for dir in "$@"; do
    [ -d "$dir" ] || { echo "$dir is not a directory of the machine's (the world makes none there)" >&2; exit 1; }
    mount -t tmpfs -o mode=711 world-data "$dir"
done
ip link set lo up
exec "$PYTHON" -c "$INIT"
"""

# PID 1 of the world: says it is ready, then reaps orphans (daemons' children) until killed.
_INIT = r"""
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
print("ready", flush=True)
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(0.2)
"""


@dataclass(frozen=True)
class Ids:
    """The kernel's ids (``/proc/PID/ns/*`` inodes) of a world's namespaces."""

    net: str
    mnt: str
    pid: str


def _ns_ids(pid: int) -> Ids:
    return Ids(*(os.readlink(f"/proc/{pid}/ns/{kind}") for kind in ("net", "mnt", "pid")))


def _child_of(parent: int) -> int | None:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            return int(entry)
    return None


def residue(ids: Ids) -> list[str]:
    """Processes of the machine still in any namespace of a (closed) world: ``PID comm``."""
    wanted = {ids.net, ids.mnt, ids.pid}
    left = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            mine = {os.readlink(f"/proc/{entry}/ns/{kind}") for kind in ("net", "mnt", "pid")}
            if mine & wanted:
                left.append(f"{entry} {Path(f'/proc/{entry}/comm').read_text().strip()}")
        except OSError:
            continue
    return left


@dataclass
class World:
    """A running private world; use as a context manager (or :func:`world`)."""

    private_dirs: Sequence[str] = ()
    """Directories of the machine covered with a fresh tmpfs in the world (``/etc/docker`` ...); they must exist."""
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    init: int = 0
    """The world's init, as the machine numbers it."""
    ids: Ids | None = None
    _unshare: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 20) -> World:
        argv = ["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child"]
        argv += ["bash", "-c", _SETUP, "world", *self.private_dirs]
        self._unshare = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**self.env, "PYTHON": sys.executable, "INIT": _INIT},
        )
        assert self._unshare.stdout is not None
        line = self._unshare.stdout.readline()  # blocks until the init speaks or the setup fails
        if line.strip() != "ready":
            _, err = self._unshare.communicate(timeout=timeout)
            raise RuntimeError(f"the private world did not start: {err.strip() or line}")
        deadline = time.monotonic() + timeout
        while (child := _child_of(self._unshare.pid)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the private world's init cannot be found")
            time.sleep(0.01)
        self.init, self.ids = child, _ns_ids(child)
        return self

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` as run inside the world."""
        return ["nsenter", f"--target={self.init}", "--net", "--mount", "--pid", "--", *argv]

    def run(
        self, *argv: str, input: str | None = None, timeout: float = 120, env: dict[str, str] | None = None
    ) -> Result:
        """Run a command in the world; its exit code and output."""
        proc = subprocess.run(
            self.argv(argv),
            input=input,
            capture_output=True,
            text=True,
            env=env or self.env,
            timeout=timeout,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def sh(self, script: str, timeout: float = 120) -> str:
        """Run a shell script in the world; it must succeed; its output."""
        result = self.run("bash", "-ec", script, timeout=timeout)
        assert result.code == 0, f"in the private world, {script!r} failed ({result.code}): {result.text}"
        return result.out

    def nsnet(self, *args: str, timeout: float = 120) -> Result:
        """The nsnet CLI of this checkout, run in the world."""
        return self.run(sys.executable, "-m", "nsnet", *args, timeout=timeout)

    def spawn(self, argv: Sequence[str], log: str) -> None:
        """Start a daemon in the world, its output in ``log`` (a path in the world); it dies with the world."""
        self.sh(f"setsid {' '.join(map(_quote, argv))} >{_quote(log)} 2>&1 </dev/null &")

    def close(self) -> None:
        """Kill the world's init: every process of the world dies with it, then its namespaces."""
        if self.init:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.init, signal.SIGKILL)
        if self._unshare is not None:
            try:
                self._unshare.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                self._unshare.kill()
                self._unshare.communicate()
        if self.ids is not None:  # the kernel reaps a dead PID namespace's processes asynchronously
            deadline = time.monotonic() + 10
            while residue(self.ids) and time.monotonic() < deadline:
                time.sleep(0.05)

    def __enter__(self) -> World:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _quote(word: str) -> str:
    return shlex.quote(word)


def machine_network() -> dict[str, str]:
    """What a world must never change on the machine: the root namespace's links, addresses, routes, iptables
    and nftables rules, and this process's mounts (less the namespaces labs bind under /run/netns)."""

    def out(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout

    rules = [line for line in out("iptables-save").splitlines() if line.startswith(("-A", ":", "*"))]
    rules6 = [line for line in out("ip6tables-save").splitlines() if line.startswith(("-A", ":", "*"))]
    return {
        "links": "\n".join(sorted(line.split(":")[1].strip() for line in out("ip", "-o", "link").splitlines())),
        "addresses": out("ip", "-br", "addr"),  # no lifetimes, which count down
        "routes": out("ip", "route", "show", "table", "all"),
        "iptables": "\n".join(_uncounted(rules)),
        "ip6tables": "\n".join(_uncounted(rules6)),
        "nft": re.sub(r"counter packets \d+ bytes \d+", "counter", out("nft", "list", "ruleset")),
        "mounts": "\n".join(sorted(m for m in Path("/proc/self/mounts").read_text().splitlines() if not _netns(m))),
    }


def _netns(line: str) -> bool:
    # Labs of parallel tests bind their namespaces under /run/netns on the machine: not the world's doing.
    fields = line.split()
    return len(fields) > 1 and fields[1].startswith("/run/netns")


def _uncounted(lines: Iterable[str]) -> list[str]:
    # Chain lines carry packet counters (":FORWARD ACCEPT [12:345]"), which the machine's traffic moves.
    return [line.rsplit(" [", 1)[0] if line.startswith(":") else line for line in lines]


def world(private_dirs: Sequence[str] = ()) -> Iterator[World]:
    """A world for one test (a generator for a fixture): started, yielded, closed, checked for leftovers.

    Fails when anything of the world outlives it or the machine's network changed
    (:func:`machine_network`: other tests' namespaces, which come and go in parallel, are not part of it).
    """
    before = machine_network()
    w = World(private_dirs=private_dirs)
    try:
        yield w.start()
    finally:
        w.close()
        left = residue(w.ids) if w.ids else []
        assert not left, f"processes outlived the private world: {left}"
        after = machine_network()
        for key, value in before.items():
            assert after[key] == value, f"the private world changed the machine's {key}"


def root_variant(example: str, directory: Path) -> str:
    """An example topology with ``host: {mode: root}``, written to ``directory`` (for a lab in a world)."""
    data = yaml.safe_load((EXAMPLES / example).read_text())
    data["host"]["mode"] = "root"
    path = directory / example
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)
