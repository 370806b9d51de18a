"""Benchmark: ``hud report`` of a 4-config x 8-seed grid (2 losses x 2 optimizers, twin spirals, PolarNet 2-10-1).

Target (issue 6): the whole report (PDF, PNGs, CSVs, GIFs) in at most 30 s.
The recordings are made first with ``hud run``'s engine (not timed): 32 runs of 600 epochs, recorded every 5.
Run: ``python benchmarks/bench_report.py [--repeats N] [--keep DIR] [--workers N] [--format pdf,png,gif]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.experiments import parse_experiment  # noqa: E402
from models.runner import run_experiment  # noqa: E402

__all__ = ["main", "GRID"]

#: 2 losses x 2 optimizers x 8 seeds of the PolarNet 2-10-1 on the twin spirals
GRID = {
    "name": "bench",
    "description": "benchmark grid: twin spirals, PolarNet 2-10-1, sse/bce x momentum/adam x 8 seeds",
    "task": {"name": "spirals"},
    "network": {"hidden": [10], "activation": "tanh", "architecture": "polar"},
    "training": {"epochs": 600},
    "record": {"schedule": 5},
    "grid": {
        "loss": ["sse", "bce"],
        "optimizer": [{"name": "momentum", "lr": 0.05}, {"name": "adam", "lr": 0.01}],
        "seeds": 8,
    },
}


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the report's worker processes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> float:
    """Make the recordings, time ``build_report`` on them ``--repeats`` times, print each and the median."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", metavar="DIR", help="keep the runs and the report in DIR")
    parser.add_argument("--workers", type=int, default=None, help="drawing processes (default: the cores)")
    parser.add_argument("--format", default="pdf,png,gif", help="what the report writes (default: pdf,png,gif)")
    parser.add_argument("--repeats", type=int, default=1, help="reports to time, one after the other (default: 1)")
    args = parser.parse_args(argv)
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or scratch
        runs = os.path.join(root, "runs", "bench")
        t0 = time.perf_counter()
        run_experiment(parse_experiment(GRID), runs, force=True, progress=False)
        t1 = time.perf_counter()
        print(f"recordings: 32 runs x {GRID['training']['epochs']} epochs made in {t1 - t0:.1f} s (not timed)")
        from reports import build_report

        for k in range(args.repeats):
            out = os.path.join(root, "reports", f"bench-{k}" if k else "bench")
            t2, c2 = time.perf_counter(), _cpu()
            result = build_report(runs, out, formats=args.format, progress=False, workers=args.workers)
            t3, c3 = time.perf_counter(), _cpu()
            walls.append(t3 - t2)
            cpus.append(c3 - c2)
            print(
                f"hud report, 4 configs x 8 seeds ({args.format}): {t3 - t2:.1f} s wall (target <= 30 s), "
                f"{c3 - c2:.0f} s CPU; {len(result.pages)} pages, {len(result.gifs)} GIFs, {os.cpu_count()} CPU cores"
            )
    if args.repeats > 1:
        print(
            f"median of {args.repeats}: {statistics.median(walls):.1f} s wall (min {min(walls):.1f}, "
            f"max {max(walls):.1f}), {statistics.median(cpus):.0f} s CPU"
        )
    return statistics.median(walls)


if __name__ == "__main__":
    main()
