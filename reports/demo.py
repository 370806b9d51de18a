"""``hud demo``: train the bundled comparison, then write its reports.

SSE vs cross entropy (BCE) x momentum vs Adam, on the 9-2-9 encoder and on
the twin spirals (PolarNet), three seeds each.  Each experiment is run by
``hud run``'s engine (:func:`models.runner.run_experiment`: batched training in
worker processes, one recording per run and a manifest in ``runs/demo/<name>/``)
and reported with :func:`reports.build_report` into ``reports/demo/<name>/``.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from data.errors import ParameterError, check_number

__all__ = ["DEMO_EXPERIMENTS", "DemoResult", "run_demo", "demo_experiment"]

#: the demo's experiments, as ``hud run`` experiment documents (what a TOML file holds)
DEMO_EXPERIMENTS: tuple[dict[str, Any], ...] = (
    {
        "name": "encoder",
        "description": "9-2-9 encoder: SSE vs cross entropy (BCE), momentum vs Adam",
        "task": {"name": "encoder", "n": 9},
        "network": {"hidden": [2], "activation": "tanh", "init": 0.1},
        "training": {"epochs": 3000},
        "record": {"schedule": 10},
        "grid": {
            "loss": ["sse", "bce"],
            "optimizer": [{"name": "momentum", "lr": 0.2}, {"name": "adam", "lr": 0.02}],
            "seeds": 3,
        },
    },
    {
        "name": "spirals",
        "description": "Twin spirals, PolarNet 2-10-1: SSE vs cross entropy (BCE), momentum vs Adam",
        "task": {"name": "spirals"},
        "network": {"hidden": [10], "activation": "tanh", "architecture": "polar"},
        "training": {"epochs": 3000},
        "record": {"schedule": 10},
        "grid": {
            "loss": ["sse", "bce"],
            "optimizer": [{"name": "momentum", "lr": 0.05}, {"name": "adam", "lr": 0.01}],
            "seeds": 3,
        },
    },
)


@dataclass
class DemoResult:
    """What :func:`run_demo` did: the runs folders, the reports, and how long each part took (seconds)."""

    runs_dirs: list[str]
    reports: list[Any]
    train_seconds: float
    report_seconds: float

    @property
    def pdfs(self) -> list[str]:
        return [r.pdf for r in self.reports if r.pdf]


def demo_experiment(doc: Mapping[str, Any], *, epochs: int | None = None, seeds: int | None = None) -> Any:
    """A demo experiment document, with ``epochs`` and ``seeds`` overridden, validated by ``hud run``'s parser.

    Returns
    -------
    models.experiments.Experiment
    """
    from models.experiments import parse_experiment

    doc = copy.deepcopy(dict(doc))
    if epochs is not None:
        doc["training"]["epochs"] = int(epochs)
        doc["record"]["schedule"] = max(1, min(int(doc["record"].get("schedule", 1)), int(epochs) // 20 or 1))
    if seeds is not None:
        doc["grid"]["seeds"] = int(seeds)
    return parse_experiment(doc, source=f"demo:{doc['name']}")


def run_demo(
    *,
    runs_dir: str | os.PathLike = "runs/demo",
    out_dir: str | os.PathLike = "reports/demo",
    epochs: int | None = None,
    seeds: int | None = None,
    experiments: Sequence[Mapping[str, Any]] | None = None,
    formats: Sequence[str] | str = ("pdf", "png", "gif"),
    workers: int | None = None,
    progress: bool = True,
) -> DemoResult:
    """Train the bundled comparison and write one report per experiment.

    Parameters
    ----------
    runs_dir : str or PathLike
        Recordings go to ``runs_dir/<experiment>/`` (trained afresh: earlier
        recordings there are overwritten).
    out_dir : str or PathLike
        Reports go to ``out_dir/<experiment>/``.
    epochs : int, optional
        Epochs per run (default: each experiment's own, 3000).
    seeds : int, optional
        Seeds per configuration (default 3).
    experiments : sequence of dict, optional
        Experiment documents (default :data:`DEMO_EXPERIMENTS`).
    formats : sequence of str or str
        Passed to :func:`reports.build_report`.
    workers : int, optional
        Processes for training and for drawing (default: the CPU cores).
    progress : bool

    Returns
    -------
    DemoResult
    """
    from models.runner import run_experiment

    from .report import build_report

    if seeds is not None:
        seeds = int(check_number("seeds", seeds, low=1, high=100, integer=True))
    if epochs is not None:
        epochs = int(check_number("epochs", epochs, low=1, integer=True))
    if experiments is None:
        experiments = DEMO_EXPERIMENTS
    if not experiments:
        raise ParameterError("experiments must hold at least one experiment document; got none")
    parsed = [demo_experiment(doc, epochs=epochs, seeds=seeds) for doc in experiments]
    t0 = time.perf_counter()
    dirs = []
    for exp in parsed:
        folder = os.path.join(os.fspath(runs_dir), exp.name)
        run_experiment(exp, folder, workers=workers, force=True, progress=progress)
        dirs.append(folder)
    t1 = time.perf_counter()
    reports = [
        build_report(d, os.path.join(os.fspath(out_dir), exp.name), formats=formats, progress=progress, workers=workers)
        for exp, d in zip(parsed, dirs)
    ]
    return DemoResult(runs_dirs=dirs, reports=reports, train_seconds=t1 - t0, report_seconds=time.perf_counter() - t1)
