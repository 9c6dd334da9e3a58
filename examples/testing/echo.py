"""A tiny UDP echo service: the software under test in this example.

    python3 echo.py serve [--port 7007]                    answer every datagram with the same bytes
    python3 echo.py send HOST MESSAGE [--port 7007] [--timeout 1]
                                                           print the reply; exit 1 if none comes

Nothing here knows about nsnet: the tests next to it run it in a lab.
"""

from __future__ import annotations

import argparse
import socket
import sys

PORT = 7007


def serve(sock: socket.socket) -> None:
    """Echo datagrams on a bound socket until a datagram says ``quit``."""
    while True:
        data, peer = sock.recvfrom(65535)
        sock.sendto(data, peer)
        if data == b"quit":
            return


def request(host: str, message: bytes, port: int = PORT, timeout: float = 1.0) -> bytes:
    """Send ``message`` to the echo service at ``host``; its reply (``TimeoutError`` if none comes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(message, (host, port))
        data, _ = sock.recvfrom(65535)
        return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="UDP echo server and client")
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("serve", help="run the echo server")
    server.add_argument("--port", type=int, default=PORT)
    client = commands.add_parser("send", help="send one message and print the reply")
    client.add_argument("host")
    client.add_argument("message")
    client.add_argument("--port", type=int, default=PORT)
    client.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.command == "serve":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("0.0.0.0", args.port))
            print(f"listening on udp port {args.port}", flush=True)
            serve(sock)
        return 0
    try:
        reply = request(args.host, args.message.encode(), args.port, args.timeout)
    except TimeoutError:
        print(f"echo: no reply from {args.host}:{args.port} within {args.timeout:g} s", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"echo: {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(reply.decode(errors="replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
