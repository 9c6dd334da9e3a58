"""The explanation engine is pure: it runs on a saved snapshot, without root or a kernel lab."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from nsnet.errors import ExplainError
from nsnet.explain import Walker
from nsnet.explain.snapshot import from_json, to_json
from nsnet.explain.verdict import Snapshot
from nsnet.views import ChainView, RuleView

pytestmark = pytest.mark.unit

SAVED = json.loads((Path(__file__).parent / "data" / "lab2-snapshot.json").read_text())


def lab2() -> Snapshot:
    return from_json(SAVED)


def with_host(snap: Snapshot, **changes: object) -> Snapshot:
    host = snap.spaces["host"]
    spaces = dict(snap.spaces, host=replace(host, view=replace(host.view, **changes)))
    return replace(snap, spaces=spaces)


def test_snapshot_round_trips_through_json() -> None:
    assert to_json(lab2()) == SAVED


def test_seed_failure_from_a_saved_snapshot() -> None:
    e = Walker(lab2()).explain("RED", "BLUE")
    assert not e.reachable
    assert e.verdict.endswith("policy DROP of FORWARD in host's filter table drops it")
    assert e.fix is not None and e.fix.command == (
        "ip netns exec lab2-host iptables -t filter -A FORWARD -s 11.11.11.0/24 -j ACCEPT"
    )


def test_the_seed_fix_in_the_snapshot_makes_it_reachable() -> None:
    snap = lab2()
    tables = snap.spaces["host"].view.firewall or []
    fixed = []
    for table in tables:
        chains = []
        for chain in table.chains:
            if table.table == "filter" and chain.name == "FORWARD":
                rule = RuleView(rule="-A FORWARD -s 11.11.11.0/24 -j ACCEPT", packets=0, bytes=0, owned=False)
                chain = ChainView(chain.name, chain.policy, chain.packets, chain.bytes, chain.owned, [rule])
            chains.append(chain)
        fixed.append(replace(table, chains=chains))
    e = Walker(with_host(snap, firewall=fixed)).explain("RED", "BLUE")
    assert e.reachable, e.verdict
    assert [leg.title for leg in e.legs] == [
        "icmp request RED -> BLUE (11.11.11.3)",
        "echo reply BLUE -> RED (11.11.11.2)",
    ]


def test_without_bridge_netfilter_the_forward_policy_does_not_apply() -> None:
    snap = lab2()
    sysctls = dict(snap.spaces["host"].view.sysctls or {}, **{"net.bridge.bridge-nf-call-iptables": "0"})
    e = Walker(with_host(snap, sysctls=sysctls)).explain("RED", "BLUE")
    assert e.reachable
    assert any("bridge-nf-call-iptables=0" in s.text for s in e.legs[0].steps)


def test_unknown_matches_are_not_guessed() -> None:
    snap = lab2()
    strange = []
    for table in snap.spaces["host"].view.firewall or []:
        chains = [
            ChainView(
                c.name,
                c.policy,
                c.packets,
                c.bytes,
                c.owned,
                [RuleView("-A FORWARD -m string --string x --algo bm -j ACCEPT", 0, 0, False)],
            )
            if table.table == "filter" and c.name == "FORWARD"
            else c
            for c in table.chains
        ]
        strange.append(replace(table, chains=chains))
    e = Walker(with_host(snap, firewall=strange)).explain("RED", "BLUE")
    assert e.legs[0].outcome == "unknown"
    assert "nsnet cannot evaluate the match -m string" in e.verdict


def test_bad_arguments() -> None:
    walker = Walker(lab2())
    for args, message in (
        (("GREEN", "BLUE"), "lab 'lab2' has no node 'GREEN'"),
        (("RED", "nowhere"), "'nowhere' is neither a node of lab 'lab2' nor an address"),
        (("RED", "BLUE", "tcp"), "'tcp' is not a protocol"),
    ):
        try:
            walker.explain(*args)
        except ExplainError as exc:
            assert message in str(exc)
        else:
            raise AssertionError(f"{args} was accepted")
