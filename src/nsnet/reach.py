"""Who reaches whom: a reachability matrix from real probes, and the topology's expectations.

ICMP probes are sent all at once from one raw socket per source namespace
and their replies collected together, so a 50-node full matrix takes about
as long as the slowest answer. TCP and UDP probes run in a thread pool,
each thread entering the source namespace on its own.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import os
import select
import socket
import struct
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dpkt

from nsnet.engine.directory import host_labels, lab_namespaces
from nsnet.errors import NsnetError
from nsnet.inspect import inspect
from nsnet.kernel import netns, rtnl
from nsnet.kernel.netlink import Netlink
from nsnet.model import Expectation
from nsnet.names import no_node

TIMEOUT = 1.0
ATTEMPTS = 3
BURST = 16
PACE = 0.004
SOL_RAW = 255
ICMP_FILTER = 1
RECEIVE_BUFFER = 4 << 20


@dataclass(frozen=True)
class Probe:
    """One thing to try: from node ``src`` to ``address`` (of node ``dst``, if it is one)."""

    src: str
    dst: str
    address: str
    proto: str = "icmp"


@dataclass(frozen=True)
class Result:
    """What a probe found; ``expected`` is set where the topology declares an expectation."""

    src: str
    dst: str
    address: str
    proto: str
    ok: bool
    rtt_ms: float | None
    detail: str
    expected: bool | None = None

    @property
    def matches(self) -> bool:
        return self.expected is None or self.expected == self.ok


def addresses(lab: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(node -> kernel namespace, node -> its global addresses) for ``lab``."""
    view = inspect(lab, what=["addr"])
    spaces = {v.node: v.netns for v in view.namespaces}
    found = {
        v.node: [a.address for a in v.addresses or [] if a.scope == "global" and a.address] for v in view.namespaces
    }
    return spaces, found


def matrix(lab: str, sources: Sequence[str] = (), targets: Sequence[str] = (), proto: str = "icmp") -> list[Probe]:
    """Every source node to every address of every other target node (or to the given addresses)."""
    spaces, found = addresses(lab)
    hosts = host_labels(lab)
    nodes = [n for n in spaces if n not in hosts]
    for name in sources:
        if name not in spaces:
            raise NsnetError(no_node(lab, name, spaces))
    probes = []
    for src in sources or nodes:
        for dst in targets or nodes:
            if dst == src:
                continue
            if dst in found:
                probes += [Probe(src, dst, address, proto) for address in found[dst]]
            else:
                try:
                    probes.append(Probe(src, dst, str(ipaddress.ip_address(dst)), proto))
                except ValueError:
                    raise NsnetError(f"{dst!r} is neither a node of lab {lab!r} nor an address") from None
    return probes


def expectation_probes(lab: str, expectations: Iterable[Expectation]) -> list[tuple[Probe, bool]]:
    """Probes for the topology's ``expect:`` entries, each with the outcome it must have."""
    spaces, found = addresses(lab)
    out = []
    for e in expectations:
        targets = found.get(e.dst) or ([e.dst] if e.dst not in spaces else [])
        if not targets:
            raise NsnetError(f"node {e.dst!r} has no address to probe")
        out += [(Probe(e.src, e.dst, address, e.proto), e.reach) for address in targets]
    return out


def run(lab: str, probes: Sequence[Probe], expected: Sequence[bool | None] | None = None) -> list[Result]:
    """Send every probe; results come back in the order of ``probes``."""
    spaces = {label: ns for ns, label in lab_namespaces(lab).items()}
    results: dict[int, Result] = {}
    touched: set[str] = set()
    for number, wave in enumerate(_waves(probes)):
        if number:
            _flush_neighbours(spaces[n] for n in touched if n in spaces)
        touched = {probes[i].src for i in wave} | {probes[i].dst for i in wave}
        icmp = [i for i in wave if probes[i].proto == "icmp"]
        results.update(_ping_all(spaces, [(i, probes[i]) for i in icmp]))
        others = [i for i in wave if probes[i].proto != "icmp"]
        if others:
            with ThreadPoolExecutor(max_workers=min(32, len(others))) as pool:
                for i, result in zip(others, pool.map(lambda i: _connect(spaces, probes[i]), others), strict=True):
                    results[i] = result
    ordered = [results[i] for i in range(len(probes))]
    if expected is not None:
        ordered = [r if e is None else _with_expected(r, e) for r, e in zip(ordered, expected, strict=True)]
    return ordered


def _neighbour_budget() -> int:
    """How many more ARP/NDP entries the kernel takes before "neighbor table overflow".

    The limit (``gc_thresh3`` of the root namespace) counts the entries of
    every namespace on the machine together; a full matrix of a big lab needs
    two entries per pair.
    """
    try:
        with open("/proc/sys/net/ipv4/neigh/default/gc_thresh3") as f:
            limit = int(f.read())
        with open("/proc/net/stat/arp_cache") as f:
            in_use = int(f.readlines()[1].split()[0], 16)
    except (OSError, ValueError, IndexError):
        return 512
    return max(64, (limit - in_use) * 3 // 4)


def _waves(probes: Sequence[Probe]) -> list[list[int]]:
    """Probes grouped so that each group's neighbour entries fit in the kernel's table.

    Each entry costs two neighbour entries (one at each end). When they do
    not all fit, probes are grouped by blocks of sources and blocks of
    destinations, so that a group touches few namespaces and only those are
    flushed before the next one.
    """
    budget = max(2, _neighbour_budget() // 2)  # pairs per group
    pairs = {(p.src, p.address) for p in probes}
    if len(pairs) <= budget:
        return [list(range(len(probes)))]
    names = dict.fromkeys(p.src for p in probes)
    # Square blocks, unless there are few sources: one source to 10,000 nodes is 30 waves, not 600.
    rows = max(1, min(len(names), math.isqrt(budget)))
    columns = max(1, budget // rows)
    sources = {name: n // rows for n, name in enumerate(names)}
    targets = {name: n // columns for n, name in enumerate(dict.fromkeys(p.dst for p in probes))}
    blocks: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(probes):
        blocks.setdefault((sources[p.src], targets[p.dst]), []).append(i)
    return list(blocks.values())


def _flush_neighbours(namespaces: Iterable[str]) -> None:
    """Free the previous wave's neighbour entries so the next wave fits.

    What ``ip neigh flush all`` removes (every entry but permanent and NOARP ones), through one
    netlink socket per namespace rather than a process each: a wave may touch a thousand namespaces.
    """
    with Netlink() as nl:
        for ns in namespaces:
            gone = []
            for family in (socket.AF_INET, socket.AF_INET6):
                for body in nl.dump(ns, "list neighbours", rtnl.RTM_GETNEIGH, rtnl.ndmsg(family)):
                    m = rtnl.parse_neigh(body)
                    if m.family != family or m.dst is None or m.state & (rtnl.NUD_PERMANENT | rtnl.NUD_NOARP):
                        continue
                    dst = rtnl.attr(rtnl.NDA_DST, socket.inet_pton(family, m.dst))
                    gone.append((rtnl.RTM_DELNEIGH, rtnl.CHANGE, rtnl.ndmsg(family, m.ifindex) + dst))
            if gone:
                nl.raw(ns).transact(gone)  # an entry that went away meanwhile is no failure


def _with_expected(r: Result, expected: bool) -> Result:
    return Result(r.src, r.dst, r.address, r.proto, r.ok, r.rtt_ms, r.detail, expected)


def _ping_all(spaces: dict[str, str], probes: list[tuple[int, Probe]]) -> dict[int, Result]:
    """ICMP echo to every probe at once: one raw socket per source namespace and family.

    Probes still unanswered after a round are sent again (up to ``ATTEMPTS``
    rounds): a burst of thousands of first packets, each waiting for ARP,
    can overflow the neighbour queues of a big lab, as a burst of pings would.
    """
    sockets: dict[tuple[str, int], socket.socket] = {}
    ident = os.getpid() & 0xFFFF
    results: dict[int, Result] = {}
    by_index = dict(probes)
    seqs = itertools.count()
    todo = list(probes)
    try:
        for _ in range(ATTEMPTS):
            pending: dict[tuple[str, int, int], tuple[int, float]] = {}
            for index, probe in todo:
                family: int = ipaddress.ip_address(probe.address).version
                sock = sockets.get((probe.src, family)) or _raw_socket(spaces[probe.src], family)
                sockets[(probe.src, family)] = sock
                seq = next(seqs) & 0xFFFF
                echo = dpkt.icmp.ICMP.Echo(id=ident, seq=seq, data=b"nsnet reach")
                packet = dpkt.icmp.ICMP(type=8, data=echo) if family == 4 else dpkt.icmp6.ICMP6(type=128, data=echo)
                try:
                    sock.sendto(bytes(packet), (probe.address, 0))
                    pending[(probe.src, ident, seq)] = (index, time.monotonic())
                except OSError as exc:
                    results[index] = _result(probe, False, None, f"not sent: {exc.strerror}")
                if len(pending) % BURST == 0:
                    # Each first packet costs an ARP broadcast that a bridge floods to every port:
                    # pace them, or a big lab's receive queues overflow and drop them all.
                    _collect(sockets, pending, by_index, results, PACE)
            _collect(sockets, pending, by_index, results, TIMEOUT)
            todo = [(index, by_index[index]) for index, _ in pending.values()]
            if not todo:
                break
    finally:
        for sock in sockets.values():
            sock.close()
    for index, probe in todo:
        results.setdefault(index, _result(probe, False, None, f"no echo reply ({ATTEMPTS} tries, {TIMEOUT:g} s each)"))
    return results


def _raw_socket(ns: str, family: int) -> socket.socket:
    with netns.entered(ns):
        if family == 4:
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            # Only echo replies: a raw socket otherwise also queues every request the node receives.
            sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", ~(1 << 0) & 0xFFFFFFFF))
        else:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    sock.setsockopt(socket.SOL_SOCKET, rtnl.SO_RCVBUFFORCE, RECEIVE_BUFFER)
    sock.setblocking(False)
    return sock


def _collect(
    sockets: dict[tuple[str, int], socket.socket],
    pending: dict[tuple[str, int, int], tuple[int, float]],
    by_index: dict[int, Probe],
    results: dict[int, Result],
    timeout: float,
) -> None:
    """Read echo replies until every pending probe is answered or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    by_fd = {s.fileno(): key for key, s in sockets.items()}
    while pending and time.monotonic() < deadline:
        ready, _, _ = select.select(list(by_fd), [], [], max(0.0, deadline - time.monotonic()))
        for fd in ready:
            src, family = by_fd[fd]
            while True:
                try:
                    data, sender = sockets[(src, family)].recvfrom(2048)
                except BlockingIOError:
                    break
                _match_reply(data, str(sender[0]), src, family, pending, by_index, results)


def _match_reply(
    data: bytes,
    sender: str,
    src: str,
    family: int,
    pending: dict[tuple[str, int, int], tuple[int, float]],
    probes: dict[int, Probe],
    results: dict[int, Result],
) -> None:
    try:
        if family == 4:
            ip = dpkt.ip.IP(data)
            icmp = ip.data
            if not isinstance(icmp, dpkt.icmp.ICMP):
                return
            reply_type = 0
        else:
            icmp = dpkt.icmp6.ICMP6(data)
            reply_type = 129
        if icmp.type != reply_type or not isinstance(icmp.data, (dpkt.icmp.ICMP.Echo, dpkt.icmp6.ICMP6.Echo)):
            return
        key = (src, icmp.data.id, icmp.data.seq)
    except (dpkt.UnpackError, AttributeError):
        return
    if key not in pending:
        return
    index, sent = pending.pop(key)
    probe = probes[index]
    detail = "echo reply" if sender == probe.address else f"echo reply from {sender}"
    results[index] = _result(probe, True, (time.monotonic() - sent) * 1000, detail)


def _connect(spaces: dict[str, str], probe: Probe) -> Result:
    name, _, port_text = probe.proto.partition(":")
    port = int(port_text)
    family = socket.AF_INET6 if ":" in probe.address else socket.AF_INET
    kind = socket.SOCK_STREAM if name == "tcp" else socket.SOCK_DGRAM
    with netns.entered(spaces[probe.src]):
        sock = socket.socket(family, kind)
    start = time.monotonic()
    with sock:
        sock.settimeout(TIMEOUT)
        try:
            sock.connect((probe.address, port))
            if name == "tcp":
                return _result(probe, True, (time.monotonic() - start) * 1000, "connected")
            sock.send(b"nsnet reach")
            sock.recv(1)
            return _result(probe, True, (time.monotonic() - start) * 1000, "answered")
        except ConnectionRefusedError:
            detail = "refused (RST)" if name == "tcp" else "refused (ICMP port unreachable)"
            return _result(probe, False, None, detail)
        except TimeoutError:
            if name == "udp":  # no error within the timeout: delivered as far as anyone can tell
                return _result(probe, True, None, "no ICMP error (open or filtered)")
            return _result(probe, False, None, f"no answer within {TIMEOUT:g} s")
        except OSError as exc:
            return _result(probe, False, None, exc.strerror or str(exc))


def _result(probe: Probe, ok: bool, rtt: float | None, detail: str) -> Result:
    return Result(probe.src, probe.dst, probe.address, probe.proto, ok, rtt, detail)
