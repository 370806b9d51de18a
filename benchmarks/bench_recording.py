"""Recording overhead, measured as ratios in one run (the machine is shared and noisy).

1. ``spirals``: a 2-10-10-1 tanh net on the 194-point twin spirals, full batch, 2000 epochs:
   training alone vs training with a Recorder recording every epoch (goal: at most +10 %).
2. ``mnist``: a 784-256-128-10 MLP on 60,000 MNIST-size random samples, batch 128, with a
   10,000-sample probe set recorded every epoch (goal: at most +5 % of an epoch).

Each variant runs ``--repeats`` times, interleaved; the ratio of the medians is printed.

    python benchmarks/bench_recording.py spirals
    python benchmarks/bench_recording.py mnist --epochs 5
    python benchmarks/bench_recording.py mnist --epochs 4 --device cuda   # on a machine with a GPU

For ``mnist`` it also prints the median length of the epochs after the first, with and without
recording: the cost of each epoch of a longer run, without the file's creation and closing
(which a 3-epoch run spreads over 3 epochs only).
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from data import load_task  # noqa: E402
from data.tasks import Task, _make  # noqa: E402
from models import Callback, NetworkConfig, train  # noqa: E402
from models.recorder import Recorder  # noqa: E402


def _tmp() -> str:
    """A temporary folder for the recordings, removed when the benchmark ends."""
    tmp = tempfile.mkdtemp(prefix="hud-bench-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    return tmp


def _time(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, every thread) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def _compare(variants: dict, repeats: int) -> dict[str, list[tuple[float, float]]]:
    """Run every variant ``repeats`` times, interleaved, rotating the order each round."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(_time(variants[name]))
    return times


def _overhead(ts: list[float], base: list[float], *, ci: bool = False) -> str:
    """Median of the paired ratios to the baseline, as a percentage, with quartiles (or, if ``ci``, a 95 %
    bootstrap confidence interval of that median: 10,000 resamples of the pairs, seeded)."""
    ratios = np.sort(np.asarray(ts) / np.asarray(base))
    if ci:
        rng = np.random.default_rng(0)
        medians = np.median(rng.choice(ratios, size=(10_000, len(ratios))), axis=1)
        lo, hi = np.percentile(medians, [2.5, 97.5])
    else:
        lo, hi = np.percentile(ratios, [25, 75])
    return f"{100 * (statistics.median(ratios) - 1):+6.1f}% [{100 * (lo - 1):+.1f}%, {100 * (hi - 1):+.1f}%]"


def _report(times: dict[str, list[tuple[float, float]]], per: str, n: int) -> None:
    """Each variant against 'train only' of the same round (paired ratios cancel the machine's drift).

    Wall time is what a user waits; CPU time (this process, the writer thread included) is less
    sensitive to other jobs on the machine, so both are printed.
    """
    wall = {name: [w for w, _ in ts] for name, ts in times.items()}
    cpu = {name: [c for _, c in ts] for name, ts in times.items()}
    print(
        f"{'variant':<30} {'median s':>9} {per:>10}  {'wall overhead [quartiles]':<28} "
        f"{'[95% CI of the median]':<24} {'CPU overhead [quartiles]':<28}"
    )
    for name in times:
        med = statistics.median(wall[name])
        base = wall["train only"]
        print(
            f"{name:<30} {med:9.3f} {n / med:10.3g}  {_overhead(wall[name], base):<28} "
            f"{_overhead(wall[name], base, ci=True).split('% ', 1)[1]:<24} "
            f"{_overhead(cpu[name], cpu['train only']):<28}"
        )
    print(
        "(overhead: median of the paired ratios to 'train only' of the same round, with quartiles, and a 95 % "
        "bootstrap confidence interval of that median)"
    )


def bench_spirals(args: argparse.Namespace) -> None:
    task = load_task("spirals")
    cfg = NetworkConfig(2, 1, (10, 10), activation="tanh")
    tmp = _tmp()

    def run(**rec_kwargs):
        def go():
            cbs = []
            if rec_kwargs is not None and rec_kwargs.get("record", True):
                kw = {k: v for k, v in rec_kwargs.items() if k != "record"}
                cbs = [Recorder(os.path.join(tmp, "spirals.h5"), overwrite=True, verbose=False, **kw)]
            train(
                cfg,
                task,
                loss="bce",
                optimizer="adam",
                lr=0.01,
                epochs=args.epochs,
                callbacks=cbs,
                seed=0,
                device=args.device,
            )

        return go

    variants = {"train only": run(record=False), "record every epoch (default)": run()}
    if args.all:
        variants["record, commit every epoch"] = run(commit_every=0.0)
        variants["record, lzf"] = run(compression="lzf")
        variants["record, gzip"] = run(compression="gzip")
    run()()  # warm up
    run(record=False)()
    times = _compare(variants, args.repeats)
    print(
        f"spirals 2-10-10-1 tanh, 194 points, full batch, {args.epochs} epochs, torch threads "
        f"{torch.get_num_threads()} (train() uses 1 for small nets), {args.repeats} repeats, device {args.device}"
    )
    _report(times, "epochs/s", args.epochs + 1)


def _mnist_like(n: int, seed: int) -> Task:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n)
    t = np.zeros((n, 10), np.float32)
    t[np.arange(n), y] = 1
    return _make("mnist-like", "multiclass", x, t, y, {"n": n, "seed": seed})


class _EpochClock(Callback):
    """The time at the end of each epoch (after the callbacks before it, e.g. a Recorder's probe pass)."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_epoch_end(self, state) -> None:
        self.ends.append(time.perf_counter())


def _thread_cpu(native_id: int) -> float:
    """CPU seconds (user + system) of the thread ``native_id`` of this process (Linux: /proc)."""
    with open(f"/proc/self/task/{native_id}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _CostedRecorder(Recorder):
    """A Recorder that also measures, each epoch, its own time on the training thread (the probe pass, the
    copy into the block buffer, the hand-off: ``on_epoch_end``) and the CPU time of its writer thread."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.costs: list[tuple[float, float]] = []  # (training-thread seconds, writer CPU seconds so far)

    def on_epoch_end(self, state) -> None:
        t0 = time.perf_counter()
        super().on_epoch_end(state)
        spent = time.perf_counter() - t0
        writer = self._writer._thread.native_id if self._writer is not None else None
        self.costs.append((spent, _thread_cpu(writer) if writer and os.path.exists("/proc/self/task") else 0.0))


def bench_mnist(args: argparse.Namespace) -> None:
    task = _mnist_like(60_000, 0)
    probe = _mnist_like(10_000, 1).probe
    cfg = NetworkConfig(784, 10, (256, 128), activation="relu")
    tmp = _tmp()
    epochs: dict[bool, list[np.ndarray]] = {False: [], True: []}  # each run's epoch lengths (after the first)
    costs: list[np.ndarray] = []  # per epoch after the first: (recorder on the training thread, writer CPU) / epoch

    def run(record: bool, **kw):
        def go():
            clock = _EpochClock()
            recorder = (_CostedRecorder if record and not kw else Recorder)(
                os.path.join(tmp, "mnist.h5"), probe=probe, overwrite=True, verbose=False, **kw
            )
            cbs = [recorder] if record else []
            cbs.append(clock)
            train(
                cfg,
                task,
                loss="softmax",
                optimizer="adam",
                lr=1e-3,
                epochs=args.epochs,
                batch_size=128,
                callbacks=cbs,
                seed=0,
                device=args.device,
            )
            if not kw:
                lengths = np.diff(clock.ends[1:])
                epochs[record].append(lengths)
                if record:
                    spent, cpu = np.asarray(recorder.costs).T  # epochs 0..N
                    costs.append(np.stack([spent[2:], np.diff(cpu[1:])], axis=1) / lengths[:, None])

        return go

    variants = {"train only": run(False), "record every epoch (default)": run(True)}
    if args.all:
        variants["record, lzf"] = run(True, compression="lzf")
    times = _compare(variants, args.repeats)
    print(
        f"MNIST-size 784-256-128-10 relu, 60,000 samples, batch 128, probe 10,000, {args.epochs} epochs, "
        f"torch threads {torch.get_num_threads()}, {args.repeats} repeats, device {args.device}"
    )
    _report(times, "epochs/s", args.epochs)
    print(
        f"per epoch, epochs 2-{args.epochs} (file creation, epoch 0 and the first write excluded): train only "
        f"{np.median(epochs[False]):.3f} s, recording {np.median(epochs[True]):.3f} s"
    )
    # epoch k of a run with recording against epoch k of the run without it in the same round: one seed, so
    # the same trajectory (epochs here slow down from 1.3 s to 2.7 s as subnormal floats appear; see docs)
    rec, base = np.concatenate(epochs[True]), np.concatenate(epochs[False])
    print(
        f"epoch k recorded / epoch k not, paired ({len(rec)} pairs): {_overhead(rec, base)} (quartiles), "
        f"95% CI of the median {_overhead(rec, base, ci=True).split('% ', 1)[1]}"
    )
    # the same cost counted rather than timed against another run (the machine drifts 15 % between runs):
    # the Recorder's time on the training thread, plus its writer thread's CPU time, which takes a core
    # from training's two threads (counted twice: the other thread may wait for the one it displaced)
    c = np.concatenate(costs)
    on, writer = np.median(c, axis=0)
    print(
        f"counted, per epoch after the first ({len(c)} epochs, medians, % of the epoch): Recorder on the training "
        f"thread {100 * on:.1f}%, writer thread CPU {100 * writer:.1f}%; cost at most "
        f"{100 * np.median(c[:, 0] + 2 * c[:, 1]):.1f}% (writer counted twice)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["spirals", "mnist"])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--all", action="store_true", help="also time commit-every-epoch and compression")
    parser.add_argument("--device", default="cpu", help="train() on this device, e.g. cuda (default cpu)")
    args = parser.parse_args(argv)
    if args.which == "spirals":
        args.epochs = args.epochs or 2000
        bench_spirals(args)
    else:
        args.epochs = args.epochs or 3
        bench_mnist(args)


if __name__ == "__main__":
    main()
