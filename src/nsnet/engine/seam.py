"""The engine's one seam to the machine: every change and every read ``up``/``down``/``plan`` make.

:class:`Kernel` lists them: netlink (links, addresses, routes, overlay
entries, queued and sent by :meth:`Kernel.flush`, as
:class:`~nsnet.kernel.netlink.Netlink` does), named namespaces, sysctls,
iptables, traffic control, the files under /etc/netns, nsnet's HTTP servers, the processes in a lab's
namespaces, and the checks made before anything changes. :class:`LiveKernel`
is the machine itself; :mod:`nsnet.testing.fakekernel` holds the same in
memory, so the engine (journaling, batching, rollback) runs without root.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from nsnet.engine import livereader, preflight, servers
from nsnet.engine.livereader import Reading
from nsnet.errors import KernelError
from nsnet.kernel import etcnetns, firewall, netns, nftables, procs, settle, sysctl
from nsnet.kernel.netlink import Netlink, Ticket
from nsnet.kinds.base import LinkSet, LinkSpec
from nsnet.model import Firewall, Route, State
from nsnet.plan.actions import SetShaping

__all__ = ["Kernel", "Links", "LiveKernel", "Reading"]


class Links(Protocol):
    """The netlink half: what the engine asks of :class:`~nsnet.kernel.netlink.Netlink`."""

    def close(self) -> None: ...
    def create_namespaces(self, marks: dict[str, str]) -> dict[str, KernelError]: ...
    def forget(self, ns: str) -> None: ...
    def lo_alias(self, ns: str) -> str | None: ...
    def create_link(self, spec: LinkSpec) -> list[Ticket]: ...
    def change_link(self, change: LinkSet, phase: int = 0) -> Ticket: ...
    def fdb_entry(self, ns: str, op: str, dev: str, mac: str, dst: str) -> Ticket: ...
    def neighbour_entry(self, ns: str, op: str, dev: str, ip: str, mac: str) -> Ticket: ...
    def delete_link(self, ns: str, name: str) -> Ticket: ...
    def address(self, ns: str, op: str, ifname: str, cidr: str) -> Ticket: ...
    def route(self, ns: str, op: str, route: Route) -> Ticket: ...
    def flush(self) -> list[Ticket]: ...


class Kernel(Links, Protocol):
    """Everything the engine does to the machine (see the module's description)."""

    def read(self, spaces: Sequence[str]) -> dict[str, Reading]:
        """Links, static routes and mark of each namespace of ``spaces`` (veth peers resolved across them)."""

    def require_root(self, what: str = "change network namespaces") -> None:
        """Raise :class:`~nsnet.errors.PreflightError` unless the engine may change (or read) namespaces."""

    def check(self, state: State, firewall_in_use: bool = False) -> None:
        """Raise :class:`~nsnet.errors.PreflightError` if bringing ``state`` up (or down) cannot work here."""

    def exists(self, ns: str) -> bool: ...
    def is_stale(self, ns: str) -> bool:
        """Whether ``ns`` is only the empty file a namespace creation cut short left."""

    def names(self) -> list[str]:
        """Every named namespace on the machine."""

    def delete_namespaces(self, spaces: Sequence[str]) -> dict[str, KernelError]: ...
    def read_sysctls(self, ns: str, keys: list[str]) -> dict[str, str | None]: ...
    def write_sysctls(self, ns: str, pairs: Sequence[tuple[str, str]]) -> None:
        """Write in order; :class:`~nsnet.kernel.sysctl.SysctlFailed` names the first that failed."""

    def read_firewall(self, ns: str, lab: str, families: set[int]) -> Firewall: ...
    def restore_firewall(self, changes: Sequence[tuple[str, int, str]]) -> list[KernelError | None]:
        """``(ns, family, iptables-restore --noflush text)`` changes; per change, its error."""

    def load_nft(self, ns: str, text: str) -> None:
        """Add the native nftables tables of ``text`` (``nft -f`` syntax) to ``ns``."""

    def shape(self, change: SetShaping) -> None:
        """Put a qdisc at the root of a link's egress, or take it off, as ``change`` says."""

    def read_files(self, ns: str, names: list[str]) -> dict[str, str]:
        """The text of each of ``names`` under ``/etc/netns/<ns>/`` that is there."""

    def write_file(self, ns: str, name: str, text: str, mark: str) -> bool:
        """Write ``/etc/netns/<ns>/<name>`` (refused over a file that does not start with ``mark``);
        whether its directory had to be made."""

    def remove_file(self, ns: str, name: str, mark: str, directory: bool) -> None:
        """Remove ``/etc/netns/<ns>/<name>`` if it starts with ``mark``; with ``directory``, the directory if empty."""

    def tidy_files(self, ns: str) -> None:
        """After namespace ``ns`` is gone: nsnet's leftovers under ``/etc/netns/<ns>/`` (the temporary file of a
        write cut short, the directory if nothing else is in it)."""

    def start_server(self, ns: str, port: int) -> list[int]: ...
    def stop_server(self, ns: str, entry: Sequence[int]) -> None: ...
    def server_running(self, ns: str, entry: Sequence[int]) -> bool: ...
    def stop_processes(self, spaces: Mapping[str, str]) -> list[procs.Proc]:
        """Stop every process running in one of ``spaces``; the ones that ran."""

    def settle(self, spaces: Iterable[str]) -> None:
        """Wait until the links brought up in ``spaces`` carry packets."""


class LiveKernel(Netlink):
    """The machine itself: :class:`~nsnet.kernel.netlink.Netlink` and the tools and files beside it."""

    def __enter__(self) -> LiveKernel:
        return self

    def read(self, spaces: Sequence[str]) -> dict[str, Reading]:
        return livereader.read(self, spaces)

    def require_root(self, what: str = "change network namespaces") -> None:
        preflight.require_root(what)

    def check(self, state: State, firewall_in_use: bool = False) -> None:
        preflight.check(state, firewall_in_use)

    def exists(self, ns: str) -> bool:
        return netns.exists(ns)

    def is_stale(self, ns: str) -> bool:
        return netns.is_stale(ns)

    def names(self) -> list[str]:
        return netns.names()

    def delete_namespaces(self, spaces: Sequence[str]) -> dict[str, KernelError]:
        failed = netns.delete_many(spaces)
        for ns in spaces:
            if ns not in failed:
                etcnetns.forget(ns)
        return failed

    def tidy_files(self, ns: str) -> None:
        etcnetns.forget(ns)

    def read_sysctls(self, ns: str, keys: list[str]) -> dict[str, str | None]:
        return sysctl.read(ns, keys)

    def write_sysctls(self, ns: str, pairs: Sequence[tuple[str, str]]) -> None:
        sysctl.write_many(ns, pairs)

    def read_firewall(self, ns: str, lab: str, families: set[int]) -> Firewall:
        return firewall.read(ns, lab, families)

    def restore_firewall(self, changes: Sequence[tuple[str, int, str]]) -> list[KernelError | None]:
        return firewall.restore_many(changes)

    def load_nft(self, ns: str, text: str) -> None:
        nftables.load(ns, text)

    def shape(self, change: SetShaping) -> None:
        argv = change.argv()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0 and change.qdisc is not None:  # taking off what is not there is fine
            raise KernelError(f"tc refused {' '.join(argv[argv.index('qdisc') :])}: {done.stderr.strip()}")

    def read_files(self, ns: str, names: list[str]) -> dict[str, str]:
        return etcnetns.read(ns, names)

    def write_file(self, ns: str, name: str, text: str, mark: str) -> bool:
        return etcnetns.write(ns, name, text, mark)

    def remove_file(self, ns: str, name: str, mark: str, directory: bool) -> None:
        etcnetns.remove(ns, name, mark, directory)

    def start_server(self, ns: str, port: int) -> list[int]:
        return servers.start(ns, port)

    def stop_server(self, ns: str, entry: Sequence[int]) -> None:
        servers.stop(ns, entry)

    def server_running(self, ns: str, entry: Sequence[int]) -> bool:
        return servers.running(ns, entry)

    def stop_processes(self, spaces: Mapping[str, str]) -> list[procs.Proc]:
        return procs.stop(procs.in_namespaces(spaces))

    def settle(self, spaces: Iterable[str]) -> None:
        settle.wait(self, spaces)
