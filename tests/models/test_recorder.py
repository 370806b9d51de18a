"""The Recorder: as a train() callback, by hand, schedules, what it records, and bad input.

References are independent: numpy forward passes from the recorded weights, numpy norms,
autograd gradients recomputed here, and the TrainResult of the same run.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from data import NotRecordedError, ParameterError, RecordingError, load_task
from data.recording import open_recording
from models import NetworkConfig, build_network, expected_recording_size, get_loss, get_optimizer, train
from models.recorder import COURSE_EPOCHS, Recorder, Schedule, load_network


def _np_forward(params: dict, x: np.ndarray, layers: int) -> list[np.ndarray]:
    """tanh MLP forward in float64 numpy from recorded weights: hidden activations then logits."""
    h, out = x.astype(np.float64), []
    for k in range(1, layers + 1):
        h = np.tanh(h @ params[f"hidden{k}.linear.weight"].T + params[f"hidden{k}.linear.bias"])
        out.append(h)
    out.append(h @ params["output.weight"].T + params["output.bias"])
    return out


@pytest.fixture
def spirals_run(tmp_path):
    task = load_task("spirals")
    path = tmp_path / "run.h5"
    result = train(
        NetworkConfig(2, 1, (6, 5)),
        task,
        loss="bce",
        optimizer="adam",
        lr=0.01,
        epochs=40,
        callbacks=[Recorder(path, verbose=False)],
    )
    return task, path, result


def test_softmax_outputs_are_the_softmax_of_the_recorded_logits(tmp_path):
    task = load_task("blobs", n_samples=60, centers=3)
    path = tmp_path / "blobs.h5"
    train(
        NetworkConfig(2, 3, (4,)),
        task,
        loss="softmax",
        optimizer="sgd",
        lr=0.1,
        epochs=5,
        callbacks=[Recorder(path, verbose=False, commit_every=0.0)],
    )
    with open_recording(path) as rec:
        for epoch in range(6):
            s = rec.activations("output", epoch, kind="preactivation").astype(np.float64)
            e = np.exp(s - s.max(axis=1, keepdims=True))
            np.testing.assert_allclose(rec.activations("output", epoch), e / e.sum(axis=1, keepdims=True), atol=1e-6)


def test_callback_records_every_epoch_consistently(spirals_run):
    task, path, result = spirals_run
    with open_recording(path) as rec:
        np.testing.assert_array_equal(rec.epochs, np.arange(41))
        assert rec.layers == ["hidden1", "hidden2", "output"]
        assert rec.layer_shapes == {"hidden1": (194, 6), "hidden2": (194, 5), "output": (194, 1)}
        assert rec.status == "complete"
        # metrics are the run's own
        np.testing.assert_allclose(rec.metrics["loss"].to_numpy(), result.metrics["loss"].to_numpy())
        # every recorded activation is the forward pass of the weights recorded at that epoch
        for epoch in (0, 1, 17, 40):
            params = rec.parameters(epoch)
            h1, h2, logits = _np_forward(params, task.inputs, 2)
            np.testing.assert_allclose(rec.activations("hidden1", epoch), h1, atol=1e-6)
            np.testing.assert_allclose(rec.activations("hidden2", epoch), h2, atol=1e-6)
            np.testing.assert_allclose(rec.activations("output", epoch, kind="preactivation"), logits, atol=1e-5)
            np.testing.assert_allclose(rec.activations("output", epoch), 1 / (1 + np.exp(-logits)), atol=1e-6)
        # the last recorded weights are the trained network's
        for name, p in result.network.named_parameters():
            np.testing.assert_array_equal(rec.parameters(40)[name], p.detach().numpy())


def test_recorded_norms_match_independent_computations(spirals_run):
    task, path, _ = spirals_run
    loss = get_loss("bce")
    with open_recording(path) as rec:
        updates, grads = rec.norms("update"), rec.norms("gradient")
        assert updates.loc[0].isna().all()
        for epoch in (1, 20, 40):
            before, after = rec.parameters(epoch - 1), rec.parameters(epoch)
            for name in after:
                expected = np.linalg.norm(after[name].astype(np.float64) - before[name])
                assert updates.loc[epoch, name] == pytest.approx(expected, rel=1e-5, abs=1e-9)
        # gradients at w_k, recomputed with autograd from the recorded weights
        net = load_network(rec, 20)
        loss(net(torch.tensor(task.inputs)), torch.tensor(task.targets)).backward()
        for name, p in net.named_parameters():
            assert grads.loc[20, name] == pytest.approx(float(p.grad.norm()), rel=1e-4)
        m, v = rec.optimizer_state("adam_m"), rec.optimizer_state("adam_v")
        assert m.loc[0].isna().all() and (m.loc[1:] > 0).all().all() and (v.loc[1:] > 0).all().all()
        # after one Adam step m = (1 - beta1) g_0
        np.testing.assert_allclose(m.loc[1].to_numpy(), 0.1 * grads.loc[0].to_numpy(), rtol=1e-5)


def test_momentum_buffer_norm_is_the_optimizers_state_at_the_last_epoch(tmp_path):
    net = build_network(NetworkConfig(2, 1, (3,)), seed=0)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    train(net, load_task("xor"), optimizer=opt, epochs=5, callbacks=[Recorder(tmp_path / "m.h5", verbose=False)])
    with open_recording(tmp_path / "m.h5") as rec:
        buf = rec.optimizer_state("momentum")
        assert buf.loc[0].isna().all()
        for name, p in net.named_parameters():
            assert buf.loc[5, name] == pytest.approx(float(opt.state[p]["momentum_buffer"].norm()), rel=1e-6)


def test_hand_written_loop_in_three_lines_read_back_with_plain_h5py(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(32, 2), torch.randn(32, 1)
    path = tmp_path / "mine.h5"
    with Recorder(path, probe=x, epochs=10, schedule=3, verbose=False) as rec:
        for epoch in range(11):
            if epoch:
                opt.zero_grad()
                loss = ((model(x) - y) ** 2).mean()
                loss.backward()
                opt.step()
            with torch.no_grad():
                current = float(((model(x) - y) ** 2).mean())
            rec.record(model, epoch, metrics={"loss": current}, optimizer=opt)
    # plain h5py, no hud
    with h5py.File(path, "r") as f:
        assert f.attrs["hud_format"] == "hud-recording" and f.attrs["format_version"] == 1
        committed = int(f["commit"][0])
        epochs = f["epoch"][:committed]
        np.testing.assert_array_equal(epochs, [0, 3, 6, 9, 10])
        act = f["layers/1/activation"]
        assert [d.label for d in act.dims] == ["epoch", "sample", "unit"]
        assert act.shape[1:] == (32, 4)
        w = f["parameters/0.weight"][committed - 1]
        b = f["parameters/0.bias"][committed - 1]
        np.testing.assert_allclose(act[committed - 1], np.tanh(x.numpy() @ w.T + b), atol=1e-6)
        np.testing.assert_array_equal(f["probe/inputs"][()], x.numpy())
        assert "momentum" in f["optimizer"]
        assert [n.decode() for n in f["parameter_names"][()]][:2] == ["0.weight", "0.bias"]
        assert f["metrics/loss"].shape[0] >= committed
    with open_recording(path) as rec:
        assert rec.layers == ["1", "3", "output"]  # the activation modules, then the output
        np.testing.assert_array_equal(rec.activations("output", 10), model(x).detach().numpy())


def test_preactivations_of_hud_layers_and_of_activation_modules(tmp_path):
    task = load_task("xor")
    train(
        NetworkConfig(2, 1, (3,)),
        task,
        epochs=3,
        callbacks=[Recorder(tmp_path / "a.h5", preactivation=True, verbose=False)],
    )
    with open_recording(tmp_path / "a.h5") as rec:
        pre = rec.activations("hidden1", 3, kind="preactivation")
        np.testing.assert_allclose(np.tanh(pre), rec.activations("hidden1", 3), atol=1e-6)
    model = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1))
    with Recorder(tmp_path / "b.h5", probe=task.inputs, preactivation=True, verbose=False) as rec:
        rec.record(model, 0)
    with open_recording(tmp_path / "b.h5") as r:
        pre = r.activations("1", 0, kind="preactivation")
        np.testing.assert_allclose(1 / (1 + np.exp(-pre)), r.activations("1", 0), atol=1e-6)


def test_minibatch_records_a_probe_pass_at_the_epochs_weights(tmp_path):
    task = load_task("moons", n_samples=64)
    probe = load_task("moons", n_samples=16, seed=9).probe
    train(
        NetworkConfig(2, 1, (4,)),
        task,
        optimizer="sgd",
        lr=0.1,
        epochs=4,
        batch_size=8,
        callbacks=[Recorder(tmp_path / "mb.h5", probe=probe, verbose=False)],
    )
    with open_recording(tmp_path / "mb.h5") as rec:
        np.testing.assert_array_equal(rec.probe.inputs, probe.inputs)
        for epoch in rec.epochs:
            (h1, _) = _np_forward(rec.parameters(epoch), probe.inputs, 1)
            np.testing.assert_allclose(rec.activations("hidden1", epoch), h1, atol=1e-6)


def test_schedules():
    assert [e for e in range(10001) if e in Schedule("course") and e] == list(COURSE_EPOCHS)
    log = Schedule("log").epochs(1000)
    assert log[:6] == [0, 1, 2, 3, 4, 5] and 1000 in log and len(log) < 40
    assert Schedule(7).epochs(20) == [0, 7, 14, 20]
    assert Schedule([5, 2]).epochs(9) == [0, 2, 5, 9]
    assert Schedule("every").epochs(3) == [0, 1, 2, 3]
    for spec in ("every", 1, 7, 10, "log", "course", [5, 2, 40]):
        for last in (0, 1, 9, 20, 70, 1000, 12_345, 100_000):
            brute = sorted({e for e in range(last + 1) if e in Schedule(spec)} | {0, last})  # epoch by epoch
            assert Schedule(spec).epochs(last) == brute, (spec, last)
            assert Schedule(spec).count(last) == len(brute), (spec, last)
    for bad in ("sometimes", 0, [-1], True):
        with pytest.raises(ParameterError, match="schedule"):
            Schedule(bad)


def test_schedule_under_train_keeps_epoch_zero_and_the_last(tmp_path):
    task = load_task("xor")
    train(
        NetworkConfig(2, 1, (2,)),
        task,
        epochs=130,
        callbacks=[Recorder(tmp_path / "c.h5", schedule="course", verbose=False)],
    )
    with open_recording(tmp_path / "c.h5") as rec:
        np.testing.assert_array_equal(rec.epochs, [0, 50, 100, 130])
        # update norms of sparse epochs are the step into that epoch, from a kept copy
        assert np.isfinite(rec.norms("update").loc[50]).all()
        with pytest.raises(NotRecordedError, match="epoch 60 was not recorded.*nearest recorded: 50, 100"):
            rec.activations("hidden1", 60)


def test_diverged_and_converged_runs_say_so(tmp_path):
    train(
        NetworkConfig(1, 1, ()),
        load_task("linear"),
        loss="sse",
        optimizer="sgd",
        lr=1e3,
        epochs=500,
        callbacks=[Recorder(tmp_path / "d.h5", verbose=False)],
    )
    with open_recording(tmp_path / "d.h5") as rec:
        assert rec.status == "diverged" and rec.status_text == f"diverged at epoch {rec.last_epoch}"
        assert not np.isfinite(rec.metrics["loss"].iloc[-1])
    train(
        NetworkConfig(2, 1, (4,)),
        load_task("xor"),
        optimizer="adam",
        lr=0.05,
        epochs=3000,
        stop_accuracy=1.0,
        callbacks=[Recorder(tmp_path / "e.h5", schedule="log", verbose=False)],
    )
    with open_recording(tmp_path / "e.h5") as rec:
        assert rec.status == "converged" and rec.metrics["accuracy"].iloc[-1] == 1.0
        n = len(rec.epochs)
    from data import schema as S

    with h5py.File(tmp_path / "e.h5", "r") as f:  # made for 3000 epochs' rows, cut to the rows run
        assert n < len(Schedule("log").epochs(3000))
        assert f[S.EPOCH].shape == (n,) and f[S.layer("hidden1")].shape[0] == n
        assert not np.isnan(f[S.layer("hidden1")][:]).any()


def test_expected_size_is_printed_and_a_full_disk_warned(tmp_path, capsys, monkeypatch):
    import models.recorder as recorder_module

    train(NetworkConfig(2, 1, (3,)), load_task("xor"), epochs=9, callbacks=[Recorder(tmp_path / "s.h5")])
    err = capsys.readouterr().err
    assert "hud: recording hidden1 4x3" in err and "per epoch x 10 epochs" in err
    monkeypatch.setattr(recorder_module, "free_space", lambda path: 10)
    with pytest.warns(ResourceWarning, match="only 10 B are free"):
        train(NetworkConfig(2, 1, (3,)), load_task("xor"), epochs=9, callbacks=[Recorder(tmp_path / "t.h5")])


@pytest.mark.parametrize(
    "task, hidden, epochs, optimizer",
    [
        ("xor", (3,), 9, "adam"),
        ("xor", (3,), 2000, "sgd"),
        ("spirals", (10, 10), 300, "adam"),
        ("encoder", (2,), 500, "momentum"),
    ],
)
def test_the_expected_size_is_the_size_on_disk_within_five_percent(tmp_path, task, hidden, epochs, optimizer):
    """The size printed before a run starts (and the one estimated before any file is made, as ``hud run``
    prints it) against the file's blocks on disk once it is closed: from a 9-epoch run (the probe set,
    grid and chunk indexes dominate) to one of 2000 epochs."""
    t = load_task(task)
    rec = Recorder(tmp_path / "r.h5", verbose=False)
    cfg = NetworkConfig(t.inputs.shape[1], t.targets.shape[1], hidden, activation="tanh")
    net = build_network(cfg, seed=5)
    before = [p.detach().clone() for p in net.parameters()]
    beforehand = expected_recording_size(
        net, t, epochs=epochs, optimizer=get_optimizer(optimizer, net.parameters(), lr=0.01)
    )
    assert all(torch.equal(a, p) for a, p in zip(before, net.parameters())) and not net.tap  # left as it was
    train(cfg, t, loss="sse", optimizer=optimizer, lr=0.01, epochs=epochs, callbacks=[rec])
    with open_recording(tmp_path / "r.h5") as r:
        assert rec.expected_size == pytest.approx(r.size_on_disk, rel=0.05)
        assert beforehand == pytest.approx(r.size_on_disk, rel=0.05)


def test_the_expected_size_of_a_hand_written_loop_float64_log_schedule(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 30), nn.ReLU(), nn.Linear(30, 3)).double()
    opt = torch.optim.Adam(model.parameters())
    with Recorder(tmp_path / "r.h5", probe=torch.randn(300, 5), epochs=3000, schedule="log", verbose=False) as rec:
        for epoch in range(3001):
            rec.record(model, epoch, metrics={"loss": 1.0}, optimizer=opt)
    with open_recording(tmp_path / "r.h5") as r:
        assert len(r.epochs) == 34 and r.activations("1", 0).dtype == np.float64
        assert rec.expected_size == pytest.approx(r.size_on_disk, rel=0.05)
        beforehand = expected_recording_size(
            model, torch.randn(300, 5), epochs=3000, schedule="log", optimizer=opt, metrics=["loss", "time"]
        )
        assert beforehand == pytest.approx(r.size_on_disk, rel=0.05)
        assert not model[1]._forward_hooks  # the estimate's hooks are removed


def test_existing_file_is_never_overwritten_silently(tmp_path):
    task = load_task("xor")
    path = tmp_path / "x.h5"
    train(NetworkConfig(2, 1, (2,)), task, epochs=2, callbacks=[Recorder(path, verbose=False)])
    before = path.read_bytes()
    with pytest.raises(RecordingError, match="already exists; pass overwrite=True"):
        train(NetworkConfig(2, 1, (2,)), task, epochs=2, callbacks=[Recorder(path, verbose=False)])
    assert path.read_bytes() == before
    train(NetworkConfig(2, 1, (2,)), task, epochs=4, callbacks=[Recorder(path, overwrite=True, verbose=False)])
    with open_recording(path) as rec:
        assert rec.last_epoch == 4


def test_bad_recorder_input(tmp_path):
    task = load_task("xor")
    with pytest.raises(ParameterError, match="layer 'hidden9' is not a module.*hidden1"):
        train(NetworkConfig(2, 1, (2,)), task, epochs=1, callbacks=[Recorder(tmp_path / "a.h5", layers=["hidden9"])])
    with pytest.raises(ParameterError, match="probe must be given"):
        Recorder(tmp_path / "b.h5").record(nn.Linear(2, 1), 0)
    with pytest.raises(ParameterError, match="layers must be given.*named modules: 0, 1"):
        Recorder(tmp_path / "c.h5", probe=task.inputs).record(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1)), 0)
    with pytest.raises(ParameterError, match="resume and overwrite"):
        Recorder(tmp_path / "d.h5", resume=True, overwrite=True)
    with pytest.raises(ParameterError, match="probe must have shape \\(n_samples, n_inputs\\)"):
        Recorder(tmp_path / "e.h5", probe=np.zeros(3))


def test_reader_rejects_what_is_not_a_recording(tmp_path):
    (tmp_path / "text.h5").write_text("not hdf5 at all")
    with pytest.raises(RecordingError, match="is not an HDF5 file"):
        open_recording(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(RecordingError, match="not a hud recording"):
        open_recording(tmp_path / "other.h5")
    with pytest.raises(RecordingError, match="does not exist"):
        open_recording(tmp_path / "missing.h5")
    path = tmp_path / "ok.h5"
    train(NetworkConfig(2, 1, (2,)), load_task("xor"), epochs=3, callbacks=[Recorder(path, verbose=False)])
    data = path.read_bytes()
    (tmp_path / "truncated.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(RecordingError):
        open_recording(tmp_path / "truncated.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 99
    from data import FormatVersionError

    with pytest.raises(FormatVersionError, match="format_version 99; this hud .* reads format versions 1 to 1"):
        open_recording(path)


def test_layer_errors_list_the_layers(spirals_run):
    _, path, _ = spirals_run
    with open_recording(path) as rec:
        with pytest.raises(
            NotRecordedError, match="layer 'hidden3' is not in .*recorded layers: hidden1, hidden2, output"
        ):
            rec.activations("hidden3")
        with pytest.raises(NotRecordedError, match="no preactivation"):
            rec.activations("hidden1", kind="preactivation")


def test_lazy_reads_return_only_the_epochs_asked_for_in_their_order(spirals_run):
    _, path, _ = spirals_run
    with open_recording(path) as rec:
        full = rec.activations("hidden2")
        picked = rec.activations("hidden2", [30, 2, 30])
        np.testing.assert_array_equal(picked, full[[30, 2, 30]])
        assert rec.parameter("output.weight", [0, 40]).shape == (2, 1, 5)


def test_load_network_rebuilds_the_network_at_an_epoch(spirals_run):
    task, path, result = spirals_run
    with open_recording(path) as rec:
        net = load_network(rec)
        x = torch.tensor(task.inputs)
        torch.testing.assert_close(net(x), result.network(x))
        net0 = load_network(rec, 0)
        torch.testing.assert_close(net0(x), build_network(NetworkConfig(2, 1, (6, 5)), seed=0)(x))


@pytest.mark.parametrize("preactivation", [False, True])
def test_a_file_started_from_the_cached_template_equals_one_built_alone(tmp_path, monkeypatch, preactivation):
    """Under train() a Recorder's file is a copy of a cached template; the same run without it is identical."""
    import data.recording as R

    def run(name):
        path = tmp_path / name
        kwargs = {"loss": "sse", "optimizer": "momentum", "lr": 0.1, "epochs": 12, "seed": 3}
        train(
            NetworkConfig(2, 1, (4, 3)),
            load_task("xor"),
            **kwargs,
            callbacks=[Recorder(path, verbose=False, preactivation=preactivation)],
        )
        datasets = {}
        with h5py.File(path, "r") as f:
            f.visititems(lambda n, o: datasets.__setitem__(n, o) if isinstance(o, h5py.Dataset) else None)
            return {
                n: (d.shape, d.dtype, d.chunks, [x.label for x in d.dims], d[()])
                for n, d in ((n, f[n]) for n in datasets)
                if not n.startswith("checkpoint") and n != "metrics/time"
            }

    templated = run("a.h5")
    assert R._TEMPLATES  # the template was made (and cached)
    templated_again = run("b.h5")  # from the cached copy
    monkeypatch.setattr(R.RecordingTemplate, "cached", classmethod(lambda cls, **kw: None))
    alone = run("c.h5")  # every dataset made at the first block, as a hand-written loop does
    for other in (templated, templated_again):
        assert sorted(other) == sorted(alone)
        for name, (shape, dtype, chunks, labels, values) in alone.items():
            assert other[name][:4] == (shape, dtype, chunks, labels), name
            np.testing.assert_array_equal(other[name][4], values, err_msg=name)


def _big_probe_epochs(seed: int, momentum: float = 0.0):
    """A net whose hidden layer on its probe set is a 1.1 MB row (1100 x 256 floats), trained 6 steps:
    yields (model, probe, optimizer, epoch, hidden layer on the probe) for epochs 0-6, after each step."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(20, 256), nn.Tanh(), nn.Linear(256, 3))
    probe = torch.randn(1100, 20)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=momentum)
    for epoch in range(7):
        if epoch:
            opt.zero_grad()
            model(torch.randn(64, 20)).square().mean().backward()
            opt.step()
        with torch.no_grad():
            hidden = torch.tanh(model[0](probe)).numpy().copy()
        yield model, probe, opt, epoch, hidden


@pytest.mark.parametrize("rows_per_block", [1, 2, 5])
def test_blocks_handed_over_uncommitted_are_written_exactly_and_committed_once(tmp_path, monkeypatch, rows_per_block):
    """Full block buffers go to the writer as they fill, without a commit until ``commit_every`` has passed
    (here: the end): every epoch's activations exact, update norms across blocks, one commit holding the
    checkpoint of the last epoch (handed over with its block)."""
    import models.recorder as MR

    row_bytes = 4 * (1100 * 256 + 1100 * 3 + 3 * (20 * 256 + 256 + 256 * 3 + 3))  # layers; params, grads, momenta
    monkeypatch.setattr(MR, "_BLOCK_BYTES", rows_per_block * row_bytes)
    want, weights, commits = [], [], []
    rec = None
    for model, probe, opt, epoch, hidden in _big_probe_epochs(1, momentum=0.9):
        rec = rec or Recorder(
            tmp_path / "big.h5", probe=probe, epochs=6, commit_every=3600, verbose=False, on_commit=commits.append
        )
        want.append(hidden)
        weights.append(model[0].weight.detach().numpy().copy())
        rec.record(model, epoch, metrics={"loss": float(epoch)}, optimizer=opt)
        assert rec._block_rows == rows_per_block
        assert rec.committed_epoch == -1 or epoch == 6  # nothing committed before the end
    rec.close()
    assert commits == [6]
    with open_recording(tmp_path / "big.h5") as r:
        np.testing.assert_allclose(r.activations("1", list(range(7))), np.stack(want), rtol=1e-6, atol=1e-6)
        updates = r.norms("update")["0.weight"].to_numpy()
        np.testing.assert_allclose(
            updates[1:], [np.linalg.norm(b - a) for a, b in zip(weights, weights[1:])], rtol=1e-5
        )
        assert int(r.checkpoint()["epoch"]) == 6
        np.testing.assert_array_equal(r.metrics["loss"].to_numpy(), np.arange(7.0))


def _counting(init, made):
    def counted(self, *args, **kwargs):
        made.append(self)
        init(self, *args, **kwargs)

    return counted


def test_block_buffers_come_back_and_no_epoch_sees_another_epochs_values(tmp_path, monkeypatch):
    """Each epoch committed on its own (commit_every=0): the block buffer comes back from the writer and is
    reused for the next epoch, whose values overwrite it; every epoch read back is its own."""
    import models.recorder as MR

    made = []
    monkeypatch.setattr(MR._Block, "__init__", _counting(MR._Block.__init__, made))
    want = []
    rec = None
    for model, probe, _, epoch, hidden in _big_probe_epochs(0):
        rec = rec or Recorder(tmp_path / "big.h5", probe=probe, epochs=6, commit_every=0, verbose=False)
        want.append(hidden)
        rec.record(model, epoch, metrics={"loss": float(epoch)})
        rec.flush()  # written: its buffer is back for the next epoch
        assert rec._block is None and rec._spare  # the path under test is taken
    rec.close()
    assert len(made) <= 1 + MR._SPARE_BLOCKS  # reused, not one a block
    with open_recording(tmp_path / "big.h5") as r:
        got = r.activations("1", list(range(7)))
    np.testing.assert_allclose(got, np.stack(want), rtol=1e-6, atol=1e-6)


def test_a_block_full_at_the_last_epoch_commits_that_epochs_checkpoint(tmp_path, monkeypatch):
    """train() hands a full block over without a commit; its last epoch's optimizer state travels with it and
    the closing commit (of no rows) saves it: the checkpoint is the final epoch's, equal to the optimizer's."""
    import models.recorder as MR

    monkeypatch.setattr(MR, "_BLOCK_ROWS", 4)  # epochs 0-11: blocks fill at epochs 3, 7 and 11
    net = build_network(NetworkConfig(2, 1, (3,)), seed=0)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    rec = Recorder(tmp_path / "c.h5", verbose=False, commit_every=3600)
    train(net, load_task("xor"), optimizer=opt, epochs=11, callbacks=[rec])
    assert rec._block_rows == 4
    with open_recording(tmp_path / "c.h5") as r:
        assert r.last_epoch == 11
        ckpt = r.checkpoint()
    assert int(ckpt["epoch"]) == 11
    momenta = np.concatenate([opt.state[p]["momentum_buffer"].numpy().ravel() for p in net.parameters()])
    np.testing.assert_array_equal(ckpt["optimizer.momentum_buffer"], momenta)


def test_commits_come_every_commit_every_seconds_however_often_blocks_fill(tmp_path, monkeypatch):
    """Blocks of 2 rows fill every 0.8 s of a fake clock, commit_every is 1 s: a commit every 1 s of rows
    (at the first handoff after the first uncommitted row is 1 s old), not only at the end."""
    import models.recorder as MR

    now = [0.0]
    monkeypatch.setattr(MR, "_BLOCK_ROWS", 2)
    monkeypatch.setattr(MR, "_clock", lambda: now[0])
    commits = []
    net = build_network(NetworkConfig(2, 1, (3,)), seed=0)
    probe = load_task("xor").inputs
    path = tmp_path / "t.h5"
    with Recorder(path, probe=probe, epochs=9, commit_every=1.0, verbose=False, on_commit=commits.append) as rec:
        for epoch in range(10):
            now[0] = 0.4 * epoch
            rec.record(net, epoch, metrics={"time": now[0]})
            rec._writer.flush()  # the writer has taken every block put so far
            assert rec.committed_epoch == max(commits, default=-1)
    assert commits == [3, 7, 9]  # 1.2 s after epoch 0's row; 1.2 s after epoch 4's; the end


def test_a_float64_model_is_recorded_in_float64(tmp_path):
    """The probe set takes the model's floating type (it is stored as float32): a float64 model's layers and
    parameters are recorded as float64, equal to its own forward pass."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    x = torch.randn(10, 2, dtype=torch.float64)
    with Recorder(tmp_path / "d.h5", probe=x, epochs=2, verbose=False) as rec:
        for epoch in range(3):
            rec.record(model, epoch, metrics={"loss": 1.0})
    with open_recording(tmp_path / "d.h5") as r:
        hidden = r.activations("1", [2])[0]
        weight = r.parameters(2)["0.weight"]
    probe = torch.from_numpy(x.float().numpy()).double()  # what the probe set holds
    assert hidden.dtype == weight.dtype == np.float64
    np.testing.assert_array_equal(hidden, torch.tanh(model[0](probe)).detach().numpy())
    np.testing.assert_array_equal(weight, model[0].weight.detach().numpy())


def test_the_last_rows_are_handed_over_a_few_epochs_before_the_end(tmp_path, monkeypatch):
    """When the last epoch is known, the pending block goes to the writer _TAIL_ROWS epochs before it: training
    then waits at its end for a few rows to be written, not for up to a whole block.  Every epoch is recorded
    once, in order, and the checkpoint is the last epoch's."""
    import data.recording as DR
    import models.recorder as MR
    from data import schema as S

    monkeypatch.setattr(MR, "_BLOCK_ROWS", 64)
    blocks = []
    append = DR.RecordingWriter.append
    monkeypatch.setattr(
        DR.RecordingWriter, "append", lambda self, b: (blocks.append(b[S.EPOCH].tolist()), append(self, b))
    )
    rec = Recorder(tmp_path / "tail.h5", verbose=False, commit_every=3600)
    train(NetworkConfig(2, 1, (3,)), load_task("xor"), epochs=100, callbacks=[rec])
    tail = 100 - MR._TAIL_ROWS
    assert blocks == [list(range(64)), list(range(64, tail + 1)), list(range(tail + 1, 101))]
    with open_recording(tmp_path / "tail.h5") as r:
        assert r.epochs.tolist() == list(range(101)) and int(r.checkpoint()["epoch"]) == 100


def test_a_finished_run_extended_with_more_epochs_equals_the_longer_run(tmp_path):
    """Resuming a 40-epoch recording with 100 epochs grows its planned datasets (in a copy renamed over
    the file) and continues exactly: the file then equals a 100-epoch run recorded at once."""
    import os

    task, cfg = load_task("spirals"), NetworkConfig(2, 1, (5,), activation="tanh")
    common = {"loss": "bce", "optimizer": "adam", "lr": 0.01, "seed": 2}
    path, ref = tmp_path / "run.h5", tmp_path / "ref.h5"
    train(cfg, task, epochs=40, callbacks=[Recorder(path, verbose=False)], **common)
    inode = os.stat(path).st_ino
    train(cfg, task, epochs=100, callbacks=[Recorder(path, resume=True, verbose=False)], **common)
    assert os.stat(path).st_ino != inode
    train(cfg, task, epochs=100, callbacks=[Recorder(ref, verbose=False)], **common)
    with open_recording(path) as a, open_recording(ref) as b:
        assert a.status == b.status == "complete" and list(a.epochs) == list(b.epochs) == list(range(101))
        np.testing.assert_array_equal(a.activations("hidden1"), b.activations("hidden1"))
        for name, value in b.parameters(100).items():
            np.testing.assert_array_equal(a.parameters(100)[name], value)
        np.testing.assert_array_equal(a.metrics["loss"].to_numpy(), b.metrics["loss"].to_numpy())


def test_a_compressed_recording_under_train_equals_an_uncompressed_one_and_resumes(tmp_path):
    """``compression='gzip'``: the closed file is compressed and holds what an uncompressed recording of the
    same run holds; a shorter run resumed from it (decompressed for the run, compressed again at the
    end) equals the longer run recorded compressed at once."""
    task, cfg = load_task("spirals"), NetworkConfig(2, 1, (5,), activation="tanh")
    common = {"loss": "bce", "optimizer": "momentum", "lr": 0.05, "seed": 3}
    paths = {c: tmp_path / f"{c}.h5" for c in ("plain", "gzip", "resumed")}
    train(cfg, task, epochs=60, callbacks=[Recorder(paths["plain"], verbose=False)], **common)
    train(cfg, task, epochs=60, callbacks=[Recorder(paths["gzip"], compression="gzip", verbose=False)], **common)
    train(cfg, task, epochs=30, callbacks=[Recorder(paths["resumed"], compression="gzip", verbose=False)], **common)
    resumed = Recorder(paths["resumed"], compression="gzip", resume=True, verbose=False)
    train(cfg, task, epochs=60, callbacks=[resumed], **common)
    for name in ("gzip", "resumed"):
        with h5py.File(paths[name], "r") as f:
            assert f["layers/hidden1/activation"].compression == "gzip"
        with open_recording(paths["plain"]) as a, open_recording(paths[name]) as b:
            assert a.status == b.status == "complete" and list(a.epochs) == list(b.epochs) == list(range(61))
            np.testing.assert_array_equal(a.activations("hidden1"), b.activations("hidden1"))
            np.testing.assert_array_equal(a.activations("output"), b.activations("output"))
            np.testing.assert_array_equal(a.metrics["loss"].to_numpy(), b.metrics["loss"].to_numpy())
            np.testing.assert_array_equal(a.norms("update").to_numpy(), b.norms("update").to_numpy())
