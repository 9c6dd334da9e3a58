"""``nsnet web``: the lab live in a browser, and the packet's fate drawn where it happens.

:func:`serve` runs the app of :mod:`nsnet.web.app` with uvicorn on a socket
bound before anything is printed, so the URL it announces (with the launch's
token) is ready to open.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Callable

from nsnet.errors import NsnetError

DEFAULT_LISTEN = "127.0.0.1"


def bind(listen: str = DEFAULT_LISTEN, port: int = 0) -> socket.socket:
    """A listening TCP socket on ``listen``:``port`` (0: a free port); a clear error if that is not possible."""
    try:
        address = ipaddress.ip_address(listen)
    except ValueError:
        raise NsnetError(f"--listen takes an IP address (127.0.0.1, ::1, 0.0.0.0), not {listen!r}") from None
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((listen, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise NsnetError(f"cannot listen on {listen} port {port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def url(sock: socket.socket, token: str, lab: str | None = None) -> str:
    """The URL to open: address, port, token (and the lab to show)."""
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    if host in ("0.0.0.0", "[::]"):
        host = "127.0.0.1" if sock.family == socket.AF_INET else "[::1]"
    tail = f"#lab={lab}" if lab else ""
    return f"http://{host}:{port}/?token={token}{tail}"


def serve(
    sock: socket.socket,
    lab: str | None = None,
    allow_changes: bool = False,
    token: str | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve the app on ``sock`` until Ctrl-C or SIGTERM; ``announce`` gets the URL once it is ready."""
    import uvicorn  # loaded with the command: `nsnet --help` stays fast

    from nsnet.web.app import Settings, create_app

    token = token or secrets.token_urlsafe(18)
    settings = Settings(token, lab, allow_changes)
    app = create_app(settings)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    announce(url(sock, token, lab))
    try:
        server.run(sockets=[sock])
    finally:
        settings.close()
        sock.close()


__all__ = ["DEFAULT_LISTEN", "bind", "serve", "url"]
