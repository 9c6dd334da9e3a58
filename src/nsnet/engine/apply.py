"""Carry out a :class:`~nsnet.plan.Plan` against the kernel, journaling as it goes.

Consecutive actions of one kind run as one batch: namespaces are created (and
deleted) by a few threads at once; netlink requests are queued per namespace
and sent together, their acknowledgements collected afterwards; sysctls are
written with one entry into each namespace; each namespace's firewall change
is one ``iptables-restore``, all of a batch running side by side. The journal
is written once per batch, before anything it must record exists (a namespace
about to be created, a sysctl's original value) and after what it must
forget is gone. If an action fails, :class:`StepFailed` names the first one
(in plan order) that failed; the rest of its batch has been tried too, which
the rollback undoes like any other change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from nsnet.engine.journal import Journal
from nsnet.engine.seam import Kernel
from nsnet.errors import KernelError, NsnetError
from nsnet.kernel import sysctl
from nsnet.kernel.netlink import Ticket
from nsnet.model import NETNS_FILES, ROOT_NS, file_mark
from nsnet.plan.actions import (
    DOCKER_NFT,
    DOCKER_RULES,
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
)

BATCHED = (
    CreateNamespace,
    CreateLink,
    FdbEntry,
    NeighbourEntry,
    DeleteLink,
    SetLink,
    Address,
    RouteChange,
    SetSysctl,
    ApplyFirewall,
    DeleteNamespace,
)


class StepFailed(NsnetError):
    """One action failed; :attr:`action` is the step, ``__cause__`` why."""

    def __init__(self, action: Action, cause: BaseException) -> None:
        self.action = action
        super().__init__(f"{action.describe()}: {cause}")


def execute(plan: Plan, nl: Kernel, journal: Journal, on_step: Callable[[Action], None] | None = None) -> None:
    """Run every action in order, a batch at a time; raise :class:`StepFailed` at the first that fails."""
    batch: list[Action] = []
    for action in plan.actions:
        if batch and not (type(action) is type(batch[0]) and isinstance(action, BATCHED)):
            _run_batch(batch, nl, journal)
            batch = []
        if on_step:
            on_step(action)
        batch.append(action)
    if batch:
        _run_batch(batch, nl, journal)


def _run_batch(batch: list[Action], nl: Kernel, journal: Journal) -> None:
    first = batch[0]
    try:
        if isinstance(first, CreateNamespace):
            _create_namespaces([a for a in batch if isinstance(a, CreateNamespace)], nl, journal)
        elif isinstance(first, DeleteNamespace):
            _delete_namespaces([a for a in batch if isinstance(a, DeleteNamespace)], nl, journal)
        elif isinstance(first, SetSysctl):
            _sysctls([a for a in batch if isinstance(a, SetSysctl)], nl, journal)
        elif isinstance(first, ApplyFirewall):
            _firewall([a for a in batch if isinstance(a, ApplyFirewall)], nl, journal)
        elif isinstance(first, BATCHED):
            _netlink(batch, nl, journal)
        else:
            for action in batch:
                _run_one(action, nl, journal)
    except StepFailed:
        raise
    except (NsnetError, OSError) as exc:  # not any one action's (the journal, a socket): the batch's first
        raise StepFailed(first, exc) from exc


def _fail(actions: Sequence[Action], errors: dict[int, BaseException]) -> None:
    """Raise :class:`StepFailed` for the first action (by position) that has an error."""
    if errors:
        i = min(errors)
        raise StepFailed(actions[i], errors[i]) from errors[i]


# -- namespaces ----------------------------------------------------------------


def _create_namespaces(batch: list[CreateNamespace], nl: Kernel, journal: Journal) -> None:
    # Recorded before they exist: `down` finds them even if this process is killed right after.
    for a in batch:
        journal.namespaces[a.ns] = a.label
    journal.save()
    failed = nl.create_namespaces({a.ns: a.mark for a in batch})
    if failed:
        for ns in failed:
            if not nl.exists(ns):  # never made: nothing for `down` to find
                journal.namespaces.pop(ns, None)
        journal.save()
        _fail(batch, {i: failed[a.ns] for i, a in enumerate(batch) if a.ns in failed})


def _delete_namespaces(batch: list[DeleteNamespace], nl: Kernel, journal: Journal) -> None:
    for a in batch:
        nl.forget(a.ns)  # an open socket would keep the namespace alive
    failed = nl.delete_namespaces([a.ns for a in batch])
    for a in batch:
        if a.ns in failed:
            continue
        remove_netns_files(nl, journal.lab, a.ns)
        journal.namespaces.pop(a.ns, None)
        journal.sysctls.pop(a.ns, None)
        journal.policies.pop(a.ns, None)
        journal.shaping.pop(a.ns, None)
        if a.ns in journal.firewall:
            journal.firewall.remove(a.ns)
    journal.save()
    _fail(batch, {i: failed[a.ns] for i, a in enumerate(batch) if a.ns in failed})


def remove_netns_files(nl: Kernel, lab: str, ns: str) -> None:
    """The lab's files under ``/etc/netns/<ns>/``, gone with their namespace even where the journal does not
    list them (a journal rebuilt from the marks): only files that start with the lab's mark are removed."""
    mark = file_mark(lab)
    for name, text in nl.read_files(ns, list(NETNS_FILES)).items():
        if text.startswith(mark):
            with contextlib.suppress(KernelError):  # left as it is: never a reason to fail a teardown
                nl.remove_file(ns, name, mark, directory=True)


# -- netlink -------------------------------------------------------------------


def _netlink(batch: list[Action], nl: Kernel, journal: Journal) -> None:
    tickets: list[list[Ticket]] = []
    errors: dict[int, BaseException] = {}
    for i, a in enumerate(batch):
        try:
            made = a.spec.ends if isinstance(a, CreateLink) else ()
            if [_note_root_link(journal, e.ns, e.ifname) for e in made].count(True):
                journal.save()  # before the link exists
            tickets.append(_queue(a, nl))
        except (NsnetError, OSError) as exc:
            # Stop here, as a plain sequence of steps would: send what came before, then report.
            errors[i] = exc
            break
    owner = {id(t): i for i, ts in enumerate(tickets) for t in ts}
    for failed in nl.flush():
        errors.setdefault(owner[id(failed)], failed.error or KernelError(failed.what))
    # The journal follows what was done in the root namespace (never needed elsewhere).
    changed = False
    for i, a in enumerate(batch[: len(tickets)]):
        if i in errors or a.ns != ROOT_NS:
            continue
        if isinstance(a, DeleteLink) and a.name in journal.root_links:
            journal.root_links.remove(a.name)
            changed = True
        elif isinstance(a, RouteChange):
            key = str(a.route)
            if a.add and key not in journal.root_routes:
                journal.root_routes.append(key)
            elif not a.add and key in journal.root_routes:
                journal.root_routes.remove(key)
            changed = True
    if changed:
        journal.save()
    _fail(batch, errors)


def _queue(a: Action, nl: Kernel) -> list[Ticket]:
    if isinstance(a, CreateLink):
        return nl.create_link(a.spec)
    if isinstance(a, FdbEntry):
        return [nl.fdb_entry(a.ns, "add" if a.add else "del", a.dev, a.mac, a.dst)]
    if isinstance(a, NeighbourEntry):
        return [nl.neighbour_entry(a.ns, "add" if a.add else "del", a.dev, a.ip, a.mac)]
    if isinstance(a, DeleteLink):
        return [nl.delete_link(a.ns, a.name)]
    if isinstance(a, SetLink):
        return [nl.change_link(a.request())]
    if isinstance(a, Address):
        return [nl.address(a.ns, "add" if a.add else "del", a.ifname, a.cidr)]
    if isinstance(a, RouteChange):
        return [nl.route(a.ns, "add" if a.add else "del", a.route)]
    raise KernelError(f"unknown action {a!r}")  # pragma: no cover - every netlink action is handled above


def _note_root_link(journal: Journal, ns: str, name: str) -> bool:
    if ns == ROOT_NS and name not in journal.root_links:
        journal.root_links.append(name)
        return True
    return False


# -- sysctls and firewall --------------------------------------------------------


def _sysctls(batch: list[SetSysctl], nl: Kernel, journal: Journal) -> None:
    # Originals first, saved before anything changes (read where the plan did not know them).
    unknown: dict[str, list[str]] = {}
    for a in batch:
        if not a.restore and a.original is None and a.key not in journal.sysctls.get(a.ns, {}):
            unknown.setdefault(a.ns, []).append(a.key)
    read = {ns: nl.read_sysctls(ns, keys) for ns, keys in unknown.items()}
    changed = False
    for a in batch:
        saved = journal.sysctls.setdefault(a.ns, {})
        if not a.restore and a.key not in saved:
            original = a.original if a.original is not None else read[a.ns][a.key]
            if original is not None:
                saved[a.key] = original
                changed = True
    if changed:
        journal.save()
    done = 0
    error: KernelError | None = None
    # One entry into each namespace for its run of consecutive writes, in plan order.
    while done < len(batch) and error is None:
        ns = batch[done].ns
        end = done
        while end < len(batch) and batch[end].ns == ns:
            end += 1
        try:
            nl.write_sysctls(ns, [(a.key, a.value) for a in batch[done:end]])
            done = end
        except sysctl.SysctlFailed as exc:
            done, error = done + exc.index, exc
        except KernelError as exc:
            error = exc
    restored = [a for a in batch[:done] if a.restore]
    for a in restored:
        journal.sysctls.get(a.ns, {}).pop(a.key, None)
    if restored:
        journal.save()
    if error is not None:
        raise StepFailed(batch[done], error) from error


def _firewall(batch: list[ApplyFirewall], nl: Kernel, journal: Journal) -> None:
    for a in batch:
        saved = journal.policies.setdefault(a.ns, {})
        for chain, policy in a.originals.items():
            saved.setdefault(chain, policy)
        if a.ns not in journal.firewall:
            journal.firewall.append(a.ns)
    journal.save()
    results = nl.restore_firewall([(a.ns, a.family, a.text) for a in batch])
    for a, error in zip(batch, results, strict=True):
        if error is None:
            for chain in a.restored:
                journal.policies.get(a.ns, {}).pop(chain, None)
    journal.save()
    _fail(batch, {i: error for i, error in enumerate(results) if error is not None})


# -- one at a time ---------------------------------------------------------------


def _shape(a: SetShaping, nl: Kernel, journal: Journal) -> None:
    nl.shape(a)
    applied = journal.shaping.setdefault(a.ns, {})
    if a.qdisc is None:
        applied.pop(a.name, None)
    else:
        applied[a.name] = a.qdisc
    journal.save()


def _file(a: NetnsFile, nl: Kernel, journal: Journal) -> None:
    written = journal.files.setdefault(a.ns, [])
    if a.text is not None:
        if a.name not in written:
            written.append(a.name)  # recorded before it is there: `down` finds it even after a crash
            journal.save()
        if nl.write_file(a.ns, a.name, a.text, a.mark):
            written.append("/")
            journal.save()
        return
    last = not [n for n in written if n not in (a.name, "/")]
    nl.remove_file(a.ns, a.name, a.mark, directory=last and "/" in written)
    journal.files[a.ns] = [n for n in written if n != a.name and not (last and n == "/")]
    if not journal.files[a.ns]:
        del journal.files[a.ns]
    journal.save()


def _docker_host(a: DockerHost, nl: Kernel) -> None:
    if a.backend == "nftables":
        nl.load_nft(a.ns, DOCKER_NFT)
        return
    errors = [e for e in nl.restore_firewall([(a.ns, 4, DOCKER_RULES), (a.ns, 6, DOCKER_RULES)]) if e is not None]
    if errors:
        raise errors[0]


def _run_one(a: Action, nl: Kernel, journal: Journal) -> None:
    try:
        if isinstance(a, StartServer):
            journal.servers[a.ns] = [0, a.port, 0]  # recorded before it runs: a crash leaves a trace
            journal.save()
            journal.servers[a.ns] = nl.start_server(a.ns, a.port)
            journal.save()
        elif isinstance(a, StopServer):
            nl.stop_server(a.ns, journal.servers.get(a.ns, []))
            journal.servers.pop(a.ns, None)
            journal.save()
        elif isinstance(a, DockerHost):
            _docker_host(a, nl)
        elif isinstance(a, SetShaping):
            _shape(a, nl, journal)
        elif isinstance(a, NetnsFile):
            _file(a, nl, journal)
        else:  # pragma: no cover - every action type is handled
            raise KernelError(f"unknown action {a!r}")
    except (NsnetError, OSError) as exc:
        raise StepFailed(a, exc) from exc
