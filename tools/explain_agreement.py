"""Print explain's agreement with real traffic on the generated scenarios (tests/scenarios), by category.

Run as root: python tools/explain_agreement.py [--seed N] [--count N] [--labs lab1,lab2,...]
Each base lab is brought up once under a unique name, every scenario of it is run (mutate by hand, send
real traffic, explain, apply the fix, undo), and the lab is brought down. The table is the one in
docs/explain.md; the failing categories follow it, with one example each.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from itertools import groupby
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from scenarios.labs import BASE_LABS
from scenarios.report import agreement_table, failing_categories
from scenarios.runner import COUNT, SEED, LabRun, Result, generate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--count", type=int, default=COUNT)
    parser.add_argument("--labs", default=",".join(sorted(BASE_LABS)), help="base labs to run (comma-separated)")
    args = parser.parse_args()
    wanted = set(args.labs.split(","))
    scenarios = [s for s in generate(args.seed, args.count) if s.lab in wanted]
    results: list[Result] = []
    started = time.monotonic()
    for key, items in groupby(sorted(scenarios, key=lambda s: (s.lab, s.index)), key=lambda s: s.lab):
        run = LabRun(BASE_LABS[key], f"agree{os.getpid() % 10000}{key}"[:15])
        run.up()
        try:
            for sc in items:
                results.append(run.run_scenario(sc))
        finally:
            run.down()
    print(f"{len(results)} scenarios (seed {args.seed}) in {time.monotonic() - started:.0f} s\n")
    print(agreement_table(results))
    failing = failing_categories(results)
    if failing:
        print("\n" + failing)
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
