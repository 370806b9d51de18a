"""Benchmark: where the spirals recording overhead goes, on the training thread, this checkout vs another commit.

Each process trains the 2-10-10-1 tanh spirals net (2000 epochs, full batch) ``--rounds`` times without
and with a Recorder, in turns, and prints medians of the paired differences: wall overhead, the
training thread's CPU time (``getrusage(RUSAGE_THREAD)``), its time off the CPU (waiting, mostly for the
GIL the writer thread holds), and its voluntary context switches. With ``REF``, a worktree of that
commit runs the same in its own processes, alternating with this checkout (the machines here drift
by 15-30 % from hour to hour; see ``benchmarks/_ab.py``).

    python benchmarks/bench_recording_threads.py                     # this checkout, one process
    python benchmarks/bench_recording_threads.py 3367b14 --pairs 3   # interleaved with a commit
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._ab import ROOT, _worktree  # noqa: E402

__all__ = ["main"]

_CODE = """
import os, resource, statistics, sys, tempfile, time
from data import load_task
from models.networks import NetworkConfig
from models.recorder import Recorder
from models.training import train

task, cfg = load_task("spirals"), NetworkConfig(2, 1, (10, 10), activation="tanh")
folder = tempfile.mkdtemp()


def run(record):
    callbacks = [Recorder(os.path.join(folder, "s.h5"), overwrite=True, verbose=False)] if record else []
    r0, t0 = resource.getrusage(resource.RUSAGE_THREAD), time.perf_counter()
    train(cfg, task, loss="bce", optimizer="adam", lr=0.01, epochs=2000, callbacks=callbacks, seed=0)
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_THREAD)
    cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    return wall, cpu, r1.ru_nvcsw - r0.ru_nvcsw


run(True), run(False)  # warm up
pairs = [(run(False), run(True)) for _ in range(int(sys.argv[1]))]
med = statistics.median
print(
    med(r[0] / b[0] - 1 for b, r in pairs),
    med(r[1] - b[1] for b, r in pairs),
    med((r[0] - r[1]) - (b[0] - b[1]) for b, r in pairs),
    med(r[2] for b, r in pairs),
    med(b[0] for b, r in pairs),
)
"""


def _measure(checkout: str, rounds: int) -> str:
    env = {**os.environ, "PYTHONPATH": checkout}
    done = subprocess.run(
        [sys.executable, "-c", _CODE, str(rounds)], cwd=checkout, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"the measurement failed in {checkout}:\n{done.stderr[-2000:]}")
    wall, cpu, off, csw, base = map(float, done.stdout.split()[-5:])
    return (
        f"wall {wall:+.1%}, training thread: CPU {cpu * 1e3:+.0f} ms, off the CPU {off * 1e3:+.0f} ms, "
        f"{csw:.0f} voluntary context switches (train only: {base:.3f} s)"
    )


def main(argv: list[str] | None = None) -> None:
    """Print the medians for this checkout (and ``REF``, alternating) ``--pairs`` times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", nargs="?", help="a commit to compare with")
    parser.add_argument("--pairs", type=int, default=1, help="processes of each version")
    parser.add_argument("--rounds", type=int, default=7, help="paired runs in each process")
    args = parser.parse_args(argv)
    if args.ref is None:
        for _ in range(args.pairs):
            print(f"this checkout: {_measure(str(ROOT), args.rounds)}", flush=True)
        return
    with tempfile.TemporaryDirectory() as scratch, _worktree(args.ref, scratch) as other:
        for _ in range(args.pairs):
            print(f"{args.ref}: {_measure(other, args.rounds)}", flush=True)
            print(f"this checkout: {_measure(str(ROOT), args.rounds)}", flush=True)


if __name__ == "__main__":
    main()
