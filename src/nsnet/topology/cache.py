"""Topology files validated once: an unchanged file is not read and checked again.

Validating a file costs the YAML parse, pydantic (and its import) and the
cross-checks: a third of a second for 500 nodes, 5 s for 10,000. The result
depends on nothing but the file's bytes and nsnet's own code, so it is kept,
pickled, under the state directory (``/run/nsnet/cache``, gone at reboot),
named by a digest of both; a file that changed, or an nsnet that changed, is
validated afresh. Only valid files are kept (errors are always found anew).

The cache is used only where the state directory belongs to the user running
nsnet and nobody else can write to it, since unpickling trusts the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import sys
import tempfile
from dataclasses import replace
from functools import cache
from pathlib import Path

from nsnet import statedir
from nsnet.errors import NsnetError, Problem, TopologyError
from nsnet.model import Topology
from nsnet.statedir import STATE_DIR

CACHE_DIR = STATE_DIR / "cache"
KEEP = 32
"""Entries kept; the oldest beyond this are removed."""
PACKAGE = Path(__file__).resolve().parent


def load(path: str | Path) -> Topology:
    """:func:`nsnet.topology.loader.load`, answered from the cache when the file and nsnet are unchanged."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TopologyError([Problem(str(path), None, "", f"cannot read the file: {exc.strerror}")]) from None
    usable = _usable()
    entry = CACHE_DIR / f"{hashlib.sha256(_code_digest() + data).hexdigest()}.pickle" if usable else None
    if entry is not None:
        with contextlib.suppress(OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError):
            topology = pickle.loads(entry.read_bytes())
            if isinstance(topology, Topology):
                return replace(topology, source=str(path.resolve()))
    from nsnet.topology import loader

    # Validated from the very bytes the key was made of: read again, a file being written could be
    # cached under the key of what it held a moment before (an empty file answered with a lab).
    text = data.decode().replace("\r\n", "\n").replace("\r", "\n")  # as read_text would give it
    topology = replace(loader.loads(text, str(path)), source=str(path.resolve()))
    if entry is not None:
        _store(entry, topology)
    return topology


def _usable() -> bool:
    """Whether the cache directory exists (or can be made) and only we can write to it."""
    try:
        statedir.directory("cache", 0o700)  # the state directory made as every state file is (whatever the umask)
        for d in (CACHE_DIR, CACHE_DIR.parent):
            st = d.stat()
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return False
    except (OSError, NsnetError):
        return False
    return True


@cache
def _code_digest() -> bytes:
    """What identifies this nsnet: its Python, and the size and time of each of its source files."""
    h = hashlib.sha256(sys.version.encode())
    for root, dirs, files in os.walk(PACKAGE):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(root, name))
                h.update(f"{root}/{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.digest()


def _store(entry: Path, topology: Topology) -> None:
    with contextlib.suppress(OSError, pickle.PicklingError):
        fd, tmp = tempfile.mkstemp(dir=CACHE_DIR, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(replace(topology, source=None), f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, entry)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        entries = sorted(CACHE_DIR.glob("*.pickle"), key=lambda p: p.stat().st_mtime_ns)
        for old in entries[:-KEEP]:
            old.unlink(missing_ok=True)
