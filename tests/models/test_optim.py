"""Optimizers against the lesson's update rules, written out in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data import ParameterError
from models import OPTIMIZERS, get_optimizer


def _quadratic_grad(w):
    # E = 1/2 sum a_j w_j^2 + b.w  -> dE/dw = a*w + b
    a = np.array([1.0, 3.0, 0.5])
    b = np.array([0.2, -0.1, 0.4])
    return a * w + b


def _run_torch(name, steps, **opts):
    w = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64))
    opt = get_optimizer(name, [w], **opts)
    for _ in range(steps):
        opt.zero_grad()
        w.grad = torch.as_tensor(_quadratic_grad(w.detach().numpy()))
        opt.step()
    return w.detach().numpy()


@pytest.mark.parametrize("steps", [1, 5])
def test_momentum_is_the_lessons_delta_w_rule(steps):
    eta, alpha = 0.1, 0.9
    w = np.array([0.5, -1.0, 2.0])
    dw = np.zeros(3)
    for _ in range(steps):
        dw = alpha * dw - eta * _quadratic_grad(w)
        w = w + dw
    np.testing.assert_allclose(_run_torch("momentum", steps, lr=eta, momentum=alpha), w, rtol=1e-12)


@pytest.mark.parametrize("steps", [1, 7])
def test_adam_is_the_lessons_bias_corrected_update(steps):
    eta, b1, b2, eps = 0.05, 0.8, 0.99, 1e-8
    w = np.array([0.5, -1.0, 2.0])
    m = v = np.zeros(3)
    for t in range(1, steps + 1):
        g = _quadratic_grad(w)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        mhat, vhat = m / (1 - b1**t), v / (1 - b2**t)
        w = w - eta / (np.sqrt(vhat) + eps) * mhat
    np.testing.assert_allclose(_run_torch("adam", steps, lr=eta, beta1=b1, beta2=b2, eps=eps), w, rtol=1e-10)


def test_sgd_is_plain_gradient_descent():
    w = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(_run_torch("sgd", 1, lr=0.2), w - 0.2 * _quadratic_grad(w))


def test_every_optimizer_descends():
    for name in OPTIMIZERS:
        if name == "lbfgs":
            continue
        w0 = np.array([0.5, -1.0, 2.0])
        w = _run_torch(name, 50, lr=0.05)
        energy = lambda w: 0.5 * np.sum(np.array([1.0, 3.0, 0.5]) * w**2) + np.dot([0.2, -0.1, 0.4], w)
        assert energy(w) < energy(w0), name


@pytest.mark.parametrize(
    ("name", "opts", "fragment"),
    [
        ("adamm", {}, "optimizer must be one of .*did you mean 'adam'"),
        ("momentum", {"momentum": 1.0}, "momentum must be a number in \\[0, 1\\); got 1.0"),
        ("adam", {"lr": 0}, "lr must be a number > 0; got 0"),
        ("adam", {"beta3": 0.9}, "unknown option 'beta3'.*allowed: lr, beta1, beta2, eps"),
        ("sgd", {"lr": float("nan")}, "lr must be a finite number > 0; got nan"),
        ("lbfgs", {"history_size": 0}, "history_size must be an integer >= 1; got 0"),
    ],
)
def test_bad_optimizer_input(name, opts, fragment):
    with pytest.raises(ParameterError, match=fragment):
        get_optimizer(name, [torch.nn.Parameter(torch.zeros(2))], **opts)
