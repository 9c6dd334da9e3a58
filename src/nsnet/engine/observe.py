"""Read a lab's namespaces from the kernel into a :class:`~nsnet.model.State`."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from nsnet.engine import servers
from nsnet.engine.journal import Journal
from nsnet.kernel import firewall, netns, sysctl
from nsnet.kernel.netlink import Netlink, RawLink
from nsnet.model import ROOT_NS, Endpoint, Firewall, Link, Namespace, State


def observe(
    nl: Netlink, lab: str, wanted: State, journal: Journal | None, extra: dict[str, str] | None = None
) -> State:
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

    raw: dict[str, dict[str, RawLink]] = {}
    spaces: dict[str, Namespace] = {}
    for ns, label in labels.items():
        if not netns.exists(ns):
            continue
        want = wanted.namespaces.get(ns)
        role: Literal["node", "host"] = want.role if want else "host" if label == "host" else "node"
        if ns != ROOT_NS and netns.is_stale(ns):
            if want is None:
                spaces[ns] = Namespace(name=ns, label=label, role=role, stale=True)
            continue
        if removing and want is None and ns != ROOT_NS:
            spaces[ns] = Namespace(name=ns, label=label, role=role, mark=nl.lo_alias(ns), server=_server(journal, ns))
            continue
        links, routes, mark = nl.state(ns)
        raw[ns] = links
        keys = sorted(set(want.sysctls if want else ()) | set(journal.sysctls.get(ns, {}) if journal else ()))
        families = _firewall_families(ns, want, journal)
        fw = firewall.read(ns, lab, families) if families else Firewall()
        spaces[ns] = Namespace(
            name=ns,
            label=label,
            role=role,
            links={},
            routes=frozenset(routes),
            sysctls={k: v for k, v in sysctl.read(ns, keys).items() if v is not None} if keys else {},
            firewall=fw,
            mark=None if ns == ROOT_NS else mark,
            server=_server(journal, ns),
        )
    _fill_links(nl, raw, spaces)
    return State(lab=lab, namespaces=spaces)


def _firewall_families(ns: str, want: Namespace | None, journal: Journal | None) -> set[int]:
    """The IP versions whose firewall is read: those the lab sets, or set before (as the journal says)."""
    families = set(want.firewall.families if want else ())
    if want and want.firewall.policies:
        families.add(4)
    if journal and ns in journal.firewall:
        families |= {4, 6}
    return families


def _fill_links(nl: Netlink, raw: dict[str, dict[str, RawLink]], spaces: dict[str, Namespace]) -> None:
    """Put the links read into their namespaces, each veth with its peer, each VXLAN device with its entries."""
    # A veth names its peer by index and its peer names it back: index every link read by that pair.
    by_pair: dict[tuple[int, int | None], list[tuple[str, str]]] = {}
    for ns, links in raw.items():
        for name, r in links.items():
            by_pair.setdefault((r.index, r.peer_index), []).append((ns, name))
    for ns, links in raw.items():
        resolved = {name: _resolve(nl, ns, r, by_pair) for name, r in links.items()}
        vxlans = {r.index: name for name, r in links.items() if r.link.kind == "vxlan"}
        if vxlans:
            fdb, neigh = nl.overlay_entries(ns, vxlans)
            for name in vxlans.values():
                resolved[name] = replace(resolved[name], fdb=frozenset(fdb[name]), neighbours=frozenset(neigh[name]))
        spaces[ns] = replace(spaces[ns], links=resolved)


def _server(journal: Journal | None, ns: str) -> int | None:
    """The port of nsnet's HTTP server in ``ns``, if the journal has one that still runs."""
    entry = journal.servers.get(ns) if journal else None
    return entry[1] if entry and servers.running(ns, entry) else None


def _resolve(nl: Netlink, ns: str, r: RawLink, by_pair: dict[tuple[int, int | None], list[tuple[str, str]]]) -> Link:
    """Fill in a veth's peer: the link in an observed namespace that points back at it."""
    peer = None
    if r.peer_index is not None:
        found = [
            Endpoint(other, name)
            for other, name in by_pair.get((r.peer_index, r.index), ())
            if (other, name) != (ns, r.link.name) and (other == ns) == (r.peer_nsid is None)
        ]
        if len(found) > 1:  # namespaces alike enough to number their links alike: ask which one the id names
            found = [e for e in found if nl.nsid(ns, e.ns) == r.peer_nsid]
        peer = found[0] if len(found) == 1 else Endpoint("?", "?")
    return replace(r.link, alias=r.alias, addresses=frozenset(r.ips), peer=peer)
