"""Native nftables evaluation on a ruleset the real ``nft -j`` printed (pure: no root, no kernel)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from nsnet.explain.netfilter import Context, Packet, evaluate
from nsnet.explain.nft import Fields, NotEvaluated, run_chain
from nsnet.kernel.nftables import parse, rule_texts
from nsnet.views import NftTableView

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"
RULESET = parse(json.loads((DATA / "nft-ruleset.json").read_text()), rule_texts((DATA / "nft-ruleset.txt").read_text()))
FW = RULESET[0]
CHAIN = next(c for c in FW.chains if c.name == "myfw")
BASE = Fields(
    family=4,
    src="11.11.11.2",
    dst="11.11.11.3",
    proto="icmp",
    sport=None,
    dport=None,
    ctstate="NEW",
    ct_status=frozenset(),
    direction="original",
    icmp_type="echo-request",
    in_iface="eth0",
    out_iface="eth1",
    local=frozenset({"11.11.11.1"}),
)


def fate(**changes: object) -> tuple[str, str]:
    outcome = run_chain(FW, CHAIN, replace(BASE, **changes), [])  # type: ignore[arg-type]
    return outcome.verdict, outcome.by


def test_the_rules_keep_their_text_and_order() -> None:
    assert [r.text for r in CHAIN.rules][:2] == [
        'iifname "br*" oifname != "lo" ct state established,related accept',
        "ip saddr @s4 tcp dport { 22, 80-90 } counter drop",
    ]
    assert CHAIN.hook == "forward" and CHAIN.prio == 10 and CHAIN.policy == "drop"


def test_wildcard_interfaces_and_ct_state_flags() -> None:
    assert fate(in_iface="br0", ctstate="ESTABLISHED")[1].startswith("rule 1 of inet fw myfw")
    assert fate(in_iface="br0", ctstate="NEW")[0] == "accept"  # rule 4: icmp echo-request to 11.11.11.0/24
    assert fate(in_iface="eth0", ctstate="ESTABLISHED", icmp_type="echo-reply", dst="9.9.9.9")[0] == "drop"


def test_named_interval_sets_and_anonymous_sets_with_ranges() -> None:
    tcp = {"proto": "tcp", "sport": 40000, "icmp_type": None}
    assert fate(src="10.1.2.3", dport=85, **tcp)[1].startswith("rule 2 ")
    assert fate(src="192.0.2.1", dport=22, **tcp)[1].startswith("rule 2 ")
    assert not fate(src="192.0.2.2", dport=22, dst="9.9.9.9", **tcp)[1].startswith("rule 2 ")


def test_verdict_maps_on_concatenations() -> None:
    assert fate(proto="tcp", sport=1, dport=80, icmp_type=None, dst="9.9.9.9")[1].startswith("rule 3 ")
    assert fate(proto="udp", sport=1, dport=53, icmp_type=None, dst="9.9.9.9")[0] == "drop"


def test_jump_return_and_goto() -> None:
    # fib daddr type local -> jump sub: sub drops 172.16.0.9, else returns and the next rules run.
    assert fate(src="172.16.0.9", dst="11.11.11.1", icmp_type="echo-reply")[1].startswith("rule 1 of inet fw sub")
    assert fate(src="172.16.0.8", dst="11.11.11.1", icmp_type="echo-reply")[0] == "drop"  # policy after return
    # goto sub, then return: back to the caller's caller, i.e. the base chain's policy.
    assert fate(src="1.2.3.4", dst="5.6.7.8", icmp_type="echo-reply")[1].startswith("policy drop of chain myfw")


def test_conntrack_status_and_marks() -> None:
    assert fate(dst="9.9.9.9", icmp_type="echo-reply", ct_status=frozenset({"dnat"}))[0] == "accept"
    assert fate(dst="9.9.9.9", icmp_type="echo-reply")[0] == "drop"  # mark 0: the reject rule does not match


def test_ipv6_matches_do_not_apply_to_ipv4_and_back() -> None:
    v6 = {"family": 6, "src": "fe80::1", "dst": "fe80::2", "proto": "icmpv6", "icmp_type": "echo-request"}
    assert fate(**v6)[1].startswith("rule 9 ")
    assert fate(src="254.128.0.1", icmp_type="echo-reply", dst="9.9.9.9")[0] == "drop"


def test_nat_chains_and_maps() -> None:
    post = next(c for c in FW.chains if c.name == "n")
    pre = next(c for c in FW.chains if c.name == "p")
    tcp = replace(BASE, proto="tcp", sport=40000, dport=5, icmp_type=None)
    assert run_chain(FW, post, tcp, []).nat == {"kind": "snat", "addr": "1.2.3.4", "port": 99}
    assert run_chain(FW, post, BASE, []).nat == {"kind": "masquerade", "addr": None, "port": None}
    assert run_chain(FW, pre, replace(BASE, dst="1.1.1.1"), []).nat == {"kind": "dnat", "addr": "2.2.2.2", "port": None}
    with pytest.raises(NotEvaluated, match="NAT map has no entry"):
        run_chain(FW, pre, BASE, [])


def test_hooks_run_in_priority_order_and_an_accept_is_not_final() -> None:
    early = NftTableView(
        "ip", "early", 50, chains=[replace(CHAIN, name="e", prio=-5, policy="accept", rules=[])], sets=[]
    )
    accepting = replace(early.chains[0], rules=[replace(CHAIN.rules[0], expr=[{"accept": None}], text="accept")])
    tables = [FW, replace(early, chains=[accepting])]
    pkt = Packet(4, "11.11.11.2", "9.9.9.9", "icmp", icmp_type="echo-reply")
    decision = evaluate([], "FORWARD", pkt, Context(in_iface="eth0", out_iface="eth1"), tables)
    assert decision.verdict == "DROP" and decision.table == "fw"
    assert [(d.table, d.chain, d.verdict) for d in decision.before] == [("early", "e", "ACCEPT")]


def test_an_expression_nsnet_does_not_know_is_named() -> None:
    rule = replace(CHAIN.rules[0], expr=[{"match": {"op": "==", "left": {"meta": {"key": "cpu"}}, "right": 0}}])
    with pytest.raises(NotEvaluated, match="meta cpu"):
        run_chain(FW, replace(CHAIN, rules=[rule]), BASE, [])
