"""Learning dynamics: curves, thresholds, Wilson intervals, norms and effective step sizes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from analysis import dynamics
from data.errors import ParameterError


@pytest.fixture
def runs():
    epochs = pd.Index(range(5), name="epoch")
    a = pd.DataFrame({"loss": [1.0, 0.6, 0.3, 0.1, 0.05], "accuracy": [0.5, 0.6, 0.9, 1.0, 1.0]}, index=epochs)
    b = pd.DataFrame(
        {"loss": [1.0, 2.0, np.nan, np.nan, np.nan], "accuracy": [0.5, 0.4, np.nan, np.nan, np.nan]}, index=epochs
    )
    return {"seed0": a, "seed1": b}


def test_learning_curves_are_tidy(runs):
    df = dynamics.learning_curves(runs)
    assert list(df.columns) == ["run", "epoch", "metric", "value"]
    assert len(df) == 2 * 5 * 2
    v = df[(df.run == "seed0") & (df.metric == "loss") & (df.epoch == 3)].value
    assert v.item() == 0.1
    assert df[(df.run == "seed1") & (df.epoch == 4)].value.isna().all()  # divergence is kept, not dropped
    only = dynamics.learning_curves(runs, metrics=["accuracy"])
    assert set(only.metric) == {"accuracy"}
    with pytest.raises(ParameterError, match="metrics"):
        dynamics.learning_curves(runs, metrics=["acc"])
    with_column = {"r": runs["seed0"].reset_index()}
    assert len(dynamics.learning_curves(with_column)) == 10


def test_epochs_to_threshold(runs):
    a = runs["seed0"]
    assert dynamics.epochs_to_threshold(a, threshold=0.3) == 2.0  # loss: reaching means <=
    assert dynamics.epochs_to_threshold(a, metric="accuracy", threshold=0.95) == 3.0  # accuracy: >=
    assert math.isnan(dynamics.epochs_to_threshold(a, threshold=0.01))
    assert dynamics.epochs_to_threshold(a["loss"], threshold=0.5) == 2.0
    assert dynamics.epochs_to_threshold(a, metric="loss", threshold=0.9, direction="above") == 0.0
    by_run = dynamics.epochs_to_threshold_by_run(runs, threshold=0.2)
    assert by_run["seed0"] == 3.0 and math.isnan(by_run["seed1"])  # NaN never reaches
    with pytest.raises(ParameterError, match="direction must be one of"):
        dynamics.epochs_to_threshold(a, threshold=0.1, direction="down")


def test_wilson_interval_known_values():
    low, high = dynamics.wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=5e-5)
    assert high == pytest.approx(0.9433, abs=5e-5)
    # 0 of 10: lower bound 0, upper bound z^2 / (n + z^2) with z = 1.959964
    z2 = 1.959963984540054**2
    low, high = dynamics.wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(z2 / (10 + z2), rel=1e-12)
    low, high = dynamics.wilson_interval(10, 10)
    assert high == 1.0 and low == pytest.approx(10 / (10 + z2), rel=1e-12)
    # wider at higher confidence
    assert dynamics.wilson_interval(8, 10, confidence=0.99)[0] < 0.4902
    with pytest.raises(ParameterError, match="successes"):
        dynamics.wilson_interval(11, 10)
    with pytest.raises(ParameterError, match="trials"):
        dynamics.wilson_interval(0, 0)


def test_success_rate_from_outcomes():
    outcomes = [True] * 8 + [False] * 2
    rate = dynamics.success_rate(outcomes)
    assert (rate.successes, rate.trials, rate.rate) == (8, 10, 0.8)
    assert (rate.low, rate.high) == pytest.approx((0.4902, 0.9433), abs=5e-5)
    same = dynamics.success_rate({f"seed{i}": o for i, o in enumerate(outcomes)})
    assert same == rate
    assert dynamics.success_rate(np.array([1, 0, 1])).successes == 2
    with pytest.raises(ParameterError, match="outcomes"):
        dynamics.success_rate([0.5, 1.0])
    with pytest.raises(ParameterError, match="outcomes"):
        dynamics.success_rate([])


def _history():
    rng = np.random.default_rng(0)
    return {
        "hidden1.linear.weight": rng.normal(size=(4, 3, 2)),
        "hidden1.linear.bias": rng.normal(size=(4, 3)),
        "output.weight": rng.normal(size=(4, 1, 3)),
        "output.bias": rng.normal(size=(4, 1)),
    }


def test_weight_norms_group_parameters_by_layer():
    params = _history()
    df = dynamics.weight_norms(params, epochs=[0, 10, 20, 30])
    assert list(df.columns) == ["epoch", "layer", "metric", "value"]
    assert set(df.layer) == {"hidden1", "output"} and len(df) == 8
    e = 2
    expected = np.sqrt(np.sum(params["hidden1.linear.weight"][e] ** 2) + np.sum(params["hidden1.linear.bias"][e] ** 2))
    assert df[(df.layer == "hidden1") & (df.epoch == 20)].value.item() == pytest.approx(expected)
    no_bias = dynamics.weight_norms(params, include_biases=False)
    assert no_bias[(no_bias.layer == "output") & (no_bias.epoch == 1)].value.item() == pytest.approx(
        np.linalg.norm(params["output.weight"][1])
    )
    rel = dynamics.weight_norms(params, relative=True)
    np.testing.assert_allclose(rel[rel.epoch == 0].value, 1.0)
    with pytest.raises(ParameterError, match=r"n_epochs = 4"):
        dynamics.weight_norms({**params, "output.bias": np.zeros((3, 1))})


def test_sgd_effective_step_is_one():
    rng = np.random.default_rng(1)
    lr, n = 0.1, 6
    w = [rng.normal(size=(3, 2))]
    grads = []
    for _ in range(n):
        g = rng.normal(size=(3, 2))
        grads.append(g)
        w.append(w[-1] - lr * g)  # w_{k+1} = w_k - lr g_k
    params = {"hidden1.linear.weight": np.stack(w)}
    upd = dynamics.update_norms(params)
    assert len(upd) == n and upd.epoch.tolist() == list(range(n))
    np.testing.assert_allclose(upd.value, [np.linalg.norm(w[k + 1] - w[k]) for k in range(n)])
    grad = dynamics.gradient_norms({"hidden1.linear.weight": np.stack(grads + [np.zeros((3, 2))])})
    step = dynamics.effective_step_size(upd, grad, lr=lr)
    assert list(step.columns) == ["epoch", "layer", "metric", "value"] and len(step) == n
    np.testing.assert_allclose(step.value, 1.0, rtol=1e-12)


def test_adam_first_step_is_lr_times_sign_of_the_gradient():
    # torch's Adam at its first step moves each weight by about lr * sign(g): ||dw|| = lr sqrt(d)
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    opt = torch.optim.Adam(layer.parameters(), lr=0.01)
    x = torch.randn(8, 4)
    w0 = {k: v.detach().numpy().copy() for k, v in layer.named_parameters()}
    loss = (layer(x) ** 2).sum()
    loss.backward()
    g0 = {k: v.grad.numpy().copy() for k, v in layer.named_parameters()}
    opt.step()
    w1 = {k: v.detach().numpy().copy() for k, v in layer.named_parameters()}
    params = {f"hidden1.{k}": np.stack([w0[k], w1[k]]) for k in w0}
    grads = {f"hidden1.{k}": np.stack([g0[k], np.zeros_like(g0[k])]) for k in g0}
    step = dynamics.effective_step_size(dynamics.update_norms(params), dynamics.gradient_norms(grads), lr=0.01)
    d = sum(v.size for v in g0.values())
    gnorm = np.sqrt(sum((v**2).sum() for v in g0.values()))
    assert step.value.item() == pytest.approx(np.sqrt(d) / gnorm, rel=1e-4)


def test_update_norms_need_two_epochs_and_step_needs_frames():
    with pytest.raises(ParameterError, match="at least 2 epochs"):
        dynamics.update_norms({"a.w": np.zeros((1, 3))})
    with pytest.raises(ParameterError, match="params must be a non-empty mapping"):
        dynamics.update_norms([])
    with pytest.raises(ParameterError, match="updates must be a DataFrame"):
        dynamics.effective_step_size(np.zeros(3), pd.DataFrame(), lr=0.1)
    assert dynamics.layer_of("hidden2.linear.weight") == "hidden2" and dynamics.layer_of("output") == "output"


def test_norms_by_layer_combines_parameter_norms_and_shifts_epochs():
    import pandas as pd

    from analysis.dynamics import norms_by_layer

    wide = pd.DataFrame(
        {"hidden1.linear.weight": [3.0, 6.0], "hidden1.linear.bias": [4.0, 8.0], "output.weight": [1.0, 2.0]},
        index=pd.Index([1, 2], name="epoch"),
    )
    tidy = norms_by_layer(wide, metric="update_norm", shift=-1)
    h1 = tidy[tidy.layer == "hidden1"]
    assert list(h1.epoch) == [0, 1] and list(h1.value) == [5.0, 10.0]
    assert list(tidy[tidy.layer == "output"].value) == [1.0, 2.0]
    assert set(tidy.metric) == {"update_norm"}
