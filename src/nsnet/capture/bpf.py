"""Capture filters in tcpdump's syntax, compiled to classic BPF by libpcap (through tcpdump).

``tcpdump -ddd -y EN10MB -s SNAPLEN FILTER`` prints the program libpcap
compiles for an Ethernet capture, one instruction a line; it is attached to
the capture socket with ``SO_ATTACH_FILTER``, so the kernel drops what does
not match before it is copied, and truncates to the snapshot length.
"""

from __future__ import annotations

import ctypes
import shutil
import socket
import struct
import subprocess

from nsnet.errors import NsnetError, PreflightError

SO_ATTACH_FILTER = 26
_INSN = struct.Struct("HBBI")  # struct sock_filter: code, jt, jf, k


def compile_filter(expression: str, snaplen: int = 262144) -> list[tuple[int, int, int, int]]:
    """The BPF program (code, jt, jf, k) libpcap compiles for ``expression`` on Ethernet."""
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise PreflightError("capture filters are compiled by libpcap through tcpdump: apt-get install tcpdump")
    try:
        proc = subprocess.run(
            [tcpdump, "-ddd", "-y", "EN10MB", "-s", str(snaplen), "--", expression],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise NsnetError(f"tcpdump took too long to compile the filter {expression!r}") from exc
    if proc.returncode != 0:
        message = proc.stderr.strip().removeprefix("tcpdump: ") or f"tcpdump exited with {proc.returncode}"
        raise NsnetError(f"bad capture filter {expression!r}: {message}")
    lines = proc.stdout.split("\n")
    try:
        count = int(lines[0])
        program = []
        for line in lines[1 : count + 1]:
            code, jt, jf, k = (int(x) for x in line.split())
            program.append((code, jt, jf, k))
    except (ValueError, IndexError) as exc:
        raise NsnetError(f"cannot read the BPF program tcpdump printed for {expression!r}") from exc
    if len(program) != count or not program:
        raise NsnetError(f"cannot read the BPF program tcpdump printed for {expression!r}")
    return program


def attach(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    """Attach a classic BPF program to a socket (``SO_ATTACH_FILTER``)."""
    raw = b"".join(_INSN.pack(*insn) for insn in program)
    buf = ctypes.create_string_buffer(raw, len(raw))
    fprog = struct.pack("HP", len(program), ctypes.addressof(buf))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
