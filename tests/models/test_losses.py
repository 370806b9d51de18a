"""Losses against the lesson's worked examples and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from data import ParameterError
from models import accuracy, get_loss


def test_softmax_of_1_2_3_is_the_lessons_answer():
    z = torch.tensor([[1.0, 2.0, 3.0]])
    loss = get_loss("softmax")
    np.testing.assert_allclose(loss.activation(z)[0].numpy().round(2), [0.09, 0.24, 0.67])


def test_dlogP2_dz_through_the_softmax_loss_with_autograd():
    z = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    # correct class is "2" of classes 1, 2, 3: index 1; the loss is -log P(2)
    get_loss("softmax")(z, torch.tensor([1])).backward()
    dlogp = -z.grad[0].numpy()
    np.testing.assert_allclose(dlogp.round(2), [-0.09, 0.76, -0.67])
    # one-hot float targets give the same gradient
    z2 = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    get_loss("softmax")(z2, torch.tensor([[0.0, 1.0, 0.0]])).backward()
    np.testing.assert_allclose(z2.grad.numpy(), z.grad.numpy(), atol=1e-7)


def test_bce_gradient_wrt_pre_activation_is_z_minus_t():
    s = torch.tensor([[-1.5, 0.3, 2.0]], requires_grad=True)
    t = torch.tensor([[0.0, 1.0, 1.0]])
    loss = get_loss("bce")
    loss(s, t).backward()
    z = 1 / (1 + np.exp(-s.detach().numpy()))
    np.testing.assert_allclose(s.grad.numpy(), z - t.numpy(), rtol=1e-6)


def test_bce_equals_the_lessons_formula_and_is_finite_when_saturated():
    s = torch.tensor([[-2.0, 0.5], [1.0, 3.0]])
    t = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    z = 1 / (1 + np.exp(-s.numpy()))
    expected = np.mean(np.sum(-t.numpy() * np.log(z) - (1 - t.numpy()) * np.log(1 - z), axis=1))
    assert get_loss("bce")(s, t).item() == pytest.approx(expected, rel=1e-6)
    assert np.isfinite(get_loss("bce")(torch.tensor([[200.0]]), torch.tensor([[0.0]])).item())


def test_sse_is_half_sum_of_squares_averaged_over_samples():
    s = torch.tensor([[0.2, -0.4], [1.0, 0.0]])
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    lin = get_loss("sse", output="linear")
    assert lin(s, t).item() == pytest.approx(0.5 * ((t - s) ** 2).sum().item() / 2)
    sig = get_loss("sse")
    z = torch.sigmoid(s)
    assert sig(s, t).item() == pytest.approx(0.5 * ((t - z) ** 2).sum().item() / 2)


def test_weight_decay_penalty_and_its_gradient_lambda_w():
    net = nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1))
    lam = 0.3
    loss = get_loss("sse", weight_decay=lam)
    pen = loss.penalty(net)
    weights = [p for p in net.parameters() if p.dim() == 2]
    assert pen.detach().item() == pytest.approx(
        0.5 * lam * sum(float((w.detach() ** 2).sum()) for w in weights), rel=1e-6
    )
    pen.backward()
    for p in net.parameters():
        if p.dim() == 2:
            torch.testing.assert_close(p.grad, lam * p.detach())
        else:  # biases are not decayed by default
            assert p.grad is None


def test_penalty_is_reported_apart_from_the_data_term():
    net = nn.Linear(2, 1)
    s, t = net(torch.ones(1, 2)), torch.ones(1, 1)
    loss = get_loss("bce", weight_decay=0.1)
    total = loss(s, t, model=net)
    assert total.item() == pytest.approx(loss.data_loss(s, t).item() + loss.penalty(net).item())


def test_accuracy_kinds():
    z = np.array([[0.9, 0.1], [0.2, 0.7], [0.6, 0.4]])
    t = np.array([[1, 0], [1, 0], [1, 0]], float)
    assert accuracy(z, t, "multiclass") == pytest.approx(2 / 3)
    assert accuracy(z, t, "multilabel") == pytest.approx(2 / 3)
    assert accuracy(np.array([[0.7], [0.2]]), np.array([[1.0], [1.0]]), "binary") == 0.5
    assert np.isnan(accuracy(z, t, "regression"))


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"name": "mse"}, "loss must be one of 'sse', 'bce', 'softmax'; got 'mse'"),
        ({"name": "bce", "weight_decay": -1}, "weight_decay must be a number >= 0; got -1"),
        ({"name": "bce", "output": "linear"}, "output \\(for loss 'bce'\\) must be one of 'sigmoid'; got 'linear'"),
    ],
)
def test_bad_losses(kwargs, fragment):
    name = kwargs.pop("name")
    with pytest.raises(ParameterError, match=fragment):
        get_loss(name, **kwargs)


@pytest.mark.parametrize("name", ["sse", "bce", "softmax"])
def test_the_numpy_activation_is_torchs_to_float32_rounding(name):
    """``Loss.activation_numpy`` (a recorder's writer thread) against ``Loss.activation``, extremes included."""
    import warnings

    loss = get_loss(name)
    logits = np.random.default_rng(0).normal(0, 30, (5, 7, 3)).astype(np.float32)
    logits[0, 0] = [-1e4, 0.0, 1e4]  # no overflow in exp, whatever the sign
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = loss.activation_numpy(logits)
    want = loss.activation(torch.from_numpy(logits)).numpy()
    assert got.dtype == np.float32 and got.shape == logits.shape
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)
    if loss.output == "softmax":
        np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-6)
