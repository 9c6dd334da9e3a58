"""Running nsnet on a machine over SSH (asyncssh), as the user's own ``ssh`` would reach it.

The connection takes what OpenSSH takes: ``~/.ssh/config`` (or ``--ssh-config``),
the keys in ``~/.ssh`` and the agent, and ``~/.ssh/known_hosts``. A host key
that is not known is refused, never accepted silently.
"""

from __future__ import annotations

import json
import shlex
import warnings
from dataclasses import dataclass
from typing import Any

from nsnet.errors import NsnetError
from nsnet.model import Machine
from nsnet.topology.inventory import split_ssh

CONNECT_TIMEOUT = 15.0

with warnings.catch_warnings():  # asyncssh still names DSA keys, which cryptography deprecates
    warnings.simplefilter("ignore")
    import asyncssh


class MachineError(NsnetError):
    """Something failed on (or on the way to) one machine; the message names it."""


@dataclass(frozen=True)
class Reply:
    """What a command run on a machine said."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def problem(self) -> str:
        """Its error output, without the ``error:`` nsnet puts before it."""
        text = (self.err.strip() or self.out.strip() or f"exit code {self.code}").splitlines()
        return " ".join(line.removeprefix("error: ").strip() for line in text[-3:])


class Session:
    """One SSH connection to one machine (use ``async with``)."""

    def __init__(self, machine: Machine, config: str | None = None) -> None:
        self.machine = machine
        self._config = config
        self._conn: asyncssh.SSHClientConnection | None = None

    async def __aenter__(self) -> Session:
        user, host, port = split_ssh(self.machine.ssh)
        options: dict[str, Any] = {"username": user, "port": port, "connect_timeout": CONNECT_TIMEOUT}
        if self._config is not None:
            options["config"] = [self._config]
        try:
            self._conn = await asyncssh.connect(host, **options)
        except asyncssh.HostKeyNotVerifiable as exc:
            raise MachineError(
                f"machine {self.machine.name} ({self.machine.ssh}): its host key is not trusted ({exc.reason}); "
                f"check it and add it to ~/.ssh/known_hosts (`ssh {self.machine.ssh}` once)"
            ) from None
        except asyncssh.PermissionDenied:
            raise MachineError(
                f"machine {self.machine.name} ({self.machine.ssh}): SSH refused the login: "
                "give a key it accepts (~/.ssh, the agent, or IdentityFile in ~/.ssh/config)"
            ) from None
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            reason = getattr(exc, "reason", "") or str(exc) or type(exc).__name__
            raise MachineError(f"machine {self.machine.name} ({self.machine.ssh}): cannot connect: {reason}") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.close()
            await self._conn.wait_closed()

    async def run(self, *args: str, input: str | None = None, timeout: float | None = 300) -> Reply:
        """``nsnet ARGS`` on the machine (``args[0] == "!"``: another command)."""
        argv = list(args[1:]) if args and args[0] == "!" else [*shlex.split(self.machine.nsnet), *args]
        assert self._conn is not None
        try:
            done = await self._conn.run(shlex.join(argv), input=input, check=False, timeout=timeout)
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            raise MachineError(f"machine {self.machine.name}: `{shlex.join(argv)}` failed: {exc}") from None
        code = done.exit_status if done.exit_status is not None else 255
        return Reply(code, _text(done.stdout), _text(done.stderr))

    async def nsnet(self, *args: str, input: str | None = None) -> Any:
        """``nsnet ARGS --json`` on the machine, its JSON; :class:`MachineError` on failure."""
        reply = await self.run(*args, "--json", input=input)
        if reply.code != 0:
            raise MachineError(f"machine {self.machine.name}: {reply.problem}")
        try:
            return reply.json()
        except ValueError:
            raise MachineError(
                f"machine {self.machine.name}: nsnet {args[0]} said no JSON: {reply.out[:200]!r}"
            ) from None

    async def version(self) -> str:
        """nsnet's version on the machine; :class:`MachineError` if it has none."""
        reply = await self.run("--version")
        if reply.code != 0:
            raise MachineError(
                f"machine {self.machine.name}: `{self.machine.nsnet} --version` failed ({reply.problem}): "
                "install nsnet there, or say where it is (machines: NAME: nsnet: PATH)"
            )
        return reply.out.strip().split()[-1]


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value or "")
