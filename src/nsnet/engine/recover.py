"""Find and remove what nsnet left in the kernel, by its marks, when the journal is gone.

Every namespace nsnet creates carries a mark on its ``lo`` (alias
``nsnet:<lab>:<node>:<state>``, ``state`` naming the state directory), every
link an alias ``nsnet:<lab>``, and every jump to its chains the comment ``nsnet:<lab>``. ``gc`` reads those marks only:
nothing without one is ever touched.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from nsnet.engine.journal import Journal, check_lab_name, locked, scan
from nsnet.engine.seam import Kernel, LiveKernel
from nsnet.errors import KernelError, NsnetError
from nsnet.kernel import etcnetns, netns, procs
from nsnet.model import NETNS_FILES, file_mark, parse_namespace_mark


@dataclass(frozen=True)
class Marked:
    """A namespace carrying nsnet's mark."""

    lab: str
    node: str
    netns: str


def marked_namespaces(nl: Kernel) -> list[Marked]:
    """Every named namespace on the machine whose ``lo`` carries the mark of an nsnet lab of this
    state directory (a lab running under another ``NSNET_STATE_DIR`` is not ours to find)."""
    found = []
    for ns in nl.names():
        with contextlib.suppress(KernelError, OSError):
            mark = nl.lo_alias(ns) or ""
            nl.forget(ns)
            parsed = parse_namespace_mark(mark)
            if parsed is not None and parsed.ours and _lab_name(parsed.lab):
                found.append(Marked(lab=parsed.lab, node=parsed.node, netns=ns))
    return found


def _lab_name(lab: str) -> bool:
    try:
        check_lab_name(lab)
    except NsnetError:
        return False
    return True


def orphans(lab: str | None = None, kernel: Kernel | None = None) -> list[Marked]:
    """Marked namespaces of ``lab`` (or of every lab) that no journal knows of."""
    nl = kernel or LiveKernel()
    nl.require_root("read the machine's namespaces")
    good, bad = scan()
    if lab is not None and lab in bad:
        raise NsnetError(bad[lab])
    known = {ns for j in good for ns in j.namespaces}
    with contextlib.closing(nl):
        # A lab whose journal cannot be read is not known to be gone: its namespaces are not orphans.
        return [
            m
            for m in marked_namespaces(nl)
            if (lab is None or m.lab == lab) and m.netns not in known and m.lab not in bad
        ]


def gc(lab: str | None = None, dry_run: bool = False) -> list[Marked]:
    """Delete the namespaces nsnet marked for ``lab`` (or any lab) that no journal lists; returns them.

    Processes still running in them are stopped first, as ``down`` does.
    """
    if lab is not None:
        check_lab_name(lab)
    found = orphans(lab)
    if dry_run:
        return found
    for m in found:
        with locked(m.lab):
            journal = Journal.load(m.lab)
            if journal is None or m.netns not in journal.namespaces:  # not claimed since we looked
                procs.stop(procs.in_namespaces({m.netns: m.node}))  # else they keep it alive, unnamed
                netns.delete(m.netns)
                for name in NETNS_FILES:  # the hosts file up wrote for it, if it carries the lab's mark
                    with contextlib.suppress(KernelError):
                        etcnetns.remove(m.netns, name, file_mark(m.lab), directory=True)
                etcnetns.forget(m.netns)
    return found
