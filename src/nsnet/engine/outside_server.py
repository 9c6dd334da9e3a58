"""The small HTTP server nsnet runs in a lab's ``outside`` namespace.

Every GET is answered with who asked, so a test sees through which address
a node reached the outside (``client 203.0.113.1:40612`` after masquerade).
It listens on IPv4 and IPv6 alike (``client 2001:db8::1:40612`` after IPv6
masquerade). Run by nsnet as ``python -m nsnet.engine.outside_server PORT``;
prints ``ready``.
"""

from __future__ import annotations

import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class DualStackServer(ThreadingHTTPServer):
    """Listens on ``::`` with IPV6_V6ONLY off: IPv4 clients too (as ``::ffff:a.b.c.d``)."""

    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        host, port = self.client_address[:2]
        host = host.removeprefix("::ffff:")  # an IPv4 client of the dual-stack socket
        body = f"hello from outside\nclient {host}:{port}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 80
    server = DualStackServer(("::", port), Handler)
    print("ready", flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
