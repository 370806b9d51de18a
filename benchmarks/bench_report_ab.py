"""Benchmark: ``hud report`` of this checkout against another commit, interleaved on the same recordings.

The two versions build the report of the same 4 x 8 grid (``bench_report.GRID``) in turns, each
in a fresh process, and the paired ratios are printed (see ``benchmarks/_ab.py``).
Run: ``python benchmarks/bench_report_ab.py REF [--pairs 3]`` (REF: a commit, e.g. c91aa3c).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._ab import compare  # noqa: E402
from benchmarks.bench_report import GRID  # noqa: E402
from models.experiments import parse_experiment  # noqa: E402
from models.runner import run_experiment  # noqa: E402

__all__ = ["main"]

_TIMED = """
import sys, time
import matplotlib
matplotlib.use("Agg")
from reports import build_report
t = time.perf_counter()
build_report(sys.argv[1], sys.argv[2], progress=False)
"""


def main(argv: list[str] | None = None) -> list[float]:
    """Print each pair's times and the ratios other / this; return the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="the commit to compare with")
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args(argv)
    return compare(
        args.ref,
        args.pairs,
        _TIMED,
        lambda scratch, who, k: [os.path.join(scratch, "runs"), os.path.join(scratch, f"{who}-{k}")],
        setup=lambda scratch: run_experiment(
            parse_experiment(GRID), os.path.join(scratch, "runs"), force=True, progress=False
        ),
    )


if __name__ == "__main__":
    main()
