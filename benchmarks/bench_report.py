"""Report benchmarks (issue 7): the time of each stage of ``reports run`` from scratch, and of a
second run with nothing changed (every stage reused).

    python benchmarks/bench_report.py [--name bench-report] [--keep]

Prints JSON: ``stages`` (seconds per stage as recorded in each ``stage.json``), ``first_run_s``,
``second_run_s`` and whether the targets hold (pipeline under 8 minutes of compute, second run
under 30 s). Installation time is not included (see ``make report``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time

from benchmarks.common import ROOT, emit, run_cli


def timed_run(name: str) -> float:
    t0 = time.perf_counter()
    run_cli("reports", "run", "--name", name, "--quiet")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="bench-report", help="run name under runs/")
    parser.add_argument("--keep", action="store_true", help="reuse an existing run folder")
    args = parser.parse_args()
    run_dir = ROOT / "runs" / args.name
    if run_dir.exists() and not args.keep:
        shutil.rmtree(run_dir)
    first = timed_run(args.name)
    second = timed_run(args.name)
    stages = {
        p.parent.name: json.loads(p.read_text())["seconds"]
        for p in sorted(run_dir.glob("*/stage.json"))
    }
    emit(
        {
            "stages_s": stages,
            "first_run_s": round(first, 1),
            "second_run_s": round(second, 1),
            "first_run_under_8_min": first < 480,
            "second_run_under_30_s": second < 30,
        }
    )


if __name__ == "__main__":
    main()
