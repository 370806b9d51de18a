"""``hud demo``: the bundled comparison, SSE vs cross entropy and momentum vs Adam."""

from __future__ import annotations

import itertools

import pandas as pd
from tqdm.auto import tqdm

from data import load_task
from models import NetworkConfig, train

__all__ = ["run_demo", "DEMO_GRID"]

#: (task, network, epochs, {optimizer: lr}) of the demo
DEMO_GRID = [
    ("encoder", NetworkConfig(9, 9, (2,), init=0.001), 3000, {"momentum": 0.4, "adam": 0.02}),
    ("spirals", NetworkConfig(2, 1, (10,), architecture="polar"), 3000, {"momentum": 0.05, "adam": 0.01}),
]
DEMO_LOSSES = ("sse", "bce")


def run_demo(*, epochs: int | None = None, seeds: int = 2, progress: bool = True) -> pd.DataFrame:
    """Train every demo configuration and summarise it.

    Returns
    -------
    DataFrame
        One row per (task, loss, optimizer): mean final loss and accuracy over
        seeds, and how many seeds reached 100 % accuracy.
    """
    from data.errors import check_number

    seeds = int(check_number("seeds", seeds, low=1, high=100, integer=True))
    if epochs is not None:
        epochs = int(check_number("epochs", epochs, low=1, integer=True))
    runs = [
        (task, net, n, opt, lr, loss, seed)
        for task, net, n, opts in DEMO_GRID
        for (opt, lr), loss, seed in itertools.product(opts.items(), DEMO_LOSSES, range(seeds))
    ]
    rows = []
    tasks = {name: load_task(name) for name, *_ in DEMO_GRID}
    for task, net, n, opt, lr, loss, seed in tqdm(runs, disable=not progress, desc="hud demo", unit="run"):
        result = train(
            net, tasks[task], loss=loss, optimizer=opt, lr=lr, epochs=epochs or n, seed=seed, stop_accuracy=None
        )
        rows.append(
            {
                "task": task,
                "loss": loss,
                "optimizer": opt,
                "seed": seed,
                "final_loss": result.final["loss"],
                "accuracy": result.final["accuracy"],
                "solved": result.final["accuracy"] == 1.0,
            }
        )
    df = pd.DataFrame(rows)
    return df.groupby(["task", "loss", "optimizer"]).agg(
        final_loss=("final_loss", "mean"),
        accuracy=("accuracy", "mean"),
        solved=("solved", "sum"),
        seeds=("seed", "count"),
    )
