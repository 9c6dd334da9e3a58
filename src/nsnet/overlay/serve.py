"""``nsnet overlay serve``: one controller thread per host of a lab, started again when its host comes back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping

from nsnet.errors import NsnetError
from nsnet.kernel import netns
from nsnet.overlay.controller import POLL, RETRY_EVERY, Controller
from nsnet.overlay.endpoints import HostView
from nsnet.overlay.log import Record, Sink
from nsnet.overlay.registry import DEFAULT_TTL


def serve(
    lab: str,
    views: Callable[[], Mapping[str, HostView]],
    registry_url: str,
    sink: Sink,
    stop: threading.Event,
    *,
    hosts: Collection[str] | None = None,
    ttl: int = DEFAULT_TTL,
    poll: float = POLL,
    announce: bool = True,
) -> None:
    """Serve every host of ``views()`` (or only ``hosts``), one :class:`Controller` thread each, until ``stop``.

    ``views()`` is called by this thread every ``poll`` seconds; each
    controller sees its host's latest view. A host's controller that ended
    (its namespace was made anew, the host left the lab and came back, an
    error) is started again once the host is there.
    """
    latest: dict[str, HostView] = {}
    failing: list[str] = []

    def refresh() -> None:
        try:
            current = dict(views())
        except NsnetError as exc:
            if not failing:
                sink(Record(time.time(), "-", "error", f"cannot read the lab's hosts: {exc}", {"error": str(exc)}))
            failing[:] = [str(exc)]
            current = {}
        else:
            failing.clear()
        latest.clear()
        latest.update(current)

    controllers: dict[str, Controller] = {}
    halt = threading.Event()
    started: dict[str, float] = {}
    refresh()
    try:
        while not stop.is_set():
            for host in sorted(hosts if hosts is not None else latest):
                ctl = controllers.get(host)
                if ctl is not None and ctl.alive:
                    continue
                view = latest.get(host)
                if view is None or not netns.exists(view.netns):
                    continue
                if time.monotonic() - started.get(host, -RETRY_EVERY) < RETRY_EVERY:
                    continue
                started[host] = time.monotonic()
                controllers[host] = Controller(
                    lab, _getter(latest, host), registry_url, sink, ttl=ttl, poll=poll, announce=announce, halt=halt
                )
                controllers[host].start()
            stop.wait(poll)
            refresh()
    finally:
        halt.set()
        for ctl in controllers.values():
            ctl.stop()
        for ctl in controllers.values():
            ctl.join(timeout=10)


def _getter(latest: Mapping[str, HostView], host: str) -> Callable[[], HostView | None]:
    return lambda: latest.get(host)
