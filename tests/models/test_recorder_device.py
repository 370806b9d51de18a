"""The Recorder on an accelerator: what is recorded leaves the device by asynchronous copies.

On CUDA the training thread enqueues copies of a full block buffer (and of the checkpoint) into pinned host
memory, records an event and goes on using the buffer; the writer thread waits for the event before it
reads. The CPU tests below take that path with a stand-in for the device whose copies land only when the
event is waited for, so a reader that did not wait, or a buffer overwritten before its copy was enqueued,
changes the file. The CUDA tests run where a GPU is present (``pytest tests/models/test_recorder_device.py``).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch import nn

import models.recorder as MR
from data import load_task
from data.recording import open_recording
from models import NetworkConfig, train
from models.recorder import Recorder, load_network


def _contents(path) -> dict[str, np.ndarray]:
    """Every dataset of a recording but the wall times, by path."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return {n: v for n, v in out.items() if n != "metrics/time"}


def _assert_same_contents(a, b) -> None:
    got, want = _contents(a), _contents(b)
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


class _LateCopies:
    """A stand-in for CUDA's asynchronous copies: ``host(t)`` returns a buffer that holds NaN until the
    event made after it is waited for; the copy is of ``t`` as it was when enqueued (a stream's order)."""

    def __init__(self) -> None:
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.events = 0
        self.waits = 0

    def host(self, t: torch.Tensor) -> torch.Tensor:
        out = torch.full_like(t, float("nan"))
        self.pending.append((out, t.clone()))
        return out

    def copies_done(self):
        enqueued, self.pending = self.pending, []
        self.events += 1

        def wait() -> None:
            self.waits += 1
            for dst, src in enqueued:
                dst.copy_(src)

        return wait


def _late_copies(monkeypatch, block_rows: int) -> _LateCopies:
    late = _LateCopies()
    monkeypatch.setattr(MR, "_asynchronous", lambda device: True)
    monkeypatch.setattr(MR, "_host", late.host)
    monkeypatch.setattr(MR, "_copies_done", late.copies_done)
    monkeypatch.setattr(MR, "_BLOCK_ROWS", block_rows)
    return late


@pytest.mark.parametrize("commit_every", [0, 3600])
def test_under_train_the_asynchronous_path_writes_what_the_synchronous_one_does(tmp_path, monkeypatch, commit_every):
    """train() with momentum, blocks of 3 epochs: committed every epoch, or handed over uncommitted and
    committed at the end; every dataset (checkpoint included) equals the synchronous path's."""
    task, cfg = load_task("spirals"), NetworkConfig(2, 1, (6, 4), activation="tanh")
    common = {"loss": "bce", "optimizer": "momentum", "lr": 0.05, "seed": 4, "epochs": 40}

    def run(name):
        rec = Recorder(tmp_path / name, commit_every=commit_every, verbose=False)
        train(cfg, task, callbacks=[rec], **common)
        return tmp_path / name

    monkeypatch.setattr(MR, "_BLOCK_ROWS", 3)
    made = []
    init = MR._Block.__init__
    monkeypatch.setattr(MR._Block, "__init__", lambda self, *a, **k: made.append(1) or init(self, *a, **k))
    want = run("sync.h5")
    made.clear()
    late = _late_copies(monkeypatch, 3)
    got = run("async.h5")
    assert late.events >= 41 // 3 and late.waits == late.events and not late.pending  # the path was taken
    assert len(made) == 1  # one block buffer, reused as soon as its copies are enqueued
    _assert_same_contents(got, want)
    with open_recording(got) as r:
        assert r.status == "complete" and list(r.epochs) == list(range(41))


def test_by_hand_with_a_sparse_schedule_the_asynchronous_path_writes_what_the_synchronous_one_does(
    tmp_path, monkeypatch
):
    """A hand-written loop (hooks, Adam, no flat storage) recording every third epoch: the kept weights of
    the epoch before each recorded one (its update norm) travel by the same late copies."""

    def run(name):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        x, y = torch.randn(50, 3), torch.randn(50, 2)
        with Recorder(tmp_path / name, probe=x, epochs=30, schedule=3, commit_every=0, verbose=False) as rec:
            for epoch in range(31):
                if epoch:
                    opt.zero_grad()
                    loss = (model(x) - y).square().sum()
                    loss.backward()
                    opt.step()
                rec.record(model, epoch, metrics={"loss": float(epoch)}, optimizer=opt)
        return tmp_path / name

    want = run("sync.h5")
    late = _late_copies(monkeypatch, 2)
    got = run("async.h5")
    assert late.events >= 11 and late.waits == late.events
    _assert_same_contents(got, want)
    with open_recording(got) as r:
        assert list(r.epochs) == list(range(0, 31, 3)) and np.isfinite(r.norms("update").to_numpy()[1:]).all()


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_on_cuda_train_records_what_the_cpu_records(tmp_path):
    """train(device='cuda') with a Recorder: the same epochs, activations and parameters as on the CPU, to
    float32 rounding of a different device's kernels."""
    task, cfg = load_task("spirals"), NetworkConfig(2, 1, (10, 10), activation="tanh")
    common = {"loss": "bce", "optimizer": "adam", "lr": 0.01, "seed": 1, "epochs": 200}
    train(cfg, task, callbacks=[Recorder(tmp_path / "cpu.h5", verbose=False)], **common)
    train(cfg, task, callbacks=[Recorder(tmp_path / "cuda.h5", verbose=False)], device="cuda", **common)
    with open_recording(tmp_path / "cpu.h5") as a, open_recording(tmp_path / "cuda.h5") as b:
        assert b.status == "complete" and list(a.epochs) == list(b.epochs) == list(range(201))
        for layer in ("hidden1", "hidden2", "output"):
            np.testing.assert_allclose(b.activations(layer), a.activations(layer), atol=2e-3)
        for name, value in a.parameters(200).items():
            np.testing.assert_allclose(b.parameters(200)[name], value, atol=2e-3)
        assert int(b.checkpoint()["epoch"]) == 200


@cuda
def test_on_cuda_recording_by_hand_never_synchronizes_the_training_thread(tmp_path):
    """Recording each epoch of a loop that never synchronizes: under ``torch.cuda.set_sync_debug_mode('error')``
    any synchronizing operation of the Recorder's (a ``.cpu()``, an ``.item()``, a blocking copy) raises; the
    file then holds every epoch, equal to the weights the loop kept on the device."""
    torch.manual_seed(0)
    dev = torch.device("cuda")
    model = nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 5)).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(512, 20, device=dev), torch.randn(512, 5, device=dev)
    kept = []
    rec = Recorder(tmp_path / "run.h5", probe=x.cpu(), epochs=100, commit_every=0, verbose=False)
    rec.record(model, 0, optimizer=opt)  # the first call opens the file (it may synchronize)
    kept.append(model[0].weight.detach().clone())
    torch.cuda.set_sync_debug_mode("error")
    try:
        for epoch in range(1, 101):
            opt.zero_grad(set_to_none=False)
            (model(x) - y).square().sum().backward()
            opt.step()
            rec.record(model, epoch, optimizer=opt)
            kept.append(model[0].weight.detach().clone())
    finally:
        torch.cuda.set_sync_debug_mode("default")
    rec.close()
    want = torch.stack(kept).cpu().numpy()
    with open_recording(tmp_path / "run.h5") as r:
        assert r.status == "complete" and list(r.epochs) == list(range(101))
        got = np.stack([r.parameters(e)["0.weight"] for e in range(101)])
        np.testing.assert_array_equal(got, want)
        assert int(r.checkpoint()["epoch"]) == 100


@cuda
def test_a_network_rebuilt_from_a_cuda_recording_runs_on_the_cpu(tmp_path):
    """load_network of a run recorded on CUDA gives a CPU network whose outputs on the probe set are the
    recorded outputs (to float32 rounding)."""
    task = load_task("xor")
    cfg = NetworkConfig(2, 1, (3,), activation="tanh")
    train(cfg, task, loss="sse", epochs=30, device="cuda", callbacks=[Recorder(tmp_path / "x.h5", verbose=False)])
    with open_recording(tmp_path / "x.h5") as r:
        net = load_network(r, 30)
        assert next(net.parameters()).device.type == "cpu"
        out = net(torch.as_tensor(r.probe.inputs, dtype=torch.float32)).detach().numpy()
        np.testing.assert_allclose(out, r.activations("output", 30), atol=1e-5)
