"""Benchmark: ``hud report`` of this checkout against another commit, interleaved on the same recordings.

The machines here drift by 15-30 % from hour to hour, so a speed-up is measured in pairs: the
two versions build the report of the same 4 x 8 grid (``bench_report.GRID``) in turns, each in
a fresh process, and the paired ratios are printed.
Run: ``python benchmarks/bench_report_ab.py REF [--pairs 3]`` (REF: a commit, e.g. c91aa3c).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_report import GRID  # noqa: E402
from models.experiments import parse_experiment  # noqa: E402
from models.runner import run_experiment  # noqa: E402

__all__ = ["main"]

_TIMED = """
import resource, sys, time
import matplotlib
matplotlib.use("Agg")
from reports import build_report
t = time.perf_counter()
build_report(sys.argv[1], sys.argv[2], progress=False)
own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(time.perf_counter() - t, own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime)
"""


def _time(checkout: str, runs: str, out: str) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": checkout}
    done = subprocess.run(
        [sys.executable, "-c", _TIMED, runs, out], cwd=checkout, env=env, capture_output=True, text=True, check=True
    )
    wall, cpu = map(float, done.stdout.split()[-2:])
    return wall, cpu


def main(argv: list[str] | None = None) -> list[float]:
    """Print each pair's times and the ratios other / this; return the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="the commit to compare with")
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        other = os.path.join(scratch, "other")
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", other, args.ref], check=True)
        try:
            runs = os.path.join(scratch, "runs")
            run_experiment(parse_experiment(GRID), runs, force=True, progress=False)
            ratios = []
            for k in range(args.pairs):
                w_other, c_other = _time(other, runs, os.path.join(scratch, f"other-{k}"))
                w_this, c_this = _time(str(ROOT), runs, os.path.join(scratch, f"this-{k}"))
                ratios.append(w_other / w_this)
                print(
                    f"pair {k + 1}: {args.ref} {w_other:.1f} s ({c_other:.0f} s CPU), "
                    f"this checkout {w_this:.1f} s ({c_this:.0f} s CPU), ratio {ratios[-1]:.2f}"
                )
            print(f"median ratio {args.ref} / this: {statistics.median(ratios):.2f} over {args.pairs} pairs")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", other], check=False)
    return ratios


if __name__ == "__main__":
    main()
