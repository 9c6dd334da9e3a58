"""The Python API: a lab brought up for the length of a ``with`` block, and its nodes.

::

    with nsnet.Lab("examples/lab2-bridge-fixed.yaml", name="try1") as lab:
        lab.node("RED").run(["ping", "-c1", "11.11.11.3"], check=True)
        assert lab.ping("RED", "BLUE")

Every method is a thin layer over the functions the command line uses
(:mod:`nsnet.engine.lifecycle`, :mod:`nsnet.reach`, :mod:`nsnet.inspect`,
:mod:`nsnet.explain`, :mod:`nsnet.capture`); every error is an
:class:`~nsnet.errors.NsnetError`.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from nsnet import explain as _explain
from nsnet import inspect as _inspect
from nsnet import reach as _reach
from nsnet.engine import directory, lifecycle
from nsnet.errors import CommandError, ConflictError, LabNotFoundError, NsnetError
from nsnet.explain import Explanation
from nsnet.explain.walk import parse_proto
from nsnet.kernel import netexec
from nsnet.model import ROOT_NS, Topology, netns_names
from nsnet.names import no_node
from nsnet.plan.actions import Plan
from nsnet.topology.loader import load
from nsnet.views import LabView

T = TypeVar("T")
TopologySource = Topology | str | os.PathLike[str]
"""A topology object, or the path of a topology file."""
KEEP_PACKETS = 200


@dataclass(frozen=True)
class Completed:
    """A command that ran in a node: its exit code and output."""

    node: str
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """Whether the command exited with status 0."""
        return self.returncode == 0

    def check(self) -> Completed:
        """Raise :class:`CommandError` (with the output) unless the command succeeded."""
        if self.returncode != 0:
            why = f"exited with status {self.returncode}"
            raise CommandError(self.node, self.argv, self.returncode, self.stdout, self.stderr, why)
        return self


class Node:
    """A node of a running lab (or its ``host``): run commands, Python code and sockets in its namespace."""

    def __init__(self, lab: Lab, name: str, netns: str) -> None:
        self.lab = lab
        self.name = name
        self.netns = netns
        """Kernel namespace name (``""``: the root namespace, for a ``host: root`` lab's host)."""

    def __repr__(self) -> str:
        return f"Node({self.lab.name}:{self.name}, netns={self.netns or 'root'!r})"

    def _argv(self, command: Sequence[str] | str, env: Mapping[str, str] | None) -> tuple[list[str], list[str]]:
        argv = ["sh", "-c", command] if isinstance(command, str) else [str(a) for a in command]
        if not argv:
            raise NsnetError("no command given")
        if "/" not in argv[0] and shutil.which(argv[0], path=(env or os.environ).get("PATH")) is None:
            raise CommandError(self.name, argv, None, "", "", "command not found")
        return argv, (argv if self.netns == ROOT_NS else ["ip", "netns", "exec", self.netns, *argv])

    def run(
        self,
        command: Sequence[str] | str,
        *,
        timeout: float | None = 60.0,
        check: bool = False,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> Completed:
        """Run a command in the node and wait for it (a string runs with ``sh -c``).

        ``check``: raise :class:`CommandError` with the output if it fails.
        After ``timeout`` seconds the command is killed and :class:`CommandError` raised.
        """
        argv, full = self._argv(command, env)
        try:
            proc = subprocess.Popen(
                full,
                stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,  # its own process group: a timeout kills what it started too
            )
        except OSError as exc:
            raise CommandError(self.name, argv, None, "", "", exc.strerror or str(exc)) from exc
        with proc:
            try:
                out, err = proc.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                try:
                    out, err = proc.communicate(timeout=5)
                except subprocess.TimeoutExpired:
                    out, err = "", ""
                raise CommandError(self.name, argv, None, out, err, f"timed out after {timeout:g} s") from None
            except BaseException:  # Ctrl-C: stop it before going on
                _kill_group(proc)
                raise
        done = Completed(self.name, argv, proc.returncode, out, err)
        return done.check() if check else done

    def popen(
        self,
        command: Sequence[str] | str,
        *,
        stdin: int | None = subprocess.DEVNULL,
        stdout: int | None = subprocess.PIPE,
        stderr: int | None = subprocess.PIPE,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> subprocess.Popen[str]:
        """Start a command in the node (a server) and return at once; text mode.

        It runs in a process group of its own; when the lab goes down, the
        group is terminated (then killed) if it still runs.
        """
        argv, full = self._argv(command, env)
        try:
            proc = subprocess.Popen(
                full,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                text=True,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise CommandError(self.name, argv, None, "", "", exc.strerror or str(exc)) from exc
        self.lab._processes.append(proc)
        return proc

    def call(self, func: Callable[[], T], timeout: float | None = 60.0) -> T:
        """Call ``func()`` in a child process bound to the node's namespace; return its (pickled) result.

        The function is not pickled: lambdas and closures work. If it raises,
        :class:`~nsnet.kernel.netexec.ChildError` carries the child's traceback.
        """
        return netexec.call(self.netns, func, timeout, where=f"node {self.name}")

    def spawn(self, func: Callable[[], T]) -> netexec.Child[T]:
        """Start ``func()`` in a child bound to the node's namespace (a Python server); returns at once.

        ``child.result(timeout)`` waits for it; the lab kills it when it goes down.
        """
        child = netexec.spawn(self.netns, func, where=f"node {self.name}")
        self.lab._children.append(child)
        return child

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0) -> socket.socket:
        """An ordinary socket, created in the node's namespace: it binds, connects and listens there."""
        return netexec.open_socket(self.netns, family, type, proto)

    @property
    def addresses(self) -> list[str]:
        """The node's global addresses, as the kernel holds them now."""
        view = _inspect.inspect(self.lab.name, [self.name], ["addr"])
        return [a.address for v in view.namespaces for a in v.addresses or [] if a.scope == "global" and a.address]


@dataclass(frozen=True)
class Packet:
    """One frame captured at one point, decoded like ``tcpdump -n -e``."""

    time: float
    """Kernel timestamp, seconds since the epoch."""
    point: str
    """``NODE:IFACE``."""
    direction: str
    """``in`` or ``out``."""
    kind: str
    """A short kind: ``ARP request``, ``ICMP echo request``, ``UDP``..."""
    text: str
    data: bytes
    """The frame, from the Ethernet header on."""

    def __str__(self) -> str:
        return f"{self.point} {self.direction} {self.text}"


class Capture:
    """Packets captured while a ``lab.capture(...)`` block runs (see :meth:`Lab.capture`)."""

    def __init__(self, points: list[str], expression: str) -> None:
        self.points = points
        self.filter = expression
        self._packets: list[Packet] = []
        self._lock = threading.Condition()

    @property
    def packets(self) -> list[Packet]:
        """Every packet so far, in kernel-timestamp order."""
        with self._lock:
            return list(self._packets)

    def wait(self, count: int = 1, timeout: float = 5.0, match: Callable[[Packet], bool] | None = None) -> list[Packet]:
        """Wait until ``count`` packets (that ``match``) have been captured; return those found by then."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [p for p in self._packets if match is None or match(p)]
                left = deadline - time.monotonic()
                if len(found) >= count or left <= 0:
                    return found
                self._lock.wait(left)

    def _add(self, packets: list[Packet]) -> None:
        with self._lock:
            self._packets += packets
            self._lock.notify_all()


class Lab:
    """A topology brought up as a lab: ``with Lab(topology, name=...) as lab:`` (always brought down).

    ``topology`` is a :class:`~nsnet.model.Topology` or a topology file's
    path; ``name`` the lab's name (default: the topology's). Under a name
    other than the topology's, nodes' namespaces are ``<name>-<node>``.
    """

    def __init__(self, topology: TopologySource, name: str | None = None) -> None:
        self.topology = _topology(topology)
        self.name = name or self.topology.name
        self.is_up = False
        self._started = False
        self._processes: list[subprocess.Popen[str]] = []
        self._children: list[netexec.Child[Any]] = []
        self._packets: collections.deque[Packet] = collections.deque(maxlen=KEEP_PACKETS)

    def __repr__(self) -> str:
        return f"Lab({self.name!r}, {'up' if self.is_up else 'down'})"

    def __enter__(self) -> Lab:
        try:
            self.up()
        except BaseException:
            _shielded(self.down)  # whatever the interrupted or failed `up` left
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        _shielded(self.down)

    # -- lifecycle ---------------------------------------------------------------

    def up(self, topology: TopologySource | None = None) -> Plan:
        """Bring the lab up, or (running) apply the changes of ``topology`` to it; returns what was done.

        A lab of the same name that is already up (and not this one) is a
        :class:`~nsnet.errors.ConflictError`: it is not ours to take over.
        """
        desired = self.topology if topology is None else _topology(topology)
        if not self._started:
            if any(info.name == self.name for info in directory.labs()):
                raise ConflictError(
                    f"a lab named {self.name!r} is already up: choose another name, or `nsnet down {self.name}`"
                )
            self._started = True
        steps = lifecycle.up(desired, self.name, replace=topology is not None)  # our own lab: asked for
        self.is_up = True
        self.topology = desired
        return steps

    def plan(self, topology: TopologySource | None = None) -> Plan:
        """What :meth:`up` would change now (with ``topology``, or the lab's own)."""
        desired = self.topology if topology is None else _topology(topology)
        return lifecycle.plan_up(desired, self.name, fresh=not self.is_up)

    def down(self) -> Plan:
        """Stop what the lab's nodes still run (from :meth:`Node.popen`/:meth:`Node.spawn`), then remove the lab."""
        self._stop_processes()
        if not self._started:
            return Plan(self.name)
        try:
            steps = lifecycle.down(self.name)
        except LabNotFoundError:  # never got as far, or brought down behind our back (`nsnet down`)
            steps = Plan(self.name)
        self.is_up = self._started = False
        return steps

    def _stop_processes(self) -> None:
        for child in self._children:
            child.kill()
        self._children.clear()
        for proc in self._processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(3)
                except subprocess.TimeoutExpired:
                    _kill_group(proc)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        self._processes.clear()

    # -- nodes ------------------------------------------------------------------

    @property
    def nodes(self) -> list[str]:
        """The topology's node names (without ``host``)."""
        return self.topology.nodes

    @property
    def namespaces(self) -> dict[str, str]:
        """Node name (and ``host``) -> kernel namespace name (``""``: the root namespace)."""
        return netns_names(self.topology, self.name)

    def node(self, name: str) -> Node:
        """The node ``name`` (``host``: the lab's host namespace; in a multi-host lab, a host's name)."""
        if name not in self.namespaces:
            raise LabNotFoundError(no_node(self.name, name, self.namespaces))
        return Node(self, name, self.namespaces[name])

    # -- seeing and testing -------------------------------------------------------

    def ping(self, src: str, dst: str) -> bool:
        """Whether an ICMP echo from node ``src`` to node (every address of it) or address ``dst`` is answered."""
        results = self.reach([src], [dst])
        if not results:
            raise NsnetError(f"{dst!r} has no address to ping")
        return all(r.ok for r in results)

    def reach(
        self, sources: Iterable[str] = (), targets: Iterable[str] = (), proto: str = "icmp"
    ) -> list[_reach.Result]:
        """Who reaches whom with real probes (``icmp``, ``tcp:PORT``, ``udp:PORT``), as ``nsnet reach``."""
        _protocol(proto)
        return _reach.run(self.name, _reach.matrix(self.name, list(sources), list(targets), proto))

    def expectations(self) -> list[_reach.Result]:
        """The topology's ``expect:`` entries, probed: each result's ``matches`` says whether it holds."""
        pairs = _reach.expectation_probes(self.name, self.topology.expectations)
        return _reach.run(self.name, [p for p, _ in pairs], [e for _, e in pairs])

    def inspect(self, nodes: Sequence[str] = (), what: Iterable[str] = _inspect.SECTIONS) -> LabView:
        """Every namespace of the lab (or only ``nodes``) as the kernel holds it now, as ``nsnet inspect``."""
        return _inspect.inspect(self.name, nodes, what)

    def explain(self, src: str, dst: str, proto: str = "icmp") -> Explanation:
        """Where a packet from ``src`` to ``dst`` (node or address) goes, where it dies and why, with a fix."""
        return _explain.explain(self.name, src, dst, proto)

    @contextlib.contextmanager
    def capture(self, points: Sequence[str] = (), filter: str = "") -> Iterator[Capture]:
        """Capture on ``points`` while the block runs.

        A point is ``NODE:IFACE`` or ``NODE`` (all its interfaces); without
        points: every node's interfaces and the host's bridges, as ``nsnet
        capture``. ``filter`` is a tcpdump filter. Yields a :class:`Capture` whose
        :attr:`~Capture.packets` fill in as packets arrive; when the block
        ends, every packet captured is in it.
        """
        from nsnet.capture import Decoder, Frame, LiveCapture, resolve

        resolved = resolve(self.name, points)
        names = [p.name for p in resolved]
        result = Capture(names, filter)
        decoder = Decoder(vendors=False)
        stop = threading.Event()
        failed: list[BaseException] = []

        def packets(frames: Sequence[Frame]) -> list[Packet]:
            out = []
            for ts, _, point, pkttype, wirelen, data in frames:
                decoded = decoder.decode(data, wirelen)
                out.append(
                    Packet(ts / 1e9, names[point], "out" if pkttype == 4 else "in", decoded.kind, decoded.text, data)
                )
            return out

        def loop(live: LiveCapture) -> None:
            try:
                while not stop.is_set():
                    result._add(packets(live.poll(0.02)))
            except BaseException as exc:
                failed.append(exc)

        with LiveCapture(resolved, filter) as live:
            thread = threading.Thread(target=loop, args=(live,), name=f"nsnet-capture-{self.name}", daemon=True)
            thread.start()
            try:
                yield result
            finally:
                stop.set()
                thread.join()
                result._add(packets(live.finish()))
                self._packets.extend(result.packets)
        if failed:
            raise NsnetError(f"capture in lab {self.name!r} failed: {failed[0]}") from failed[0]

    @property
    def captured(self) -> list[Packet]:
        """The last packets of this lab's captures (up to 200), oldest first."""
        return list(self._packets)


def _topology(source: TopologySource) -> Topology:
    return source if isinstance(source, Topology) else load(os.fspath(source))


def _protocol(proto: str) -> None:
    parse_proto(proto)  # ExplainError if it is not one


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill a command started in a process group of its own, and everything in that group; reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _shielded(func: Callable[[], object]) -> None:
    """Run ``func`` with Ctrl-C held back until it is done (teardown must finish); then re-raise it."""
    if threading.current_thread() is not threading.main_thread():
        func()
        return
    interrupted: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    try:
        func()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
    if interrupted:
        raise KeyboardInterrupt
