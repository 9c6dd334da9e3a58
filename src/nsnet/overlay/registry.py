"""The overlay registry: endpoints kept in etcd v3, under ``/nsnet/LAB/overlay/``.

Talks to etcd's JSON gateway (``/v3/``, etcd 3.4 and later) through
:mod:`etcd3gw`. Each value is an :class:`OverlayEndpoint` as JSON, put under
one lease per :class:`Registry`, which a thread keeps alive: a host that dies
without withdrawing its endpoints loses them ``ttl`` seconds later.

Sockets are made lazily by the thread that first needs them, and the
background threads (lease keep-alive, watch) are started by the thread that
calls :meth:`Registry.publish` or :meth:`Registry.watch`: they all share that
thread's network namespace, which is where etcd must be reachable.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from etcd3gw.client import Etcd3Client
from etcd3gw.exceptions import Etcd3Exception

from nsnet.errors import NsnetError
from nsnet.overlay.endpoints import OverlayEndpoint

DEFAULT_TTL = 5
"""Seconds an endpoint outlives its host's last lease keep-alive."""
REQUEST_TIMEOUT = 3.0
WATCH_IDLE = 30.0
"""Seconds without a byte on the watch stream before it is reopened (from the last revision seen)."""
RETRY = (0.2, 0.5, 1.0, 2.0, 5.0)
"""Back-off between attempts to reopen a broken watch."""


class RegistryError(NsnetError):
    """etcd could not be reached, or refused a request."""


@dataclass(frozen=True)
class RegistryEvent:
    """A change of one key: ``put`` (``endpoint`` is the new value) or ``delete`` (``endpoint`` is ``None``).

    A ``put`` whose value is not a valid endpoint comes with ``endpoint=None``
    and ``error`` saying why: treat it as the key's removal.
    """

    kind: Literal["put", "delete"]
    key: str
    endpoint: OverlayEndpoint | None
    revision: int
    error: str = ""


def encode(endpoint: OverlayEndpoint) -> str:
    """An endpoint as the JSON value stored in etcd."""
    return json.dumps(asdict(endpoint), sort_keys=True)


def decode(key: str, value: bytes | str, lab: str) -> OverlayEndpoint:
    """The endpoint stored at ``key``; ValueError if the value is not one, or belongs to another key."""
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    kinds = {f.name: int if f.name == "vni" else str for f in fields(OverlayEndpoint)}
    missing = sorted(set(kinds) - set(data))
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    for name, kind in kinds.items():
        if type(data[name]) is not kind:
            raise ValueError(f"{name} is not a{'n integer' if kind is int else ' string'}")
    endpoint = OverlayEndpoint(**{name: data[name] for name in kinds})
    if endpoint.key(lab) != key:
        raise ValueError(f"value is for {endpoint.key(lab)}")
    return endpoint


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


def _prefix_end(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class Registry:
    """One lab's overlay endpoints in etcd, reached at ``url`` (``http://ADDR:PORT``).

    ``on_error`` hears of failures in the background threads (keep-alive,
    watch), which retry on their own; it is called from those threads.
    """

    def __init__(
        self,
        url: str,
        lab: str,
        *,
        timeout: float = REQUEST_TIMEOUT,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RegistryError(f"bad registry URL {url!r}: expected http://ADDR:PORT")
        self.url = url
        self.lab = lab
        self.prefix = f"/nsnet/{lab}/overlay/"
        api_path = parts.path if parts.path not in ("", "/") else "/v3/"
        self._args: dict[str, Any] = {
            "host": parts.hostname,
            "port": parts.port or 2379,
            "protocol": parts.scheme,
            "api_path": api_path.rstrip("/") + "/",
        }
        self._timeout = timeout
        self._client = Etcd3Client(timeout=timeout, **self._args)
        self._on_error = on_error or (lambda message: None)
        self._lock = threading.Lock()
        """Held around requests on ``_client`` (a requests.Session is not meant to be shared by threads)."""
        self._closed = threading.Event()
        self._lease: int | None = None
        self._ttl = DEFAULT_TTL
        self._published: dict[str, str] = {}
        self._keeper: threading.Thread | None = None
        self._revision = 0
        self._known: dict[str, OverlayEndpoint] = {}
        self._watcher: threading.Thread | None = None
        self._stream: requests.Response | None = None

    # -- requests ------------------------------------------------------------------

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if self._closed.is_set() and path != "/kv/lease/revoke":
                raise RegistryError("registry closed")
            try:
                result: dict[str, Any] = self._client.post(self._client.get_url(path), json=payload)
            except (Etcd3Exception, requests.RequestException) as exc:
                raise RegistryError(f"etcd at {self.url}: {_reason(exc)}") from None
            except ValueError as exc:  # a response that is not JSON
                raise RegistryError(f"etcd at {self.url}: bad response: {exc}") from None
        return result

    def _put(self, key: str, value: str) -> None:
        assert self._lease is not None
        self._post("/kv/put", {"key": _b64(key), "value": _b64(value), "lease": self._lease})

    def _grant(self) -> None:
        result = self._post("/lease/grant", {"TTL": self._ttl, "ID": 0})
        self._lease = int(result["ID"])

    # -- publishing ----------------------------------------------------------------

    def publish(self, endpoints: Iterable[OverlayEndpoint], ttl: int = DEFAULT_TTL) -> None:
        """Put ``endpoints`` under this registry's lease, kept alive until :meth:`close`.

        The lease is granted by the first call (with ``ttl``, in seconds); later
        calls add or update endpoints under it. If the lease expires (etcd was
        unreachable for longer than ``ttl``), a new one is granted and every
        endpoint published is put again.
        """
        items = [(e.key(self.lab), encode(e)) for e in endpoints]
        if self._lease is None:
            self._ttl = max(1, int(ttl))
            self._grant()
        for key, value in items:
            try:
                self._put(key, value)
            except RegistryError as exc:
                if "lease not found" not in str(exc):
                    raise
                self._grant()  # expired before the keep-alive noticed: a new lease, and everything again
                for old_key, old_value in list(self._published.items()):
                    self._put(old_key, old_value)
                self._put(key, value)
            self._published[key] = value
        if self._keeper is None:
            self._keeper = threading.Thread(target=self._keep_alive, name=f"nsnet-lease-{self.lab}", daemon=True)
            self._keeper.start()

    def withdraw(self, endpoint: OverlayEndpoint) -> None:
        """Delete an endpoint's key, if it still holds what this registry put there."""
        key = endpoint.key(self.lab)
        value = self._published.pop(key, None) or encode(endpoint)
        self._post(
            "/kv/txn",
            {
                "compare": [{"key": _b64(key), "result": "EQUAL", "target": "VALUE", "value": _b64(value)}],
                "success": [{"request_delete_range": {"key": _b64(key)}}],
                "failure": [],
            },
        )

    @property
    def published(self) -> dict[str, str]:
        """The keys this registry keeps alive, and their values."""
        return dict(self._published)

    def _keep_alive(self) -> None:
        failing = False
        while not self._closed.wait(self._ttl / 3):
            try:
                lease = self._lease
                assert lease is not None
                result = self._post("/lease/keepalive", {"ID": lease})
                if int(result.get("result", {}).get("TTL", -1)) <= 0:
                    self._on_error(f"lease {lease:x} expired: publishing {len(self._published)} endpoints again")
                    self._grant()
                    for key, value in list(self._published.items()):
                        self._put(key, value)
                if failing:
                    self._on_error("lease keep-alive works again")
                failing = False
            except RegistryError as exc:
                if not failing and not self._closed.is_set():
                    self._on_error(f"lease keep-alive failed: {exc}")
                failing = True

    # -- reading -------------------------------------------------------------------

    def snapshot(self) -> dict[str, OverlayEndpoint]:
        """Every valid endpoint of the lab, by key; a later :meth:`watch` starts right after it."""
        endpoints, revision = self._range()
        self._revision, self._known = revision, dict(endpoints)
        return endpoints

    def _range(self) -> tuple[dict[str, OverlayEndpoint], int]:
        result = self._post("/kv/range", {"key": _b64(self.prefix), "range_end": _b64(_prefix_end(self.prefix))})
        endpoints = {}
        for kv in result.get("kvs", []):
            key = _unb64(kv["key"]).decode(errors="replace")
            with contextlib.suppress(ValueError):
                endpoints[key] = decode(key, _unb64(kv.get("value", "")), self.lab)
        return endpoints, int(result["header"]["revision"])

    def watch(self, callback: Callable[[RegistryEvent], None]) -> None:
        """Call ``callback`` (from a thread of its own) with every change of the lab's keys, until :meth:`close`.

        Changes are those after the last :meth:`snapshot` (or from now, without
        one). If the stream breaks, it is reopened from the last revision seen;
        if etcd no longer has that revision (compacted), a fresh snapshot is
        taken and the differences are delivered as events.
        """
        if self._watcher is not None:
            raise RegistryError("this registry is already watched")
        if not self._revision:
            self.snapshot()
        self._watcher = threading.Thread(
            target=self._watch_loop, args=(callback,), name=f"nsnet-watch-{self.lab}", daemon=True
        )
        self._watcher.start()

    def _watch_loop(self, callback: Callable[[RegistryEvent], None]) -> None:
        client = Etcd3Client(**self._args)  # its own session: the stream holds its connection
        failures = 0
        resync = False
        while not self._closed.is_set():
            try:
                if resync:
                    self._resync(callback)
                    resync = False
                resync = self._stream_events(client, callback)
                failures = 0
            except (RegistryError, requests.RequestException, Etcd3Exception, ValueError, KeyError) as exc:
                if self._closed.is_set():
                    break
                if failures == 0:
                    self._on_error(f"watch interrupted: {_reason(exc)}; retrying")
                self._closed.wait(RETRY[min(failures, len(RETRY) - 1)])
                failures += 1
        client.session.close()

    def _stream_events(self, client: Etcd3Client, callback: Callable[[RegistryEvent], None]) -> bool:
        """Read the watch stream until it ends; whether a resync is needed (the revision was compacted)."""
        request: dict[str, Any] = {
            "create_request": {
                "key": _b64(self.prefix),
                "range_end": _b64(_prefix_end(self.prefix)),
                "start_revision": self._revision + 1,
            }
        }
        response = client.session.post(
            client.get_url("/watch"), json=request, stream=True, timeout=(self._timeout, WATCH_IDLE)
        )
        self._stream = response
        try:
            if self._closed.is_set():
                return False
            if response.status_code != 200:
                raise RegistryError(f"watch refused: HTTP {response.status_code} {response.text[:200]}")
            for line in _lines(response):
                message = json.loads(line)
                if "error" in message:
                    raise RegistryError(f"watch error: {message['error'].get('message', message['error'])}")
                result = message.get("result", {})
                if int(result.get("compact_revision", 0) or 0) > self._revision:
                    return True
                if result.get("canceled"):
                    raise RegistryError(f"watch canceled: {result.get('cancel_reason', 'no reason given')}")
                for event in result.get("events", []):
                    self._deliver(event, callback)
            if not self._closed.is_set():
                raise RegistryError("watch stream ended")
            return False
        finally:
            self._stream = None
            response.close()

    def _deliver(self, event: dict[str, Any], callback: Callable[[RegistryEvent], None]) -> None:
        kv = event["kv"]
        key = _unb64(kv["key"]).decode(errors="replace")
        revision = int(kv.get("mod_revision", 0))
        self._revision = max(self._revision, revision)
        if event.get("type") == "DELETE":
            self._known.pop(key, None)
            callback(RegistryEvent("delete", key, None, revision))
            return
        try:
            endpoint = decode(key, _unb64(kv.get("value", "")), self.lab)
        except ValueError as exc:
            self._known.pop(key, None)
            callback(RegistryEvent("put", key, None, revision, error=str(exc)))
            return
        self._known[key] = endpoint
        callback(RegistryEvent("put", key, endpoint, revision))

    def _resync(self, callback: Callable[[RegistryEvent], None]) -> None:
        endpoints, revision = self._range()
        before, self._known, self._revision = self._known, dict(endpoints), revision
        for key in sorted(before.keys() - endpoints.keys()):
            callback(RegistryEvent("delete", key, None, revision))
        for key, endpoint in sorted(endpoints.items()):
            if before.get(key) != endpoint:
                callback(RegistryEvent("put", key, endpoint, revision))

    # -- the end -------------------------------------------------------------------

    def close(self, withdraw: bool = True) -> None:
        """Stop the watch and the keep-alive; with ``withdraw``, revoke the lease (deleting its keys) at once."""
        if self._closed.is_set():
            return
        self._closed.set()
        stream = self._stream
        if stream is not None:
            _shut(stream)
        for thread in (self._keeper, self._watcher):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=self._timeout + 1)
        if withdraw and self._lease is not None:
            with contextlib.suppress(RegistryError):
                self._post("/kv/lease/revoke", {"ID": self._lease})
        self._published.clear()
        self._client.session.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lines(response: requests.Response) -> Iterator[bytes]:
    """The non-empty lines of a streaming response, each as soon as it is complete."""
    pending = b""
    for chunk in response.iter_content(chunk_size=None):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from (line for line in lines if line.strip())


def _shut(response: requests.Response) -> None:
    """End a streaming response now, from another thread: its reader sees the end of the stream."""
    with contextlib.suppress(Exception):
        fd = response.raw.fileno()
        # A dup of the socket: shutdown acts on the socket itself, wherever its reader is.
        with socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.shutdown(socket.SHUT_RDWR)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, Etcd3Exception) and exc.detail_text:
        # etcd's own words, e.g. {"error": "etcdserver: requested lease not found", "code": 5, ...}
        with contextlib.suppress(ValueError, KeyError, TypeError):
            return str(json.loads(exc.detail_text)["error"])
        return exc.detail_text.strip()[:300]
    if isinstance(exc, requests.ConnectionError):
        inner = exc.args[0] if exc.args else exc
        reason = getattr(inner, "reason", None)
        return str(reason or inner)
    return str(exc) or type(exc).__name__
