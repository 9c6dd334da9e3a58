"""Run the scenarios of a ``host: root`` base lab where it lives: inside a private world, as its root.

Started by the test inside the world (``python tests/scenarios/inworld.py SEED COUNT``): it names the
world's root namespace (``ip netns attach``) so that commands reach it like a node's, brings the lab up,
runs the scenarios, brings it down, and prints one JSON object per scenario result on stdout.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scenarios.labs import ROOT_HANDLE, ROOT_LABS
from scenarios.runner import LabRun, generate


def main() -> None:
    seed, count, name = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    subprocess.run(["ip", "netns", "attach", ROOT_HANDLE, "1"], check=True)
    try:
        for key, lab in sorted(ROOT_LABS.items()):
            run = LabRun(lab, name)
            run.up()
            try:
                for sc in generate(seed, count, {key: lab}):
                    result = run.run_scenario(sc)
                    print(json.dumps(dataclasses.asdict(result)), flush=True)
            finally:
                run.down()
    finally:
        subprocess.run(["ip", "netns", "delete", ROOT_HANDLE], check=False)


if __name__ == "__main__":
    main()
