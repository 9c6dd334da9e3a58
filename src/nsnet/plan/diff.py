"""Desired state vs live state -> an ordered, printable list of actions (pure).

The diff walks the desired namespaces, then the live ones that go away, and
puts each action it finds in its :class:`~nsnet.plan.phases.Phase`; the plan
lists them phase after phase (the order, and why, is stated there once). Each
action can describe itself in words and as the equivalent ``ip`` /
``sysctl`` / ``iptables`` commands.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nsnet import kinds
from nsnet.errors import ConflictError
from nsnet.model import (
    ROOT_NS,
    Endpoint,
    Firewall,
    Link,
    Namespace,
    Route,
    State,
    file_mark,
    link_mark,
    namespace_mark,
    parse_namespace_mark,
    policy_chain,
)
from nsnet.plan.actions import (
    Action,
    Address,
    ApplyFirewall,
    CreateLink,
    CreateNamespace,
    DeleteLink,
    DeleteNamespace,
    DockerHost,
    FdbEntry,
    NeighbourEntry,
    NetnsFile,
    Plan,
    RouteChange,
    SetLink,
    SetShaping,
    SetSysctl,
    StartServer,
    StopServer,
    _where,
)
from nsnet.plan.firewall import restore_text
from nsnet.plan.phases import CREATION, Phase, Steps

if TYPE_CHECKING:  # a journal is read, never written, here: the engine is not loaded
    from nsnet.engine.journal import Journal


def plan(desired: State, live: State, journal: Journal | None, adopt: bool = False) -> Plan:
    """The actions that turn ``live`` into ``desired``.

    ``live`` holds every namespace of interest that exists. Only objects nsnet
    marked as this lab's are deleted or changed; with ``adopt`` (used to roll
    back to an observed state) unmarked objects that match are left alone
    without complaint.
    """
    p = Plan(desired.lab)
    run = _Run(desired.lab, link_mark(desired.lab), journal, adopt)
    for ns, want in desired.namespaces.items():
        _plan_namespace(run, ns, want, live.namespaces.get(ns))
    for ns, have in live.namespaces.items():
        if ns not in desired.namespaces:
            _plan_gone(run, p, ns, have)
    for ns in sorted(journal.files if journal else ()):
        if ns not in desired.namespaces and ns not in live.namespaces:  # its namespace deleted by someone else
            run.steps.add(Phase.NAMESPACE_REMOVALS, *_files_gone(run, ns))
    p.actions = run.steps.ordered()
    return p


@dataclass
class _Run:
    """What one diff knows and has found so far."""

    lab: str
    mark: str
    journal: Journal | None
    adopt: bool
    steps: Steps = field(default_factory=Steps)
    done_pairs: set[tuple[Endpoint, ...]] = field(default_factory=set)
    """The ends of the links already created (a veth pair from either end)."""


def _plan_namespace(run: _Run, ns: str, want: Namespace, have: Namespace | None) -> None:
    have = _existing(run, ns, want, have)
    owned_links = {name for name, link in have.links.items() if _link_owned(ns, name, link, run.mark, run.journal)}
    if ns == ROOT_NS and not run.adopt:
        _refuse_foreign_root_links(run.lab, want, have, owned_links)
    recreate = _plan_rebuilds(run, ns, want, have, owned_links)
    for name, target in want.links.items():
        current = None if name in recreate else have.links.get(name)
        _plan_link(run, ns, target, current, owned=name in owned_links)
    _plan_routes(run, ns, want, have, recreate)
    _plan_shaping(run, ns, want, have, recreate)
    _plan_sysctls(run.steps, ns, want, have, run.journal)
    _plan_files(run, ns, want, have)
    if have.server != want.server:
        if have.server:
            run.steps.add(Phase.EARLY_REMOVALS, StopServer(ns))
        if want.server:
            run.steps.add(Phase.SERVERS, StartServer(ns, want.server))
    run.steps.add(Phase.FIREWALL, *_plan_firewall(run.lab, ns, want.firewall, have.firewall, run.journal))


def _existing(run: _Run, ns: str, want: Namespace, have: Namespace | None) -> Namespace:
    """The live namespace ``ns`` if the lab may use it (an empty one, to create, if there is none)."""
    if have is None:
        if ns != ROOT_NS:
            run.steps.add(Phase.NAMESPACES, CreateNamespace(ns, want.label, namespace_mark(run.lab, want.label)))
            if want.docker:
                run.steps.add(Phase.NAMESPACES, DockerHost(ns, want.docker_backend))
        return Namespace(name=ns, label=want.label, role=want.role)
    if ns != ROOT_NS and not run.adopt and not _owned(run.lab, have, run.journal):
        raise ConflictError(_not_owned(run.lab, have, run.journal))
    return have


def _plan_rebuilds(run: _Run, ns: str, want: Namespace, have: Namespace, owned_links: set[str]) -> set[str]:
    """Remove the lab's live links that go away; the names of those to make again (another kind, or
    another identity by their kind: a veth's peer, a VXLAN's VNI, a macvlan's parent ...)."""
    recreate: set[str] = set()
    for name, link in have.links.items():
        ours = name in owned_links
        target = want.links.get(name)
        if target is None:
            if ours:
                phase = Phase.BRIDGE_REMOVALS if link.kind == "bridge" else Phase.LINK_REMOVALS
                run.steps.add(phase, DeleteLink(ns, name))
            continue
        kind = kinds.get(target.kind)
        if link.kind != target.kind or kind.identity(link) != kind.identity(target):
            if not ours and not run.adopt:
                raise ConflictError(
                    f"interface {_where(ns)}:{name} already exists and was not created by nsnet; "
                    f"rename the interface in the topology or delete it (ip -n {ns} link del {name})"
                    if ns
                    else f"interface {name} already exists in the root namespace; rename it in the topology"
                )
            if ours:
                run.steps.add(Phase.EARLY_REMOVALS, DeleteLink(ns, name))
            recreate.add(name)
    return recreate


def _plan_routes(run: _Run, ns: str, want: Namespace, have: Namespace, recreate: set[str]) -> None:
    lost = _routes_lost(want, have, recreate)
    matched = {r for r in have.routes if r not in lost and any(_same_route(w, r) for w in want.routes)}
    if ns == ROOT_NS:  # the machine's own static routes are never nsnet's to delete
        added = set(run.journal.root_routes) if run.journal else set()
        matched |= {r for r in have.routes if str(r) not in added}
    for route in sorted(set(have.routes) - matched):
        run.steps.add(Phase.ROUTE_REMOVALS, RouteChange(ns, route, add=False))
    for route in sorted(want.routes):
        if not any(_same_route(route, r) for r in matched):
            run.steps.add(Phase.ROUTES, RouteChange(ns, route))


def _routes_lost(want: Namespace, have: Namespace, recreate: set[str]) -> set[Route]:
    """Live routes the kernel drops as the plan changes their links: deleting the address whose subnet holds a
    route's gateway, or a link's last IPv4 address, or the link itself takes the routes through it away.
    They are deleted first and added again after the addresses, as new ones."""
    networks = []
    devices = set()
    for name, link in have.links.items():
        target = want.links.get(name)
        gone = link.addresses if target is None or name in recreate else link.addresses - target.addresses
        networks += [ipaddress.ip_interface(cidr).network for cidr in gone]
        v4 = {cidr for cidr in link.addresses if ":" not in cidr}
        if target is None or name in recreate or (v4 and v4 <= gone):
            devices.add(name)
    return {
        r
        for r in have.routes
        if (r.dev in devices and r.family == 4)
        or (r.via is not None and any(ipaddress.ip_address(r.via) in net for net in networks))
    }


def _plan_shaping(run: _Run, ns: str, want: Namespace, have: Namespace, recreate: set[str]) -> None:
    applied = run.journal.shaping.get(ns, {}) if run.journal else {}
    for name, link in want.links.items():
        fresh = name in recreate or name not in have.links
        shaped = None if fresh else applied.get(name)
        if link.shaping != shaped and (link.shaping is not None or not fresh):
            run.steps.add(Phase.SHAPING, SetShaping(ns, name, link.shaping))
    for name in sorted(set(applied) - set(want.links)):
        if name in have.links:
            run.steps.add(Phase.SHAPING, SetShaping(ns, name, None))


def _plan_gone(run: _Run, p: Plan, ns: str, have: Namespace) -> None:
    """A live namespace the desired state no longer has."""
    if ns == ROOT_NS:
        # A root host going away: remove only what nsnet put there.
        empty = Namespace(name=ns, label="host", role="host")
        sub = plan(State(run.lab, {ns: empty}), State(run.lab, {ns: have}), run.journal, adopt=True)
        run.steps.add(
            Phase.LINK_REMOVALS, *(a for a in sub.actions if isinstance(a, DeleteLink | RouteChange | Address))
        )
        run.steps.add(Phase.SYSCTLS, *(a for a in sub.actions if isinstance(a, SetSysctl)))
        run.steps.add(Phase.FIREWALL, *(a for a in sub.actions if isinstance(a, ApplyFirewall)))
        return
    run.steps.add(Phase.NAMESPACE_REMOVALS, *_files_gone(run, ns))
    if _owned(run.lab, have, run.journal):
        if have.server:
            run.steps.add(Phase.NAMESPACE_REMOVALS, StopServer(ns))
        run.steps.add(Phase.NAMESPACE_REMOVALS, DeleteNamespace(ns))
    elif run.journal is not None and ns in run.journal.namespaces:
        p.kept.append(f"namespace {ns}: it is not the one nsnet created (no mark of this lab), left alone")


def _plan_files(run: _Run, ns: str, want: Namespace, have: Namespace) -> None:
    """The namespace's files under /etc/netns: written where they differ, never over one nsnet did not write."""
    if ns == ROOT_NS:
        return
    mark = file_mark(run.lab)
    written = set(run.journal.files.get(ns, ())) if run.journal else set()
    for name, text in sorted(want.files.items()):
        current = have.files.get(name)
        if current == text:
            continue
        if current is not None and not run.adopt and not (name in written and current.startswith(mark)):
            raise ConflictError(
                f"/etc/netns/{ns}/{name} already exists and was not written by nsnet for lab {run.lab!r}; "
                f"nsnet never writes over a file it did not write: move it away if nothing needs it "
                f"(`ip netns exec {ns}` shows it as /etc/{name}), or bring the lab up under another name (--name)"
            )
        run.steps.add(Phase.NAMES, NetnsFile(ns, name, text, mark))
    for name in sorted(written - set(want.files) - {"/"}):
        run.steps.add(Phase.NAMES, NetnsFile(ns, name, None, mark))


def _files_gone(run: _Run, ns: str) -> list[Action]:
    """Remove the files nsnet wrote for a namespace that goes away (each only if it still carries the mark)."""
    written = run.journal.files.get(ns, []) if run.journal else []
    return [NetnsFile(ns, name, None, file_mark(run.lab)) for name in sorted(written) if name != "/"]


def _owned(lab: str, have: Namespace, journal: Journal | None) -> bool:
    """Whether a live namespace is this lab's: it carries the lab's mark, made under this state
    directory. nsnet marks a namespace before it appears under /run/netns, so one without the
    mark is never its own, even where the journal lists the name (deleted and made again by
    someone else). The empty file of a creation cut short is the lab's where the journal lists it."""
    if have.stale:
        return journal is not None and have.name in journal.namespaces
    mark = parse_namespace_mark(have.mark)
    if mark is None or mark.lab != lab:
        return False
    # A mark of an older nsnet names no state directory: the lab's where this state directory's journal lists it.
    legacy = mark.state is None and journal is not None and have.name in journal.namespaces
    return mark.ours or legacy


def _not_owned(lab: str, have: Namespace, journal: Journal | None) -> str:
    """Why ``up`` will not use a live namespace, and what to do."""
    ns = have.name
    mark = parse_namespace_mark(have.mark)
    if mark is not None and mark.lab != lab:
        who = f"lab {mark.lab!r}"
    elif mark is not None:
        who = "a lab of the same name under another nsnet state directory (NSNET_STATE_DIR)"
    else:
        who = "something other than nsnet"
    if journal is not None and ns in journal.namespaces and mark is None:
        return (
            f"network namespace {ns!r} of lab {lab!r} was replaced: the namespace there now is not the one "
            f"nsnet created (it carries no nsnet mark: deleted and made again by something else); nsnet will "
            f"not take it over: delete it yourself if nothing needs it (ip netns del {ns}), "
            f"or run `nsnet down {lab}` (which leaves it alone) and bring the lab up under another name (--name)"
        )
    return (
        f"network namespace {ns!r} already exists and belongs to {who}; "
        f"bring this lab up under another name (--name) or remove that namespace"
    )


def _link_owned(ns: str, name: str, link: Link, mark: str, journal: Journal | None) -> bool:
    """Whether a live link is this lab's. In the root namespace, which nsnet does not own, a link is
    the lab's only if the journal recorded creating it and it carries the lab's mark (or no mark yet:
    created, then interrupted); elsewhere (the lab's own namespaces) its mark says."""
    if ns != ROOT_NS:
        return link.alias == mark
    return journal is not None and name in journal.root_links and link.alias in (mark, None)


def _refuse_foreign_root_links(lab: str, want: Namespace, have: Namespace, owned: set[str]) -> None:
    """Refuse to take over links of the root namespace that nsnet did not create for this lab."""
    foreign = sorted(name for name in want.links if name in have.links and name not in owned)
    if not foreign:
        return
    names = ", ".join(foreign)
    one = len(foreign) == 1
    raise ConflictError(
        f"interface{'' if one else 's'} {names} already exist{'s' if one else ''} in the root namespace "
        f"and {'was' if one else 'were'} not created by nsnet for lab {lab!r}; nsnet never takes over "
        f"or changes a link it did not create: rename {'it' if one else 'them'} in the topology, "
        f"or delete {'it' if one else 'them'} yourself if nothing needs "
        f"{'it' if one else 'them'} ({'; '.join(f'ip link del {n}' for n in foreign)})"
    )


def _same_route(want: Route, have: Route) -> bool:
    """Whether a live route satisfies a desired one (unset dev and metric match anything)."""
    return (
        want.to == have.to
        and want.via == have.via
        and (want.dev is None or want.dev == have.dev)
        and (want.metric is None or want.metric == have.metric)
    )


def _plan_link(run: _Run, ns: str, want: Link, have: Link | None, owned: bool = False) -> None:
    kind = kinds.get(want.kind)
    if have is None:
        spec = kind.create(ns, want, run.mark)
        ends = tuple(sorted(spec.ends))  # a veth pair is made once, from either end
        if ends not in run.done_pairs:
            run.done_pairs.add(ends)
            run.steps.add(CREATION[kind.order], CreateLink(spec.ns, spec))
    changes = _link_changes(run.mark, ns, want, have, owned)
    if changes:
        run.steps.add(Phase.LINK_SETTINGS, SetLink(ns, want.name, **changes))
    data = kind.changes(want, have) if have is not None else ()
    if data:
        run.steps.add(Phase.LINK_SETTINGS, SetLink(ns, want.name, kind=want.kind, data=data))
    have_addrs = have.addresses if have else frozenset()
    for cidr in sorted(have_addrs - want.addresses):
        run.steps.add(Phase.ADDRESS_REMOVALS, Address(ns, want.name, cidr, add=False))
    for cidr in sorted(want.addresses - have_addrs):
        run.steps.add(Phase.ADDRESSES, Address(ns, want.name, cidr))
    if want.up != (have.up if have else False):
        phase = Phase.ALONE_UP if kind.order == 0 else Phase.LINKS_UP
        run.steps.add(phase, SetLink(ns, want.name, up=want.up))
    _plan_entries(run.steps, ns, want, have)


def _link_changes(mark: str, ns: str, want: Link, have: Link | None, owned: bool) -> dict[str, Any]:
    """What :class:`SetLink` changes on a link: master, MTU, MAC, ownership mark."""
    changes: dict[str, Any] = {}
    current_master = have.master if have else None
    if (want.master or None) != current_master:
        changes["master"] = want.master or ""
    if want.mtu is not None and (have is None or have.mtu != want.mtu):
        changes["mtu"] = want.mtu
    if want.mac is not None and (have is None or (have.mac or "").lower() != want.mac):
        changes["mac"] = want.mac
    if want.link_local and not (have is not None and have.link_local):
        changes["link_local"] = True  # before the link comes up: the kernel makes the address then
    if have is not None and have.alias != mark and (ns != ROOT_NS or owned):
        changes["alias"] = mark  # created by an interrupted up (in the root namespace: as the journal says)
    return changes


def _plan_entries(steps: Steps, ns: str, want: Link, have: Link | None) -> None:
    """A VXLAN device's forwarding and neighbour entries, where nsnet keeps them (static overlays)."""
    out: list[Action] = []
    if want.fdb is not None:
        current = (have.fdb or frozenset()) if have else frozenset()
        out += [FdbEntry(ns, want.name, mac, dst, add=False) for mac, dst in sorted(current - want.fdb)]
        out += [FdbEntry(ns, want.name, mac, dst) for mac, dst in sorted(want.fdb - current)]
    if want.neighbours is not None:
        current = (have.neighbours or frozenset()) if have else frozenset()
        wanted_ips = {ip for ip, _ in want.neighbours}
        out += [
            NeighbourEntry(ns, want.name, ip, mac, add=False) for ip, mac in sorted(current) if ip not in wanted_ips
        ]
        out += [NeighbourEntry(ns, want.name, ip, mac) for ip, mac in sorted(want.neighbours - current)]
    steps.add(Phase.ENTRIES, *out)


def _plan_sysctls(steps: Steps, ns: str, want: Namespace, have: Namespace, journal: Journal | None) -> None:
    originals = journal.sysctls.get(ns, {}) if journal else {}
    for key, value in want.sysctls.items():
        current = have.sysctls.get(key)
        if current != value:
            steps.add(Phase.SYSCTLS, SetSysctl(ns, key, value, originals.get(key, current)))
    for key, original in originals.items():
        if key not in want.sysctls and have.sysctls.get(key) is not None:
            if have.sysctls.get(key) != original:
                steps.add(Phase.SYSCTLS, SetSysctl(ns, key, original, have.sysctls.get(key), restore=True))
            else:
                steps.add(Phase.SYSCTLS, SetSysctl(ns, key, original, original, restore=True))


def _plan_firewall(lab: str, ns: str, want: Firewall, have: Firewall, journal: Journal | None) -> list[Action]:
    originals = journal.policies.get(ns, {}) if journal else {}
    policies = dict(want.policies)
    restored = tuple(c for c in originals if c not in want.policies)
    for chain in restored:
        policies[chain] = originals[chain]
    out: list[Action] = []
    for family in sorted(want.families | have.families | {policy_chain(c)[0] for c in policies}):
        mine = {c: p for c, p in policies.items() if policy_chain(c)[0] == family}
        back = tuple(c for c in restored if policy_chain(c)[0] == family)
        text = restore_text(lab, want, have, family, mine)
        if not text and not back:
            continue
        changes = _firewall_changes(family, mine, want, have)
        # A namespace created by this run has the kernel's default policy, ACCEPT.
        saved = {c: have.policies.get(c, "ACCEPT") for c in mine if c not in originals}
        out.append(ApplyFirewall(ns, family, text, tuple(changes), originals=saved, restored=back))
    return out


def _firewall_changes(family: int, policies: dict[str, str], want: Firewall, have: Firewall) -> list[str]:
    """The changes of one IP version's firewall, in words (policies, then rules removed and added)."""
    changes: list[str] = []
    for key, policy in policies.items():
        before, chain = have.policies.get(key), policy_chain(key)[1]
        if before != policy:
            changes.append(f"{chain} policy {before} -> {policy}" if before else f"{chain} policy {policy}")
    old = [r for r in have.rules if r.family == family]
    new = [r for r in want.rules if r.family == family]
    changes += [f"- {r.chain} {r.args}" for r in old if r not in new]
    changes += [f"+ {r.chain} {r.args}" for r in new if r not in old]
    return changes or ["re-link nsnet chains"]
