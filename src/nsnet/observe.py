"""Read a lab's namespaces from the kernel into a :class:`~nsnet.model.State`."""

from __future__ import annotations

from dataclasses import replace

from . import servers
from .journal import Journal
from .kernel import firewall, netns, sysctl
from .kernel.netlink import Netlink, RawLink
from .model import ROOT_NS, Endpoint, Firewall, Link, Namespace, State


def observe(
    nl: Netlink, lab: str, wanted: State, journal: Journal | None, extra: dict[str, str] | None = None
) -> State:
    """The live state of every namespace in ``wanted``, the journal and ``extra`` that exists.

    Sysctls are read for the keys ``wanted`` sets and those the journal
    remembers; the firewall only where either uses one.
    """
    labels: dict[str, str] = {}
    if journal:
        labels.update(journal.namespaces)
        if journal.host_mode == "root":
            labels[ROOT_NS] = "host"
    labels.update(extra or {})
    labels.update({ns: space.label for ns, space in wanted.namespaces.items()})

    raw: dict[str, dict[str, RawLink]] = {}
    spaces: dict[str, Namespace] = {}
    for ns, label in labels.items():
        if not netns.exists(ns):
            continue
        want = wanted.namespaces.get(ns)
        links = nl.links(ns)
        raw[ns] = links
        keys = sorted(set(want.sysctls if want else ()) | set(journal.sysctls.get(ns, {}) if journal else ()))
        families = set(want.firewall.families if want else ())
        if want and want.firewall.policies:
            families.add(4)
        if journal and ns in journal.firewall:
            families |= {4, 6}
        fw = firewall.read(ns, lab, families) if families else Firewall()
        spaces[ns] = Namespace(
            name=ns,
            label=label,
            role="host" if label == "host" else "node",
            links={},
            routes=frozenset(nl.routes(ns)),
            sysctls={k: v for k, v in sysctl.read(ns, keys).items() if v is not None} if keys else {},
            firewall=fw,
            mark=None if ns == ROOT_NS else nl.lo_alias(ns),
            server=_server(journal, ns),
        )
    for ns, links in raw.items():
        spaces[ns] = replace(spaces[ns], links={name: _resolve(ns, r, raw) for name, r in links.items()})
    return State(lab=lab, namespaces=spaces)


def _server(journal: Journal | None, ns: str) -> int | None:
    """The port of nsnet's HTTP server in ``ns``, if the journal has one that still runs."""
    entry = journal.servers.get(ns) if journal else None
    return entry[1] if entry and servers.running(entry[0]) else None


def _resolve(ns: str, r: RawLink, raw: dict[str, dict[str, RawLink]]) -> Link:
    """Fill in a veth's peer: the link in an observed namespace that points back at it."""
    link = replace(r.link, alias=r.alias, addresses=frozenset(r.ips))
    if r.peer_index is None:
        return link
    candidates = [ns] if r.peer_nsid is None else list(raw)
    found = [
        Endpoint(other, name)
        for other in candidates
        for name, o in raw[other].items()
        if o.index == r.peer_index
        and o.peer_index == r.index
        and (other, name) != (ns, r.link.name)
        and (other == ns) == (r.peer_nsid is None)
    ]
    return replace(link, peer=found[0] if len(found) == 1 else Endpoint("?", "?"))
