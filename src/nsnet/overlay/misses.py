"""The overlay controller's answers to the kernel's misses: from its copy of the registry, or later.

An L3 miss (an IP) is answered with a neighbour entry and the fdb entry of
its MAC, an L2 miss (a MAC) with the fdb entry; a miss that no remote
endpoint answers yet is kept (:class:`~nsnet.overlay.cache.Pending`) and
answered as soon as the registry brings the endpoint.
"""

from __future__ import annotations

import time
from typing import Any

from nsnet.overlay.cache import EndpointCache, Pending, fields
from nsnet.overlay.endpoints import OverlayEndpoint, VxlanDevice
from nsnet.overlay.hostnet import norm_ip

REPEAT_EVERY = 1.0
"""A miss still pending is logged again at most this often (the repeats in between are counted)."""


class MissesMixin:
    """The part of :class:`~nsnet.overlay.controller.Controller` that answers misses."""

    _devices: dict[str, VxlanDevice]
    _cache: EndpointCache
    _host: str
    _pending: dict[tuple[str, str, str], Pending]

    def _write(self, dev: str, key: str, endpoint: OverlayEndpoint, neigh: bool) -> bool:
        raise NotImplementedError

    def _announce(self, dev: str, endpoint: OverlayEndpoint) -> str:
        raise NotImplementedError

    def _log(self, event: str, text: str, **data: Any) -> None:
        raise NotImplementedError

    def _on_miss(self, dev: str, kind: str, addr: str) -> None:
        vni = self._devices[dev].vni
        keys = self._cache.answering(vni, kind, addr)
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
        data = {**data, **fields(endpoint), "result": "answered" if ok else "failed"}
        self._log(kind, text if ok else f"{text}: failed", **data)

    def _remember_miss(self, dev: str, kind: str, addr: str, data: dict[str, Any]) -> None:
        now = time.monotonic()
        pending = self._pending.get((dev, kind, addr))
        if pending is None:
            self._pending[(dev, kind, addr)] = Pending(now, now)
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
            for kind, addr in (("l3miss", norm_ip(endpoint.ip)), ("l2miss", endpoint.mac.lower())):
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
                    **fields(endpoint),
                )
