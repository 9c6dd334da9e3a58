"""Read a lab's namespaces from the kernel into a :class:`~nsnet.model.State`.

What is read where is decided here; the reading itself is the kernel's
(:meth:`nsnet.engine.seam.Kernel.read`: links, routes and marks).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from nsnet.engine.journal import Journal
from nsnet.engine.seam import Kernel
from nsnet.model import ROOT_NS, Firewall, Namespace, State


def observe(nl: Kernel, lab: str, wanted: State, journal: Journal | None, extra: dict[str, str] | None = None) -> State:
    """The live state of every namespace in ``wanted``, the journal and ``extra`` that exists.

    Sysctls are read for the keys ``wanted`` sets and those the journal
    remembers; the firewall only where either uses one. While the lab is being
    removed (``down``: journal status ``removing``, nothing wanted but perhaps
    the root namespace), a namespace it does not want is read
    only for what deciding its removal needs: its mark and its server (it goes
    whole, links and all). An empty file left
    under /run/netns by a creation cut short counts as absent where the lab
    wants the namespace (it is made again) and as an unmarked, empty namespace
    elsewhere (it is removed).
    """
    labels: dict[str, str] = {}
    if journal:
        labels.update(journal.namespaces)
        if journal.host_mode == "root":
            labels[ROOT_NS] = "host"
    labels.update(extra or {})
    labels.update({ns: space.label for ns, space in wanted.namespaces.items()})
    removing = journal is not None and journal.status == "removing" and set(wanted.namespaces) <= {ROOT_NS}

    whole: list[str] = []
    spaces: dict[str, Namespace] = {}
    for ns, label in labels.items():
        if not nl.exists(ns):
            continue
        want = wanted.namespaces.get(ns)
        role: Literal["node", "host"] = want.role if want else "host" if label == "host" else "node"
        if ns != ROOT_NS and nl.is_stale(ns):
            if want is None:
                spaces[ns] = Namespace(name=ns, label=label, role=role, stale=True)
            continue
        if removing and want is None and ns != ROOT_NS:
            spaces[ns] = Namespace(
                name=ns, label=label, role=role, mark=nl.lo_alias(ns), server=_server(nl, journal, ns)
            )
            continue
        whole.append(ns)
        spaces[ns] = _namespace(nl, lab, ns, label, role, want, journal)
    for ns, reading in nl.read(whole).items():
        spaces[ns] = replace(spaces[ns], links=reading.links, routes=reading.routes, mark=reading.mark)
    return State(lab=lab, namespaces=spaces)


def _namespace(
    nl: Kernel,
    lab: str,
    ns: str,
    label: str,
    role: Literal["node", "host"],
    want: Namespace | None,
    journal: Journal | None,
) -> Namespace:
    """A namespace's sysctls, firewall, server and files (its links, routes and mark are added once every namespace
    is read: links name each other)."""
    keys = sorted(set(want.sysctls if want else ()) | set(journal.sysctls.get(ns, {}) if journal else ()))
    families = _firewall_families(ns, want, journal)
    return Namespace(
        name=ns,
        label=label,
        role=role,
        links={},
        sysctls={k: v for k, v in nl.read_sysctls(ns, keys).items() if v is not None} if keys else {},
        firewall=nl.read_firewall(ns, lab, families) if families else Firewall(),
        server=_server(nl, journal, ns),
        files=_files(nl, ns, want, journal),
    )


def _files(nl: Kernel, ns: str, want: Namespace | None, journal: Journal | None) -> dict[str, str]:
    """The files under /etc/netns the lab wants or wrote (a file nsnet did not write counts: it is not overwritten)."""
    if ns == ROOT_NS:
        return {}
    names = set(want.files if want else ()) | set(journal.files.get(ns, ()) if journal else ())
    names.discard("/")
    return nl.read_files(ns, sorted(names)) if names else {}


def _firewall_families(ns: str, want: Namespace | None, journal: Journal | None) -> set[int]:
    """The IP versions whose firewall is read: those the lab sets, or set before (as the journal says)."""
    families = set(want.firewall.families if want else ())
    if journal and ns in journal.firewall:
        families |= {4, 6}
    return families


def _server(nl: Kernel, journal: Journal | None, ns: str) -> int | None:
    """The port of nsnet's HTTP server in ``ns``, if the journal has one that still runs."""
    entry = journal.servers.get(ns) if journal else None
    return entry[1] if entry and nl.server_running(ns, entry) else None
