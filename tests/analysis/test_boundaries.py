"""Boundaries: outputs over grids, unit maps, exact hidden-space lines, pushed-forward fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from analysis import boundaries
from analysis.pca import TrajectoryPCA
from data.errors import ParameterError
from models import NetworkConfig, build_network

# a hand-set 2-2-2 tanh network
W1 = np.array([[1.0, -2.0], [0.5, 1.5]])
B1 = np.array([0.1, -0.3])
W2 = np.array([[2.0, -1.0], [-0.5, 3.0]])
B2 = np.array([0.25, -0.4])


@pytest.fixture
def net222():
    cfg = NetworkConfig(2, 2, (2,), activation="tanh")
    params = {"hidden1.linear.weight": W1, "hidden1.linear.bias": B1, "output.weight": W2, "output.bias": B2}
    return cfg, params


@pytest.fixture
def grid():
    xs, ys = np.linspace(-1, 1, 5), np.linspace(-2, 2, 4)
    xx, yy = np.meshgrid(xs, ys)  # y outer, x inner, like task.grid
    return np.stack([xx.ravel(), yy.ravel()], axis=1), (4, 5)


def _forward(x, layers):
    """Numpy forward pass: tanh hidden layers, linear output."""
    h = x
    for w, b in layers[:-1]:
        h = np.tanh(h @ w.T + b)
    w, b = layers[-1]
    return h @ w.T + b


def test_network_outputs_at_given_weights(net222, grid):
    cfg, params = net222
    g, _ = grid
    out = boundaries.network_outputs(cfg, g, params=params)
    assert out.shape == (20, 2)
    np.testing.assert_allclose(out, _forward(g, [(W1, B1), (W2, B2)]), atol=1e-12)
    probs = boundaries.network_outputs(cfg, g, params=params, output="softmax")
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    sig = boundaries.network_outputs(cfg, g, params=params, output="sigmoid")
    np.testing.assert_allclose(sig, 1 / (1 + np.exp(-out)))
    # an nn.Module gives the same, and is left unchanged
    module = build_network(cfg, seed=3)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    np.testing.assert_allclose(boundaries.network_outputs(module, g, params=params), out, atol=1e-12)
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k]) and v.dtype == torch.float32


def test_a_network_already_in_float64_eval_mode_is_used_as_is_and_still_checked(net222, grid):
    cfg, params = net222
    g, _ = grid
    loaded = boundaries.load_network(cfg, params=params)  # float64, CPU, eval: what the functions need
    before = {k: v.clone() for k, v in loaded.state_dict().items()}
    np.testing.assert_allclose(boundaries.network_outputs(loaded, g), _forward(g, [(W1, B1), (W2, B2)]), atol=1e-12)
    assert loaded.hidden1.linear.weight.data_ptr() == boundaries._network(loaded, None).hidden1.linear.weight.data_ptr()
    assert all(torch.equal(v, before[k]) for k, v in loaded.state_dict().items())
    # a float32 or training-mode module, or one given params, is copied; a copy never changes the original
    module = build_network(cfg, seed=3)
    assert boundaries._network(module, None) is not module
    assert boundaries._network(loaded.train(), None) is not loaded
    assert boundaries._network(loaded.eval(), params) is not loaded
    with torch.no_grad():
        loaded.output.bias[0] = float("nan")
    with pytest.raises(ParameterError, match="NaN"):
        boundaries.network_outputs(loaded, g)


def test_unit_maps_are_continuous_activations_over_the_plane(net222, grid):
    cfg, params = net222
    g, shape = grid
    maps = boundaries.unit_maps(cfg, g, layer="hidden1", grid_shape=shape, params=params)
    assert maps.shape == (2, 4, 5)
    expected = np.tanh(g @ W1.T + B1)  # (n_grid, n_units)
    np.testing.assert_allclose(maps[1], expected[:, 1].reshape(shape), atol=1e-12)
    np.testing.assert_allclose(maps[0, 2, 3], np.tanh(W1[0] @ [0.5, 2 / 3] + B1[0]), atol=1e-12)
    pre = boundaries.unit_maps(cfg, g, layer="hidden1", params=params, pre_activation=True)
    np.testing.assert_allclose(pre, (g @ W1.T + B1).T, atol=1e-12)
    thr = boundaries.unit_maps(cfg, g, layer="hidden1", grid_shape=shape, params=params, threshold=0.0)
    assert thr.dtype == bool
    np.testing.assert_array_equal(thr, maps > 0)
    with pytest.raises(ParameterError, match="grid_shape"):
        boundaries.unit_maps(cfg, g, layer="hidden1", grid_shape=(3, 5), params=params)


def test_output_lines_of_a_hand_set_222_network(net222):
    cfg, params = net222
    planes = boundaries.output_hyperplanes(cfg, params=params)
    assert len(planes) == 2 and planes.n_units == 2 and planes.layer == "hidden1"
    box = (-1.0, 1.0, -1.0, 1.0)
    for k in range(2):
        seg = planes.clip(k, box)
        assert seg.shape == (2, 2)
        ts = np.linspace(0, 1, 7)[:, None]
        pts = seg[0] + ts * (seg[1] - seg[0])
        # points on the returned segment give zero output pre-activation, by the hand-set weights
        np.testing.assert_allclose(pts @ W2[k] + B2[k], 0.0, atol=1e-12)
        # the ends lie on the box's sides
        on_side = np.isclose(np.abs(seg), 1.0).any(axis=1)
        assert on_side.all() and (np.abs(seg) <= 1.0 + 1e-12).all()
    # at the origin of hidden space only the biases remain
    assert planes.evaluate(np.array([[0.0, 0.0]]))[0] == pytest.approx(B2)


def test_clip_misses_and_pairwise_and_planes():
    planes = boundaries.Hyperplanes(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([-5.0, 1.0]))
    assert planes.clip(0, (-1, 1, -1, 1)) is None  # x = 5 is outside
    assert planes.clip(1, (-1, 1, -1, 1)) is None  # zero weights: no boundary
    on_side = boundaries.Hyperplanes(np.array([[1.0, 0.0]]), np.array([-1.0])).clip(0, (-1, 1, -1, 1))
    np.testing.assert_allclose(sorted(on_side[:, 1]), [-1.0, 1.0])
    np.testing.assert_allclose(on_side[:, 0], 1.0)
    pw = boundaries.Hyperplanes(W2, B2).pairwise()
    assert pw.labels == ((0, 1),)
    np.testing.assert_allclose(pw.weights[0], W2[0] - W2[1])
    # 3 units: a plane clipped to the cube is a polygon of points on the plane, on the cube's faces
    w = np.array([[1.0, 1.0, 1.0]])
    poly = boundaries.Hyperplanes(w, np.array([-0.5])).clip(0, (-1, 1, -1, 1, -1, 1))
    assert poly.shape == (6, 3)  # x + y + z = 0.5 cuts the cube in a hexagon
    np.testing.assert_allclose(poly @ w[0] - 0.5, 0.0, atol=1e-12)
    assert np.isclose(np.abs(poly), 1.0).any(axis=1).all()
    # ordered around the edge: consecutive corners share a face (a coordinate at +-1)
    for a, b in zip(poly, np.roll(poly, -1, axis=0)):
        assert any(np.isclose(abs(a[i]), 1) and np.isclose(a[i], b[i]) for i in range(3))
    with pytest.raises(ParameterError, match="box must be"):
        planes.clip(0, (1, -1, 0, 1))


def test_encoder_points_are_tanh_of_weight_columns_plus_bias():
    rng = np.random.default_rng(0)
    cfg = NetworkConfig(5, 5, (2,), activation="tanh")
    params = {
        "hidden1.linear.weight": rng.normal(size=(2, 5)),
        "hidden1.linear.bias": rng.normal(size=2),
        "output.weight": rng.normal(size=(5, 2)),
        "output.bias": rng.normal(size=5),
    }
    pts = boundaries.encoder_points(cfg, params=params)
    w1, b1 = params["hidden1.linear.weight"], params["hidden1.linear.bias"]
    np.testing.assert_allclose(pts, np.stack([np.tanh(w1[:, j] + b1) for j in range(5)]), atol=1e-12)
    # each output unit's line passes where its own pre-activation is zero
    planes = boundaries.output_hyperplanes(cfg, params=params)
    logits = boundaries.forward_from(cfg, pts, layer="hidden1", params=params)
    np.testing.assert_allclose(planes.evaluate(pts), logits, atol=1e-12)


def test_forward_from_an_earlier_layer_and_its_plane_field():
    rng = np.random.default_rng(1)
    cfg = NetworkConfig(2, 1, (2, 3), activation="tanh")
    p = {
        "hidden1.linear.weight": rng.normal(size=(2, 2)),
        "hidden1.linear.bias": rng.normal(size=2),
        "hidden2.linear.weight": rng.normal(size=(3, 2)),
        "hidden2.linear.bias": rng.normal(size=3),
        "output.weight": rng.normal(size=(1, 3)),
        "output.bias": rng.normal(size=1),
    }
    rest = [(p["hidden2.linear.weight"], p["hidden2.linear.bias"]), (p["output.weight"], p["output.bias"])]
    h = rng.uniform(-1, 1, size=(10, 2))
    np.testing.assert_allclose(boundaries.forward_from(cfg, h, layer="hidden1", params=p), _forward(h, rest))
    # exact lines only for the last hidden layer
    with pytest.raises(ParameterError, match="last hidden layer 'hidden2'"):
        boundaries.output_hyperplanes(cfg, layer="hidden1", params=p)
    field = boundaries.hidden_plane_field(cfg, layer="hidden1", params=p, extent=(-1, 1, -1, 1), grid_size=11)
    assert field.values.shape == (1, 11, 11) and field.grid.shape == (121, 2)
    np.testing.assert_allclose(field.hidden, field.grid)  # 2 units: the plane is the layer's space
    np.testing.assert_allclose(field.values[0].ravel(), _forward(field.grid, rest)[:, 0], atol=1e-12)
    assert field.values[0, 0, 10] == pytest.approx(_forward(np.array([[1.0, -1.0]]), rest)[0, 0])


def test_plane_field_of_a_wide_layer_lies_in_the_pca_plane():
    rng = np.random.default_rng(2)
    cfg = NetworkConfig(2, 2, (5,), activation="tanh")
    net = build_network(cfg, seed=4)
    inputs = rng.normal(size=(40, 2))
    points = boundaries.layer_outputs(net, inputs, layers="hidden1")["hidden1"]
    field = boundaries.hidden_plane_field(net, layer="hidden1", points=points, grid_size=9)
    ref = PCA(2).fit(points)
    resid = (field.hidden - ref.mean_) - (field.hidden - ref.mean_) @ ref.components_.T @ ref.components_
    np.testing.assert_allclose(resid, 0.0, atol=1e-10)  # the grid lies in the points' PCA plane
    w2 = net.output.weight.detach().double().numpy()
    b2 = net.output.bias.detach().double().numpy()
    np.testing.assert_allclose(field.values.reshape(2, -1).T, field.hidden @ w2.T + b2, atol=1e-10)
    assert field.points.shape == (40, 2)
    lo = field.points.min(axis=0)
    assert field.extent[0] < lo[0] and field.extent[2] < lo[1]
    # a basis fitted on several epochs keeps the plane fixed
    basis = TrajectoryPCA(3).fit(np.stack([points, points * 0.5]))
    fixed = boundaries.hidden_plane_field(net, layer="hidden1", points=points, basis=basis, grid_size=5)
    np.testing.assert_allclose(fixed.components, basis.components_[:2])
    with pytest.raises(ParameterError, match="points .* or a fitted basis"):
        boundaries.hidden_plane_field(net, layer="hidden1", extent=(-1, 1, -1, 1))


def test_layer_outputs_hooks_and_errors(net222, grid):
    cfg, params = net222
    g, _ = grid
    outs = boundaries.layer_outputs(cfg, g, params=params)
    assert set(outs) == {"hidden1", "output"}
    np.testing.assert_allclose(outs["hidden1"], np.tanh(g @ W1.T + B1), atol=1e-12)
    with pytest.raises(ParameterError, match="layers must be one of"):
        boundaries.layer_outputs(cfg, g, layers="hiden1", params=params)
    with pytest.raises(ParameterError, match=r"inputs must be an array of shape \(n_points, n_inputs\).*\(20, 3\)"):
        boundaries.layer_outputs(cfg, np.zeros((20, 3)), params=params)
    with pytest.raises(ParameterError, match="params must hold exactly"):
        boundaries.network_outputs(cfg, g, params={"output.weight": W2})
    with pytest.raises(ParameterError, match=r"params\['output.weight'\] must be an array of shape \(2, 2\)"):
        boundaries.network_outputs(cfg, g, params={**params, "output.weight": np.zeros((1, 2))})
    with pytest.raises(ParameterError, match="params must be given"):
        boundaries.network_outputs(cfg, g)
    bad = {**params, "output.bias": np.array([np.nan, 0.0])}
    with pytest.raises(ParameterError, match="'output.bias' holds NaN"):
        boundaries.network_outputs(cfg, g, params=bad)
    nan_grid = g.copy()
    nan_grid[0, 0] = np.nan
    with pytest.raises(ParameterError, match="grid holds NaN"):
        boundaries.network_outputs(cfg, nan_grid, params=params)


def test_a_one_unit_layer_cannot_be_drawn_in_2d():
    cfg = NetworkConfig(2, 1, (1,), activation="tanh")
    net = build_network(cfg, seed=0)
    with pytest.raises(ParameterError, match="at least 2 units"):
        boundaries.output_hyperplanes(net)
    with pytest.raises(ParameterError, match="at least 2 units"):
        boundaries.hidden_plane_field(net, layer="hidden1", extent=(-1, 1, -1, 1))


def test_shortcut_networks_have_no_rest_of_network():
    net = build_network(NetworkConfig(2, 1, (2, 2), shortcut=True), seed=0)
    with pytest.raises(ParameterError, match="shortcut"):
        boundaries.forward_from(net, np.zeros((3, 2)), layer="hidden1")


def test_sequential_networks_are_supported():
    torch.manual_seed(0)
    seq = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
    h = np.random.default_rng(3).normal(size=(4, 3))
    w = seq[2].weight.detach().double().numpy()
    b = seq[2].bias.detach().double().numpy()
    np.testing.assert_allclose(boundaries.forward_from(seq, h, layer="1"), h @ w.T + b, atol=1e-12)
    maps = boundaries.unit_maps(seq, np.zeros((6, 2)), layer="1", grid_shape=(2, 3))
    assert maps.shape == (3, 2, 3)
    with pytest.raises(ParameterError, match="layers must be given"):
        boundaries.layer_outputs(seq, np.zeros((6, 2)))
