"""What a newcomer meets on the command line: progress on a terminal, short listings, messages that point the way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import EXAMPLES, nsnet, sh

FIXED = str(EXAMPLES / "lab2-bridge-fixed.yaml")


def star(path: Path, n: int) -> str:
    """A lab of ``n`` nodes on one bridge of the host, written to ``path``."""
    host = {"bridges": {"br0": {}}, "interfaces": {f"v{i}": {"master": "br0"} for i in range(n)}}
    nodes = {f"N{i}": {"interfaces": {"eth0": {"addresses": [f"10.9.0.{i + 2}/24"]}}} for i in range(n)}
    links = [[f"N{i}:eth0", f"host:v{i}"] for i in range(n)]
    path.write_text(yaml.safe_dump({"name": "star", "host": host, "nodes": nodes, "links": links}))
    return str(path)


def on_a_terminal(*args: str) -> str:
    """Run the CLI with its output on a pseudo-terminal (as a person sees it); returns what it printed."""
    cmd = " ".join([sys.executable, "-m", "nsnet", *args])
    done = subprocess.run(
        ["script", "-qec", cmd, "/dev/null"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return " ".join(done.stdout.split())  # as one line: the terminal wraps long ones


def test_up_on_a_terminal_draws_a_bar_and_sums_up(lab_name: str, tmp_path: Path) -> None:
    printed = on_a_terminal("up", star(tmp_path / "star.yaml", 8), "--name", lab_name)
    assert "+ create namespace" not in printed
    assert "9 namespaces, 1 bridge, 8 veth pairs" in printed
    assert f"lab {lab_name}: up (" in printed
    assert "8 nodes: N0=" in printed and "(+3 more; `nsnet ls --wide` or -v list all)" in printed
    again = on_a_terminal("down", lab_name, "-v")
    assert "delete namespace" in again and "namespaces removed" not in again


def test_up_piped_prints_every_step(lab_name: str) -> None:
    result = nsnet("up", FIXED, "--name", lab_name)
    assert result.code == 0, result.text
    assert "  + create namespace" in result.out


def test_ls_sums_up_a_big_lab_and_wide_lists_it(lab_name: str, tmp_path: Path) -> None:
    assert nsnet("up", star(tmp_path / "star.yaml", 8), "--name", lab_name, "-q").code == 0
    short = nsnet("ls").out
    row = next(line for line in short.splitlines() if line.startswith(lab_name + " "))
    assert "8 nodes: N0" in row and "(+3 more; --wide lists all)" in row and "N7" not in row
    wide = next(line for line in nsnet("ls", "--wide").out.splitlines() if line.startswith(lab_name + " "))
    assert all(f"N{i} ({lab_name}-N{i})" in wide for i in range(8))
    assert all(line == line.rstrip() for line in short.splitlines())


def test_a_bad_lab_name_is_refused_before_anything_is_said(tmp_path: Path) -> None:
    result = nsnet("up", FIXED, "--name", "bad name")
    assert result.code == 2
    assert result.out == "" and "'bad name' is not a lab name" in result.err


def test_exec_and_inspect_say_a_deleted_namespace_is_gone(lab_name: str) -> None:
    assert nsnet("up", FIXED, "--name", lab_name, "-q").code == 0
    sh("ip", "netns", "del", f"{lab_name}-BLUE")
    entered = nsnet("exec", lab_name, "BLUE", "--", "true")
    assert entered.code == 2
    assert f"namespace {lab_name}-BLUE is gone" in entered.err and f"--name {lab_name}" in entered.err
    shown = nsnet("inspect", lab_name, "--what", "addr")
    assert shown.code == 0, shown.text
    assert f"warning: node BLUE's namespace {lab_name}-BLUE is gone" in shown.err


def test_capture_names_a_mistyped_node(lab_name: str) -> None:
    assert nsnet("up", FIXED, "--name", lab_name, "-q").code == 0
    result = nsnet("capture", lab_name, "REDD:reth0", "icmp", "-c", "1")
    assert result.code == 4
    assert "the lab has no node 'REDD' (did you mean RED:reth0?)" in result.err
    assert "filter" not in result.err


def test_exec_explain_and_inspect_suggest_a_mistyped_node(lab_name: str) -> None:
    assert nsnet("up", FIXED, "--name", lab_name, "-q").code == 0
    for args in (
        ("exec", lab_name, "BLEU", "--", "true"),
        ("explain", lab_name, "REd", "BLUE"),
        ("inspect", lab_name, "BLEU"),
    ):
        result = nsnet(*args)
        assert result.code in (2, 4), result.text
        assert "did you mean" in result.err and "nodes: " in result.err, (args, result.err)


def complete(*words: str) -> list[str]:
    """What bash completion offers after ``nsnet WORDS`` (the last word is being typed)."""
    env = {
        **os.environ,
        "COMP_WORDS": " ".join(["nsnet", *words]),
        "COMP_CWORD": str(len(words)),
        "_NSNET_COMPLETE": "bash_complete",
    }
    script = Path(sys.executable).parent / "nsnet"  # the installed command: completion is keyed to its name
    done = subprocess.run([str(script)], capture_output=True, text=True, env=env, check=False)
    return [line.split(",", 1)[1] for line in done.stdout.splitlines()]


def test_completion_offers_labs_nodes_points_and_sections(lab_name: str) -> None:
    assert nsnet("up", FIXED, "--name", lab_name, "-q").code == 0
    assert lab_name in complete("inspect", lab_name[:-1])
    assert complete("exec", lab_name, "") == ["BLUE", "RED", "host"]
    assert complete("capture", lab_name, "RED:") == ["RED:lo", "RED:reth0"]
    assert complete("inspect", lab_name, "--what", "links,ro") == ["links,route"]
    assert {"exec", "explain"} <= set(complete("ex"))
    for shell in ("bash", "zsh", "fish"):
        script = nsnet("completion", shell)
        assert script.code == 0 and "_NSNET_COMPLETE" in script.out


def test_the_shell_prompt_names_the_node_and_ends_in_hash_for_root(lab_name: str, tmp_path: Path) -> None:
    assert nsnet("up", FIXED, "--name", lab_name, "-q").code == 0
    cmd = f"{sys.executable} -m nsnet shell {lab_name} RED"
    env = {**os.environ, "SHELL": "/bin/bash", "HOME": str(tmp_path), "TERM": "dumb"}
    done = subprocess.run(
        ["script", "-qec", cmd, "/dev/null"], input="exit\n", capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"[nsnet {lab_name}:RED] " in done.stdout
    prompt = done.stdout.split(f"[nsnet {lab_name}:RED] ", 1)[1].split("exit", 1)[0]
    assert prompt.rstrip().endswith("#"), prompt
