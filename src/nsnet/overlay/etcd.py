"""Running etcd, the overlay's registry, inside a namespace: where a lab's hosts reach it over the underlay."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import IO

from nsnet.errors import NsnetError
from nsnet.kernel import netns

SCRATCH_PREFIX = "nsnet-etcd-"
PEER = "http://127.0.0.1:2380"
"""A single-member cluster talks to nobody: its peer URL stays on the namespace's loopback."""


def argv(url: str, data_dir: str) -> list[str]:
    """The ``etcd`` command line of a single-member registry serving clients at ``url``."""
    return [
        "etcd",
        "--name", "nsnet",
        "--data-dir", data_dir,
        "--listen-client-urls", url,
        "--advertise-client-urls", url,
        "--listen-peer-urls", PEER,
        "--initial-advertise-peer-urls", PEER,
        "--initial-cluster", f"nsnet={PEER}",
        "--logger", "zap",
        "--log-level", "warn",
    ]  # fmt: skip


def start(ns: str, url: str, data_dir: str, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """Start etcd inside ``ns`` (forked while this thread is in it), in a session of its own."""
    if shutil.which("etcd") is None:
        raise NsnetError("etcd is not installed: apt-get install etcd-server (scripts/setup.sh does)")
    with netns.entered(ns):
        return subprocess.Popen(argv(url, data_dir), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def answers(ns: str, url: str) -> bool:
    """Whether etcd answers at ``url``, asked from inside ``ns``."""
    try:
        with netns.entered(ns), urllib.request.urlopen(f"{url.rstrip('/')}/version", timeout=0.5) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop etcd (SIGTERM, then SIGKILL after 5 s)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def running(
    ns: str,
    url: str,
    data_dir: str | None = None,
    timeout: float = 15,
    on_scratch: Callable[[str], None] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """etcd serving ``url`` inside ``ns`` for the block; a temporary data directory unless one is given.

    ``on_scratch`` hears of the temporary directory (its log, and its data)
    before etcd starts: a lab records it, so that ``down`` removes it even
    if this process is killed.
    """
    if urllib.parse.urlsplit(url).scheme != "http":
        raise NsnetError(f"{url}: nsnet runs etcd over plain http only")
    tmp = tempfile.mkdtemp(prefix=SCRATCH_PREFIX)  # its log, and its data unless kept elsewhere
    if on_scratch is not None:
        try:
            on_scratch(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    where = data_dir or os.path.join(tmp, "db")
    log_path = os.path.join(tmp, "etcd.log")
    with open(log_path, "wb") as log:
        proc = start(ns, url, where, log)
        try:
            deadline = time.monotonic() + timeout
            while not answers(ns, url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    with open(log_path, errors="replace") as f:
                        tail = f.read()[-2000:]
                    raise NsnetError(f"etcd did not start at {url} in {ns} (exit {proc.poll()}):\n{tail}")
                time.sleep(0.1)
            yield proc
        finally:
            stop(proc)
            shutil.rmtree(tmp, ignore_errors=True)
