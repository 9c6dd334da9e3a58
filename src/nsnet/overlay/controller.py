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
import os
import queue
import selectors
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from nsnet.kernel import netns
from nsnet.overlay.cache import EndpointCache, Pending, Written, fields
from nsnet.overlay.endpoints import HostView, OverlayEndpoint, VxlanDevice
from nsnet.overlay.hostnet import HostNetlink, LinkChange, Miss, decode, ident
from nsnet.overlay.log import Record, Sink
from nsnet.overlay.misses import MissesMixin
from nsnet.overlay.registry import DEFAULT_TTL, Registry, RegistryError, RegistryEvent

POLL = 0.2
"""Seconds between two looks at the HostView (and at the namespace, pending misses, retries)."""
PENDING_FOR = 30.0
"""Seconds a miss the registry could not answer is remembered."""
RETRY_EVERY = 1.0
"""Seconds between attempts to reach the registry after a failure."""


class Controller(MissesMixin):
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
        self._net: HostNetlink | None = None
        self._registry: Registry | None = None
        self._devices: dict[str, VxlanDevice] = {}
        self._index: dict[int, str] = {}
        self._bridges: dict[str, str | None] = {}
        self._cache = EndpointCache()
        self._written: dict[tuple[str, str], Written] = {}
        self._pending: dict[tuple[str, str, str], Pending] = {}
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
        here = ident(view.netns)
        selector = selectors.DefaultSelector()
        try:
            self._net = net = HostNetlink(self.announce)
            selector.register(net.events.fileno(), selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
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
            self._loop(net, selector, here)
        except Exception as exc:
            self.reason = f"error: {exc}"
            self._log("error", f"controller failed: {exc}", error=str(exc))
        finally:
            self._shutdown()
            selector.close()

    def _loop(self, net: HostNetlink, selector: selectors.BaseSelector, here: tuple[int, int] | None) -> None:
        next_tick = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + self.poll
                if not self._tick(here):
                    return
            for key, _ in selector.select(max(0.0, next_tick - time.monotonic())):
                if key.fd == net.events.fileno():
                    self._read_netlink(net)
                else:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
            self._drain_registry()
        self.reason = "stopped"

    def _tick(self, here: tuple[int, int] | None) -> bool:
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
        if ident(view.netns) != here:
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
        if self._net is not None:
            self._net.close()
            self._net = None
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
        assert self._net is not None
        self._index, self._bridges = {}, {}
        for name in self._devices:
            found = self._net.link(name)
            if found:
                self._index[found.index] = name
                self._bridges[name] = self._net.name_of(found.master)
            else:
                self._log("error", f"device {name} not found in netns {self._view_netns()}", dev=name)

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
                    self._log("withdraw", f"{endpoint.ip} vni {endpoint.vni}", **fields(endpoint))
                fresh = [e for k, e in sorted(wanted.items()) if self._published.get(k) != e]
                if fresh:
                    registry.publish(fresh, ttl=self.ttl)
                for endpoint in fresh:
                    self._published[endpoint.key(self.lab)] = endpoint
                    self._log(
                        "publish",
                        f"{endpoint.ip} {endpoint.mac} vni {endpoint.vni} (node {endpoint.node} {endpoint.iface})",
                        **fields(endpoint),
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
        for key in self._cache:
            if key not in endpoints:
                self._forget(key, "gone from the registry")
        for key, endpoint in endpoints.items():
            self._cache.remember(key, endpoint)
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
        data = {"key": key, **fields(endpoint)}
        if endpoint.host == self._host:
            mine = self._published.get(key)
            note = "local" if mine is None or mine == endpoint else "conflict: not the value published here"
            for dev, k in [w for w in self._written if w[1] == key]:
                self._unwrite(dev, k)  # it moved here: reached locally now
            self._cache.remember(key, endpoint)
            self._log("put", f"{what}: {note}", action=note, **data)
            return
        if key in self._published:
            # Another host claims an address this one publishes: the last writer wins, nobody fights.
            del self._published[key]
            self._log("error", f"{endpoint.ip} vni {endpoint.vni} is now claimed by host {endpoint.host}", **data)
        self._cache.remember(key, endpoint)
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
            self._log("delete", f"{old.ip} vni {old.vni}: published here, publishing again", key=key, **fields(old))
            return
        action = self._forget(key, "")
        if not event.error:
            label = f"{old.ip} vni {old.vni}" if old else key
            data = fields(old) if old else {}
            self._log("delete", f"{label}: {action}", key=key, action=action, **data)

    def _forget(self, key: str, why: str) -> str:
        """Drop a key from the cache and remove what was written for it; what was done, in words."""
        self._cache.drop(key)
        removed = [dev for dev, k in list(self._written) if k == key and self._unwrite(dev, k)]
        if removed:
            return "removed " + ", ".join(f"entries on {dev}" for dev in removed)
        return why or "nothing written here"

    # -- the kernel ---------------------------------------------------------------------

    def _read_netlink(self, net: HostNetlink) -> None:
        for _ in range(64):
            try:
                messages = net.events.events()
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self._log("error", "netlink overrun: some misses were lost (the kernel will miss again)")
                continue
            if messages is None:
                return
            for mtype, body in messages:
                self._on_netlink(net, decode(mtype, body))

    def _on_netlink(self, net: HostNetlink, event: LinkChange | Miss | None) -> None:
        if isinstance(event, LinkChange):
            if event.name in self._devices and (event.gone or self._index.get(event.index) != event.name):
                self._on_device_change(event.name, event.index, gone=event.gone)
            if event.name in self._devices and not event.gone:
                self._bridges[event.name] = net.name_of(event.master)
        elif isinstance(event, Miss):
            dev = self._index.get(event.index)
            if dev is not None:
                self._on_miss(dev, event.kind, event.addr)

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

    def _write(self, dev: str, key: str, endpoint: OverlayEndpoint, neigh: bool) -> bool:
        """Write the fdb entry of ``endpoint`` on ``dev`` (and its neighbour entry, with ``neigh``)."""
        index = self._ifindex(dev)
        if index is None or self._net is None:
            return False
        previous = self._written.get((dev, key))
        neigh = neigh or (previous is not None and previous.neigh)
        try:
            self._net.write(index, endpoint, neigh)
        except OSError as exc:
            self._log("error", f"cannot write {endpoint.ip} on {dev}: {exc}", dev=dev, error=str(exc))
            return False
        self._written[(dev, key)] = Written(endpoint, neigh)
        return True

    def _unwrite(self, dev: str, key: str) -> bool:
        """Remove what was written on ``dev`` for ``key``; whether anything was."""
        written = self._written.pop((dev, key), None)
        if written is None:
            return False
        index = self._ifindex(dev)
        if index is None or self._net is None:
            return True
        endpoint = written.endpoint
        # Another key (another IP of the same interface) may still need the MAC.
        shared = any(d == dev and w.endpoint.mac == endpoint.mac for (d, _), w in self._written.items())
        try:
            self._net.unwrite(index, endpoint, neigh=written.neigh, fdb=not shared)
        except OSError as exc:
            self._log("error", f"cannot remove {endpoint.ip} from {dev}: {exc}", dev=dev, error=str(exc))
        return True

    def _announce(self, dev: str, endpoint: OverlayEndpoint) -> str:
        """Send a gratuitous ARP reply for ``endpoint`` on ``dev``'s bridge; a note for the log line."""
        return self._net.announce(self._bridges.get(dev), endpoint) if self._net else ""

    def _ifindex(self, dev: str) -> int | None:
        index = next((i for i, n in self._index.items() if n == dev), None)
        if index is None and self._net is not None:
            found = self._net.link(dev)
            if found:
                index = found.index
                self._index[index] = dev
        return index

    def _log(self, event: str, text: str, **data: Any) -> None:
        self._sink(Record(time.time(), self._host, event, text, data))
