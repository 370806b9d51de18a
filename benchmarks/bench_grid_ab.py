"""Benchmark: ``hud run``'s batched runner of this checkout against another commit, interleaved.

Both versions run ``bench_grid``'s recorded grid (4 configurations x 8 seeds of the 2-10-10-1
spiral net, 2000 epochs, every epoch recorded: 1.2 GB) in one process (``workers=1``), in turns,
each in a fresh process; the paired ratios are printed (see ``benchmarks/_ab.py``).
Run: ``python benchmarks/bench_grid_ab.py REF [--pairs 5] [--epochs 2000]`` (about 25 s a pair).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._ab import compare  # noqa: E402
from benchmarks.bench_grid import grid  # noqa: E402

__all__ = ["main"]

_TIMED = """
import json, sys, time
import torch
from models.experiments import parse_experiment
from models.runner import run_experiment
torch.set_num_threads(1)
exp = parse_experiment(json.loads(sys.argv[1]))
exp.runs()[0].load_task()
t = time.perf_counter()
manifest = run_experiment(exp, sys.argv[2], workers=1, progress=False)
assert all(r["status"] == "complete" for r in manifest["runs"])
"""


def main(argv: list[str] | None = None) -> list[float]:
    """Print each pair's times and the ratios other / this; return the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="the commit to compare with")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2000)
    args = parser.parse_args(argv)
    spec = json.dumps(grid(args.epochs))
    return compare(args.ref, args.pairs, _TIMED, lambda scratch, who, k: [spec, os.path.join(scratch, f"{who}-{k}")])


if __name__ == "__main__":
    main()
