"""explain against real traffic on generated scenarios (tests/scenarios): the verdict equals the kernel's,
the failing step names the mutated object, the printed fix makes the traffic pass, nothing crashes.

At least 300 scenarios, the same for the same seed, run on base labs brought up once per worker; each
scenario mutates its lab by hand, measures, applies explain's fix, undoes everything and checks the lab is
back to its baseline. A failure prints one line per problem (category | scenario | flow | problem | what
explain said); ``tools/explain_agreement.py`` prints the agreement table by category.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from itertools import groupby
from pathlib import Path

import pytest

from scenarios.labs import BASE_LABS, ROOT_LABS
from scenarios.report import agreement_table, problem_lines
from scenarios.runner import COUNT, SEED, LabRun, Result, Scenario, generate
from world import World, world

from conftest import unique_name

pytestmark = pytest.mark.kernel
CHUNK = 8
SCENARIOS = generate(SEED, COUNT)
ROOT_COUNT = 40
"""Scenarios on the ``host: root`` lab, run inside a private world (on top of the ``COUNT`` above)."""
INWORLD = Path(__file__).resolve().parent / "scenarios" / "inworld.py"


def _chunks() -> list[tuple[str, list[Scenario]]]:
    out = []
    for lab, items in groupby(sorted(SCENARIOS, key=lambda s: (s.lab, s.index)), key=lambda s: s.lab):
        scs = list(items)
        out += [(f"{lab}-{i // CHUNK:02d}", scs[i : i + CHUNK]) for i in range(0, len(scs), CHUNK)]
    return out


CHUNKS = _chunks()


def test_the_generator_is_deterministic_and_big_enough() -> None:
    assert len(SCENARIOS) >= 300
    assert generate(SEED, COUNT) == SCENARIOS
    assert generate(SEED + 1, COUNT) != SCENARIOS
    assert {s.lab for s in SCENARIOS} == set(BASE_LABS)
    assert len({s.builder for s in SCENARIOS}) >= 20


@pytest.fixture(scope="module")
def labs() -> Iterator[dict[str, LabRun]]:
    """Each base lab, brought up on first use in this worker and down at the end, even on failure."""
    running: dict[str, LabRun] = {}

    class Pool(dict[str, LabRun]):
        def __missing__(self, key: str) -> LabRun:
            run = LabRun(BASE_LABS[key], unique_name())
            run.up()
            running[key] = self[key] = run
            return run

    try:
        yield Pool()
    finally:
        errors = []
        for run in running.values():
            try:
                run.down()
            except Exception as exc:
                errors.append(str(exc))
        assert not errors, errors


@pytest.mark.parametrize("chunk", [c for _, c in CHUNKS], ids=[name for name, _ in CHUNKS])
def test_explain_agrees_with_real_traffic(labs: dict[str, LabRun], chunk: list[Scenario]) -> None:
    run = labs[chunk[0].lab]
    results = [run.run_scenario(sc) for sc in chunk]
    problems = problem_lines(results)
    assert not problems, (
        f"{len(problems)} problems in {len(chunk)} scenarios on {run.lab.key}\n"
        "category | scenario | flow | problem | explain said\n"
        + "\n".join(problems)
        + "\n\n"
        + agreement_table(results)
    )


def _result(data: dict[str, object]) -> Result:
    fields = dict(data)
    fields["scenario"] = Scenario(**fields["scenario"])  # type: ignore[arg-type]
    fields["words"] = tuple(tuple(group) for group in fields["words"])  # type: ignore[attr-defined]
    return Result(**fields)  # type: ignore[arg-type]


@pytest.fixture
def private() -> Iterator[World]:
    yield from world()


def test_explain_agrees_on_a_root_host_in_a_private_world(private: World, lab_name: str) -> None:
    """Lab 2 fixed with ``host: root``: the same scenarios, where the bridge and the firewall are the root
    namespace's (a private world's, never the machine's)."""
    assert generate(SEED, ROOT_COUNT, ROOT_LABS) == generate(SEED, ROOT_COUNT, ROOT_LABS)
    done = private.run(sys.executable, str(INWORLD), str(SEED), str(ROOT_COUNT), lab_name, timeout=900)
    assert done.code == 0, done.text
    results = [_result(json.loads(line)) for line in done.out.splitlines() if line.startswith("{")]
    assert len(results) == ROOT_COUNT, done.text
    problems = problem_lines(results)
    assert not problems, (
        f"{len(problems)} problems in {len(results)} root-host scenarios\n"
        "category | scenario | flow | problem | explain said\n"
        + "\n".join(problems)
        + "\n\n"
        + agreement_table(results)
    )
