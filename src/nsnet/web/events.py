"""A lab's netlink events, fanned out to every page that shows the lab.

One :class:`~nsnet.watch.Watcher` per lab runs in a thread of its own (the
kernel's sockets are read as fast as they deliver, whatever the pages do);
each page's event stream subscribes with an asyncio queue. The first message
to a subscriber is ``ready``: from then on every change is in its stream, so
the page reads the lab's state after it and misses nothing. When every
namespace of the lab is gone, subscribers get ``gone`` and the stream ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any

from nsnet.errors import NsnetError
from nsnet.watch import Watcher

Message = dict[str, Any]
QUEUE_SIZE = 10_000
"""Events a slow page may fall behind by; beyond, it is told to reload."""


@dataclass
class _Subscriber:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Message]
    lost: bool = False

    def put(self, message: Message) -> None:
        def give() -> None:
            if self.lost:
                return
            try:
                self.queue.put_nowait(message)
            except asyncio.QueueFull:
                self.lost = True
                with contextlib.suppress(asyncio.QueueEmpty):
                    self.queue.get_nowait()
                self.queue.put_nowait({"type": "overrun"})

        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is stopping
            self.loop.call_soon_threadsafe(give)


@dataclass
class Hub:
    """The events of one lab, read by one thread, given to every subscriber."""

    lab: str
    subscribers: list[_Subscriber] = field(default_factory=list)
    ready: bool = False
    done: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    watcher: Watcher | None = None

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"watch {self.lab}", daemon=True).start()

    def subscribe(self) -> asyncio.Queue[Message]:
        sub = _Subscriber(asyncio.get_running_loop(), asyncio.Queue(QUEUE_SIZE))
        with self.lock:
            self.subscribers.append(sub)
            if self.ready:
                sub.put({"type": "ready"})
            if self.done:
                sub.put({"type": "gone"})
        return sub.queue

    def unsubscribe(self, queue: asyncio.Queue[Message]) -> None:
        with self.lock:
            self.subscribers = [s for s in self.subscribers if s.queue is not queue]

    def _publish(self, message: Message) -> None:
        with self.lock:
            for sub in self.subscribers:
                sub.put(message)

    def _run(self) -> None:
        try:
            watcher = Watcher(self.lab)
        except NsnetError as exc:
            self._finish({"type": "error", "message": str(exc)})
            return
        self.watcher = watcher
        with self.lock:
            self.ready = True
        self._publish({"type": "ready"})
        try:
            for event in watcher:
                self._publish({"type": "event", "line": event.describe(), **event.to_json()})
        except (NsnetError, OSError, ValueError) as exc:  # ValueError: closed while reading (the server stops)
            self._publish({"type": "error", "message": str(exc)})
        finally:
            watcher.close()
        self._finish({"type": "gone"})

    def _finish(self, message: Message) -> None:
        with self.lock:
            self.done = True
            for sub in self.subscribers:
                sub.put(message)


class Hubs:
    """The running hubs, one per lab; a lab that went down and came back gets a new one."""

    def __init__(self) -> None:
        self._hubs: dict[str, Hub] = {}
        self._lock = threading.Lock()

    def get(self, lab: str) -> Hub:
        with self._lock:
            hub = self._hubs.get(lab)
            if hub is None or hub.done:
                hub = Hub(lab)
                self._hubs[lab] = hub
                hub.start()
            return hub

    def close(self) -> None:
        with self._lock:
            for hub in self._hubs.values():
                if hub.watcher is not None:
                    hub.watcher.close()
            self._hubs.clear()
