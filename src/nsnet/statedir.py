"""nsnet's state directory (``/run/nsnet``, or ``NSNET_STATE_DIR``) and its identity.

Marks on namespaces carry the identity of the state directory whose journals
describe them, so that an nsnet working with one directory never takes a
namespace made under another for its own (``gc`` in particular).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

from nsnet.errors import NsnetError

STATE_DIR = Path(os.environ.get("NSNET_STATE_DIR", "/run/nsnet"))


def identity(state_dir: Path | None = None) -> str:
    """A short, stable name of the state directory: a hash of its absolute path."""
    where = os.path.abspath(state_dir or STATE_DIR)
    return hashlib.sha256(where.encode()).hexdigest()[:12]


def directory(name: str, mode: int) -> Path:
    """``STATE_DIR/name``, made with ``mode`` whatever the umask (the state directory itself 0755).

    Refuses a symbolic link, a non-directory, or a directory of another
    user there: nsnet's journals and locks are kept only where no one else
    can swap them.
    """
    if not STATE_DIR.is_dir():
        STATE_DIR.parent.mkdir(parents=True, exist_ok=True)
        _make(STATE_DIR, 0o755)
    path = STATE_DIR / name
    if not _make(path, mode):
        _check_directory(path)
    return path


def existing(name: str) -> Path | None:
    """``STATE_DIR/name`` if it exists (checked as :func:`directory` does), None if it does not."""
    path = STATE_DIR / name
    try:
        _check_directory(path)
    except FileNotFoundError:
        return None
    return path


def _check_directory(path: Path) -> None:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a directory of this user's"
        raise NsnetError(
            f"{path} is {what}: nsnet keeps its journals and locks only in a directory of its own; "
            f"remove it (nsnet makes it again) or use another NSNET_STATE_DIR"
        )


def _make(path: Path, mode: int) -> bool:
    """Make a directory with exactly ``mode``; False if something is there already."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return False
    os.chmod(path, mode)  # the umask may have taken bits away
    return True


def open_file(path: Path, flags: int, mode: int = 0o600) -> int:
    """Open a state file without following a symbolic link or blocking on a FIFO; only regular files."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NsnetError(
                f"{path} is a symbolic link: nsnet never follows one among its state files "
                f"(someone else made it); remove it"
            ) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NsnetError(f"{path} is not a regular file: nsnet did not make it; remove it")
    return fd
