"""Networks: names, shapes, initialisation, determinism, PolarNet, shortcuts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from data import ParameterError
from models import NetworkConfig, build_network


def test_named_layers_and_shapes():
    net = build_network(NetworkConfig(2, 1, (10, 5), activation=("tanh", "relu")))
    names = dict(net.named_modules())
    assert {"hidden1", "hidden1.linear", "hidden2", "output"} <= set(names)
    assert net.layer_names == ["hidden1", "hidden2", "output"]
    assert isinstance(names["hidden2"].act, torch.nn.ReLU)
    assert net(torch.zeros(7, 2)).shape == (7, 1)


def test_forward_is_the_textbook_composition():
    net = build_network(NetworkConfig(3, 2, (4,), activation="sigmoid"), seed=1)
    x = torch.randn(5, 3)
    w1, b1 = net.hidden1.linear.weight, net.hidden1.linear.bias
    w2, b2 = net.output.weight, net.output.bias
    torch.testing.assert_close(net(x), torch.sigmoid(x @ w1.T + b1) @ w2.T + b2)


def test_same_seed_bit_identical_and_independent_of_global_rng():
    cfg = NetworkConfig(2, 1, (10, 10))
    a = build_network(cfg, seed=3)
    torch.manual_seed(12345)
    torch.rand(100)
    b = build_network(cfg, seed=3)
    c = build_network(cfg, seed=4)
    for (n, p), q, r in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(p, q), n
        assert not torch.equal(p, r), n


def test_course_init_is_normal_with_the_given_std():
    net = build_network(NetworkConfig(50, 50, (400,), init=0.1), seed=0)
    w = net.hidden1.linear.weight.detach().numpy().ravel()
    assert abs(w.mean()) < 0.005
    assert w.std() == pytest.approx(0.1, rel=0.02)


def test_polarnet_feeds_r_and_angle_to_a_tanh_layer():
    net = build_network(NetworkConfig(2, 1, (6,), architecture="polar"), seed=0)
    x = torch.tensor([[3.0, 4.0], [-1.0, 0.0]])
    polar = net.polar(x)
    torch.testing.assert_close(polar, torch.tensor([[5.0, math.atan2(4, 3)], [1.0, math.pi]]))
    h = torch.tanh(polar @ net.hidden1.linear.weight.T + net.hidden1.linear.bias)
    torch.testing.assert_close(net(x), h @ net.output.weight.T + net.output.bias)


def test_shortcuts_feed_every_earlier_layer_forward():
    net = build_network(NetworkConfig(2, 1, (3, 4), shortcut=True), seed=0)
    assert net.hidden2.linear.in_features == 2 + 3
    assert net.output.in_features == 2 + 3 + 4
    x = torch.randn(4, 2)
    h1 = net.hidden1(x)
    h2 = net.hidden2(torch.cat([x, h1], 1))
    torch.testing.assert_close(net(x), net.output(torch.cat([x, h1, h2], 1)))


def test_config_round_trips_through_a_dict():
    cfg = NetworkConfig(2, 3, (4, 5), activation=("tanh", "relu"), init=0.1, shortcut=True)
    assert NetworkConfig.from_dict(cfg.to_dict()) == cfg
    a = build_network(cfg.to_dict(), seed=0)
    b = build_network(cfg, seed=0)
    assert all(np.array_equal(p.detach(), q.detach()) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"activation": "softplus"}, "activation must be one of 'tanh', 'sigmoid', 'relu', 'linear'; got 'softplus'"),
        ({"hidden": (0,)}, "hidden\\[0\\] must be an integer >= 1; got 0"),
        ({"hidden": 10}, "hidden must be a list of layer sizes"),
        ({"architecture": "polar", "n_inputs": 3}, "needs n_inputs == 2; got n_inputs=3"),
        ({"activation": ("tanh",), "hidden": (2, 2)}, "one per hidden layer \\(2\\)"),
        ({"init": -0.1}, "init must be a number > 0; got -0.1"),
    ],
)
def test_bad_network_config(kwargs, fragment):
    base = {"n_inputs": 2, "n_outputs": 1, "hidden": (4,)}
    with pytest.raises(ParameterError, match=fragment):
        NetworkConfig(**{**base, **kwargs})
    with pytest.raises(ParameterError, match="unknown option 'hiden'"):
        NetworkConfig.from_dict({"n_inputs": 2, "n_outputs": 1, "hiden": [3]})


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "linear"])
def test_a_pass_without_autograd_is_the_pass_with_it_and_hooks_see_the_preactivation(activation):
    """Without autograd a hidden layer applies its activation in place; the outputs are the same bits, and a
    hook on the linear map (the recorder's pre-activation) still sees the pre-activation, not the output."""
    net = build_network(NetworkConfig(3, 2, (6, 5), activation=activation), seed=1)
    x = torch.randn(40, 3)
    with_grad = net(x).detach()
    with torch.no_grad():
        assert torch.equal(net(x), with_grad)
        seen = {}
        handle = net.hidden1.linear.register_forward_hook(lambda m, i, o: seen.setdefault("pre", o))
        try:
            assert torch.equal(net(x), with_grad)
        finally:
            handle.remove()
        lin = net.hidden1.linear
        assert torch.equal(seen["pre"], torch.nn.functional.linear(x, lin.weight, lin.bias))
