"""Batched training against the reference: each member trained alone with ``models.train``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from data import ParameterError, load_task
from models import Callback, NetworkConfig, build_network, get_loss, get_optimizer, optimizer_options, train
from models.batched import BATCHED_OPTIMIZERS, MemberSpec, MemberState, _make_optimizer, train_batched
from models.optim import state_norms

SPIRAL_NET = NetworkConfig(2, 1, (10, 10), activation="tanh")


@pytest.fixture(scope="module")
def spirals():
    return load_task("spirals")


def _alone(config, task, spec: MemberSpec, **kwargs):
    return train(config, task, **spec.train_kwargs(), **kwargs)


def _assert_same_run(alone, batched, *, atol=1e-5, rtol=1e-5):
    assert batched.status == alone.status
    assert batched.config == alone.config
    assert list(batched.metrics.columns) == list(alone.metrics.columns)
    assert list(batched.metrics.index) == list(alone.metrics.index)
    assert batched.metrics.index.name == "epoch"
    np.testing.assert_allclose(batched.metrics["loss"], alone.metrics["loss"], rtol=rtol)
    np.testing.assert_allclose(batched.metrics["penalty"], alone.metrics["penalty"], rtol=rtol, atol=1e-9)
    names = [n for n, _ in alone.network.named_parameters()]
    assert [n for n, _ in batched.network.named_parameters()] == names
    for (name, p), q in zip(alone.network.named_parameters(), batched.network.parameters()):
        torch.testing.assert_close(q, p, atol=atol, rtol=0, msg=name)


def _compare(config, task, specs, *, epochs, atol=1e-5, rtol=1e-5, **kwargs):
    results = train_batched(config, task, specs, epochs=epochs, **kwargs)
    assert len(results) == len(specs)
    for spec, batched in zip(specs, results):
        _assert_same_run(_alone(config, task, spec, epochs=epochs, **kwargs), batched, atol=atol, rtol=rtol)
    return results


# ----------------------------------------------------------------------------- batched == alone


def test_grid_of_losses_optimizers_and_seeds_matches_training_alone(spirals):
    optimizers = [("momentum", 0.05, {"momentum": 0.9}), ("adam", 0.01, {}), ("rmsprop", 0.003, {})]
    specs = [
        MemberSpec(loss=loss, optimizer=name, lr=lr, optimizer_options=options, seed=seed)
        for loss, (name, lr, options), seed in itertools.product(("sse", "bce"), optimizers, (0, 1))
    ]
    results = _compare(SPIRAL_NET, spirals, specs, epochs=60)
    assert all(r.status == "complete" and len(r.metrics) == 61 for r in results)
    assert (np.diff(results[0].metrics["time"]) >= 0).all()


def test_every_optimizer_and_weight_decay_in_one_mixed_batch(spirals):
    options = {"momentum": {"momentum": 0.8}, "nesterov": {"momentum": 0.9}, "adamw": {"weight_decay": 0.1}}
    lrs = {"sgd": 0.3, "momentum": 0.05, "nesterov": 0.05, "adam": 0.01, "adamw": 0.01, "rmsprop": 0.003}
    specs = [
        MemberSpec(loss=loss, optimizer=name, lr=lrs[name], optimizer_options=options.get(name, {}), weight_decay=wd)
        for name, loss, wd in itertools.product(BATCHED_OPTIMIZERS, ("bce", "sse"), (0.0, 0.01))
    ]
    specs += [
        MemberSpec(optimizer="rmsprop", lr=0.002, optimizer_options={"momentum": 0.5, "alpha": 0.9}, seed=2),
        MemberSpec(optimizer="adam", lr=0.02, optimizer_options={"beta1": 0.5, "beta2": 0.99, "eps": 1e-6}, seed=3),
        MemberSpec(loss=get_loss("bce", weight_decay=0.01, decay_biases=True), optimizer="sgd", lr=0.2, seed=4),
    ]
    results = _compare(SPIRAL_NET, spirals, specs, epochs=20)
    assert results[1].metrics["penalty"].iloc[-1] > 0 and (results[0].metrics["penalty"] == 0).all()


def test_softmax_members_on_blobs():
    task = load_task("blobs", n_samples=120)
    specs = [
        MemberSpec(loss=loss, optimizer=name, lr=lr, seed=seed)
        for loss, (name, lr), seed in itertools.product(("softmax", "bce"), (("adam", 0.01), ("sgd", 0.2)), (0, 1))
    ]
    results = _compare(NetworkConfig(2, 3, (8,)), task, specs, epochs=40)
    np.testing.assert_allclose(
        results[0].metrics["accuracy"], _alone(NetworkConfig(2, 3, (8,)), task, specs[0], epochs=40).metrics["accuracy"]
    )


@pytest.mark.parametrize(
    ("config", "task_name"),
    [
        (NetworkConfig(2, 1, (6,), architecture="polar", activation="sigmoid"), "spirals"),
        (NetworkConfig(2, 1, (5, 4), activation=("relu", "linear"), shortcut=True, init=0.3), "spirals"),
        (NetworkConfig(1, 1, ()), "linear"),
        (NetworkConfig(1, 1, (4,)), "linear"),
    ],
    ids=["polar", "shortcut", "linear-model", "regression"],
)
def test_architectures_and_regression(config, task_name):
    task = load_task(task_name)
    loss = "sse" if task.kind == "regression" else "bce"
    specs = [
        MemberSpec(loss=loss, optimizer=name, lr=lr, seed=seed)
        for (name, lr), seed in itertools.product((("sgd", 0.02), ("adam", 0.01)), (0, 3))
    ]
    _compare(config, task, specs, epochs=25)


def test_minibatch_follows_each_members_own_batch_order():
    task = load_task("moons", n_samples=64)
    specs = [
        MemberSpec(optimizer=name, lr=lr, seed=seed, init_seed=init_seed, weight_decay=0.01)
        for (name, lr), (seed, init_seed) in itertools.product(
            (("momentum", 0.1), ("adam", 0.01)), ((3, None), (4, 3), (5, 5))
        )
    ]
    _compare(NetworkConfig(2, 1, (5,)), task, specs, epochs=6, batch_size=10)


def test_batched_optimizers_match_torch_optim_step_by_step():
    """The vectorised formulas against torch.optim on the same gradients, member by member."""
    gen = torch.Generator().manual_seed(0)
    cases = [
        ("sgd", [{"lr": 0.1}, {"lr": 0.5}]),
        ("momentum", [{"lr": 0.1, "momentum": 0.9}, {"lr": 0.3, "momentum": 0.5}]),
        ("nesterov", [{"lr": 0.1, "momentum": 0.9}, {"lr": 0.3, "momentum": 0.5}]),
        ("adam", [{"lr": 0.01}, {"lr": 0.1, "beta1": 0.5, "beta2": 0.9, "eps": 1e-4}]),
        ("adamw", [{"lr": 0.01, "weight_decay": 0.1}, {"lr": 0.1, "beta1": 0.8, "weight_decay": 0.5}]),
        ("rmsprop", [{"lr": 0.01}, {"lr": 0.1, "alpha": 0.9, "eps": 1e-3}]),
        ("rmsprop+momentum", [{"lr": 0.01, "momentum": 0.9}, {"lr": 0.1, "alpha": 0.9, "momentum": 0.3}]),
    ]
    for key, given in cases:
        name = key.split("+")[0]
        options = [optimizer_options(name, **o) for o in given]
        w0 = torch.randn(len(options), 7, generator=gen)
        grads = torch.randn(5, len(options), 7, generator=gen)
        p = w0.clone()
        batched = _make_optimizer(key, slice(0, len(options)), options, 7, torch.device("cpu"))
        for g in grads:
            batched.step(p, g)
        for m, o in enumerate(options):
            w = torch.nn.Parameter(w0[m].clone())
            opt = get_optimizer(name, [w], **o)
            for g in grads:
                w.grad = g[m].clone()
                opt.step()
            torch.testing.assert_close(p[m], w.detach(), rtol=2e-6, atol=1e-7, msg=f"{key} member {m}")


# ----------------------------------------------------------------------------- initial weights, stops, divergence


def test_members_with_the_same_init_seed_start_from_identical_weights(spirals):
    seen = {}

    class Capture(Callback):
        def __init__(self, key):
            self.key = key

        def on_train_begin(self, state):
            seen[self.key] = {n: p.detach().clone() for n, p in state.network.named_parameters()}

    specs = [
        MemberSpec(loss="sse", optimizer="sgd", seed=7),
        MemberSpec(loss="bce", optimizer="adam", seed=1, init_seed=7),
        MemberSpec(loss="bce", optimizer="adam", seed=8),
    ]
    train_batched(SPIRAL_NET, spirals, specs, epochs=2, callbacks=[Capture(i) for i in range(3)])
    reference = dict(build_network(SPIRAL_NET, seed=7).named_parameters())
    for name, p in reference.items():
        assert torch.equal(seen[0][name], p) and torch.equal(seen[1][name], p)
    assert not torch.equal(seen[2]["output.weight"], reference["output.weight"])


def test_divergence_isolates_one_member():
    task = load_task("linear")
    specs = [MemberSpec(loss="sse", optimizer="sgd", lr=lr) for lr in (0.1, 1e3, 0.05)]
    results = train_batched(NetworkConfig(1, 1, ()), task, specs, epochs=300)
    alone = _alone(NetworkConfig(1, 1, ()), task, specs[1], epochs=300)
    assert [r.status for r in results] == ["complete", "diverged", "complete"]
    bad = results[1]
    assert bad.diverged and not np.isfinite(bad.final["loss"]) and bad.epochs == alone.epochs < 300
    assert np.isfinite(bad.metrics["loss"].iloc[:-1]).all()
    for p, q in zip(alone.network.parameters(), bad.network.parameters()):
        assert torch.equal(p, q)  # frozen at the weights that gave the first non-finite loss, as alone
    for spec, good in zip(specs[::2], results[::2]):
        assert len(good.metrics) == 301 and np.isfinite(good.metrics["loss"]).all()
        _assert_same_run(_alone(NetworkConfig(1, 1, ()), task, spec, epochs=300), good)


def test_stop_rules_apply_to_each_member_apart():
    task = load_task("xor")
    specs = [MemberSpec(optimizer="adam", lr=lr, seed=seed) for lr, seed in ((0.1, 0), (0.02, 1), (0.001, 2))]
    results = _compare(NetworkConfig(2, 1, (4,)), task, specs, epochs=200, stop_accuracy=1.0)
    assert [r.status for r in results] == ["converged", "converged", "complete"]
    assert results[0].epochs < results[1].epochs < 200 == results[2].epochs
    assert (results[1].metrics["accuracy"].iloc[:-1] < 1).all() and results[1].final["accuracy"] == 1


# ----------------------------------------------------------------------------- callbacks


class _Spy(Callback):
    def __init__(self, stop_at=None):
        self.calls, self.stop_at, self.seen = [], stop_at, []

    def on_train_begin(self, state):
        self.calls.append("begin")

    def on_epoch_begin(self, state):
        self.calls.append(f"b{state.epoch}")

    def on_epoch_end(self, state):
        self.calls.append(f"e{state.epoch}")
        net = state.network
        seen = {}
        if isinstance(state, MemberState):
            with torch.no_grad():
                seen["out"] = (state.layer_outputs["output"], net(state.inputs))
                seen["hidden1"] = (state.layer_outputs["hidden1"], net.hidden1(state.inputs))
            seen["params"] = {n: p is state.parameters[n] for n, p in net.named_parameters()}
            seen["keys"] = list(state.layer_outputs)
            seen["gradients"] = {n: g.clone() for n, g in state.gradients.items()}
        self.seen.append(
            {
                **seen,
                "grads": {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None},
                "norms": state_norms(state.optimizer, net.parameters()),
                "metrics": dict(state.metrics),
            }
        )
        if state.epoch == self.stop_at:
            state.stop = True

    def on_train_end(self, state):
        self.calls.append(f"end:{state.status}")


def test_each_member_sees_its_own_state_in_trains_hook_order(spirals):
    specs = [
        MemberSpec(optimizer="adam", lr=0.01, seed=1),
        MemberSpec(loss="sse", optimizer="momentum", lr=0.1, seed=2),
        MemberSpec(optimizer="sgd", lr=0.1, seed=3),
    ]
    spies = [_Spy(stop_at=2), None, [_Spy()]]
    results = train_batched(SPIRAL_NET, spirals, specs, epochs=4, callbacks=spies)
    assert [r.status for r in results] == ["stopped", "complete", "complete"]
    assert spies[0].calls == ["begin", "b0", "e0", "b1", "e1", "b2", "e2", "end:stopped"]
    assert spies[2][0].calls[-3:] == ["b4", "e4", "end:complete"]
    spy = spies[0]
    assert spy.seen[0]["keys"] == ["hidden1.linear", "hidden1", "hidden2.linear", "hidden2", "output"]
    for epoch, seen in enumerate(spy.seen):
        for got, want in (seen["out"], seen["hidden1"]):
            assert got.shape == want.shape == (spirals.n_samples, want.shape[1])
            torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
        assert list(seen["grads"]) == [n for n, _ in build_network(SPIRAL_NET).named_parameters()]
        assert all(torch.equal(seen["gradients"][n], g) for n, g in seen["grads"].items())
        assert all(seen["params"].values())
        assert seen["metrics"]["loss"] == results[0].metrics.loc[epoch, "loss"]
        assert set(seen["norms"]) == {"adam_m", "adam_v"}
        assert np.isnan(seen["norms"]["adam_m"]).all() == (epoch == 0)
    # what a callback of the same run trained alone sees, at the last epoch
    alone = _Spy(stop_at=2)
    _alone(SPIRAL_NET, spirals, specs[0], epochs=4, callbacks=[alone])
    assert alone.calls == spy.calls
    for name, g in alone.seen[-1]["grads"].items():
        torch.testing.assert_close(spy.seen[-1]["grads"][name], g, atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(spy.seen[-1]["norms"]["adam_v"], alone.seen[-1]["norms"]["adam_v"], rtol=1e-4)
    # each result's network owns its weights (not views of the batch) and is a plain Network
    pointers = [p.data_ptr() for r in results for p in r.network.parameters()]
    assert len(set(pointers)) == len(pointers)
    assert all(p._base is None for r in results for p in r.network.parameters())
    assert type(results[0].network) is type(build_network(SPIRAL_NET))


def test_a_failing_callback_ends_every_running_member(spirals):
    class Boom(Callback):
        def on_epoch_end(self, state):
            if state.epoch == 3:
                raise RuntimeError("boom")

    spies = [_Spy(), Boom(), _Spy(stop_at=1)]
    with pytest.raises(RuntimeError, match="boom"):
        train_batched(SPIRAL_NET, spirals, [MemberSpec(seed=s) for s in range(3)], epochs=10, callbacks=spies)
    assert spies[0].calls[-1] == "end:failed"
    assert spies[2].calls[-1] == "end:stopped"


def test_member_state_is_a_train_state(spirals):
    class Check(Callback):
        def on_epoch_end(self, state):
            assert isinstance(state, MemberState) and state.member == 1 and state.n_members == 2
            assert state.full_batch and state.config["optimizer"]["name"] == "adam"

    train_batched(
        SPIRAL_NET, spirals, [MemberSpec(), MemberSpec(optimizer="adam")], epochs=1, callbacks=[None, Check()]
    )


def test_minibatch_callbacks_see_full_batch_outputs_and_their_own_generator():
    task = load_task("moons", n_samples=64)
    seen = []

    class Look(Callback):
        def on_epoch_end(self, state):
            with torch.no_grad():
                out = state.network(state.inputs)
            torch.testing.assert_close(state.layer_outputs["output"], out, atol=1e-6, rtol=1e-5)
            seen.append((state.member, state.epoch, state.generator.initial_seed(), sorted(state.gradients)))

    specs = [MemberSpec(seed=5), MemberSpec(seed=6)]
    train_batched(NetworkConfig(2, 1, (3,)), task, specs, epochs=2, batch_size=16, callbacks=[Look(), Look()])
    assert [(m, e, g) for m, e, g, _ in seen] == [(0, 0, 5), (1, 0, 6), (0, 1, 5), (1, 1, 6), (0, 2, 5), (1, 2, 6)]
    assert seen[0][3] == [] and len(seen[-1][3]) == 4  # no gradient before the first mini-batch


def test_a_callback_cannot_resume_a_batched_run(spirals):
    class Resume(Callback):
        def on_train_begin(self, state):
            state.start_epoch = 5

    with pytest.raises(ParameterError, match="cannot resume"):
        train_batched(SPIRAL_NET, spirals, [MemberSpec()], epochs=10, callbacks=[Resume()])


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        (
            {"members": [MemberSpec(), MemberSpec(optimizer="lbfgs")]},
            r"members\[1\]\.optimizer .*'lbfgs'.*train it alone",
        ),
        ({"members": [MemberSpec(optimizer="adagrad")]}, r"members\[0\]\.optimizer must be one of"),
        (
            {"members": [MemberSpec(optimizer="sgd", optimizer_options={"momentum": 0.5})]},
            r"members\[0\]: .*'momentum'",
        ),
        ({"members": [MemberSpec(lr=-1.0)]}, r"members\[0\]: lr must be"),
        ({"members": [MemberSpec(loss="softmax")]}, r"members\[0\]: loss 'softmax' needs a multiclass task"),
        ({"members": []}, "at least one MemberSpec"),
        ({"members": [{"loss": "bce"}]}, r"members\[0\] must be a MemberSpec"),
        ({"config": NetworkConfig(3, 1, (2,))}, "config must have 2 inputs and 1 outputs for task 'xor'; got 3 and 1"),
        ({"config": NetworkConfig(2, 2, (2,))}, "got 2 and 2"),
        ({"config": torch.nn.Linear(2, 1)}, "config must be a NetworkConfig"),
        ({"callbacks": [None]}, r"callbacks must hold one entry .* per member \(2\); got 1"),
        ({"epochs": -1}, "epochs must be an integer >= 0; got -1"),
        ({"batch_size": 0}, "batch_size must be"),
    ],
)
def test_bad_input(kwargs, fragment):
    task = load_task("xor")
    args = {"config": NetworkConfig(2, 1, (2,)), "members": [MemberSpec(), MemberSpec(seed=1)], "epochs": 3}
    args.update(kwargs)
    with pytest.raises(ParameterError, match=fragment):
        train_batched(args.pop("config"), task, args.pop("members"), **args)


@pytest.mark.parametrize(
    ("config", "task_name", "losses"),
    [
        (NetworkConfig(2, 1, (6, 5), activation=("tanh", "sigmoid")), "xor", ("sse", "bce")),
        (NetworkConfig(2, 1, (5, 4), activation=("relu", "linear"), shortcut=True), "spirals", ("bce", "sse")),
        (NetworkConfig(2, 3, (8,)), "blobs", ("softmax", "bce", "sse")),
        (NetworkConfig(1, 1, (4,)), "linear", ("sse",)),
    ],
    ids=["two-layers", "shortcut", "softmax", "regression"],
)
def test_the_hand_written_gradient_is_autograds(config, task_name, losses):
    """``_Batch.gradient`` against ``torch.autograd`` of the same batched loss, weight decay included."""
    from models.batched import _Batch, _resolve_members

    task = load_task(task_name)
    specs = [
        MemberSpec(loss=loss, optimizer="sgd", lr=0.1, seed=seed, weight_decay=wd)
        for loss in losses
        for seed, wd in ((0, 0.0), (1, 0.01))
    ]
    b = _Batch(config, task, _resolve_members(specs, task, []), torch.device("cpu"))
    w = b.w.clone().requires_grad_(True)
    logits, _ = b.forward(w, b.xT)
    lam = torch.tensor([s.weight_decay for s in specs])[[m.index for m in b.members]]
    # (lambda/2) sum w^2 over the weights (not the biases), by hand
    penalty = sum(0.5 * lam * (w[:, s.start : s.stop] ** 2).sum(1) for s in b.slots if len(s.shape) >= 2)
    (want,) = torch.autograd.grad((b.data_losses(logits, b.tT) + penalty).sum(), w)
    with torch.no_grad():
        data, got_logits, outputs, z = b.gradient(b.xT, b.tT, keep=True)
    torch.testing.assert_close(b.grad, want, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(got_logits, logits.detach())
    torch.testing.assert_close(data, b.data_losses(logits, b.tT).detach())
    assert torch.equal(z, b.activations(got_logits))
    assert set(outputs) == {f"hidden{k + 1}{x}" for k in range(len(config.hidden)) for x in ("", ".linear")} | {
        "output"
    }


@pytest.mark.parametrize("per_member_targets", [False, True])
def test_sigmoid_losses_in_one_pass_are_the_per_segment_formulas_bit_for_bit(per_member_targets):
    """sse and bce members interleaved (4 runs of rows, as a loss x optimizer grid sorts them): the one-pass
    data loss, logit gradient and outputs equal the run-by-run formulas (to the last bit: torch's vector
    kernels round a tensor's tail elements apart) and ``activations`` exactly."""
    from models.batched import _Batch, _resolve_members

    task = load_task("spirals")
    specs = [
        MemberSpec(loss=loss, optimizer=opt, lr=0.1, seed=seed)
        for opt in ("momentum", "adam")  # train_batched's order: by optimizer, then by loss
        for loss in ("sse", "bce")
        for seed in (0, 1)
    ]
    b = _Batch(
        NetworkConfig(2, 1, (10, 10), activation="tanh"), task, _resolve_members(specs, task, []), torch.device("cpu")
    )
    assert b.sigmoid_family and len(b.segments) == 4
    logits, _ = b.forward(b.w, b.xT)
    logits = logits * 3  # outputs well away from 0.5: saturated sigmoids too
    targets = b.tT.expand(b.n, *b.tT.shape).flip(-1).contiguous() if per_member_targets else b.tT
    z_out = torch.empty_like(logits)
    got = b._sigmoid_loss_terms(logits, targets, z_out)
    want = b._loss_terms_by_segment(logits, targets)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=3e-7, atol=1e-9)
    assert got[2].data_ptr() == z_out.data_ptr()
    assert torch.equal(got[2], b.activations(logits))
    torch.testing.assert_close(got[0], b.data_losses(logits, targets), rtol=3e-7, atol=0)


def test_batched_tanh_is_within_2e7_of_tanh():
    from models.batched import _tanh

    x = torch.linspace(-12, 12, 200_001)
    exact = torch.tanh(x.double())
    assert (_tanh(x).double() - exact).abs().max() < 2e-7
    assert (torch.tanh(x).double() - exact).abs().max() < 2e-7  # the same bound as torch's own float32 tanh
    assert _tanh(torch.tensor([0.0])).item() == 0.0


@pytest.mark.parametrize(
    ("config", "task_name", "losses"),
    [
        (NetworkConfig(2, 1, (6, 5), activation=("tanh", "sigmoid")), "xor", ("sse", "bce")),
        (NetworkConfig(2, 1, (5, 4), activation=("relu", "linear"), shortcut=True), "spirals", ("bce", "sse")),
        (NetworkConfig(2, 3, (8,)), "blobs", ("softmax", "bce", "sse")),
    ],
    ids=["two-layers", "shortcut", "softmax"],
)
def test_the_forward_pass_writes_its_outputs_where_it_is_told(config, task_name, losses):
    """``out=``: the layer outputs, logits and z = f(logits) land in the given tensors, equal to new ones."""
    from models.batched import _Batch, _resolve_members

    task = load_task(task_name)
    specs = [MemberSpec(loss=loss, optimizer="sgd", seed=seed) for loss in losses for seed in (0, 1)]
    b = _Batch(config, task, _resolve_members(specs, task, []), torch.device("cpu"))
    with torch.no_grad():
        _, logits, want, want["z"] = b.gradient(b.xT, b.tT, keep=True)
        grad = b.grad.clone()
        out = {name: torch.full_like(t, 7.0) for name, t in want.items()}
        _, got_logits, got, z = b.gradient(b.xT, b.tT, out=out)
        assert z.data_ptr() == out["z"].data_ptr()
    assert torch.equal(b.grad, grad)  # the same backward pass
    for name, t in want.items():
        assert torch.equal(out[name], t), name  # bit for bit: the same operations, another destination
        if name != "z":
            assert got[name].data_ptr() == out[name].data_ptr(), name  # what the pass returns is that tensor
    # z of a softmax member sums to one over the outputs; of a sigmoid member, lies in (0, 1)
    assert ((out["z"] > 0) & (out["z"] < 1)).all()
