"""The fix for a packet that a firewall rule or policy drops (pure).

A chain policy that drops is answered with an accept rule for the traffic,
in the chain that decides; a rule that drops, with the command that deletes
it. On a Docker host (its filter table has Docker's ``DOCKER-USER`` chain)
a drop by ``FORWARD``'s policy or by a rule in Docker's own chains is
answered with an accept rule inserted in ``DOCKER-USER``: Docker's
documentation tells users to put their rules there, Docker jumps to it
first from ``FORWARD``, and a rule appended to ``FORWARD`` may end up after
Docker's chains when dockerd restarts and puts its rules back.
"""

from __future__ import annotations

from nsnet.explain.netfilter import Decision, Packet
from nsnet.explain.verdict import Fix, Space

DOCKER_USER = "DOCKER-USER"


def run_in(space: Space) -> str:
    """The prefix that runs a command in the space's namespace (none for the root namespace)."""
    return f"ip netns exec {space.view.netns} " if space.view.netns else ""


def yaml_under(where: str | None, lines: list[str]) -> str | None:
    """``lines`` placed under a block of a topology file (``host``, ``hosts.A``, ``nodes.RED``); None: nowhere."""
    if where is None:
        return None
    if where == "host":
        return "host:\n" + "\n".join("  " + line for line in lines)
    group, _, name = where.partition(".")
    return f"{group}:\n  {name}:\n" + "\n".join("    " + line for line in lines)


def is_docker_host(space: Space, family: int) -> bool:
    """Whether the space's filter table of ``family`` has Docker's ``DOCKER-USER`` chain."""
    return any(
        t.table == "filter" and t.family == family and any(c.name == DOCKER_USER for c in t.chains)
        for t in space.view.firewall or []
    )


def _rule_text(decision: Decision) -> str:
    """``-A CHAIN ...`` of the deciding rule (``decision.by`` is ``rule N of CHAIN: -A CHAIN ...``)."""
    return decision.by.split(": ", 1)[1] if ": " in decision.by else decision.by


def firewall_fix(space: Space, where: str | None, hook: str, decision: Decision, pkt: Packet, source: str) -> Fix:
    """How to let ``pkt`` through the hook that ``decision`` stops it in.

    ``where`` is the space's block in the topology file (None: not written
    there); ``source`` is the network to accept traffic from.
    """
    run = run_in(space)
    tool = "iptables" if pkt.family == 4 else "ip6tables"
    policy = decision.by.startswith("policy")
    rule_text = "" if policy else _rule_text(decision)
    chain = rule_text.split()[1] if rule_text.startswith("-A ") else hook
    rule = f"    - {{chain: {hook}, source: {source}, action: ACCEPT}}"
    topology = yaml_under(where, ["firewall:", "  rules:", rule])
    docker_made = policy or (chain.startswith("DOCKER") and chain != DOCKER_USER)
    if decision.table == "filter" and hook == "FORWARD" and docker_made and is_docker_host(space, pkt.family):
        what = "Docker's FORWARD policy drops it" if policy else f"Docker's chain {chain} drops it"
        return Fix(
            f"accept this traffic in {space.node}'s {DOCKER_USER} chain, before {what}: Docker's documentation "
            f"tells users to put their own rules in {DOCKER_USER}, which Docker jumps to first from FORWARD; "
            "a rule appended to FORWARD may end up after Docker's chains when dockerd restarts",
            command=f"{run}{tool} -I {DOCKER_USER} -s {source} -j ACCEPT",
            # nsnet's own rules are jumped to from the top of FORWARD, before the policy (and put back by `up`);
            # a drop in Docker's chains can be overruled from DOCKER-USER alone.
            topology=topology if policy else None,
        )
    if policy:
        return Fix(
            f"accept this traffic in {space.node}'s {hook} chain before the policy drops it",
            command=f"{run}{tool} -t {decision.table or 'filter'} -A {hook} -s {source} -j ACCEPT",
            topology=topology,
        )
    delete = "-D " + rule_text[3:] if rule_text.startswith("-A ") else rule_text
    owned = chain.startswith("NSNET-")
    return Fix(
        f"remove the rule that {decision.verdict.lower()}s it" + (" (it comes from the topology)" if owned else ""),
        command=f"{run}{tool} -t {decision.table} {delete}",
        topology=f"remove that rule from {where}.firewall.rules" if owned and where else None,
    )
