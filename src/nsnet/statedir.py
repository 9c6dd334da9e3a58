"""nsnet's state directory (``/run/nsnet``, or ``NSNET_STATE_DIR``) and its identity.

Marks on namespaces carry the identity of the state directory whose journals
describe them, so that an nsnet working with one directory never takes a
namespace made under another for its own (``gc`` in particular).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

STATE_DIR = Path(os.environ.get("NSNET_STATE_DIR", "/run/nsnet"))


def identity(state_dir: Path | None = None) -> str:
    """A short, stable name of the state directory: a hash of its absolute path."""
    where = os.path.abspath(state_dir or STATE_DIR)
    return hashlib.sha256(where.encode()).hexdigest()[:12]
