"""Pictures that teach: a legend, the firewall on the box that has one, where explain says the packet dies,
large labs summed up readably."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest
import yaml

from nsnet.graph import render, to_graphviz, to_mermaid
from nsnet.picture import from_topology
from nsnet.picture_summary import summarize
from nsnet.topology.loader import load

from conftest import EXAMPLES, nsnet

LAB2 = str(EXAMPLES / "lab2-bridge.yaml")
LAB4 = str(EXAMPLES / "lab4-outside.yaml")


def star(path: Path, n: int) -> str:
    """A lab of ``n`` nodes on bridge br0 of the host, written to ``path``."""
    host = {"bridges": {"br0": {}}, "interfaces": {f"v{i}": {"master": "br0"} for i in range(n)}}
    nodes = {
        f"N{i}": {"interfaces": {"eth0": {"addresses": [f"10.1.{(i + 2) // 256}.{(i + 2) % 256}/16"]}}}
        for i in range(n)
    }
    links = [[f"N{i}:eth0", f"host:v{i}"] for i in range(n)]
    path.write_text(yaml.safe_dump({"name": "star", "host": host, "nodes": nodes, "links": links}))
    return str(path)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.unit
def test_lab2_shows_a_legend_and_the_hosts_forward_policy() -> None:
    picture = from_topology(load(LAB2))
    host = next(box for box in picture.boxes if box.label == "host")
    assert host.firewall == ("filter FORWARD policy DROP",)
    dot = str(to_graphviz(picture).source)
    assert "firewall: filter FORWARD policy DROP" in dot
    assert "legend" in dot and "a veth pair: a cable between two namespaces" in dot and "a bridge" in dot
    assert "VXLAN tunnel" not in dot  # the legend says only what the picture has
    mermaid = to_mermaid(picture)
    assert "firewall: filter FORWARD policy DROP" in mermaid
    assert "subgraph legend_box[legend]" in mermaid and "thick line (===)" in mermaid


@pytest.mark.unit
def test_lab4_shows_nsnets_rules_and_keeps_the_hosts_title_out_of_the_wires() -> None:
    picture = from_topology(load(LAB4))
    host = next(box for box in picture.boxes if box.label == "host")
    assert any(line.startswith("-A FORWARD -i br0 -o br0 -j ACCEPT") for line in host.firewall), host.firewall
    assert any("more rules" in line for line in host.firewall)  # abbreviated
    cluster = str(to_graphviz(picture).source).split("subgraph cluster_3", 1)[1].split("}", 1)[0]
    assert "labelloc=b" in cluster and "netns lab4-host" in cluster


@pytest.mark.unit
def test_a_300_node_lab_is_summed_up_and_its_png_is_a_sane_size(tmp_path: Path) -> None:
    topology = load(star(tmp_path / "star.yaml", 300))
    picture = summarize(from_topology(topology))
    assert [box.label for box in picture.boxes] == ["N0..N299", "host"]
    assert picture.notes[0] == "N0..N299: 300 nodes on br0 in host, 10.1.0.2-10.1.1.45"
    host = picture.boxes[-1]
    assert [i.name for i in host.interfaces] == ["br0"]  # the 300 ports are summed up with their nodes
    dot = str(to_graphviz(picture).source)
    assert "300 nodes on br0" in dot and "--full draws every node" in dot
    width, height = png_size(render(picture, "png"))
    assert 300 < width < 3000 and 200 < height < 2000, (width, height)
    assert "N0..N299" in to_mermaid(picture)


@pytest.mark.unit
def test_full_draws_every_node_and_small_labs_are_not_summed_up(tmp_path: Path) -> None:
    path = star(tmp_path / "star.yaml", 50)
    summed = nsnet("graph", path)
    assert summed.code == 0 and "N0..N49" in summed.out and '"N17/eth0"' not in summed.out
    full = nsnet("graph", path, "--full")
    assert full.code == 0 and '"N17/eth0"' in full.out and "N0..N49" not in full.out
    assert summarize(from_topology(load(LAB2))) == from_topology(load(LAB2))


def test_live_lab2_counts_the_drops_and_marks_where_explain_says_the_ping_dies(lab_name: str) -> None:
    assert nsnet("up", LAB2, "--name", lab_name, "-q").code == 0
    ping = ["ip", "netns", "exec", f"{lab_name}-RED", "ping", "-c", "2", "-W", "1", "11.11.11.3"]
    assert subprocess.run(ping, capture_output=True, check=False).returncode != 0  # dropped by FORWARD
    live = nsnet("graph", lab_name)
    assert live.code == 0, live.text
    assert "firewall: filter FORWARD policy DROP: 2 packets" in live.out
    marked = nsnet("graph", lab_name, "--explain", "RED", "BLUE")
    assert marked.code == 0, marked.text
    assert "✗ the request is dropped here: policy DROP of FORWARD" in marked.out and "FORWARD" in marked.out
    assert "explain RED -&gt; BLUE (icmp): RED cannot reach BLUE" in marked.out
    assert "where explain says the packet dies" in marked.out
    mermaid = nsnet("graph", lab_name, "--explain", "RED", "BLUE", "--format", "mermaid")
    assert "✗ the request is dropped here" in mermaid.out and "stroke-width:3px" in mermaid.out
