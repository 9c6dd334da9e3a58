"""``nsnet-cni``: the executable a container runtime runs, once per container and command.

The command and the container come in the environment (``CNI_COMMAND``,
``CNI_CONTAINERID``, ``CNI_NETNS``, ``CNI_IFNAME``, ``CNI_ARGS``,
``CNI_PATH``), the network configuration on stdin; the result, or an error
(``{"cniVersion", "code", "msg", "details"}``), goes to stdout, and the exit
status is 0 only on success. VERSION answers without touching anything;
the other commands import what they need only when they run.
"""

from __future__ import annotations

import os
import sys

from nsnet.cni import spec
from nsnet.cni.spec import CniError

TYPE_CHECKING = False  # typing is not imported at run time: the plugin starts once per container
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import IO

    from nsnet.cni.bridge import Env

COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS")
REQUIRED = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "GC": (),
    "STATUS": (),
}
"""Variables each command needs (``CNI_PATH`` too, when there is an IPAM plugin to find)."""


def run() -> None:
    """The console script's entry point."""
    sys.exit(main(os.environ, sys.stdin.buffer, sys.stdout))


def main(environ: Mapping[str, str], stdin: IO[bytes], stdout: IO[str]) -> int:
    version = spec.LATEST
    try:
        command = environ.get("CNI_COMMAND", "")
        if command not in COMMANDS:
            raise CniError(
                spec.INVALID_ENVIRONMENT,
                f"invalid CNI_COMMAND {command!r}" if command else "CNI_COMMAND is not set",
                f"one of {', '.join(COMMANDS)}",
            )
        try:
            data = stdin.read()
        except OSError as exc:
            raise CniError(spec.IO_FAILURE, "cannot read the network configuration from stdin", str(exc)) from None
        if command == "VERSION":
            stdout.write(spec.dumps(spec.version_info(_requested_version(data))))
            return 0
        from nsnet.cni import config

        conf = config.parse(data)
        version = conf.version
        env = _environment(command, environ, needs_path=conf.ipam is not None)
        from nsnet.cni import bridge

        if command == "ADD":
            stdout.write(spec.dumps(bridge.add(conf, env)))
        elif command == "DEL":
            bridge.delete(conf, env)
        elif command == "CHECK":
            bridge.check(conf, env)
        elif command == "GC":
            bridge.gc(conf, env)
        else:
            bridge.status(conf, env)
        return 0
    except CniError as exc:
        stdout.write(spec.dumps(exc.to_json(version)))
        return 1
    except Exception as exc:  # a bug or something unforeseen: still an error in the spec's shape
        stdout.write(
            spec.dumps(CniError(spec.INTERNAL, str(exc) or type(exc).__name__, type(exc).__name__).to_json(version))
        )
        return 1


def _requested_version(data: bytes) -> str | None:
    """VERSION may come with ``{"cniVersion": ...}`` on stdin, or nothing."""
    if not data.strip():
        return None
    from nsnet.cni.config import parse_json

    parsed = parse_json(data)
    value = parsed.get("cniVersion") if isinstance(parsed, dict) else None
    return value if isinstance(value, str) else None


def _environment(command: str, environ: Mapping[str, str], needs_path: bool) -> Env:
    from nsnet.cni.bridge import Env
    from nsnet.cni.config import NAME_RE, check_ifname

    required = REQUIRED[command] + (("CNI_PATH",) if needs_path else ())
    unset = [name for name in required if not environ.get(name)]
    if unset:
        raise CniError(spec.INVALID_ENVIRONMENT, f"required environment variables missing: {', '.join(unset)}")
    container_id = environ.get("CNI_CONTAINERID", "")
    if container_id and not NAME_RE.match(container_id):
        raise CniError(
            spec.INVALID_ENVIRONMENT,
            f"invalid CNI_CONTAINERID {container_id!r}",
            "letters, digits, _ . -, starting with a letter or digit",
        )
    ifname = environ.get("CNI_IFNAME", "")
    if ifname:
        check_ifname(ifname, "CNI_IFNAME", spec.INVALID_ENVIRONMENT)
    return Env(
        command=command,
        container_id=container_id,
        netns=environ.get("CNI_NETNS", ""),
        ifname=ifname,
        args=environ.get("CNI_ARGS", ""),
        path=environ.get("CNI_PATH", ""),
        environ=dict(environ),
    )


if __name__ == "__main__":
    run()
