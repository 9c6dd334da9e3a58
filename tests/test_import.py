"""nsnet import: Kathará and containerlab labs (written here in their formats) as nsnet topologies, brought up
on the real kernel, with the reachability their authors intended."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nsnet import Lab
from nsnet.importers import import_lab, render
from nsnet.importers.commands import translate
from nsnet.importers.draft import Node
from nsnet.topology.loader import loads

from conftest import nsnet, sh

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parent / "data"
KATHARA = DATA / "kathara"
CLAB = DATA / "clab"


def up(kind: str, source: Path, lab: str, tmp_path: Path) -> Lab:
    """Import, write, bring up under ``lab``, run the kept commands; the caller brings it down."""
    draft = import_lab(kind, source)
    path = tmp_path / "imported.yaml"
    path.write_text(render(draft))
    built = Lab(str(path), name=lab)
    built.up()
    for node, commands in draft.exec_commands().items():
        for command in commands:
            built.node(node).run(["sh", "-c", command]).check()
    return built


def reached(lab: Lab, src: str, dst: str) -> bool:
    return lab.ping(src, dst)


# -- pure: the commands and the rendered file --------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("ip a a 10.0.0.1/24 dev eth0", {"interfaces": {"eth0": {"addresses": ["10.0.0.1/24"]}}}),
        ("ip -6 address add fd00::1/64 dev eth1", {"interfaces": {"eth1": {"addresses": ["fd00::1/64"]}}}),
        ("ifconfig eth0 10.0.0.2/16 up", {"interfaces": {"eth0": {"addresses": ["10.0.0.2/16"]}}}),
        ("ifconfig eth0 hw ether 02:00:00:00:00:AA", {"interfaces": {"eth0": {"mac": "02:00:00:00:00:aa"}}}),
        ("ip link set eth2 down", {"interfaces": {"eth2": {"up": False}}}),
        ("ip link set dev eth0 mtu 1400", {"interfaces": {"eth0": {"mtu": 1400}}}),
        ("route add -host 10.2.2.2 gw 10.0.0.1", {"routes": [{"to": "10.2.2.2/32", "via": "10.0.0.1"}]}),
        ("route add -net 10.3.0.0 netmask 255.255.0.0 eth1", {"routes": [{"to": "10.3.0.0/16", "dev": "eth1"}]}),
        (
            "ip route add 10.4.0.0/24 via 10.0.0.1 metric 5",
            {"routes": [{"to": "10.4.0.0/24", "via": "10.0.0.1", "metric": 5}]},
        ),
        ("ip -6 route add default via fd00::1", {"routes": [{"to": "::/0", "via": "fd00::1"}]}),
        ("sysctl -w net.ipv4.ip_forward=1", {"sysctls": {"net.ipv4.ip_forward": "1"}}),
        ("echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter", {"sysctls": {"net.ipv4.conf.all.rp_filter": "0"}}),
        ("iptables -P FORWARD DROP", {"firewall": {"policies": {"FORWARD": "DROP"}}}),
        (
            "iptables -A FORWARD -s 10.0.0.0/24 -p tcp --dport 80 -m state --state NEW,ESTABLISHED -j ACCEPT",
            {"firewall": {"rules": [{"chain": "FORWARD", "source": "10.0.0.0/24", "protocol": "tcp", "dport": "80",
                                     "state": ["NEW", "ESTABLISHED"], "action": "ACCEPT"}]}},
        ),
        (
            "iptables -t nat -A POSTROUTING -o eth1 -j MASQUERADE",
            {"firewall": {"rules": [{"chain": "POSTROUTING", "out": "eth1", "action": "MASQUERADE", "table": "nat"}]}},
        ),
    ],
)  # fmt: skip
def test_network_commands_become_topology_keys(line: str, expected: dict[str, object]) -> None:
    node = Node()
    assert translate(node, line) is None
    assert node.spec() == expected


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("ip neigh add 10.0.0.9 lladdr 02:00:00:00:00:09 dev eth0", "kept"),
        ("tc qdisc add dev eth0 root netem delay 10ms", "kept"),
        ("iptables -A INPUT -m limit --limit 5/s -j ACCEPT", "kept"),
        ("ip addr add 10.0.0.1/24 dev eth0 && ip link set eth0 up", "kept"),
        ("/etc/init.d/frr start", "unsupported"),
        ("systemctl start nginx", "unsupported"),
        ("vtysh -c 'show ip route'", "unsupported"),
        ("sysctl -w kernel.pid_max=100000", "unsupported"),
        ("echo hello", "unsupported"),
    ],
)
def test_what_does_not_translate_says_why_and_changes_nothing(line: str, kind: str) -> None:
    node = Node()
    outcome = translate(node, line)
    assert outcome is not None and outcome[0] == kind and outcome[1]
    assert node.spec() == {}


def test_a_kathara_lab_is_a_valid_topology_with_every_untranslated_line_named() -> None:
    draft = import_lab("kathara", KATHARA / "two-pcs")
    text = render(draft)
    topology = loads(text, "two-pcs.yaml")
    assert sorted(topology.namespaces) == ["host", "pc1", "pc2"]
    notes = [note.describe() for note in draft.notes]
    assert (
        'lab.conf:6: not applicable: pc1[image]="kathara/base" (image: nodes are namespaces, not containers)' in notes
    )
    assert any(n.startswith("pc2.startup:2: unsupported: /etc/init.d/apache2 start (a service") for n in notes), notes
    assert "# LAB_DESCRIPTION: Two computers on one collision domain" in text
    assert "#   pc2.startup:2: unsupported: /etc/init.d/apache2 start" in text


def test_a_line_of_lab_conf_nsnet_cannot_read_is_named(tmp_path: Path) -> None:
    lab = tmp_path / "odd"
    lab.mkdir()
    (lab / "lab.conf").write_text('pc1[0]="A"\nthis is not kathara\npc1[frobnicate]="x"\n')
    notes = [n.describe() for n in import_lab("kathara", lab).notes]
    assert notes == [
        "lab.conf:2: unsupported: this is not kathara (not a node[key]=value line)",
        "lab.conf:3: unsupported: pc1[frobnicate]=\"x\" (unknown node key 'frobnicate')",
    ]


def test_import_refuses_what_is_not_a_lab(tmp_path: Path) -> None:
    result = nsnet("import", "kathara", str(tmp_path))
    assert result.code == 2 and "is not a Kathará lab: it has no lab.conf" in result.err
    (tmp_path / "x.clab.yml").write_text("name: x\n")
    result = nsnet("import", "containerlab", str(tmp_path / "x.clab.yml"))
    assert result.code == 2 and "is not a containerlab topology" in result.err


def test_import_json_has_topology_notes_and_kept_commands() -> None:
    result = nsnet("import", "containerlab", str(CLAB / "two-nodes.clab.yml"), "--json")
    assert result.code == 0, result.text
    data = json.loads(result.out)
    assert data["schema"] == "nsnet/import/1"
    assert data["topology"]["links"][0] == ["n1:eth1", "n2:eth1"]
    assert data["exec"] == {"n2": ["ip neigh add 192.168.0.3 lladdr 02:00:00:00:00:03 dev eth1 nud permanent"]}
    kinds = {(n["text"], n["kind"]) for n in data["notes"]}
    assert ("n2: binds", "not applicable") in kinds and ("n1: image", "not applicable") in kinds


# -- on the real kernel --------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_two_computers_on_one_domain(lab_name: str, tmp_path: Path) -> None:
    lab = up("kathara", KATHARA / "two-pcs", lab_name, tmp_path)
    try:
        assert reached(lab, "pc1", "pc2") and reached(lab, "pc2", "pc1")
        link = sh(*f"ip -n {lab_name}-pc2 -o link show eth0".split())
        assert "02:00:00:00:0a:02" in link
    finally:
        lab.down()


@pytest.mark.kernel
def test_static_routing_exercise_fails_until_the_routes_are_added(lab_name: str, tmp_path: Path) -> None:
    exercise = up("kathara", KATHARA / "static-routing", lab_name, tmp_path)
    try:
        assert reached(exercise, "pc1", "r1") and reached(exercise, "pc2", "r2")
        assert not reached(exercise, "pc1", "pc2"), "without the exercise's routes pc1 must not reach pc2"
    finally:
        exercise.down()
    solved = tmp_path / "solved"
    shutil.copytree(KATHARA / "static-routing", solved)
    for router in ("r1", "r2"):
        script = solved / f"{router}.startup"
        script.write_text(script.read_text().replace("# route add", "route add"))
    lab = up("kathara", solved, lab_name, tmp_path)
    try:
        results = lab.reach()
        assert results and all(r.ok for r in results), [r for r in results if not r.ok]
    finally:
        lab.down()


@pytest.mark.kernel
def test_a_node_that_bridges_three_domains(lab_name: str, tmp_path: Path) -> None:
    lab = up("kathara", KATHARA / "bridge", lab_name, tmp_path)
    try:
        for src, dst in (("pc1", "pc2"), ("pc2", "pc3"), ("pc3", "pc1")):
            assert reached(lab, src, dst), f"{src} -> {dst}"
        assert "master br0" in sh(*f"ip -n {lab_name}-sw -o link show eth2".split())
    finally:
        lab.down()


@pytest.mark.kernel
def test_containerlab_nodes_linked_directly_with_a_kept_command(lab_name: str, tmp_path: Path) -> None:
    lab = up("containerlab", CLAB / "two-nodes.clab.yml", lab_name, tmp_path)
    try:
        assert reached(lab, "n1", "n2") and reached(lab, "n2", "n1")
        assert "PERMANENT" in sh(*f"ip -n {lab_name}-n2 neigh show 192.168.0.3".split())
    finally:
        lab.down()


@pytest.mark.kernel
def test_containerlab_bridge_kind_and_management_network(lab_name: str, tmp_path: Path) -> None:
    lab = up("containerlab", CLAB / "bridged.clab.yml", lab_name, tmp_path)
    try:
        assert reached(lab, "a", "10.9.0.2")
        assert reached(lab, "a", "172.100.100.50"), "b's mgmt-ipv4 on the management bridge"
    finally:
        lab.down()


@pytest.mark.kernel
def test_import_check_brings_the_lab_up_probes_it_and_takes_it_down(lab_name: str) -> None:
    result = nsnet("import", "kathara", str(KATHARA / "two-pcs"), "--check", "--name", lab_name)
    assert result.code == 0, result.text
    assert "ok   pc1 -> pc2 (10.0.0.2)" in result.out
    assert "2 of 2 probes answered" in result.out
    assert not [ns for ns in sh("ip", "netns", "list").split() if ns.startswith(f"{lab_name}-")]
