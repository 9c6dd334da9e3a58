"""Real traffic in a lab's namespaces: listeners that answer, and one probe per flow with short timeouts."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass

from nsnet.kernel import netns

TIMEOUT = 0.5

_SERVER = r"""
import selectors, socket, sys
tcp = [int(p) for p in sys.argv[1].split(",") if p]
udp = [int(p) for p in sys.argv[2].split(",") if p]
sel = selectors.DefaultSelector()
for kind, ports in ((socket.SOCK_STREAM, tcp), (socket.SOCK_DGRAM, udp)):
    for port in ports:
        s = socket.socket(socket.AF_INET6, kind)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::", port))
        if kind == socket.SOCK_STREAM:
            s.listen(64)
        sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        try:
            if s.type == socket.SOCK_STREAM:
                c, _ = s.accept()
                c.close()
            else:
                data, peer = s.recvfrom(65535)
                s.sendto(data[:1] or b"x", peer)
        except OSError:
            pass
"""


@dataclass
class Listener:
    """A process in one namespace accepting TCP connections and echoing UDP datagrams."""

    ns: str
    proc: subprocess.Popen[str]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=5)


def listen(ns: str, tcp: list[int], udp: list[int]) -> Listener:
    """Start a listener in ``ns`` on ``tcp`` and ``udp`` ports (all addresses, both families); waits until ready."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", _SERVER, ",".join(map(str, tcp)), ",".join(map(str, udp))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"listener in {ns} failed: {proc.stderr.read() if proc.stderr else ''}")
    return Listener(ns, proc)


def send(ns: str, addr: str, proto: str, size: int | None = None) -> tuple[bool, str]:
    """One real exchange from ``ns`` to ``addr``: echo reply, TCP connect, or UDP answer. (passed, what happened)"""
    name, _, port_text = proto.partition(":")
    v6 = ":" in addr
    if name == "icmp":
        extra = ["-s", str(size - (48 if v6 else 28))] if size else []
        done = subprocess.run(
            ["ip", "netns", "exec", ns, "ping", "-n", "-q", "-c", "1", "-W", str(TIMEOUT), *extra, addr],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.returncode == 0, "echo reply" if done.returncode == 0 else "no echo reply"
    port = int(port_text)
    with netns.entered(ns):
        sock = socket.socket(
            socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM if name == "tcp" else socket.SOCK_DGRAM
        )
    with sock:
        sock.settimeout(TIMEOUT)
        try:
            sock.connect((addr, port))
            if name == "tcp":
                return True, "connected"
            sock.send(b"x" * (size - (48 if v6 else 28)) if size else b"scenario")
            sock.recv(1)
            return True, "udp answer"
        except ConnectionRefusedError:
            return False, "refused"
        except TimeoutError:
            return False, "timeout"
        except OSError as exc:
            return False, exc.strerror or str(exc)


def passes(ns: str, addr: str, proto: str, size: int | None = None, tries: int = 1) -> tuple[bool, str]:
    """:func:`send`, tried up to ``tries`` times (a first packet may wait for ARP/NDP after a change)."""
    result = (False, "not tried")
    for attempt in range(tries):
        result = send(ns, addr, proto, size)
        if result[0]:
            return result
        if attempt + 1 < tries:
            time.sleep(0.05)
    return result
