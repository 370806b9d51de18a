"""Benchmark: 32 small runs trained one after another with ``train()`` vs together with ``train_batched()``.

The runs: 4 configurations (loss 'sse' or 'bce' x optimizer 'momentum' or 'adam') x 8 seeds of the
course's 2-10-10-1 tanh net on the 194 twin-spiral points, full batch, 2000 epochs, no recording.
Both sides use one torch thread.  Each side runs ``--repeats`` times (the machine is shared and
noisy); the best time of each is reported, and their ratio.  A second, short measurement times one
forward + backward pass of the 32 members as batched matrix products vs ``torch.func.vmap``.

Run: ``python benchmarks/bench_batched.py`` (about 3 minutes; ``--epochs 200`` for a quick look).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data import load_task  # noqa: E402
from models import NetworkConfig, build_network, train  # noqa: E402
from models.batched import MemberSpec, _Batch, _resolve_members, train_batched  # noqa: E402

__all__ = ["main", "members"]

CONFIG = NetworkConfig(2, 1, (10, 10), activation="tanh")
OPTIMIZERS = {"momentum": {"lr": 0.05, "optimizer_options": {"momentum": 0.9}}, "adam": {"lr": 0.01}}


def members(n_seeds: int = 8) -> list[MemberSpec]:
    """The runs: loss x optimizer x seed."""
    return [
        MemberSpec(loss=loss, optimizer=name, seed=seed, **settings)
        for loss in ("sse", "bce")
        for name, settings in OPTIMIZERS.items()
        for seed in range(n_seeds)
    ]


def _sequential(task, specs, epochs: int) -> float:
    t0 = time.perf_counter()
    for s in specs:
        train(
            CONFIG,
            task,
            loss=s.loss,
            optimizer=s.optimizer,
            lr=s.lr,
            optimizer_options=s.optimizer_options,
            seed=s.seed,
            epochs=epochs,
            num_threads=1,
        )
    return time.perf_counter() - t0


def _batched(task, specs, epochs: int) -> float:
    t0 = time.perf_counter()
    train_batched(CONFIG, task, specs, epochs=epochs, num_threads=1)
    return time.perf_counter() - t0


def forward_backward(task, specs, iterations: int = 200) -> dict[str, float]:
    """Seconds per forward + backward pass of all members: batched products vs torch.func.vmap."""
    from torch.func import functional_call, vmap

    batch = _Batch(CONFIG, task, _resolve_members(specs, task, []), torch.device("cpu"))
    template = build_network(CONFIG)
    names = [s.name for s in batch.slots]
    shapes = [s.shape for s in batch.slots]
    m = batch.n

    def batched() -> None:
        logits, _ = batch.forward(batch.flat, batch.xT)
        batch.backward(batch.data_losses(logits, batch.tT))

    def vmapped() -> None:
        parts = torch.split(batch.flat, batch.numels, dim=1)
        params = {n: p.view(m, *s) for n, p, s in zip(names, parts, shapes)}
        logits = vmap(lambda p, x: functional_call(template, p, (x,)), in_dims=(0, None))(params, batch.x)
        data = F.binary_cross_entropy_with_logits(logits, batch.t.expand_as(logits), reduction="none").sum((1, 2))
        torch.autograd.grad((data / batch.x.shape[0]).sum(), batch.flat)

    out = {}
    for name, fn in (("batched matmul", batched), ("torch.func.vmap", vmapped)):
        fn()
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(iterations):
                fn()
            best = min(best, (time.perf_counter() - t0) / iterations)
        out[name] = best
    return out


def main(epochs: int = 2000, n_seeds: int = 8, repeats: int = 2) -> float:
    """Time both sides ``repeats`` times, print the best of each and the ratio; return the ratio."""
    torch.set_num_threads(1)
    task = load_task("spirals")
    specs = members(n_seeds)
    print(
        f"{len(specs)} runs (sse/bce x momentum/adam x {n_seeds} seeds) of {CONFIG.n_inputs}-"
        f"{'-'.join(map(str, CONFIG.hidden))}-{CONFIG.n_outputs} {CONFIG.activation} on spirals "
        f"({task.n_samples} samples), full batch, {epochs} epochs, torch threads = 1, best of {repeats}:"
    )
    seq = min(_sequential(task, specs, epochs) for _ in range(repeats))
    bat = min(_batched(task, specs, epochs) for _ in range(repeats))
    runs_epochs = len(specs) * epochs
    print(f"  sequential train() loop   {seq:8.2f} s  ({runs_epochs / seq:8.0f} run-epochs/s)")
    print(f"  train_batched()           {bat:8.2f} s  ({runs_epochs / bat:8.0f} run-epochs/s)")
    print(f"  speed-up                  {seq / bat:8.1f} x")
    fb = forward_backward(task, specs)
    print(f"one forward + backward pass of the {len(specs)} members:")
    for name, seconds in fb.items():
        print(f"  {name:<25s} {seconds * 1e3:8.3f} ms")
    return seq / bat


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    main(args.epochs, args.seeds, args.repeats)
