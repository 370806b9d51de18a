"""Benchmark: one PCA basis over 2000 epochs x 194 samples x 20 units, every epoch projected.

Target (issue 5): under 1 s for fit + transform + explained variance per epoch.
Run: ``python benchmarks/bench_pca.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.pca import TrajectoryPCA  # noqa: E402

__all__ = ["main"]


def _activations(n_epochs: int = 2000, n_samples: int = 194, n_units: int = 20, seed: int = 0) -> np.ndarray:
    """tanh activations drifting over epochs, float32 like a recording's."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_samples, 2))
    w = rng.normal(size=(n_epochs, 2, n_units)).cumsum(axis=0) * 0.05
    return np.tanh(np.einsum("si,eiu->esu", x, w)).astype(np.float32)


def main(repeats: int = 5) -> float:
    """Time the pooled fit, the projection of every epoch and the per-epoch variance; print and return the best."""
    acts = _activations()
    times = {"fit": [], "transform": [], "explained_variance_by_epoch": [], "total": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        pca = TrajectoryPCA(2).fit(acts, basis="pooled")
        t1 = time.perf_counter()
        pca.transform(acts)
        t2 = time.perf_counter()
        pca.explained_variance_by_epoch(acts)
        t3 = time.perf_counter()
        for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            times[key].append(value)
    print(f"PCA over {acts.shape} (n_epochs, n_samples, n_units) float32, best of {repeats}:")
    for key, values in times.items():
        print(f"  {key:<28s} {min(values) * 1e3:8.1f} ms")
    # the incremental path, forced by a small memory budget
    t0 = time.perf_counter()
    TrajectoryPCA(2, memory_budget=16 * 2**20).fit(acts)
    print(f"  {'fit (IncrementalPCA, 16 MiB)':<28s} {(time.perf_counter() - t0) * 1e3:8.1f} ms")
    best = min(times["total"])
    print(f"target < 1000 ms: {'met' if best < 1.0 else 'NOT met'}")
    return best


if __name__ == "__main__":
    main()
