"""nsnet's exception tree.

Every error nsnet raises is a :class:`NsnetError`; lower-level errors
(netlink, subprocess, OS) are converted at the boundary where they occur.
Each class carries the exit code the ``nsnet`` command ends with when it
fails with that error (:attr:`NsnetError.exit_code`; the table is in
docs/cli.md): 2 for what the user asked wrongly (an invalid topology, bad
arguments), 4 for a lab or node not found, 5 for a conflict, 6 for a machine
that cannot run it, 7 for the kernel or a tool refusing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class NsnetError(Exception):
    """Base class of every error nsnet raises."""

    exit_code: int = 2
    """The exit code of an ``nsnet`` command that fails with this error."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a topology: where, what is wrong, how to fix it."""

    file: str
    line: int | None
    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class TopologyError(NsnetError):
    """The topology is invalid; :attr:`problems` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        count = len(problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the topology"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in problems))


class ExplainError(NsnetError):
    """``explain`` cannot answer what it was asked: a node the lab lacks, a protocol or size it does not take,
    a destination without an address."""


class PreflightError(NsnetError):
    """The machine cannot run this: not root, a tool or kernel feature missing."""

    exit_code = 6


class ConflictError(NsnetError):
    """Something in the kernel or another lab is in the way."""

    exit_code = 5


class LabNotFoundError(NsnetError):
    """No lab of that name is up (or the lab has no node of that name)."""

    exit_code = 4


class KernelError(NsnetError):
    """The kernel or a tool refused an operation."""

    exit_code = 7


class ApplyError(NsnetError):
    """A step of ``up`` failed; the change was rolled back."""

    exit_code = 7

    def __init__(self, step: str, cause: BaseException, rolled_back: bool) -> None:
        self.step = step
        self.cause = cause
        self.rolled_back = rolled_back
        state = (
            "the kernel was restored to how it was before this run"
            if rolled_back
            else "rolling back failed too: run `nsnet up` again to converge or `nsnet down` to remove the lab"
        )
        super().__init__(f"failed at step: {step}: {cause}; {state}")


class CommandError(NsnetError):
    """A command run in a node failed (``check=True``), timed out, or does not exist.

    :attr:`returncode` is ``None`` when the command timed out or could not start.
    """

    def __init__(
        self, node: str, argv: Sequence[str], returncode: int | None, stdout: str, stderr: str, why: str
    ) -> None:
        self.node = node
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        text = f"[{node}] {' '.join(self.argv)}: {why}"
        for name, value in (("stdout", stdout), ("stderr", stderr)):
            if value.strip():
                text += f"\n--- {name} ---\n{value.rstrip()}"
        super().__init__(text)


class ChildError(NsnetError):
    """A function run in a namespace raised, died, or did not finish in time.

    :attr:`traceback` holds the child's traceback text (empty if it died
    without one); :attr:`exception` the exception itself when it could be
    pickled back (it is also this error's ``__cause__``).
    """

    def __init__(self, message: str, traceback: str = "", exception: BaseException | None = None) -> None:
        self.traceback = traceback
        self.exception = exception
        super().__init__(message + (f"\n--- traceback in the child ---\n{traceback.rstrip()}" if traceback else ""))
