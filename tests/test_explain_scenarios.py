"""explain against real traffic on generated scenarios (tests/scenarios): the verdict equals the kernel's,
the failing step names the mutated object, the printed fix makes the traffic pass, nothing crashes.

At least 300 scenarios, the same for the same seed, run on base labs brought up once per worker; each
scenario mutates its lab by hand, measures, applies explain's fix, undoes everything and checks the lab is
back to its baseline. A failure prints one line per problem (category | scenario | flow | problem | what
explain said); ``tools/explain_agreement.py`` prints the agreement table by category.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby

import pytest

from scenarios.labs import BASE_LABS
from scenarios.report import agreement_table, problem_lines
from scenarios.runner import COUNT, SEED, LabRun, Scenario, generate

from conftest import unique_name

pytestmark = pytest.mark.kernel
CHUNK = 8
SCENARIOS = generate(SEED, COUNT)


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
