"""The overlay controller: answers a host's VXLAN misses from the registry (``nsnet overlay serve``).

A host's VXLAN devices are made with ``nolearning proxy l2miss l3miss``: the
kernel learns nothing by itself and, when an ARP/ND request or a frame finds
no neighbour or fdb entry, it drops it and says so on RTNLGRP_NEIGH (an
``RTM_GETNEIGH`` notification). The controller of the host:

- publishes the host's local endpoints in the registry, under a lease it
  keeps alive, and follows the host's :class:`HostView` (polled) to publish
  and withdraw them as they change;
- keeps a copy of the registry, fed by a watch;
- answers an L3 miss (an IP) with a neighbour entry *and* the fdb entry of
  its MAC, so that the next packet goes through without a second miss, and
  an L2 miss (a MAC) with the fdb entry; a miss that the registry cannot
  answer yet is kept, and answered as soon as the watch brings the entry;
- when a key is deleted or changes, removes or replaces what it wrote for it;
- on stop, withdraws its endpoints (revokes its lease) and removes nothing.

Every event it sees, and what it did, is one :class:`Record` for a sink.

Threads, not processes: each host is served by one thread, which moves itself
into the host's network namespace (``setns`` affects only the calling thread)
before it makes any socket or thread; the threads it starts (the registry's
watch and lease keep-alive) inherit the namespace. So the netlink socket and
every connection to etcd are made in the host's namespace, as on a real
machine, while one process serves many hosts with one log on one stdout, one
signal handler, and the caller's ``HostView`` source shared without any
inter-process plumbing. The only rule is that the host thread does all the
work itself; nsnet already works this way (:mod:`nsnet.kernel.netns`).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dpkt
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTMGRP_LINK, RTMGRP_NEIGH
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from nsnet.kernel import netns
from nsnet.overlay.endpoints import HostView, OverlayEndpoint, VxlanDevice
from nsnet.overlay.log import Record, Sink
from nsnet.overlay.registry import DEFAULT_TTL, Registry, RegistryError, RegistryEvent

NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ARPOP_REPLY = 2
SO_RCVBUFFORCE = 33
RCVBUF = 1 << 20
POLL = 0.2
"""Seconds between two looks at the HostView (and at the namespace, pending misses, retries)."""
PENDING_FOR = 30.0
"""Seconds a miss the registry could not answer is remembered."""
REPEAT_EVERY = 1.0
"""A miss still pending is logged again at most this often (the repeats in between are counted)."""
RETRY_EVERY = 1.0
"""Seconds between attempts to reach the registry after a failure."""


@dataclass
class _Written:
    """What this controller wrote on a device for one key: the fdb entry, and the neighbour entry if ``neigh``."""

    endpoint: OverlayEndpoint
    neigh: bool


@dataclass
class _Pending:
    first: float
    logged: float
    repeats: int = 0


def _norm_ip(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


class Controller:
    """Serves one host: ``view()`` gives its current :class:`HostView` (``None``: the host is gone).

    With ``announce``, an answered IPv4 L3 miss is followed by a gratuitous ARP
    reply on the device's bridge: the kernel dropped the ARP request that
    missed, and the node that sent it would otherwise wait for its next
    retransmission (1 s by default) to be answered from the new entry.
    """

    def __init__(
        self,
        lab: str,
        view: Callable[[], HostView | None],
        registry_url: str,
        sink: Sink,
        *,
        ttl: int = DEFAULT_TTL,
        poll: float = POLL,
        announce: bool = True,
        halt: threading.Event | None = None,
    ) -> None:
        self.lab = lab
        self.announce = announce
        self.registry_url = registry_url
        self.ttl = ttl
        self.poll = poll
        self.reason = ""
        """Why :meth:`run` returned: ``stopped``, the host or its namespace gone, or an error."""
        self._view_fn = view
        self._sink = sink
        # Controllers of one lab share ``halt``: when one withdraws on stop, the
        # others must already be stopping, or they would remove what they
        # wrote for it on seeing the delete.
        self._stop = halt if halt is not None else threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_lock = threading.Lock()
        self._queue: queue.SimpleQueue[RegistryEvent | str] = queue.SimpleQueue()
        self._host = "?"
        self._thread: threading.Thread | None = None
        # Touched by the serving thread only:
        self._view: HostView | None = None
        self._ipr: Any = None
        self._registry: Registry | None = None
        self._devices: dict[str, VxlanDevice] = {}
        self._index: dict[int, str] = {}
        self._bridges: dict[str, str | None] = {}
        self._packet: socket.socket | None = None
        self._cache: dict[str, OverlayEndpoint] = {}
        self._by_ip: dict[tuple[int, str], str] = {}
        self._by_mac: dict[tuple[int, str], set[str]] = {}
        self._written: dict[tuple[str, str], _Written] = {}
        self._pending: dict[tuple[str, str, str], _Pending] = {}
        self._published: dict[str, OverlayEndpoint] = {}
        self._watching = False
        self._dirty = True
        self._retry_at = 0.0
        self._failing: str | None = None

    # -- life ----------------------------------------------------------------------

    def start(self) -> threading.Thread:
        """Serve in a new thread (it enters the host's namespace itself)."""
        self._thread = threading.Thread(target=self.run, name="nsnet-overlay", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        """Ask the controller to stop (from any thread): it withdraws its endpoints and returns."""
        self._stop.set()
        self._wake()

    def _enqueue(self, item: RegistryEvent | str) -> None:
        """From the registry's threads: queue a change (or an error) and wake the serving thread."""
        self._queue.put(item)
        self._wake()

    def _wake(self) -> None:
        with self._wake_lock:  # never write to the pipe's fd once closed: the number may be reused
            if self._wake_w >= 0:
                with contextlib.suppress(OSError):  # full: the thread is awake anyway
                    os.write(self._wake_w, b"x")

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        """Serve in the calling thread until :meth:`stop`, or the host or its namespace is gone."""
        try:
            view = self._view_fn()
            if view is None:
                self.reason = "host gone"
                return
            self._host = view.host
            with netns.entered(view.netns):
                self._serve(view)
        except Exception as exc:
            self.reason = f"error: {exc}"
            self._log("error", f"controller failed: {exc}", error=str(exc))
        finally:
            with self._wake_lock:
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._wake_r = self._wake_w = -1

    def _serve(self, view: HostView) -> None:
        ident = _ident(view.netns)
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        selector = selectors.DefaultSelector()
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.bind((0, RTMGRP_NEIGH | RTMGRP_LINK))
            selector.register(sock, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            self._ipr = IPRoute()
            if self.announce:
                # Protocol 0: the socket only sends, and receives nothing.
                self._packet = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
            self._registry = Registry(self.registry_url, self.lab, on_error=self._enqueue)
            devices = " ".join(f"{d.name}(vni {d.vni})" for d in view.devices) or "none"
            self._log(
                "start",
                f"netns {view.netns} vtep {view.vtep} devices {devices} registry {self.registry_url}",
                netns=view.netns,
                vtep=view.vtep,
                devices=[d.name for d in view.devices],
                registry=self.registry_url,
            )
            self._apply_view(view)
            self._loop(sock, selector, ident)
        except Exception as exc:
            self.reason = f"error: {exc}"
            self._log("error", f"controller failed: {exc}", error=str(exc))
        finally:
            self._shutdown()
            selector.close()
            sock.close()

    def _loop(self, sock: socket.socket, selector: selectors.BaseSelector, ident: tuple[int, int] | None) -> None:
        marshal = MarshalRtnl()
        next_tick = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + self.poll
                if not self._tick(ident):
                    return
            for key, _ in selector.select(max(0.0, next_tick - time.monotonic())):
                if key.fileobj is sock:
                    self._read_netlink(sock, marshal)
                else:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
            self._drain_registry()
        self.reason = "stopped"

    def _tick(self, ident: tuple[int, int] | None) -> bool:
        """Poll the view and the namespace, retry the registry, forget old misses; False to stop."""
        try:
            view = self._view_fn()
        except Exception as exc:
            self._log("error", f"cannot read the host view: {exc}", error=str(exc))
            view = self._view
        if view is None:
            self.reason = "host gone from the lab"
            return False
        if self._view is not None and view.netns != self._view.netns:
            self.reason = f"host moved to netns {view.netns}"  # a new controller serves it there
            return False
        if _ident(view.netns) != ident:
            self.reason = f"netns {view.netns} is gone"
            return False
        if view != self._view:
            self._apply_view(view)
        if time.monotonic() >= self._retry_at:
            self._sync_registry()
        cutoff = time.monotonic() - PENDING_FOR
        for miss in [m for m, p in self._pending.items() if p.first < cutoff]:
            del self._pending[miss]
        return True

    def _shutdown(self) -> None:
        registry, self._registry = self._registry, None
        if registry is not None:
            count = len(registry.published)
            registry.close(withdraw=True)
            if count:
                self._log("withdraw", f"{count} endpoint{'s' if count != 1 else ''} (lease revoked)", count=count)
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
        if self._packet is not None:
            self._packet.close()
            self._packet = None
        self._log("stop", self.reason or "stopped", reason=self.reason or "stopped")

    # -- the host view ---------------------------------------------------------------

    def _apply_view(self, view: HostView) -> None:
        self._view = view
        self._devices = {d.name: d for d in view.devices}
        self._resolve_devices()
        for dev, key in [k for k in self._written if k[0] not in self._devices]:
            self._unwrite(dev, key)
        self._dirty = True
        self._retry_at = 0.0

    def _resolve_devices(self) -> None:
        self._index, self._bridges = {}, {}
        for name in self._devices:
            found = self._ipr.link_lookup(ifname=name)
            if found:
                self._index[found[0]] = name
                links = self._ipr.get_links(found[0])
                self._bridges[name] = self._name_of(links[0].get("IFLA_MASTER") if links else None)
            else:
                self._log("error", f"device {name} not found in netns {self._view_netns()}", dev=name)

    def _name_of(self, index: int | None) -> str | None:
        if not index:
            return None
        with contextlib.suppress(NetlinkError):
            for link in self._ipr.get_links(index):
                return str(link.get("IFLA_IFNAME"))
        return None

    def _view_netns(self) -> str:
        return self._view.netns if self._view else "?"

    def _local_wanted(self) -> dict[str, OverlayEndpoint]:
        return {e.key(self.lab): e for e in self._view.local} if self._view else {}

    def _sync_registry(self) -> None:
        """Publish and withdraw local endpoints as the view says; open the snapshot and watch if not yet."""
        registry = self._registry
        assert registry is not None
        try:
            if not self._watching:
                self._take_snapshot(registry.snapshot())
                registry.watch(self._enqueue)
                self._watching = True
            if self._dirty:
                wanted = self._local_wanted()
                for key in sorted(self._published.keys() - wanted.keys()):
                    endpoint = self._published[key]
                    registry.withdraw(endpoint)
                    del self._published[key]
                    self._log("withdraw", f"{endpoint.ip} vni {endpoint.vni}", **_fields(endpoint))
                fresh = [e for k, e in sorted(wanted.items()) if self._published.get(k) != e]
                if fresh:
                    registry.publish(fresh, ttl=self.ttl)
                for endpoint in fresh:
                    self._published[endpoint.key(self.lab)] = endpoint
                    self._log(
                        "publish",
                        f"{endpoint.ip} {endpoint.mac} vni {endpoint.vni} (node {endpoint.node} {endpoint.iface})",
                        **_fields(endpoint),
                    )
                self._dirty = False
            if self._failing is not None:
                self._log("registry", "reachable again", url=self.registry_url)
            self._failing = None
        except RegistryError as exc:
            self._retry_at = time.monotonic() + RETRY_EVERY
            if self._failing != str(exc):
                self._log("error", f"registry: {exc}; retrying", error=str(exc))
            self._failing = str(exc)

    def _take_snapshot(self, endpoints: Mapping[str, OverlayEndpoint]) -> None:
        for key in list(self._cache):
            if key not in endpoints:
                self._forget(key, "gone from the registry")
        for key, endpoint in endpoints.items():
            self._remember(key, endpoint)
        remote = sum(1 for e in endpoints.values() if e.host != self._host)
        ips = sorted({e.ip for e in endpoints.values()})
        self._log(
            "snapshot", f"{len(endpoints)} endpoints, {remote} remote", count=len(endpoints), remote=remote, ips=ips
        )

    # -- registry events ---------------------------------------------------------------

    def _drain_registry(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, str):
                self._log("registry", item, message=item)
            elif item.endpoint is None:
                self._on_delete(item)
            else:
                self._on_put(item.key, item.endpoint)

    def _on_put(self, key: str, endpoint: OverlayEndpoint) -> None:
        old = self._cache.get(key)
        what = f"{endpoint.ip} vni {endpoint.vni} -> {endpoint.mac} via {endpoint.vtep} (host {endpoint.host})"
        data = {"key": key, **_fields(endpoint)}
        if endpoint.host == self._host:
            mine = self._published.get(key)
            note = "local" if mine is None or mine == endpoint else "conflict: not the value published here"
            for dev, k in [w for w in self._written if w[1] == key]:
                self._unwrite(dev, k)  # it moved here: reached locally now
            self._remember(key, endpoint)
            self._log("put", f"{what}: {note}", action=note, **data)
            return
        if key in self._published:
            # Another host claims an address this one publishes: the last writer wins, nobody fights.
            del self._published[key]
            self._log("error", f"{endpoint.ip} vni {endpoint.vni} is now claimed by host {endpoint.host}", **data)
        self._remember(key, endpoint)
        done = []
        for (dev, k), written in list(self._written.items()):
            if k == key and written.endpoint != endpoint:
                if written.endpoint.mac != endpoint.mac:
                    self._unwrite(dev, key)
                if self._write(dev, key, endpoint, neigh=written.neigh):
                    done.append(f"replaced on {dev}")
        action = "unchanged" if old == endpoint else ", ".join(done) or ("cached" if old is None else "updated")
        self._log("put", f"{what}: {action}", action=action, **data)
        self._answer_pending(key, endpoint)

    def _on_delete(self, event: RegistryEvent) -> None:
        key = event.key
        if event.error:
            self._log("put", f"{key}: invalid value ({event.error}), dropped", key=key, error=event.error)
        old = self._cache.get(key)
        if old is not None and key in self._published:
            del self._published[key]
            self._dirty = True
            self._retry_at = 0.0
            self._forget(key, "")
            self._log("delete", f"{old.ip} vni {old.vni}: published here, publishing again", key=key, **_fields(old))
            return
        action = self._forget(key, "")
        if not event.error:
            label = f"{old.ip} vni {old.vni}" if old else key
            data = _fields(old) if old else {}
            self._log("delete", f"{label}: {action}", key=key, action=action, **data)

    def _remember(self, key: str, endpoint: OverlayEndpoint) -> None:
        self._drop_index(key)
        self._cache[key] = endpoint
        self._by_ip[(endpoint.vni, _norm_ip(endpoint.ip))] = key
        self._by_mac.setdefault((endpoint.vni, endpoint.mac.lower()), set()).add(key)

    def _drop_index(self, key: str) -> None:
        old = self._cache.pop(key, None)
        if old is None:
            return
        ip = (old.vni, _norm_ip(old.ip))
        if self._by_ip.get(ip) == key:
            del self._by_ip[ip]
        keys = self._by_mac.get((old.vni, old.mac.lower()))
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_mac[(old.vni, old.mac.lower())]

    def _forget(self, key: str, why: str) -> str:
        """Drop a key from the cache and remove what was written for it; what was done, in words."""
        self._drop_index(key)
        removed = [dev for dev, k in list(self._written) if k == key and self._unwrite(dev, k)]
        if removed:
            return "removed " + ", ".join(f"entries on {dev}" for dev in removed)
        return why or "nothing written here"

    # -- the kernel ---------------------------------------------------------------------

    def _read_netlink(self, sock: socket.socket, marshal: MarshalRtnl) -> None:
        for _ in range(64):
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self._log("error", "netlink overrun: some misses were lost (the kernel will miss again)")
                continue
            for msg in marshal.parse(data):
                self._on_netlink(msg)

    def _on_netlink(self, msg: Any) -> None:
        event = msg.get("event")
        if event in ("RTM_NEWLINK", "RTM_DELLINK"):
            name = msg.get("IFLA_IFNAME")
            index = msg["index"]
            if name in self._devices and (event == "RTM_DELLINK" or self._index.get(index) != name):
                self._on_device_change(name, index, gone=event == "RTM_DELLINK")
            if name in self._devices and event == "RTM_NEWLINK":
                self._bridges[name] = self._name_of(msg.get("IFLA_MASTER"))
            return
        if event != "RTM_GETNEIGH":
            return
        dev = self._index.get(msg["ifindex"])
        if dev is None:
            return
        # Told apart by their attributes, not the family: an L2 miss comes as AF_BRIDGE on older
        # kernels but as AF_INET on recent ones (6.x), with the MAC and no NDA_DST either way.
        dst, lladdr = msg.get("NDA_DST"), msg.get("NDA_LLADDR")
        if dst:
            self._on_miss(dev, "l3miss", _norm_ip(str(dst)))
        elif lladdr:
            self._on_miss(dev, "l2miss", str(lladdr).lower())

    def _on_device_change(self, name: str, index: int, gone: bool) -> None:
        # The device was deleted or made anew: the entries written on it went with the old one.
        stale = [k for k in self._written if k[0] == name]
        for k in stale:
            del self._written[k]
        self._index = {i: n for i, n in self._index.items() if n != name}
        if not gone:
            self._index[index] = name
        state = "gone" if gone else f"now index {index}"
        self._log("link", f"{name} {state}: forgot {len(stale)} written entries", dev=name, gone=gone)

    def _on_miss(self, dev: str, kind: str, addr: str) -> None:
        vni = self._devices[dev].vni
        if kind == "l3miss":
            found = self._by_ip.get((vni, addr))
            keys = [found] if found else []
        else:
            keys = sorted(self._by_mac.get((vni, addr), ()))
        remote = [k for k in keys if self._cache[k].host != self._host]
        data: dict[str, Any] = {"dev": dev, "vni": vni, "ip" if kind == "l3miss" else "mac": addr}
        if not remote:
            if keys:
                node = self._cache[keys[0]].node
                self._log(kind, f"{addr} dev {dev} -> local endpoint (node {node}), ignored", result="local", **data)
                return
            self._remember_miss(dev, kind, addr, data)
            return
        key = remote[0]
        endpoint = self._cache[key]
        self._pending.pop((dev, kind, addr), None)
        ok = self._write(dev, key, endpoint, neigh=kind == "l3miss")
        text = f"{addr} dev {dev} -> " + (endpoint.mac + " via " if kind == "l3miss" else "via ") + endpoint.vtep
        if ok and kind == "l3miss":
            text += self._announce(dev, endpoint)
        data = {**data, **_fields(endpoint), "result": "answered" if ok else "failed"}
        self._log(kind, text if ok else f"{text}: failed", **data)

    def _remember_miss(self, dev: str, kind: str, addr: str, data: dict[str, Any]) -> None:
        now = time.monotonic()
        pending = self._pending.get((dev, kind, addr))
        if pending is None:
            self._pending[(dev, kind, addr)] = _Pending(now, now)
            self._log(kind, f"{addr} dev {dev} -> unknown, pending", result="pending", **data)
        elif now - pending.logged >= REPEAT_EVERY:
            more = f" (+{pending.repeats} not shown)" if pending.repeats else ""
            pending.logged, pending.repeats = now, 0
            self._log(kind, f"{addr} dev {dev} -> unknown, still pending{more}", result="pending", **data)
        else:
            pending.repeats += 1

    def _answer_pending(self, key: str, endpoint: OverlayEndpoint) -> None:
        for dev, device in self._devices.items():
            if device.vni != endpoint.vni:
                continue
            for kind, addr in (("l3miss", _norm_ip(endpoint.ip)), ("l2miss", endpoint.mac.lower())):
                pending = self._pending.pop((dev, kind, addr), None)
                if pending is None:
                    continue
                ok = self._write(dev, key, endpoint, neigh=kind == "l3miss")
                waited = time.monotonic() - pending.first
                target = f"{endpoint.mac} via {endpoint.vtep}" if kind == "l3miss" else f"via {endpoint.vtep}"
                if ok and kind == "l3miss":
                    target += self._announce(dev, endpoint)
                self._log(
                    "answer",
                    f"{kind} {addr} dev {dev} -> {target} (pending {waited:.2f}s){'' if ok else ': failed'}",
                    miss=kind,
                    dev=dev,
                    waited=round(waited, 3),
                    result="answered" if ok else "failed",
                    **_fields(endpoint),
                )

    def _write(self, dev: str, key: str, endpoint: OverlayEndpoint, neigh: bool) -> bool:
        """Write the fdb entry of ``endpoint`` on ``dev`` (and its neighbour entry, with ``neigh``)."""
        index = self._ifindex(dev)
        if index is None:
            return False
        previous = self._written.get((dev, key))
        neigh = neigh or (previous is not None and previous.neigh)
        try:
            if neigh:
                self._ipr.neigh("replace", ifindex=index, dst=endpoint.ip, lladdr=endpoint.mac, state=NUD_PERMANENT)
            self._ipr.fdb(
                "replace",
                ifindex=index,
                lladdr=endpoint.mac,
                dst=endpoint.vtep,
                state=NUD_PERMANENT | NUD_NOARP,
                flags=NTF_SELF,
            )
        except (NetlinkError, OSError) as exc:
            self._log("error", f"cannot write {endpoint.ip} on {dev}: {exc}", dev=dev, error=str(exc))
            return False
        self._written[(dev, key)] = _Written(endpoint, neigh)
        return True

    def _unwrite(self, dev: str, key: str) -> bool:
        """Remove what was written on ``dev`` for ``key``; whether anything was."""
        written = self._written.pop((dev, key), None)
        if written is None:
            return False
        index = self._ifindex(dev)
        if index is None:
            return True
        endpoint = written.endpoint
        shared = any(d == dev and w.endpoint.mac == endpoint.mac for (d, _), w in self._written.items())
        try:
            if written.neigh:
                with _absent_ok():
                    self._ipr.neigh("del", ifindex=index, dst=endpoint.ip, lladdr=endpoint.mac)
            if not shared:  # another key (another IP of the same interface) still needs the MAC
                with _absent_ok():
                    self._ipr.fdb("del", ifindex=index, lladdr=endpoint.mac, dst=endpoint.vtep)
        except (NetlinkError, OSError) as exc:
            self._log("error", f"cannot remove {endpoint.ip} from {dev}: {exc}", dev=dev, error=str(exc))
        return True

    def _announce(self, dev: str, endpoint: OverlayEndpoint) -> str:
        """Send a gratuitous ARP reply for ``endpoint`` on ``dev``'s bridge; a note for the log line."""
        bridge = self._bridges.get(dev)
        if self._packet is None or bridge is None:
            return ""
        try:
            frame = _garp(endpoint.mac, endpoint.ip)
        except (ValueError, OSError):
            return ""  # not an IPv4 endpoint
        try:
            self._packet.sendto(frame, (bridge, 0))
        except OSError as exc:
            return f" (announcing on {bridge} failed: {exc.strerror})"
        return f" (announced on {bridge})"

    def _ifindex(self, dev: str) -> int | None:
        index = next((i for i, n in self._index.items() if n == dev), None)
        if index is None:
            found = self._ipr.link_lookup(ifname=dev)
            if found:
                index = found[0]
                self._index[index] = dev
        return index

    def _log(self, event: str, text: str, **data: Any) -> None:
        self._sink(Record(time.time(), self._host, event, text, data))


def _garp(mac: str, ip: str) -> bytes:
    """A broadcast gratuitous ARP reply (``ip`` is at ``mac``), as the endpoint itself would send it."""
    hw = bytes.fromhex(mac.replace(":", ""))
    addr = ipaddress.IPv4Address(ip).packed
    if len(hw) != 6:
        raise ValueError(f"bad MAC {mac}")
    broadcast = b"\xff" * 6
    arp = dpkt.arp.ARP(op=dpkt.arp.ARP_OP_REPLY, sha=hw, spa=addr, tha=broadcast, tpa=addr)
    frame = dpkt.ethernet.Ethernet(dst=broadcast, src=hw, type=dpkt.ethernet.ETH_TYPE_ARP, data=arp)
    return bytes(frame).ljust(60, b"\0")


def _fields(endpoint: OverlayEndpoint) -> dict[str, Any]:
    return {
        "vni": endpoint.vni,
        "ip": endpoint.ip,
        "mac": endpoint.mac,
        "vtep": endpoint.vtep,
        "owner": endpoint.host,
        "node": endpoint.node,
    }


@contextlib.contextmanager
def _absent_ok() -> Any:
    try:
        yield
    except NetlinkError as exc:
        if exc.code not in (errno.ENOENT, errno.ENODEV, errno.ESRCH):
            raise


def _ident(ns: str) -> tuple[int, int] | None:
    """The identity of a named namespace (a new one of the same name is another); None if there is none."""
    if not ns:
        return None
    try:
        st = os.stat(netns.path(ns))
    except OSError:
        return None
    return st.st_dev, st.st_ino
