"""Names resolve: nsnet writes each namespace's hosts file (and resolv.conf) under /etc/netns."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from conftest import EXAMPLES, nsnet, unique_name

LAB4 = EXAMPLES / "lab4-outside.yaml"
DNS = """
name: dnslab
nodes:
  RED:
    interfaces:
      eth0: {addresses: [10.7.0.2/24, "fd07::2/64"]}
    dns: {servers: [10.7.0.53, "fd07::53"], search: [lab.example], options: ["ndots:2"]}
  BLUE:
    interfaces:
      eth0: {addresses: [10.7.0.3/24]}
links:
  - [RED:eth0, BLUE:eth0]
"""


def up(path: str | Path, lab: str) -> None:
    result = nsnet("up", str(path), "--name", lab)
    assert result.code == 0, result.text


def test_nodes_resolve_each_other_by_name_and_down_removes_the_files(lab_name: str) -> None:
    up(LAB4, lab_name)
    hosts = Path(f"/etc/netns/{lab_name}-RED/hosts")
    text = hosts.read_text()
    assert text.startswith(f"# nsnet:{lab_name}:")
    assert "127.0.0.1\tlocalhost\n" in text
    assert "11.11.11.3\tBLUE\n" in text and "11.11.11.1\thost\n" in text and "203.0.113.2\toutside\n" in text
    ping = nsnet("exec", lab_name, "RED", "--", "ping", "-c1", "-W2", "BLUE")
    assert ping.code == 0, ping.text
    assert "11.11.11.3" in ping.out
    got = nsnet("exec", lab_name, "BLUE", "--", "getent", "hosts", "RED")
    assert got.code == 0 and got.out.split() == ["11.11.11.2", "RED"], got.text
    # A second up changes nothing.
    again = nsnet("up", str(LAB4), "--name", lab_name)
    assert again.code == 0 and "/etc/netns" not in again.text, again.text
    assert nsnet("down", lab_name, "-q").code == 0
    assert not hosts.parent.exists()


def test_a_changed_address_rewrites_the_hosts_file(lab_name: str, tmp_path: Path) -> None:
    up(LAB4, lab_name)
    changed = tmp_path / "lab4.yaml"
    changed.write_text(LAB4.read_text().replace("11.11.11.3/24", "11.11.11.9/24"))
    result = nsnet("up", str(changed), "--name", lab_name, "--replace")
    assert result.code == 0, result.text
    assert "11.11.11.9\tBLUE\n" in Path(f"/etc/netns/{lab_name}-RED/hosts").read_text()


def test_a_foreign_hosts_file_is_never_written_over(lab_name: str) -> None:
    folder = Path(f"/etc/netns/{lab_name}-BLUE")
    folder.mkdir(parents=True)
    try:
        (folder / "hosts").write_text("10.0.0.1 mine\n")
        result = nsnet("up", str(LAB4), "--name", lab_name)
        assert result.code != 0
        assert f"/etc/netns/{lab_name}-BLUE/hosts already exists and was not written by nsnet" in result.text
        assert (folder / "hosts").read_text() == "10.0.0.1 mine\n"
    finally:
        shutil.rmtree(folder)


def test_resolv_conf_and_the_python_api_see_the_names(lab_name: str, tmp_path: Path) -> None:
    from nsnet import Lab

    path = tmp_path / "dns.yaml"
    path.write_text(DNS)
    with Lab(path, name=lab_name) as lab:
        resolv = Path(f"/etc/netns/{lab_name}-RED/resolv.conf").read_text()
        assert resolv.endswith("nameserver 10.7.0.53\nnameserver fd07::53\nsearch lab.example\noptions ndots:2\n")
        assert lab.node("RED").run(["cat", "/etc/resolv.conf"]).stdout == resolv
        assert lab.node("RED").run(["getent", "ahostsv6", "RED"]).stdout.split()[0] == "fd07::2"
        assert lab.node("BLUE").run("getent ahostsv4 RED").stdout.split()[0] == "10.7.0.2"
        assert lab.node("BLUE").call(lambda: socket.gethostbyname("RED")) == "10.7.0.2"
        assert not Path(f"/etc/netns/{lab_name}-BLUE/resolv.conf").exists()
    assert not Path(f"/etc/netns/{lab_name}-RED").exists()


@pytest.mark.unit
def test_dns_keys_are_checked_with_their_line() -> None:
    from nsnet.errors import TopologyError
    from nsnet.topology.loader import loads

    bad = DNS.replace("10.7.0.53", "10.7.0.999").replace("lab.example", "-bad-")
    with pytest.raises(TopologyError) as err:
        loads(bad, "dns.yaml")
    text = str(err.value)
    assert "dns.yaml:7" in text and "'10.7.0.999' is not an IP address" in text
    assert "'-bad-' is not a domain name" in text
    with pytest.raises(TopologyError, match="needs servers, search or options"):
        loads(DNS.split("    dns:")[0] + "    dns: {}\n")


def test_files_go_with_their_namespaces_when_the_journal_is_lost(new_lab_name: list[str]) -> None:
    for how in ("down", "gc"):
        lab = unique_name()
        new_lab_name.append(lab)
        assert nsnet("up", str(EXAMPLES / "lab2-bridge-fixed.yaml"), "--name", lab, "-q").code == 0
        assert Path(f"/etc/netns/{lab}-RED/hosts").is_file()
        Path(f"/run/nsnet/labs/{lab}.json").unlink()  # lost: down and gc find the lab by its marks
        assert nsnet(how, lab, "-q" if how == "down" else "--json").code == 0
        assert not [d for d in ("RED", "BLUE", "host") if Path(f"/etc/netns/{lab}-{d}").exists()], how
