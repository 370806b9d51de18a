"""Benchmark: a recorded grid, run as a sequential loop of ``train()`` + ``Recorder`` vs ``hud run``'s batched runner.

The grid: 4 configurations (loss 'sse' or 'bce' x optimizer momentum (lr 0.05, 0.9) or Adam (lr
0.01)) x 8 seeds of the course's 2-10-10-1 tanh net on the 194 twin-spiral points, full batch,
2000 epochs, every epoch recorded (hidden layers, output, weights, norms, optimizer state).

Measured in one process, one after another, one torch thread each (ratios, not absolute times,
are the result; the machine may be shared):

1. sequential: ``for run in grid: train(..., callbacks=[Recorder(path)])``;
2. batched runner, in this process: ``run_experiment(..., workers=1)`` (one batch of 32 members,
   recorded by ``BatchRecorder`` and its writer process), ``--repeats`` times, first of all (the
   median counts: one run takes a few seconds, and this machine's speed drifts by 10-30 %);
3. process-parallel, not batched: ``run_experiment(..., workers=N, batched=False)``;
4. where the time goes: ``train_batched`` of the 32 members without recording.

(The runner does not split a 32-member batch over processes: on 2 cores that was measured
slower than one process, see ``models.runner.plan_jobs``.)

Run: ``python benchmarks/bench_grid.py`` (a few minutes; ``--epochs 300`` for a quick look).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from data.recording import format_bytes  # noqa: E402
from models import train  # noqa: E402
from models.batched import train_batched  # noqa: E402
from models.experiments import Experiment, parse_experiment  # noqa: E402
from models.recorder import Recorder  # noqa: E402
from models.runner import run_experiment  # noqa: E402

__all__ = ["experiment", "grid", "main"]


def grid(epochs: int = 2000, seeds: int = 8, schedule: str = "every") -> dict:
    """The benchmark's grid as an experiment file's contents (``schedule``: which epochs are recorded)."""
    return {
        "name": "bench-grid",
        "task": {"name": "spirals"},
        "network": {"hidden": [10, 10], "activation": "tanh"},
        "training": {"epochs": epochs},
        "record": {"schedule": schedule},
        "grid": {
            "loss": ["sse", "bce"],
            "optimizer": [{"name": "momentum", "lr": 0.05, "momentum": 0.9}, {"name": "adam", "lr": 0.01}],
            "seeds": seeds,
        },
    }


def experiment(epochs: int = 2000, seeds: int = 8, schedule: str = "every") -> Experiment:
    """The benchmark's grid as an experiment."""
    return parse_experiment(grid(epochs, seeds, schedule))


def _size(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.endswith(".h5"))


def _sequential(exp: Experiment, folder: str) -> float:
    os.makedirs(folder)
    t0 = time.perf_counter()
    for spec in exp.runs():
        recorder = Recorder(os.path.join(folder, spec.file), schedule=spec.record["schedule"], verbose=False)
        train(spec.network_config(), spec.load_task(), **spec.train_kwargs(), callbacks=[recorder], num_threads=1)
    return time.perf_counter() - t0


def _runner(exp: Experiment, folder: str, **kwargs) -> float:
    t0 = time.perf_counter()
    manifest = run_experiment(exp, folder, progress=False, **kwargs)
    seconds = time.perf_counter() - t0
    bad = [r["id"] for r in manifest["runs"] if r["status"] != "complete"]
    if bad:
        raise RuntimeError(f"runs did not complete: {bad[:3]}")
    return seconds


def _plain_batched(exp: Experiment) -> float:
    specs = exp.runs()
    members = [s.member_spec() for s in specs]
    t0 = time.perf_counter()
    train_batched(specs[0].network_config(), specs[0].load_task(), members, epochs=specs[0].epochs, num_threads=1)
    return time.perf_counter() - t0


def main(
    epochs: int = 2000,
    seeds: int = 8,
    workers: int | None = None,
    sequential: bool = True,
    schedule: str = "every",
    repeats: int = 3,
) -> dict:
    """Run every variant (the batched runner ``repeats`` times: its median); print the times and the
    ratios to the sequential loop; return the times."""
    torch.set_num_threads(1)
    workers = workers or os.cpu_count() or 1
    exp = experiment(epochs, seeds, schedule)
    n = len(exp.runs())
    tmp = tempfile.mkdtemp(prefix="hud-bench-grid-")
    times: dict[str, float] = {}
    print(
        f"{n} runs (sse/bce x momentum/adam x {seeds} seeds) of 2-10-10-1 tanh on spirals, full batch, {epochs} "
        f"epochs, recorded: {schedule!r}; {os.cpu_count()} cores, {workers} worker processes"
    )
    try:
        exp.runs()[0].load_task()  # build the task before timing
        runs = []
        for i in range(repeats):  # a few seconds each: the median tames this shared machine's noise
            runs.append(_runner(exp, os.path.join(tmp, f"batched{i}"), workers=1))
            size = _size(os.path.join(tmp, f"batched{i}"))
            shutil.rmtree(os.path.join(tmp, f"batched{i}"))
        times["batched runner, in process"] = statistics.median(runs)
        times[f"train() + Recorder, {workers} processes"] = _runner(
            exp, os.path.join(tmp, "parallel"), workers=workers, batched=False
        )
        times["train_batched, no recording"] = _plain_batched(exp)
        if sequential:
            times["sequential train() + Recorder"] = _sequential(exp, os.path.join(tmp, "sequential"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = times.get("sequential train() + Recorder")
    print(f"{'variant':<40} {'seconds':>9} {'run-epochs/s':>13} {'vs sequential':>14}")
    for name, seconds in times.items():
        ratio = f"{base / seconds:13.1f}x" if base else ""
        print(f"{name:<40} {seconds:9.2f} {n * epochs / seconds:13.0f} {ratio:>14}")
    recorded = times["batched runner, in process"]
    plain = times["train_batched, no recording"]
    print(f"batched runner, each run: {', '.join(f'{t:.2f}' for t in runs)} s (median above)")
    print(
        f"recordings: {format_bytes(size)} in all; in the batched runner, training takes {plain:.2f} s of "
        f"{recorded:.2f} s ({100 * plain / recorded:.0f} %), recording (copies, HDF5 writes, file creation) the rest"
    )
    return times


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: every core)")
    parser.add_argument("--no-sequential", action="store_true", help="skip the (slow) sequential loop")
    parser.add_argument("--schedule", default="every", help="recorded epochs: every (default), log, course, k")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the batched runner (its median counts)")
    args = parser.parse_args()
    main(
        args.epochs,
        args.seeds,
        args.workers,
        sequential=not args.no_sequential,
        schedule=args.schedule,
        repeats=args.repeats,
    )
