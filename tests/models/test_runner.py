"""Running grids: batched recordings equal recordings made alone, the manifest, reruns, resuming, Dask.

References are independent: each batched member's file is compared with the file that
``train()`` + ``Recorder`` writes for the same run alone (same layout, config and values to
float tolerance over a short horizon, where batched and alone training agree).
"""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

from data import ParameterError, load_task
from data.recording import open_recording
from models import Callback, NetworkConfig, train
from models.batch_recorder import BatchRecorder
from models.batched import MemberSpec, train_batched
from models.experiments import parse_experiment
from models.recorder import Recorder
from models.runner import FINISHED, MANIFEST_NAME, list_runs, plan_jobs, read_manifest, run_experiment


def _contents(path) -> tuple[dict, dict]:
    """Every dataset (shape, dtype, chunks, values) and root attribute of a recording, by path.

    The checkpoint slots in use depend on when blocks were committed: only the current
    checkpoint is compared (as ``checkpoint:<key>``), and only the row count of the commit marker.
    """
    datasets: dict = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and not name.startswith("checkpoint/"):
            datasets[name] = (obj.shape, obj.dtype, obj.chunks, obj[()])

    with h5py.File(path, "r") as f:
        f.visititems(visit)
        attrs = {k: v for k, v in f.attrs.items() if k not in ("created", "versions")}
    datasets["commit"] = (*datasets["commit"][:3], datasets["commit"][3][:1])
    with open_recording(path) as rec:
        for key, value in rec.checkpoint().items():
            datasets[f"checkpoint:{key}"] = (value.shape, value.dtype, None, value)
    return datasets, attrs


def _assert_same_recording(alone, batched, *, atol=1e-5):
    a, a_attrs = _contents(alone)
    b, b_attrs = _contents(batched)
    assert sorted(a) == sorted(b)
    assert a_attrs.keys() == b_attrs.keys()
    for key in a_attrs:
        if key == "config":
            assert json.loads(a_attrs[key]) == json.loads(b_attrs[key])
        else:
            assert str(a_attrs[key]) == str(b_attrs[key]), key
    for name in a:
        (sa, da, ca, va), (sb, db, cb, vb) = a[name], b[name]
        assert (sa, da, ca) == (sb, db, cb), name
        if name.endswith("/time"):
            continue
        if va.dtype.kind == "f":
            np.testing.assert_allclose(vb, va, atol=atol, rtol=1e-4, equal_nan=True, err_msg=name)
        else:
            np.testing.assert_array_equal(vb, va, err_msg=name)


def _alone(tmp_path, config, task, spec, name, *, epochs, **record):
    path = tmp_path / f"alone_{name}.h5"
    train(
        config,
        task,
        **spec.train_kwargs(),  # the same seeds, so the same initial weights, as in the batch
        epochs=epochs,
        batch_size=record.pop("batch_size", None),
        stop_loss=record.pop("stop_loss", None),
        callbacks=[Recorder(path, verbose=False, **record)],
    )
    return path


# ----------------------------------------------------------------------------- batched recording == alone


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_batched_recording_matches_the_recording_made_alone(tmp_path, writer):
    task = load_task("spirals")
    config = NetworkConfig(2, 1, (6, 5))
    specs = [
        MemberSpec(loss="sse", optimizer="momentum", lr=0.05, optimizer_options={"momentum": 0.9}, seed=0),
        MemberSpec(loss="bce", optimizer="adam", lr=0.01, seed=1, weight_decay=0.01),
        MemberSpec(loss="bce", optimizer="sgd", lr=0.3, seed=0),
        MemberSpec(loss="sse", optimizer="rmsprop", lr=0.003, seed=2),
    ]
    paths = [tmp_path / f"b{i}.h5" for i in range(len(specs))]
    paths[2] = None  # a member that is not recorded
    with BatchRecorder(paths, preactivation=True, commit_every=0, writer=writer) as rec:
        train_batched(config, task, specs, epochs=15, observer=rec)
    for i, spec in enumerate(specs):
        if paths[i] is None:
            continue
        alone = _alone(tmp_path, config, task, spec, i, epochs=15, preactivation=True)
        _assert_same_recording(alone, paths[i])
        with open_recording(paths[i]) as r:
            assert r.status == "complete" and r.layers == ["hidden1", "hidden2", "output"]
    assert not os.path.exists(tmp_path / "b2.h5")


def test_batched_recording_of_minibatches_sparse_schedules_and_the_polar_stage(tmp_path):
    task = load_task("moons", n_samples=48)
    config = NetworkConfig(2, 1, (4,), architecture="polar")
    specs = [MemberSpec(loss="bce", optimizer="adam", lr=0.01, seed=s) for s in (0, 1)]
    specs.append(MemberSpec(loss="sse", optimizer="nesterov", lr=0.1, seed=0))
    paths = [tmp_path / f"b{i}.h5" for i in range(len(specs))]
    schedule = [0, 4, 5, 9]  # snapshots for update norms; the last epoch (10) is recorded though not scheduled
    with BatchRecorder(paths, schedule=schedule, layers=["polar", "hidden1"]) as rec:
        train_batched(config, task, specs, epochs=10, batch_size=16, observer=rec)
    for i, spec in enumerate(specs):
        alone = _alone(
            tmp_path, config, task, spec, i, epochs=10, batch_size=16, schedule=schedule, layers=["polar", "hidden1"]
        )
        _assert_same_recording(alone, paths[i])
        with open_recording(paths[i]) as r:
            np.testing.assert_array_equal(r.epochs, [0, 4, 5, 9, 10])
            assert not np.isnan(r.norms("update").loc[4]).any()  # from the snapshot of epoch 3


def test_chunks_of_one_epoch_and_a_pool_of_two_make_the_same_recordings(tmp_path):
    """Training waits for chunks the writer hands back, the writer merges the blocks it finds waiting:
    the files hold the same values as with the default chunks (both are batched: bit for bit)."""
    task = load_task("spirals")
    config = NetworkConfig(2, 1, (6, 5))
    specs = [MemberSpec(loss=loss, optimizer="adam", lr=0.01, seed=seed) for loss in ("sse", "bce") for seed in (0, 1)]
    for name, kwargs in (("default", {}), ("tiny", {"block_bytes": 1, "max_buffer_bytes": 1})):
        (tmp_path / name).mkdir()
        paths = [tmp_path / name / f"m{i}.h5" for i in range(len(specs))]
        with BatchRecorder(paths, **kwargs) as rec:
            train_batched(config, task, specs, epochs=120, observer=rec)
        if name == "tiny":
            assert rec._rows_per_chunk == 1 and rec._n_chunks == 2
    for i in range(len(specs)):
        _assert_same_recording(tmp_path / "default" / f"m{i}.h5", tmp_path / "tiny" / f"m{i}.h5", atol=0)


def test_a_writer_process_that_dies_stops_the_batch_with_a_clear_error(tmp_path):
    import signal

    task = load_task("xor")
    specs = [MemberSpec(loss="bce", optimizer="sgd", seed=s) for s in (0, 1)]
    paths = [tmp_path / "a.h5", tmp_path / "b.h5"]

    class Killer:
        def __init__(self, rec):
            self.rec, self.outputs_for = rec, rec.outputs_for

        def __call__(self, run, epoch, outputs):
            self.rec(run, epoch, outputs)
            if epoch == 20:
                rec = self.rec
                while len(rec._free) < rec._n_chunks - len(rec._chunks):  # every block handed over is written
                    rec._receive(wait=True)
                os.kill(rec._link._worker.pid, signal.SIGKILL)
                rec._link._worker.wait()

    with pytest.raises(Exception, match="batched recording stopped: the recording writer ended unexpectedly"):
        with BatchRecorder(paths, commit_every=0) as rec:
            train_batched(NetworkConfig(2, 1, (3,)), task, specs, epochs=2000, observer=Killer(rec))
    for path in paths:  # every committed epoch readable; the status on disk says the run did not end
        with open_recording(path) as r:
            assert r.status == "interrupted" and r.last_epoch == 20  # committed every epoch (commit_every=0)


def test_the_writer_process_closes_the_files_of_a_killed_training_process(tmp_path):
    """SIGKILL of the training process: its writer commits the epochs it holds and closes every file."""
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    script = textwrap.dedent(
        f"""
        import os, signal
        from data import load_task
        from models import NetworkConfig
        from models.batch_recorder import BatchRecorder
        from models.batched import MemberSpec, train_batched

        class Suicide:
            def __init__(self, rec):
                self.rec, self.outputs_for = rec, rec.outputs_for
            def __call__(self, run, epoch, outputs):
                self.rec(run, epoch, outputs)
                if epoch == 300:
                    os.kill(os.getpid(), signal.SIGKILL)

        rec = BatchRecorder([{str(tmp_path / "a.h5")!r}, {str(tmp_path / "b.h5")!r}], block_bytes=1)
        specs = [MemberSpec(loss="bce", optimizer="sgd", seed=s) for s in (0, 1)]
        train_batched(NetworkConfig(2, 1, (3,)), load_task("xor"), specs, epochs=2000, observer=Suicide(rec))
        """
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    deadline = time.monotonic() + 60
    for path in (tmp_path / "a.h5", tmp_path / "b.h5"):
        while True:  # the orphaned writer finishes on its own
            with h5py.File(path, "r") as f:
                status = str(f.attrs["status"])
            if status != "running" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        with open_recording(path) as r:
            assert r.status == "interrupted" and 0 < r.last_epoch <= 300
            np.testing.assert_array_equal(r.epochs, np.arange(r.last_epoch + 1))  # every row it claims is there
            assert np.isfinite(r.activations("hidden1", r.last_epoch)).all()
            assert np.isfinite(r.metrics["loss"]).all()


def test_members_that_stop_early_are_closed_with_their_own_status(tmp_path):
    task = load_task("degenerate", n=20, positive=16)
    config = NetworkConfig(1, 1, (2,))
    specs = [MemberSpec(loss="bce", optimizer="adam", lr=0.1, seed=0), MemberSpec(loss="bce", optimizer="sgd", lr=1e-4)]
    paths = [tmp_path / "fast.h5", tmp_path / "slow.h5"]
    with BatchRecorder(paths) as rec:
        train_batched(config, task, specs, epochs=60, stop_loss=0.55, observer=rec)
    with open_recording(paths[0]) as fast, open_recording(paths[1]) as slow:
        assert fast.status == "converged" and fast.last_epoch < 60 and fast.status_epoch == fast.last_epoch
        assert slow.status == "complete" and slow.last_epoch == 60
    _assert_same_recording(_alone(tmp_path, config, task, specs[0], 0, epochs=60, stop_loss=0.55), paths[0])


def test_a_member_of_an_interrupted_batch_resumes_exactly_under_train(tmp_path):
    task = load_task("spirals")
    config = NetworkConfig(2, 1, (5,))
    spec = MemberSpec(loss="bce", optimizer="adam", lr=0.01, seed=3)
    paths = [tmp_path / "m0.h5", tmp_path / "m1.h5"]
    members = [spec, MemberSpec(loss="sse", optimizer="momentum", lr=0.05, seed=3)]

    def observer(run, epoch, outputs):
        rec(run, epoch, outputs)
        if epoch == 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), BatchRecorder(paths, commit_every=0) as rec:
        train_batched(config, task, members, epochs=30, observer=observer)
    with open_recording(paths[0]) as r:
        assert r.status == "interrupted" and r.last_epoch == 12 and int(r.checkpoint()["epoch"]) == 12
    train(config, task, loss="bce", optimizer="adam", lr=0.01, seed=3, init_seed=3, epochs=30,
          callbacks=[Recorder(paths[0], resume=True, verbose=False)])  # fmt: skip
    alone = _alone(tmp_path, config, task, spec, "ref", epochs=30)
    _assert_same_recording(alone, paths[0])


# ----------------------------------------------------------------------------- run_experiment


def _experiment(network=None, **grid):
    return parse_experiment(
        {
            "name": "tiny",
            "task": {"name": "xor"},
            "network": {"hidden": [3]} if network is None else network,
            "training": {"epochs": 15},
            "grid": grid
            or {"loss": ["sse", "bce"], "optimizer": ["momentum", {"name": "adam", "lr": 0.05}], "seeds": 2},
        }
    )


def test_run_writes_one_recording_per_run_and_the_manifest(tmp_path):
    exp = _experiment()
    folder = tmp_path / "runs"
    manifest = run_experiment(exp, folder, workers=1, progress=False)
    with open(folder / MANIFEST_NAME) as f:
        on_disk = json.load(f)
    assert on_disk == {k: v for k, v in manifest.items() if k != "errors"} and manifest["errors"] == {}
    assert set(on_disk) == {"format", "format_version", "name", "hud_version", "experiment", "axes", "runs"}
    assert (on_disk["format"], on_disk["format_version"], on_disk["name"]) == ("hud-experiment", 1, "tiny")
    assert on_disk["experiment"] == exp.to_dict()
    assert on_disk["axes"] == {"loss": ["sse", "bce"], "optimizer": ["momentum", {"name": "adam", "lr": 0.05}],
                               "seed": [0, 1]}  # fmt: skip
    assert len(on_disk["runs"]) == 8
    for run, spec in zip(on_disk["runs"], exp.runs()):
        assert set(run) == {"id", "file", "cell", "seed", "status", "final"}
        assert (run["id"], run["file"], run["cell"], run["seed"]) == (spec.id, spec.id + ".h5", spec.cell, spec.seed)
        assert run["status"] == "complete" and run["final"]["epochs"] == 15
        with open_recording(folder / run["file"]) as rec:
            assert rec.status == "complete"
            assert run["final"]["loss"] == pytest.approx(rec.metrics["loss"].iloc[-1])
            assert run["final"]["accuracy"] == rec.metrics["accuracy"].iloc[-1]
            assert rec.config["loss"]["name"] == spec.loss and rec.config["training"]["seed"] == spec.seed
    assert sorted(os.listdir(folder)) == sorted([MANIFEST_NAME] + [r["file"] for r in on_disk["runs"]])


@pytest.mark.parametrize("batched", [True, False])
def test_the_runs_expected_size_is_printed_before_they_start_and_a_full_disk_warned(
    tmp_path, capsys, monkeypatch, batched
):
    """``hud run`` prints what the runs to do will add on disk (within 5 % of what they wrote), and warns
    when the free space is smaller; a rerun that resumes counts only what is left."""
    import re

    import data.recording as R

    exp = _experiment(network={"hidden": [3, 3]}, optimizer=["sgd", "adam"], seeds=2)
    run_experiment(exp, tmp_path / "a", workers=1, batched=batched, progress=True)
    err = capsys.readouterr().err
    said = re.search(r"hud run: 4 recordings of about .+ each: ([\d.]+) (KB|MB) more on disk", err)
    assert said, err
    printed = float(said.group(1)) * {"KB": 1e3, "MB": 1e6}[said.group(2)]
    on_disk = sum(os.stat(p).st_blocks * 512 for p in (tmp_path / "a").glob("*.h5"))
    assert printed == pytest.approx(on_disk, rel=0.05)
    monkeypatch.setattr(R, "free_space", lambda path: 10)
    with pytest.warns(ResourceWarning, match="expected to take .* but only 10 B are free"):
        run_experiment(exp, tmp_path / "b", workers=1, batched=batched, progress=False)
    assert "hud: warning: what the runs to do add in" in capsys.readouterr().err


@pytest.mark.parametrize("batched", [True, False])
def test_cells_start_from_identical_weights_for_each_seed(tmp_path, batched):
    exp = _experiment()
    run_experiment(exp, tmp_path, workers=1, batched=batched, progress=False)
    weights: dict[int, list] = {}
    for spec in exp.runs():
        with open_recording(tmp_path / spec.file) as rec:
            weights.setdefault(spec.seed, []).append(rec.parameters(0))
            assert rec.config["training"]["init_seed"] == spec.seed
    for seed, per_cell in weights.items():
        for other in per_cell[1:]:
            for name, w in per_cell[0].items():
                np.testing.assert_array_equal(other[name], w, err_msg=f"seed {seed}, {name}")
    assert not np.array_equal(weights[0][0]["hidden1.linear.weight"], weights[1][0]["hidden1.linear.weight"])


def test_a_rerun_skips_finished_runs_and_ls_reads_the_recordings(tmp_path):
    exp = _experiment()
    run_experiment(exp, tmp_path, workers=1, progress=False)
    stamps = {p: os.stat(tmp_path / p).st_mtime_ns for p in os.listdir(tmp_path) if p.endswith(".h5")}
    run_experiment(exp, tmp_path, workers=1, progress=False)
    assert {p: os.stat(tmp_path / p).st_mtime_ns for p in stamps} == stamps
    # a stale manifest: ls still reports what the recordings say
    manifest = read_manifest(tmp_path)
    for run in manifest["runs"]:
        run["status"], run["final"] = "pending", None
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    table = list_runs(tmp_path)
    assert list(table.columns) == ["run", "loss", "optimizer", "seed", "status", "final_loss", "final_accuracy",
                                   "epochs", "diverged"]  # fmt: skip
    assert (table["status"] == "complete").all() and (table["epochs"] == 15).all() and not table["diverged"].any()
    assert table["optimizer"].tolist()[:4] == ["momentum", "momentum", "adam(lr=0.05)", "adam(lr=0.05)"]
    assert table["final_loss"].notna().all()


class _Interrupt(Callback):
    def __init__(self, at: int):
        self.at = at

    def on_epoch_end(self, state):
        if state.epoch == self.at:
            raise KeyboardInterrupt


def test_interrupted_runs_resume_and_runs_without_checkpoint_start_again(tmp_path):
    exp = _experiment(seeds=2)
    specs = exp.runs()
    (tmp_path / MANIFEST_NAME).write_text("{}")  # replaced below by a real manifest
    os.remove(tmp_path / MANIFEST_NAME)
    run_experiment(exp, tmp_path, workers=1, progress=False)
    for spec, commit_every in zip(specs, (0, 1e9)):  # with a checkpoint at epoch 6; without any checkpoint
        with pytest.raises(KeyboardInterrupt):
            train(spec.network_config(), spec.load_task(), **spec.train_kwargs(),
                  callbacks=[Recorder(tmp_path / spec.file, overwrite=True, verbose=False, commit_every=commit_every),
                             _Interrupt(6)])  # fmt: skip
        with open_recording(tmp_path / spec.file) as rec:
            assert rec.status == "interrupted"
    assert list_runs(tmp_path)["status"].tolist() == ["interrupted", "interrupted"]
    manifest = run_experiment(exp, tmp_path, workers=1, progress=False)
    assert [r["status"] for r in manifest["runs"]] == ["complete", "complete"]
    for spec in specs:
        with open_recording(tmp_path / spec.file) as rec:
            np.testing.assert_array_equal(rec.epochs, np.arange(16))
    with open_recording(tmp_path / specs[0].file) as rec:  # resumed from its checkpoint, not started again
        assert rec.metrics["time"].is_monotonic_increasing


def test_a_folder_holding_another_experiment_or_bare_recordings_is_refused(tmp_path):
    run_experiment(_experiment(seeds=1), tmp_path, workers=1, progress=False)
    other = _experiment(seeds=2)
    with pytest.raises(ParameterError, match=r"holds another experiment \('tiny'; it differs in: grid\).*--force"):
        run_experiment(other, tmp_path, workers=1, progress=False)
    manifest = run_experiment(other, tmp_path, workers=1, force=True, progress=False)
    assert [r["status"] for r in manifest["runs"]] == ["complete", "complete"]
    os.remove(tmp_path / MANIFEST_NAME)
    with pytest.raises(ParameterError, match=r"holds recordings \(seed-0.h5 \.\.\.\) but no manifest.json"):
        run_experiment(other, tmp_path, workers=1, progress=False)
    with pytest.raises(ParameterError, match="workers must be an integer in"):
        run_experiment(other, tmp_path / "x", workers=0)
    with pytest.raises(ParameterError, match="has no manifest.json"):
        list_runs(tmp_path)


def test_plan_jobs_batches_what_can_share_a_model_and_splits_for_workers():
    grid = {"optimizer": ["sgd", "adam", "lbfgs"], "loss": ["sse", "bce"], "hidden": [[2], [3]], "seeds": 8}
    exp = _experiment(network={}, **grid)
    runs = [(s, "create") for s in exp.runs()]
    jobs = plan_jobs(runs, batched=True, workers=1)
    kinds = sorted((j["kind"], len(j["runs"])) for j in jobs)
    assert kinds == [("batch", 32), ("batch", 32)] + [("single", 1)] * 32  # lbfgs runs alone
    for job in jobs:
        assert len({json.dumps(r["network"]) for r in job["runs"]}) == 1
    split = plan_jobs(runs, batched=True, workers=40, min_split=8)
    assert sum(j["kind"] == "batch" for j in split) == 8 and {len(j["runs"]) for j in split} == {1, 8}
    resumed = plan_jobs([(s, "resume") for s, _ in runs[:4]], batched=True)
    assert [j["kind"] for j in resumed] == ["single"] * 4
    assert all(j["kind"] == "single" for j in plan_jobs(runs, batched=False))
    assert len(plan_jobs(runs, batched=True, workers=40)) == len(jobs)  # 32-member batches are not split by default


def test_dask_local_cluster_runs_the_grid_end_to_end(tmp_path):
    distributed = pytest.importorskip("distributed")
    exp = _experiment(seeds=2, loss=["sse", "bce"])
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
    ) as cluster:
        manifest = run_experiment(exp, tmp_path, scheduler=cluster.scheduler_address, progress=False)
    assert manifest["errors"] == {}
    assert [r["status"] for r in manifest["runs"]] == ["complete"] * 4
    assert read_manifest(tmp_path)["runs"] == manifest["runs"]
    for spec in exp.runs():
        with open_recording(tmp_path / spec.file) as rec:
            assert rec.status in FINISHED and rec.last_epoch == 15 and rec.config["loss"]["name"] == spec.loss
