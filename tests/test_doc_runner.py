"""The docs stay true: the commands of each page's shell blocks run, in order, as written (under unique lab
names), and every line of output they show appears, in order, in what the command really prints.

A block is not run when an HTML comment before it says so, with why: ``<!-- not run: needs two VMs -->``.
Volatile parts (MACs, times, ids, counters) are normalized on both sides.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from conftest import ROOT, unique_name

PAGES = ["docs/getting-started.md", "docs/graph.md"]
RUNNABLE = re.compile(r"^(sudo )?(nsnet|ip netns exec|ip -n|\.venv/bin/nsnet)\b")
VOLATILE = [
    (re.compile(r"([0-9a-f]{2}:){5}[0-9a-f]{2}"), "MAC"),
    (re.compile(r"\b\d+(\.\d+)?( ?ms|s)\b"), "TIME"),
    (re.compile(r"time=\S+"), "time=T"),
    (re.compile(r"rtt min/avg/max/mdev = \S+"), "rtt"),
    (re.compile(r"nsnet:([\w.-]+):([\w.-]+):[0-9a-f]{12}"), r"nsnet:\1:\2:ID"),
    (re.compile(r"\b(REACHABLE|STALE|DELAY|PROBE)\b"), "NUD"),
    (re.compile(r"@if\d+"), "@ifN"),
    (re.compile(r"^\d+: "), "N: "),
    (re.compile(r"\d+ packets?"), "N packets"),
    (re.compile(r"\s+"), " "),
]


@dataclass
class Command:
    line: str
    output: list[str] = field(default_factory=list)


def blocks(page: str) -> list[list[Command]]:
    """The runnable commands of each shell block of ``page`` and the output each shows, in order."""
    found: list[list[Command]] = []
    lines = (ROOT / page).read_text().splitlines()
    skip, i = False, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("<!-- not run:"):
            skip = True
        elif line.startswith("```"):
            lang = line[3:].strip()
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            body = lines[i + 1 : end]
            if lang in ("sh", "text") and not skip:
                found.append(_commands(body, lang))
            skip, i = False, end
        elif line.strip():
            skip = skip and not line.strip()
        i += 1
    return [b for b in found if b]


def _commands(body: list[str], lang: str) -> list[Command]:
    commands: list[Command] = []
    for line in body:
        text = line[2:] if line.startswith("$ ") else (line if lang == "sh" else None)
        if text is not None:
            commands.append(Command(text.split("  #")[0].strip()))
        elif commands:
            commands[-1].output.append(line)
    return [c for c in commands if RUNNABLE.match(c.line)]


class Names:
    """Lab names of the page -> unique ones, both ways."""

    def __init__(self) -> None:
        self.labs: dict[str, str] = {}
        self.own: set[str] = set()

    def command(self, line: str) -> list[str]:
        """The argv to run for ``line``; a pipeline (``nsnet graph ... | grep VXLAN``) runs in a shell."""
        if " | " in line:
            head, _, tail = line.partition(" | ")
            return ["bash", "-c", shlex.join(self.command(head)) + " | " + tail]
        argv = shlex.split(line)
        if argv[0] == "sudo":
            argv = argv[1:]
        if argv[0] in ("nsnet", ".venv/bin/nsnet"):
            argv = [sys.executable, "-m", "nsnet", *argv[1:]]
            files = [a for a in argv[4:] if a.endswith((".yaml", ".yml")) and (ROOT / a).is_file()]
            if files and argv[3] in ("up", "plan", "graph") and "--name" not in argv:
                lab = _lab_of(files[0])
                if argv[3] == "up" and lab not in self.labs:
                    self.labs[lab] = unique_name()
                    self.own.add(lab)
                if lab in self.labs:
                    argv += ["--name", self.labs[lab]]
        words = [self.labs.get(word, word) for word in argv]
        if "--name" in words:
            k = words.index("--name") + 1
            original = argv[k]
            if original not in self.labs and original not in self.labs.values():
                self.labs[original] = unique_name()
            words[k] = self.labs.get(original, original)
        return self._namespaces(words)

    def _namespaces(self, words: list[str]) -> list[str]:
        """``ip netns exec NS`` and ``ip -n NS`` of a lab brought up under its own name: its unique name."""
        for flag in ("exec", "-n"):
            if words[:1] == ["ip"] and flag in words:
                k = words.index(flag) + 1
                ns = words[k]
                for lab, uniq in self.labs.items():
                    if ns.startswith(f"{lab}-"):
                        words[k] = uniq + ns[len(lab) :]
                    elif lab in self.own and "-" not in ns:
                        words[k] = f"{uniq}-{ns}"
        return words

    def back(self, text: str) -> str:
        """Real output in the page's names."""
        for lab, uniq in self.labs.items():
            if lab in self.own:
                text = re.sub(rf"([\w.-]+) \({uniq}-\1\)", r"\1", text)  # ls: a node named as its namespace
                text = text.replace(f"{uniq}-host", f"{lab}-host").replace(f"{uniq}-", "")
            text = text.replace(uniq, lab)
        return text.replace(str(ROOT), "/home/you/nsnet")


def _lab_of(path: str) -> str:
    match = re.search(r"^name:\s*(\S+)", (ROOT / path).read_text(), re.M)
    assert match, path
    return match.group(1)


def normal(line: str) -> str:
    for pattern, replacement in VOLATILE:
        line = pattern.sub(replacement, line)
    return line.strip()


def shown_in_order(documented: list[str], real: str) -> list[str]:
    """The documented lines not found, in order, in the real output."""
    lines = [normal(line) for line in real.splitlines()]
    missing, at = [], 0
    for want in documented:
        want = normal(want)
        if not want or want in ("...", "…"):
            continue
        found = next((k for k in range(at, len(lines)) if want in lines[k]), None)
        if found is None:
            missing.append(want)
        else:
            at = found + 1
    return missing


@pytest.mark.parametrize("page", PAGES)
def test_the_page_runs_as_written(page: str) -> None:
    names = Names()
    problems: list[str] = []
    try:
        for block in blocks(page):
            for command in block:
                argv = names.command(command.line)
                env = {**os.environ, "COLUMNS": "1000"}
                done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=60, check=False, env=env)
                real = names.back(done.stdout + done.stderr)
                missing = shown_in_order(command.output, real)
                if missing:
                    problems.append(f"$ {command.line}\n  not shown: {missing}\n  real output:\n{real}")
    finally:
        for uniq in names.labs.values():
            subprocess.run([sys.executable, "-m", "nsnet", "down", uniq, "-q"], capture_output=True, check=False)
    assert not problems, f"{page}:\n" + "\n".join(problems)
