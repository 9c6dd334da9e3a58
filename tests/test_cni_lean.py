"""nsnet-cni's light replacements of standard modules, against the modules they replace (no root needed).

The plugin runs once per container and command, so it loads neither
:mod:`json` (nor :mod:`re` and :mod:`enum` with it), :mod:`subprocess`,
:mod:`dataclasses` nor :mod:`typing`: its JSON, records and program runs
must behave as those do, and the plugin's start must not import them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nsnet.cni import jsonc, spawn
from nsnet.cni.config import NAME_RE
from nsnet.cni.record import record

pytestmark = pytest.mark.unit

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@given(JSON)
def test_jsonc_reads_and_writes_as_json_does(value: object) -> None:
    text = json.dumps(value)
    assert jsonc.dumps(value) == text
    assert jsonc.loads(text.encode()) == json.loads(text)
    assert jsonc.loads(f" \n{text}\t ") == json.loads(text)


@pytest.mark.parametrize("bad", [b"", b"{", b"{} x", b'{"a":}', b"[1,]", b"nul", b"\xff"])
def test_jsonc_refuses_what_json_refuses(bad: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(bad)
    with pytest.raises(ValueError):
        jsonc.loads(bad)


def test_jsonc_deep_nesting_is_a_recursion_error_as_in_json() -> None:
    with pytest.raises(RecursionError):
        jsonc.loads(b"[" * 100_000)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]*"))
def test_name_check_is_the_specification_pattern(text: str) -> None:
    assert NAME_RE.match(text) == bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", text))


@record
class Point:
    x: int
    y: int = 0


@record
class Bag:
    tags: list[str] = []


def test_record_behaves_as_a_dataclass() -> None:
    assert Point(1) == Point(x=1, y=0) and Point(1, 2) != Point(1, 3)
    assert len({Point(1, 2), Point(1, 2)}) == 1
    assert repr(Point(1, 2)) == "Point(x=1, y=2)"
    a, b = Bag(), Bag()
    a.tags.append("mine")
    assert b.tags == []  # a list default is never shared
    for bad in (lambda: Point(), lambda: Point(1, 2, 3), lambda: Point(1, z=3), lambda: Point(1, x=2)):
        with pytest.raises(TypeError):
            bad()


def test_spawn_runs_as_subprocess_does() -> None:
    big = b"x" * 1_000_000  # more than a pipe holds, both ways at once
    script = "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read()); sys.stderr.write('e' * 200000); sys.exit(3)"
    done = spawn.run([sys.executable, "-c", script], big)
    assert (done.code, done.out, done.err) == (3, big, b"e" * 200000)
    assert spawn.run(["/bin/true"]).code == 0
    with pytest.raises(FileNotFoundError):
        spawn.run(["/no/such/program"])
    with pytest.raises(TimeoutError):
        spawn.run(["/bin/sleep", "5"], timeout=0.2)
    # A program whose reader goes away gets SIGPIPE, as under subprocess (not an ignored signal).
    killed = spawn.run(["/bin/sh", "-c", "yes | head -c 1"])
    assert killed.code == 0 and killed.out == b"y"


def test_the_plugin_starts_without_the_heavy_modules() -> None:
    code = (
        "import sys; from nsnet.cni import main, bridge; "
        "print(' '.join(m for m in ('json', 're', 'enum', 'subprocess', 'dataclasses', 'typing', 'socket', "
        "'hashlib', 'pathlib', 'threading', 'nsnet.errors') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == ""


def test_the_plugin_speaks_netlink_through_nsnets_one_codec() -> None:
    code = "import sys; from nsnet.cni import bridge; print([m for m in sys.modules if m.startswith('nsnet.kernel')])"
    loaded = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'nsnet.kernel.rtnl'" in loaded and "'nsnet.kernel.netlink'" not in loaded
