"""`nsnet graph`: the seed's lab 2 drawn from its file and live, as DOT, Mermaid, SVG and PNG."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from nsnet.graph import GREY, from_topology, render, to_graphviz, to_mermaid
from nsnet.topology.loader import load

from conftest import EXAMPLES, ROOT, nsnet, sh

pytestmark = pytest.mark.unit

LAB2 = str(EXAMPLES / "lab2-bridge.yaml")
NAMESPACES = ("RED", "BLUE", "host")
INTERFACES = ("reth0", "reth1", "beth0", "beth1", "br0")
ADDRESSES = ("11.11.11.2/24", "11.11.11.3/24")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"

_DOT_EDGE = re.compile(r'^\s*"([^"]+)" -- "([^"]+)"(?: \[(.*)\])?$')
_DOT_NODE = re.compile(r'^\s*"([^"]+)" \[(.*)\]$')
_MERMAID_EDGE = re.compile(r"^\s*(\w+) (===|---|-\.-) (\w+)$")


def dot_edges(source: str) -> dict[frozenset[str], str]:
    """Edges of DOT source: {frozenset of the two node names: attributes}."""
    edges = {}
    for line in source.splitlines():
        match = _DOT_EDGE.match(line)
        if match:
            edges[frozenset(match.group(1, 2))] = match.group(3) or ""
    return edges


def dot_nodes(source: str) -> dict[str, str]:
    """Nodes of DOT source: {name: attributes}."""
    return {m.group(1): m.group(2) for line in source.splitlines() if (m := _DOT_NODE.match(line))}


def mermaid_edges(text: str) -> dict[frozenset[str], str]:
    """Links of Mermaid text: {frozenset of the two ids: the arrow}."""
    edges = {}
    for line in text.splitlines():
        match = _MERMAID_EDGE.match(line)
        if match:
            edges[frozenset((match.group(1), match.group(3)))] = match.group(2)
    return edges


def svg_texts(path: Path) -> str:
    """Every text the SVG shows (it must parse as XML)."""
    tree = ET.parse(path)
    assert tree.getroot().tag == f"{SVG}svg"
    return "\n".join("".join(t.itertext()) for t in tree.iter(f"{SVG}text"))


def assert_names_everything(text: str) -> None:
    for word in (*NAMESPACES, *INTERFACES, *ADDRESSES):
        assert word in text, f"{word} is not in the picture:\n{text}"


# -- from the file (pure) ---------------------------------------------------


def test_lab2_as_dot_names_everything_and_wires_the_veths_and_the_bridge() -> None:
    source = to_graphviz(from_topology(load(LAB2))).source
    assert_names_everything(source)
    assert "netns lab2-host" in source  # the kernel namespace names, too
    assert "netns RED" in source and "netns BLUE" in source
    clusters = re.findall(r"subgraph (cluster_\w+)", source)
    assert len(clusters) == 4 and clusters[-1] == "cluster_legend"  # a box per namespace, and the legend
    nodes = dot_nodes(source)
    assert set(nodes) == {"RED/reth0", "BLUE/beth0", "host/reth1", "host/beth1", "host/br0"}
    edges = dot_edges(source)
    assert set(edges) == {
        frozenset({"RED/reth0", "host/reth1"}),  # the veth pairs
        frozenset({"BLUE/beth0", "host/beth1"}),
        frozenset({"host/reth1", "host/br0"}),  # the bridge's ports
        frozenset({"host/beth1", "host/br0"}),
    }
    assert not any("dashed" in attrs for attrs in (*edges.values(), *nodes.values()))  # drawn from a file: all up


def test_lab2_as_mermaid_names_everything_and_wires_the_veths_and_the_bridge() -> None:
    text = to_mermaid(from_topology(load(LAB2)))
    assert "flowchart TB" in text
    assert_names_everything(text)
    assert text.count("subgraph ") == 4 and text.count("\n  end\n") == 4  # a subgraph per namespace, the legend
    assert mermaid_edges(text) == {
        frozenset({"RED_reth0", "host_reth1"}): "===",
        frozenset({"BLUE_beth0", "host_beth1"}): "===",
        frozenset({"host_reth1", "host_br0"}): "---",
        frozenset({"host_beth1", "host_br0"}): "---",
    }
    assert "host_br0[[" in text  # the bridge has its own shape


def test_lab_name_gives_the_kernel_namespace_names() -> None:
    source = to_graphviz(from_topology(load(LAB2), "other")).source
    for ns in ("other-RED", "other-BLUE", "other-host"):
        assert f"netns {ns}" in source
    assert render(from_topology(load(LAB2), "other"), "dot").decode() == source


def test_lab1_has_no_host_box_and_its_veth_joins_the_two_nodes() -> None:
    picture = from_topology(load(EXAMPLES / "lab1-veth.yaml"))
    assert [box.label for box in picture.boxes] == ["RED", "BLUE"]
    source = to_graphviz(picture).source
    assert set(dot_edges(source)) == {frozenset({"RED/veth0", "BLUE/veth1"})}


# -- through the command line ----------------------------------------------


def test_cli_prints_dot_by_default() -> None:
    result = nsnet("graph", LAB2)
    assert result.code == 0, result.text
    assert result.out == to_graphviz(from_topology(load(LAB2))).source
    assert nsnet("graph", LAB2, "-o", "-").out == result.out


def test_cli_renders_svg_and_png(tmp_path: Path) -> None:
    svg, png = tmp_path / "lab2.svg", tmp_path / "lab2.png"
    for path in (svg, png):
        result = nsnet("graph", LAB2, "-o", str(path))
        assert result.code == 0, result.text
        assert f"wrote {path}" in result.out
    assert_names_everything(svg_texts(svg))
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    assert png.stat().st_size > 5000


def test_cli_format_from_suffix_or_option(tmp_path: Path) -> None:
    for name in ("lab2.dot", "lab2.gv"):
        assert nsnet("graph", LAB2, "-o", str(tmp_path / name)).code == 0
        assert (tmp_path / name).read_text() == to_graphviz(from_topology(load(LAB2))).source
    for name in ("lab2.mmd", "lab2.mermaid"):
        assert nsnet("graph", LAB2, "-o", str(tmp_path / name)).code == 0
        assert (tmp_path / name).read_text() == to_mermaid(from_topology(load(LAB2)))
    # --format wins over the name.
    assert nsnet("graph", LAB2, "-o", str(tmp_path / "picture.txt"), "--format", "svg").code == 0
    assert_names_everything(svg_texts(tmp_path / "picture.txt"))
    result = nsnet("graph", LAB2, "--format", "mermaid")
    assert result.code == 0 and result.out == to_mermaid(from_topology(load(LAB2)))


def test_cli_errors(tmp_path: Path) -> None:
    result = nsnet("graph", LAB2, "-o", str(tmp_path / "lab2.jpeg"))
    assert result.code == 2
    assert "cannot tell the format" in result.err and "--format" in result.err
    result = nsnet("graph", "t-no-such-lab", env={**os.environ, "NSNET_STATE_DIR": str(tmp_path / "state")})
    assert result.code == 4
    assert "no lab named 't-no-such-lab'" in result.err
    result = nsnet("graph", LAB2, "-o", str(tmp_path / "no" / "dir.svg"))
    assert result.code == 2 and "cannot write" in result.err


def test_cli_without_dot_says_how_to_install_it(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path))  # no `dot` on this PATH
    result = nsnet("graph", LAB2, "-o", str(tmp_path / "lab2.svg"), env=env)
    assert result.code == 2
    assert "install graphviz: apt-get install graphviz" in result.err
    assert not (tmp_path / "lab2.svg").exists()
    # DOT source and Mermaid need no tool.
    assert nsnet("graph", LAB2, "-o", str(tmp_path / "lab2.mmd"), env=env).code == 0


# -- multi-host labs: the overlay ----------------------------------------------

OVERLAY = str(EXAMPLES / "overlay-static.yaml")
_MERMAID_TUNNEL = re.compile(r"^\s*(\w+) -\.-\|VXLAN (\d+)\| (\w+)$")


def mermaid_tunnels(text: str) -> dict[frozenset[str], str]:
    """VXLAN links of Mermaid text: {frozenset of the two ids: VNI}."""
    return {
        frozenset((m.group(1), m.group(3))): m.group(2)
        for line in text.splitlines()
        if (m := _MERMAID_TUNNEL.match(line))
    }


def test_overlay_file_draws_a_dashed_vxlan_edge_and_keeps_the_underlay() -> None:
    source = to_graphviz(from_topology(load(OVERLAY))).source
    edges = dot_edges(source)
    tunnel = edges[frozenset({"A/vxlan1", "B/vxlan1"})]
    assert "style=dashed" in tunnel and 'label="VXLAN 42"' in tunnel
    # The underlay as it was: each host's eth0 wired to its port of the switch, the ports to ul0.
    for host in ("A", "B"):
        assert "dashed" not in edges[frozenset({f"{host}/eth0", f"underlay/{host}"})]
        assert "dashed" not in edges[frozenset({f"underlay/{host}", "underlay/ul0"})]
        assert "dashed" not in edges[frozenset({f"{host}/vxlan1", f"{host}/br0"})]
    assert [attrs for attrs in edges.values() if "VXLAN" in attrs] == [tunnel]  # one tunnel, nothing else labelled
    assert "(VXLAN 42)" in dot_nodes(source)["A/vxlan1"]

    text = to_mermaid(from_topology(load(OVERLAY)))
    assert "  A_vxlan1 -.-|VXLAN 42| B_vxlan1" in text.splitlines()
    assert mermaid_tunnels(text) == {frozenset({"A_vxlan1", "B_vxlan1"}): "42"}
    assert mermaid_edges(text)[frozenset({"A_eth0", "underlay_A"})] == "==="

    # Through the command line, as DOT and as Mermaid.
    assert nsnet("graph", OVERLAY).out == source
    assert nsnet("graph", OVERLAY, "--format", "mermaid").out == text


def test_three_hosts_on_one_vni_are_joined_pairwise() -> None:
    picture = from_topology(load(EXAMPLES / "overlay-dynamic.yaml"))
    assert {frozenset((t.a, t.b)) for t in picture.tunnels} == {
        frozenset({("A", "vxlan1"), ("B", "vxlan1")}),
        frozenset({("A", "vxlan1"), ("C", "vxlan1")}),
        frozenset({("B", "vxlan1"), ("C", "vxlan1")}),
    }
    edges = dot_edges(to_graphviz(picture).source)
    assert sum("VXLAN 42" in attrs and "style=dashed" in attrs for attrs in edges.values()) == 3
    assert len(mermaid_tunnels(to_mermaid(picture))) == 3


def test_different_vnis_are_not_joined(tmp_path: Path) -> None:
    path = tmp_path / "two-vnis.yaml"
    text = Path(OVERLAY).read_text().replace("vxlan1: {vni: 42, master: br0}", "vxlan1: {vni: 43, master: br0}", 1)
    path.write_text(text.replace("10.0.0.3/24", "10.0.1.3/24"))  # two networks, two subnets
    picture = from_topology(load(path))
    assert picture.tunnels == ()
    assert "VXLAN 4" not in "".join(dot_edges(to_graphviz(picture).source).values())


def test_live_overlay_lab_draws_the_tunnel_grey_when_a_device_is_down(lab_name: str) -> None:
    result = nsnet("up", OVERLAY, "--name", lab_name, "-q")
    assert result.code == 0, result.text
    source = nsnet("graph", lab_name).out
    tunnel = dot_edges(source)[frozenset({"A/vxlan1", "B/vxlan1"})]
    assert "style=dashed" in tunnel and 'label="VXLAN 42"' in tunnel and GREY not in tunnel
    assert mermaid_tunnels(nsnet("graph", lab_name, "--format", "mermaid").out) == {
        frozenset({"A_vxlan1", "B_vxlan1"}): "42"
    }

    sh("ip", "-n", f"{lab_name}-B", "link", "set", "vxlan1", "down")
    source = nsnet("graph", lab_name).out
    assert GREY in dot_edges(source)[frozenset({"A/vxlan1", "B/vxlan1"})]
    assert "down" in dot_nodes(source)["B/vxlan1"]


# -- a live lab -------------------------------------------------------------


def test_live_lab_shows_kernel_names_addresses_macs_and_the_down_link(lab_name: str, tmp_path: Path) -> None:
    result = nsnet("up", LAB2, "--name", lab_name, "-q")
    assert result.code == 0, result.text
    red, blue, host = f"{lab_name}-RED", f"{lab_name}-BLUE", f"{lab_name}-host"
    sh("ip", "-n", red, "link", "set", "reth0", "down")

    result = nsnet("graph", lab_name)
    assert result.code == 0, result.text
    source = result.out
    assert f"lab {lab_name} (live)" in source
    assert_names_everything(source)
    for ns in (red, blue, host):
        assert f"netns {ns}" in source
    mac = json.loads(sh("ip", "-n", red, "-j", "link", "show", "dev", "reth0"))[0]["address"]
    assert mac in source

    nodes, edges = dot_nodes(source), dot_edges(source)
    assert "dashed" in nodes["RED/reth0"] and "down" in nodes["RED/reth0"]
    assert "dashed" in nodes["host/reth1"] and "no carrier" in nodes["host/reth1"]  # its peer is down
    assert "dashed" not in nodes["BLUE/beth0"] and "dashed" not in nodes["host/beth1"]
    assert "style=dashed" in edges[frozenset({"RED/reth0", "host/reth1"})]
    assert "style=dashed" in edges[frozenset({"host/reth1", "host/br0"})]
    assert "dashed" not in edges[frozenset({"BLUE/beth0", "host/beth1"})]
    assert "dashed" not in edges[frozenset({"host/beth1", "host/br0"})]

    text = nsnet("graph", lab_name, "--format", "mermaid").out
    assert mermaid_edges(text)[frozenset({"RED_reth0", "host_reth1"})] == "-.-"
    assert mermaid_edges(text)[frozenset({"BLUE_beth0", "host_beth1"})] == "==="

    # The file brought up under that name, drawn live, is the same picture.
    assert nsnet("graph", LAB2, "--name", lab_name, "--live").out == source

    svg = tmp_path / "live.svg"
    assert nsnet("graph", lab_name, "-o", str(svg)).code == 0
    texts = svg_texts(svg)
    assert red in texts and "down" in texts and "no carrier" in texts

    # Up again: nothing is drawn dashed any more.
    sh("ip", "-n", red, "link", "set", "reth0", "up")
    assert "dashed" not in nsnet("graph", lab_name).out


# -- the documentation -------------------------------------------------------


def test_docs_show_the_picture_of_lab2() -> None:
    page = (ROOT / "docs" / "graph.md").read_text()
    assert "img/lab2.svg" in page
    assert_names_everything(svg_texts(ROOT / "docs" / "img" / "lab2.svg"))
    assert "graph.md" in (ROOT / "docs" / "index.md").read_text()
