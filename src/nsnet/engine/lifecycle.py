"""up, down and plan: the lifecycle of a lab, journaled and rolled back on failure."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable

from nsnet.engine.apply import StepFailed, execute, remove_netns_files
from nsnet.engine.directory import journal_of
from nsnet.engine.journal import Journal, check_lab_name, locked
from nsnet.engine.observe import observe
from nsnet.engine.probe_record import clean_stale
from nsnet.engine.recover import orphans
from nsnet.engine.seam import Kernel, LiveKernel
from nsnet.errors import ApplyError, ConflictError, KernelError, LabNotFoundError, NsnetError
from nsnet.kernel import procs
from nsnet.model import HOST, ROOT_NS, Namespace, State, Topology, bind
from nsnet.plan.actions import Action, Plan, SetLink
from nsnet.plan.diff import plan

StepHook = Callable[[Action], None]
PlanHook = Callable[[Plan], None]
KillHook = Callable[[list[procs.Proc]], None]


def plan_up(topology: Topology, lab: str | None = None, fresh: bool = False, kernel: Kernel | None = None) -> Plan:
    """What ``up`` would do now (``fresh``: as if nothing existed yet; needs no root).

    ``kernel`` is the machine to read (by default this one's: see :mod:`nsnet.engine.seam`).
    """
    check_lab_name(lab or topology.name)
    desired = bind(topology, lab)
    if fresh:
        return plan(desired, State(desired.lab, {}), None)
    nl = kernel or LiveKernel()
    nl.require_root("read the lab's namespaces (or plan with --fresh, as if nothing existed yet)")
    journal = Journal.load(desired.lab)
    with contextlib.closing(nl):
        return plan(desired, observe(nl, desired.lab, desired, journal), journal)


def up(
    topology: Topology,
    lab: str | None = None,
    on_step: StepHook | None = None,
    replace: bool = False,
    on_plan: PlanHook | None = None,
    kernel: Kernel | None = None,
) -> Plan:
    """Bring the lab up, or converge it to ``topology``; returns what was done.

    A lab that is up from a topology of another name is not rebuilt from
    this one (:class:`ConflictError`) unless ``replace``. On failure
    everything this call changed is undone and :class:`ApplyError` names
    the step that failed. ``on_plan`` is told the plan before it runs,
    ``on_step`` each step as it starts. ``kernel`` is the machine to change
    (by default this one: see :mod:`nsnet.engine.seam`).
    """
    check_lab_name(lab or topology.name)
    desired = bind(topology, lab)
    lab = desired.lab
    nl = kernel or LiveKernel()
    nl.require_root()
    with locked(lab), contextlib.closing(nl):
        clean_stale(lab)
        previous = Journal.load(lab)
        if previous and previous.host_mode != topology.host_mode:
            raise ConflictError(
                f"lab {lab!r} is up with host mode {previous.host_mode!r}; run `nsnet down {lab}` first"
            )
        if previous and not replace and previous.topology and previous.topology != topology.name:
            raise ConflictError(_other_topology(lab, previous, topology))
        nl.check(desired, firewall_in_use=bool(previous and previous.firewall))
        journal = previous or Journal(lab=lab)
        journal.topology, journal.source, journal.host_mode = topology.name, topology.source, topology.host_mode
        journal.hosts = [] if HOST in topology.namespaces else topology.hosts
        journal.machine = topology.machine
        live = observe(nl, lab, desired, previous)
        steps = plan(desired, live, previous)
        if not steps:
            adopted = _adopt(journal, desired)
            if previous is None or previous.status != "up" or adopted:
                journal.status = "up"
                journal.save()
            return steps
        journal.status = "applying"
        journal.save()
        if on_plan is not None:
            on_plan(steps)
        try:
            execute(steps, nl, journal, on_step)
        except StepFailed as exc:
            rolled_back = _roll_back(nl, lab, live, journal, fresh=previous is None)
            raise ApplyError(exc.action.describe(), exc.__cause__ or exc, rolled_back) from exc
        nl.settle(_brought_up(steps))
        _adopt(journal, desired)
        journal.status = "up"
        journal.save()
        return steps


def _brought_up(steps: Plan) -> set[str]:
    """The namespaces where ``steps`` bring a link up (its traffic may wait on the kernel's link watcher)."""
    return {a.ns for a in steps.actions if isinstance(a, SetLink) and a.up}


def _other_topology(lab: str, previous: Journal, topology: Topology) -> str:
    was = f"topology {previous.topology!r}" + (f" ({previous.source})" if previous.source else "")
    new = f"topology {topology.name!r}" + (f" ({topology.source})" if topology.source else "")
    return (
        f"lab {lab!r} is up from {was}; {new} is another lab: bringing it up as {lab!r} would rebuild "
        f"{lab!r} from it, deleting what it does not have. Choose another name (--name), "
        f"`nsnet down {lab}` first, or give --replace to rebuild it"
    )


def _adopt(journal: Journal, desired: State) -> bool:
    """Record every namespace of ``desired`` as the lab's (all exist and carry its mark now)."""
    missing = {ns: s.label for ns, s in desired.namespaces.items() if ns != ROOT_NS and ns not in journal.namespaces}
    journal.namespaces.update(missing)
    return bool(missing)


def _roll_back(nl: Kernel, lab: str, before: State, journal: Journal, fresh: bool) -> bool:
    try:
        now = observe(nl, lab, before, journal)
        execute(plan(before, now, journal, adopt=True), nl, journal)
    except NsnetError:
        return False
    if fresh and not journal.namespaces and not journal.root_links:
        journal.remove()
    else:
        journal.status = "up"
        journal.save()
    return True


def plan_down(lab: str, kernel: Kernel | None = None) -> Plan:
    """What ``down`` would do now."""
    nl = kernel or LiveKernel()
    nl.require_root("read the lab's namespaces")
    journal = journal_of(lab)
    with contextlib.closing(nl):
        return _down_plan(nl, journal)


def _recovered(lab: str, nl: Kernel) -> Journal:
    """A journal rebuilt from the kernel's marks, for a lab whose journal is lost."""
    found = orphans(lab, nl)
    if not found:
        raise LabNotFoundError(f"no lab named {lab!r} is up (see `nsnet ls`)")
    return Journal(lab=lab, namespaces={m.netns: m.node for m in found}, status="recovered")


def _down_plan(nl: Kernel, journal: Journal) -> Plan:
    spaces = {}
    if journal.host_mode == "root":
        spaces[ROOT_NS] = Namespace(name=ROOT_NS, label=HOST, role="host")
    desired = State(journal.lab, spaces)
    return plan(desired, observe(nl, journal.lab, desired, journal), journal, adopt=True)


def down(
    lab: str,
    on_step: StepHook | None = None,
    on_kill: KillHook | None = None,
    on_plan: PlanHook | None = None,
    kernel: Kernel | None = None,
) -> Plan:
    """Remove everything nsnet created for ``lab``, and nothing else; returns what was done.

    Every process still running in one of the lab's namespaces is stopped
    first (``on_kill`` hears which): nothing of the lab outlives it.
    ``kernel`` is the machine to change (by default this one).
    """
    nl = kernel or LiveKernel()
    nl.require_root()
    with locked(lab), contextlib.closing(nl):
        clean_stale(lab)
        journal = Journal.load(lab) or _recovered(lab, nl)
        journal.tolerant = True  # a full state directory must not stop a teardown: the kernel's marks guide it
        nl.check(State(lab, {}), firewall_in_use=bool(journal.firewall))
        journal.status = "removing"
        journal.save()
        killed = nl.stop_processes(journal.namespaces)
        if killed and on_kill is not None:
            on_kill(killed)
        _remove_scratch(journal)
        spaces = {*journal.namespaces, *journal.files}
        steps = _down_plan(nl, journal)
        if on_plan is not None:
            on_plan(steps)
        try:
            execute(steps, nl, journal, on_step)
        except StepFailed as exc:
            raise KernelError(f"down of lab {lab!r} failed at: {exc}; run `nsnet down {lab}` again") from exc
        for ns in sorted(spaces - {ROOT_NS}):  # what a down killed halfway left under /etc/netns
            if not nl.exists(ns):
                remove_netns_files(nl, lab, ns)
                nl.tidy_files(ns)
        journal.remove()
        return steps


def record_scratch(lab: str, path: str) -> None:
    """Record a directory made for ``lab`` (etcd's), before using it: ``down`` removes it."""
    with locked(lab):
        journal = journal_of(lab)
        if path not in journal.scratch:
            journal.scratch.append(path)
            journal.save()


def forget_scratch(lab: str, path: str) -> None:
    """A recorded directory was removed by whoever made it (nothing to do if the lab is gone)."""
    with locked(lab):
        journal = Journal.load(lab)
        if journal is not None and path in journal.scratch:
            journal.scratch.remove(path)
            journal.save()


def _remove_scratch(journal: Journal) -> None:
    """Remove the lab's recorded directories: only those named ``nsnet-*``, never through a symlink."""
    if not journal.scratch:
        return
    for path in journal.scratch:
        if os.path.realpath(path) == path and os.path.basename(path).startswith("nsnet-") and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
    journal.scratch = []
    journal.save()
