"""Fixtures for report tests: small runs folders in the format ``hud run`` writes.

:func:`make_runs` trains a few tiny runs with ``models.train`` and a
``Recorder`` and writes a ``manifest.json`` next to them (the runs-folder
contract of ``hud run``), optionally with a run that diverged, one that was
interrupted, and one that the manifest lists but that never started.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

import pytest

from data import load_task
from models import NetworkConfig, train
from models.recorder import Recorder

XOR_NET = NetworkConfig(2, 1, (2,), activation="tanh")
OPTIMIZERS = {"momentum": 0.5, "adam": 0.05}
LOSSES = ("sse", "bce")


def make_runs(
    folder: str | os.PathLike,
    *,
    task: str = "xor",
    network: NetworkConfig = XOR_NET,
    losses: Iterable[str] = LOSSES,
    optimizers: dict[str, float] | None = None,
    seeds: int = 2,
    epochs: int = 40,
    schedule: int | str = 1,
    manifest: bool = True,
    extras: bool = False,
    name: str = "tiny",
) -> str:
    """Train every (loss, optimizer, seed) into ``folder`` and write its manifest.

    With ``extras``: a diverged run (bce, adam, seed 9: a relu net at a huge
    learning rate), an interrupted one (sse, momentum, seed 8: recorded by
    hand, closed as interrupted after 10 epochs) and a missing one (sse, adam,
    seed 7: in the manifest, no file).
    """
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    optimizers = dict(optimizers or OPTIMIZERS)
    data = load_task(task)
    runs = []
    for loss in losses:
        for opt, lr in optimizers.items():
            for seed in range(seeds):
                run_id = f"{loss}-{opt}-s{seed}"
                path = os.path.join(folder, f"{run_id}.h5")
                result = train(
                    network,
                    data,
                    loss=loss,
                    optimizer=opt,
                    lr=lr,
                    epochs=epochs,
                    seed=seed,
                    callbacks=[Recorder(path, schedule=schedule, verbose=False)],
                )
                runs.append(_entry(run_id, loss, opt, seed, result.status))
    if extras:
        runs += _extra_runs(folder, data, epochs)
    if manifest:
        doc = {
            "format": "hud-experiment",
            "format_version": 1,
            "name": name,
            "hud_version": "test",
            "experiment": {"description": f"{task}: sse vs bce, momentum vs adam (test fixture)"},
            "axes": {"loss": list(losses), "optimizer": list(optimizers), "seed": list(range(seeds))},
            "runs": runs,
        }
        with open(os.path.join(folder, "manifest.json"), "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
    return folder


def _entry(run_id: str, loss: str, opt: str, seed: int, status: str) -> dict:
    return {
        "id": run_id,
        "file": f"{run_id}.h5",
        "cell": {"loss": loss, "optimizer": opt},
        "seed": seed,
        "status": status,
        "final": None,
    }


def _extra_runs(folder: str, data, epochs: int) -> list[dict]:
    out = []
    path = os.path.join(folder, "bce-adam-s9.h5")
    result = train(
        NetworkConfig(2, 1, (2,), activation="relu"),
        data,
        loss="bce",
        optimizer="momentum",
        lr=1e38,
        epochs=epochs,
        seed=9,
        callbacks=[Recorder(path, verbose=False)],
    )
    assert result.status == "diverged"
    out.append(_entry("bce-adam-s9", "bce", "adam", 9, "complete"))  # a stale manifest: the file says diverged
    path = os.path.join(folder, "sse-momentum-s8.h5")
    net = XOR_NET
    from models import build_network, get_loss

    model = build_network(net, seed=8)
    loss = get_loss("sse")
    import torch

    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    x, t = torch.tensor(data.inputs), torch.tensor(data.targets)
    with Recorder(
        path,
        probe=data,
        epochs=epochs,
        verbose=False,
        config={
            "task": {"name": data.name},
            "network": net.to_dict(),
            "loss": loss.to_dict(),
            "optimizer": {"name": "momentum", "lr": 0.5},
            "training": {"epochs": epochs},
        },
    ) as rec:
        for epoch in range(11):
            opt.zero_grad()
            value = loss(model(x), t)
            rec.record(model, epoch, metrics={"loss": value.item(), "accuracy": 0.5})
            value.backward()
            opt.step()
        rec.close("interrupted", message="killed by the test")
    out.append(_entry("sse-momentum-s8", "sse", "momentum", 8, "running"))
    out.append(_entry("sse-adam-s7", "sse", "adam", 7, "pending"))  # never started: no file
    return out


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> str:
    """A 2 x 2 grid (sse/bce x momentum/adam) of xor runs, seed 0, 40 epochs, plus the three extras."""
    return make_runs(tmp_path_factory.mktemp("runs") / "tiny", seeds=1, extras=True)


@pytest.fixture(scope="session")
def tiny_report(tiny_runs, tmp_path_factory):
    """The report of ``tiny_runs`` (built once, in two worker processes)."""
    from reports import build_report

    out = tmp_path_factory.mktemp("reports") / "tiny"
    return build_report(tiny_runs, out, epochs=[0, 40], progress=False, workers=2, gif_frames=4)
