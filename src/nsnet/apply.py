"""Carry out a :class:`~nsnet.plan.Plan` against the kernel, journaling as it goes."""

from __future__ import annotations

from collections.abc import Callable

from . import servers
from .errors import KernelError, NsnetError
from .journal import Journal
from .kernel import firewall, netns, sysctl
from .kernel.netlink import Netlink
from .model import ROOT_NS, Endpoint
from .network import DOCKER_RULES
from .plan import (
    Action,
    Address,
    ApplyFirewall,
    CreateBridge,
    CreateNamespace,
    CreateVeth,
    DeleteLink,
    DeleteNamespace,
    DockerHost,
    Plan,
    RouteChange,
    SetBridge,
    SetLink,
    SetSysctl,
    StartServer,
    StopServer,
)


class StepFailed(NsnetError):
    """One action failed; :attr:`action` is the step, ``__cause__`` why."""

    def __init__(self, action: Action, cause: BaseException) -> None:
        self.action = action
        super().__init__(f"{action.describe()}: {cause}")


def execute(plan: Plan, nl: Netlink, journal: Journal, on_step: Callable[[Action], None] | None = None) -> None:
    """Run every action in order; raise :class:`StepFailed` at the first that fails."""
    for action in plan.actions:
        if on_step:
            on_step(action)
        try:
            _run(action, nl, journal)
        except (NsnetError, OSError) as exc:
            raise StepFailed(action, exc) from exc


def _run(a: Action, nl: Netlink, journal: Journal) -> None:
    if isinstance(a, CreateNamespace):
        journal.namespaces[a.ns] = a.label
        journal.save()
        netns.create(a.ns)
        try:
            nl.mark_namespace(a.ns, a.mark)
        except KernelError:
            netns.delete(a.ns)
            raise
    elif isinstance(a, StartServer):
        journal.servers[a.ns] = [servers.start(a.ns, a.port), a.port]
        journal.save()
    elif isinstance(a, StopServer):
        entry = journal.servers.pop(a.ns, None)
        if entry:
            servers.stop(entry[0])
        journal.save()
    elif isinstance(a, DockerHost):
        firewall.restore(a.ns, 4, DOCKER_RULES)
    elif isinstance(a, DeleteNamespace):
        nl.forget(a.ns)
        netns.delete(a.ns)
        journal.namespaces.pop(a.ns, None)
        journal.sysctls.pop(a.ns, None)
        journal.policies.pop(a.ns, None)
        if a.ns in journal.firewall:
            journal.firewall.remove(a.ns)
        journal.save()
    elif isinstance(a, CreateBridge):
        _note_root_link(journal, a.ns, a.name)
        nl.add_bridge(a.ns, a.name, a.mark, a.stp, a.ageing)
    elif isinstance(a, CreateVeth):
        _note_root_link(journal, a.ns, a.name)
        _note_root_link(journal, a.peer.ns, a.peer.ifname)
        nl.add_veth(Endpoint(a.ns, a.name), a.peer, a.mark)
    elif isinstance(a, DeleteLink):
        nl.delete_link(a.ns, a.name)
        if a.ns == ROOT_NS and a.name in journal.root_links:
            journal.root_links.remove(a.name)
            journal.save()
    elif isinstance(a, SetLink):
        attrs: dict[str, object] = {}
        if a.master is not None:
            attrs["master"] = nl.index(a.ns, a.master) if a.master else 0
        if a.mtu is not None:
            attrs["mtu"] = a.mtu
        if a.mac is not None:
            attrs["address"] = a.mac
        if a.up is not None:
            attrs["state"] = "up" if a.up else "down"
        if a.alias is not None:
            attrs["ifalias"] = a.alias
        nl.set_link(a.ns, a.name, **attrs)
    elif isinstance(a, SetBridge):
        attrs = {}
        if a.stp is not None:
            attrs["br_stp_state"] = int(a.stp)
        if a.ageing is not None:
            attrs["br_ageing_time"] = a.ageing * 100
        nl.set_bridge(a.ns, a.name, **attrs)
    elif isinstance(a, Address):
        nl.address(a.ns, "add" if a.add else "del", a.ifname, a.cidr)
    elif isinstance(a, RouteChange):
        nl.route(a.ns, "add" if a.add else "del", a.route)
        if a.ns == ROOT_NS:
            key = str(a.route)
            if a.add and key not in journal.root_routes:
                journal.root_routes.append(key)
            elif not a.add and key in journal.root_routes:
                journal.root_routes.remove(key)
            journal.save()
    elif isinstance(a, SetSysctl):
        saved = journal.sysctls.setdefault(a.ns, {})
        if not a.restore and a.key not in saved:
            original = a.original if a.original is not None else sysctl.read(a.ns, [a.key])[a.key]
            if original is not None:
                saved[a.key] = original
                journal.save()
        sysctl.write(a.ns, a.key, a.value)
        if a.restore:
            saved.pop(a.key, None)
            journal.save()
    elif isinstance(a, ApplyFirewall):
        saved = journal.policies.setdefault(a.ns, {})
        for chain, policy in a.originals.items():
            saved.setdefault(chain, policy)
        if a.ns not in journal.firewall:
            journal.firewall.append(a.ns)
        journal.save()
        firewall.restore(a.ns, a.family, a.text)
        for chain in a.restored:
            saved.pop(chain, None)
        journal.save()
    else:  # pragma: no cover - every action type is handled above
        raise KernelError(f"unknown action {a!r}")


def _note_root_link(journal: Journal, ns: str, name: str) -> None:
    if ns == ROOT_NS and name not in journal.root_links:
        journal.root_links.append(name)
        journal.save()
