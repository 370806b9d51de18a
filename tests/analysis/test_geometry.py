"""Geometry metrics against hand computations and textbook formulas."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import geometry
from data.errors import ParameterError


def _hsic(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """Biased HSIC, the textbook formula: tr(K H L H) / (n - 1)^2 with H = I - 11^T/n."""
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ l @ h)) / (n - 1) ** 2


def _hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """Unbiased HSIC of Song et al. (2012), eq. (5), with zeroed Gram diagonals."""
    n = k.shape[0]
    k, l = k.copy(), l.copy()  # noqa: E741
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    one = np.ones(n)
    value = (
        np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (one @ k @ l @ one)
    )
    return float(value) / (n * (n - 3))


def _cka_textbook(x: np.ndarray, y: np.ndarray, hsic=_hsic) -> float:
    k, l = x @ x.T, y @ y.T  # noqa: E741
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


@pytest.fixture
def xy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4)) + 3.0
    y = np.tanh(x @ rng.normal(size=(4, 3))) + 0.5 * rng.normal(size=(12, 3))
    return x, y


# ----------------------------------------------------------------------------- units


def test_saturation_fraction_on_constructed_activations():
    acts = np.array([[0.99, -0.97, 0.2, 0.0], [-1.0, 0.5, 0.96, -0.94]])  # (2 samples, 4 units)
    # |a| >= 0.95: 0.99, -0.97, -1.0, 0.96 -> 4 of 8
    assert geometry.saturation_fraction(acts, threshold=0.05) == pytest.approx(0.5)
    np.testing.assert_allclose(geometry.saturation_fraction(acts, per_unit=True), [1.0, 0.5, 0.5, 0.0])
    sig = np.array([[0.01, 0.5, 0.995], [0.2, 0.98, 0.03]])
    # within 0.05 of 0 or 1: 0.01, 0.995, 0.98, 0.03 -> 4 of 6
    assert geometry.saturation_fraction(sig, activation="sigmoid") == pytest.approx(4 / 6)
    per_epoch = geometry.saturation_fraction(np.stack([acts, np.zeros_like(acts)]))
    np.testing.assert_allclose(per_epoch, [0.5, 0.0])
    with pytest.raises(ParameterError, match="activation must be one of 'tanh', 'sigmoid'; got 'relu'"):
        geometry.saturation_fraction(acts, activation="relu")


def test_dead_units_are_never_active_relus():
    acts = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 0.3]])
    np.testing.assert_array_equal(geometry.dead_units(acts), [True, False, False])
    assert geometry.dead_fraction(acts) == pytest.approx(1 / 3)
    epochs = np.stack([acts, np.zeros_like(acts)])
    np.testing.assert_array_equal(geometry.dead_units(epochs), [[True, False, False], [True, True, True]])
    np.testing.assert_allclose(geometry.dead_fraction(epochs), [1 / 3, 1.0])


# ----------------------------------------------------------------------------- dimensionality


def test_effective_rank_and_participation_ratio_isotropic_plane():
    # centred points spread equally along two orthogonal directions of a 3-unit space
    acts = np.array([[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0]]) + 5.0
    assert geometry.effective_rank(acts) == pytest.approx(2.0)
    assert geometry.participation_ratio(acts) == pytest.approx(2.0)


def test_effective_rank_and_participation_ratio_match_formulas_on_random_data():
    rng = np.random.default_rng(1)
    acts = rng.normal(size=(3, 50, 6)) * np.array([3.0, 1.0, 1.0, 0.5, 0.2, 0.1])
    er = geometry.effective_rank(acts)
    pr = geometry.participation_ratio(acts)
    for e in range(3):
        lam = np.linalg.eigvalsh(np.cov(acts[e].T))  # covariance eigenvalues: sigma_i^2 / (n - 1)
        s = np.sqrt(np.clip(lam, 0, None))
        p = s / s.sum()
        assert er[e] == pytest.approx(np.exp(-np.sum(p * np.log(p))), rel=1e-9)
        assert pr[e] == pytest.approx(lam.sum() ** 2 / (lam**2).sum(), rel=1e-9)
    assert 1.0 <= er.min() and er.max() <= 6.0


def test_dimensionality_of_constant_and_nan_epochs():
    acts = np.ones((3, 5, 2))
    acts[1] = np.random.default_rng(2).normal(size=(5, 2))
    acts[2, 0, 0] = np.nan
    er = geometry.effective_rank(acts)
    assert er[0] == 0.0 and er[1] > 1.0 and np.isnan(er[2])
    pr = geometry.participation_ratio(acts)
    assert pr[0] == 0.0 and pr[1] > 1.0 and np.isnan(pr[2])


# ----------------------------------------------------------------------------- classes


def test_nc1_by_hand():
    a = 0.5
    acts = np.array([[-1 + a, 1.0], [-1 - a, -1.0], [1 + a, 1.0], [1 - a, -1.0]])
    labels = np.array([0, 0, 1, 1])
    # class means (-1, 0) and (1, 0); global mean 0
    # Sigma_W = mean of deviations (a, 1), (-a, -1) outer products = [[a^2, a], [a, 1]]
    # Sigma_B = [[1, 0], [0, 0]], pinv = [[1, 0], [0, 0]] -> tr(Sigma_W Sigma_B^+) = a^2; NC1 = a^2 / 2
    assert geometry.nc1(acts, labels) == pytest.approx(a**2 / 2)
    collapsed = np.array([[-1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    assert geometry.nc1(collapsed, labels) == pytest.approx(0.0)
    assert geometry.nc1(np.array([[0.0, 1.0], [0.0, -1.0], [0.0, 1.0], [0.0, -1.0]]), labels) == np.inf
    with pytest.raises(ParameterError, match="at least 2 classes"):
        geometry.nc1(acts, np.zeros(4))


def test_nc1_matches_direct_computation_over_epochs():
    rng = np.random.default_rng(3)
    acts = rng.normal(size=(2, 30, 4))
    labels = np.repeat([0, 1, 2], 10)
    acts[:, labels == 1] += 2.0
    got = geometry.nc1(acts, labels)
    for e in range(2):
        h = acts[e]
        mus = {c: h[labels == c].mean(axis=0) for c in range(3)}
        g = h.mean(axis=0)
        sw = sum(np.outer(x - mus[c], x - mus[c]) for x, c in zip(h, labels)) / len(h)
        sb = sum(np.outer(mus[c] - g, mus[c] - g) for c in range(3)) / 3
        assert got[e] == pytest.approx(np.trace(sw @ np.linalg.pinv(sb)) / 3, rel=1e-9)


def test_class_mean_distances():
    acts = np.array([[0.0, 0.0], [0.0, 2.0], [3.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    d = geometry.class_mean_distances(acts, [7, 7, 8, 8, 9])
    # means (0, 1), (3, 1), (0, 5)
    np.testing.assert_allclose(d, [[0, 3, 4], [3, 0, 5], [4, 5, 0]])


def test_linear_probe_accuracy():
    rng = np.random.default_rng(4)
    labels = np.repeat([0, 1], 20)
    separable = rng.normal(size=(40, 3)) + np.where(labels[:, None] == 1, 6.0, -6.0)
    noise = rng.normal(size=(40, 3))
    acc = geometry.linear_probe_accuracy(np.stack([separable, noise]), labels)
    assert acc[0] == 1.0
    assert acc[1] < 0.85
    # an 8-3-8 encoder: one sample per class, no held-out estimate -> training accuracy, with a warning
    corners = np.array([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], float) * 2 - 1
    with pytest.warns(UserWarning, match="training-set accuracy"):
        assert geometry.linear_probe_accuracy(corners, np.arange(8), C=100.0) == 1.0
    assert geometry.linear_probe_accuracy(corners, np.arange(8), n_splits=None, C=100.0) == 1.0
    nan_epoch = np.stack([separable, separable])
    nan_epoch[1, 0, 0] = np.nan
    out = geometry.linear_probe_accuracy(nan_epoch, labels, n_splits=3)
    assert out[0] == 1.0 and np.isnan(out[1])


# ----------------------------------------------------------------------------- CKA


def test_linear_cka_matches_the_hsic_formula(xy):
    x, y = xy
    assert geometry.linear_cka(x, y) == pytest.approx(_cka_textbook(x, y), rel=1e-10)
    assert geometry.linear_cka(x, y, debiased=True) == pytest.approx(_cka_textbook(x, y, hsic=_hsic_unbiased), rel=1e-9)
    assert 0.0 < geometry.linear_cka(x, y) < 1.0


def test_linear_cka_invariances(xy):
    x, y = xy
    q, _ = np.linalg.qr(np.random.default_rng(5).normal(size=(4, 4)))
    for debiased in (False, True):
        assert geometry.linear_cka(x, x @ q, debiased=debiased) == pytest.approx(1.0, abs=1e-12)
        assert geometry.linear_cka(x, 3.7 * x, debiased=debiased) == pytest.approx(1.0, abs=1e-12)
        assert geometry.linear_cka(x, x + 10.0, debiased=debiased) == pytest.approx(1.0, abs=1e-12)
    assert geometry.linear_cka(x @ q, y) == pytest.approx(geometry.linear_cka(x, y), rel=1e-10)


def test_linear_cka_constant_activations_are_defined(xy):
    x, _ = xy
    const = np.full((12, 3), 0.7, dtype=np.float32)
    assert geometry.linear_cka(const, const) == 1.0
    assert geometry.linear_cka(x, const) == 0.0
    assert geometry.linear_cka(const, x, debiased=True) == 0.0
    x_nan = x.copy()
    x_nan[0, 0] = np.nan
    assert np.isnan(geometry.linear_cka(x_nan, x))
    with pytest.raises(ParameterError, match=r"y must be an array of shape \(n_samples, n_units_y\).*\(11, 3\)"):
        geometry.linear_cka(x, np.ones((11, 3)))
    with pytest.raises(ParameterError, match="n_samples >= 4"):
        geometry.linear_cka(x[:3], x[:3], debiased=True)


def test_cka_matrix_and_across_runs(xy):
    x, y = xy
    rng = np.random.default_rng(6)
    acts = np.stack([x, y @ np.eye(3, 4), x @ rng.normal(size=(4, 4)), np.full((12, 4), 0.5)])  # epoch 3 constant
    m = geometry.cka_matrix(acts)
    assert m.shape == (4, 4)
    np.testing.assert_allclose(m, m.T)
    np.testing.assert_allclose(np.diag(m), 1.0)
    assert m[0, 2] == pytest.approx(_cka_textbook(acts[0], acts[2]), rel=1e-10)
    assert m[0, 3] == 0.0 and m[3, 3] == 1.0
    other = acts[:2] + 1.0
    cross = geometry.cka_matrix(acts, other, debiased=True)
    assert cross.shape == (4, 2)
    assert cross[2, 1] == pytest.approx(_cka_textbook(acts[2], other[1], hsic=_hsic_unbiased), rel=1e-9)
    runs = geometry.cka_across_runs([acts, acts @ np.linalg.qr(rng.normal(size=(4, 4)))[0], acts[..., :2]])
    assert runs.shape == (4, 3, 3)
    np.testing.assert_allclose(runs[:, 0, 1], 1.0, atol=1e-12)
    assert runs[1, 0, 2] == pytest.approx(_cka_textbook(acts[1], acts[1, :, :2]), rel=1e-10)
    with pytest.raises(ParameterError, match="runs"):
        geometry.cka_across_runs([acts])


def test_cka_matrix_nan_epoch_gives_nan_row_and_column(xy):
    x, y = xy
    acts = np.stack([x, x * 2, x + y[:, :1]])
    acts[1, 2, 2] = np.nan
    m = geometry.cka_matrix(acts)
    assert np.isnan(m[1]).all() and np.isnan(m[:, 1]).all()
    assert np.isfinite(m[[0, 2]][:, [0, 2]]).all()


# ----------------------------------------------------------------------------- weights and codes


def test_weight_angles():
    w = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [0.0, 0.0]])
    ang = geometry.weight_angles(w)
    assert ang[0, 1] == pytest.approx(90.0)
    assert ang[0, 2] == pytest.approx(45.0)
    assert ang[1, 2] == pytest.approx(45.0)
    assert ang[0, 0] == pytest.approx(0.0)
    assert np.isnan(ang[3]).all()  # a zero vector has no direction
    with_bias = geometry.weight_angles(w[:2], bias=[1.0, 0.0], degrees=False)
    # (1, 0, 1) vs (0, 2, 0): still orthogonal
    assert with_bias[0, 1] == pytest.approx(np.pi / 2)
    stacked = geometry.weight_angles(np.stack([w[:3], -w[:3]]))
    assert stacked.shape == (2, 3, 3)


def test_corner_distance_for_an_838_encoder():
    codes = np.array([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], float) * 2 - 1
    rng = np.random.default_rng(7)
    shift = rng.uniform(-0.3, 0.3, size=codes.shape)
    np.testing.assert_allclose(geometry.corner_distance(codes + shift), np.linalg.norm(shift, axis=1))
    np.testing.assert_array_equal(geometry.nearest_corners(codes + shift), codes)
    assert geometry.distinct_codes(codes + shift) == 8
    sig = (codes + 1) / 2
    np.testing.assert_allclose(geometry.corner_distance(sig * 0.9 + 0.05, activation="sigmoid"), np.sqrt(3) * 0.05)
    collapsed = np.zeros((2, 8, 3)) + 0.1
    np.testing.assert_array_equal(geometry.distinct_codes(np.stack([codes, collapsed[0]])), [8, 1])


# ----------------------------------------------------------------------------- frames and validation


def test_layer_metrics_tidy_frame():
    rng = np.random.default_rng(8)
    acts = np.tanh(rng.normal(size=(3, 20, 4)) * 3)
    labels = np.repeat([0, 1], 10)
    df = geometry.layer_metrics(
        acts,
        layer="hidden1",
        metrics=["saturation", "effective_rank", "nc1"],
        labels=labels,
        activation="tanh",
        epochs=[0, 50, 100],
    )
    assert list(df.columns) == ["epoch", "layer", "metric", "value"]
    assert len(df) == 9 and set(df.layer) == {"hidden1"}
    sat = df[df.metric == "saturation"].set_index("epoch").value
    assert sat.loc[50] == pytest.approx(geometry.saturation_fraction(acts[1]))
    with pytest.raises(ParameterError, match="needs labels"):
        geometry.layer_metrics(acts, metrics=["nc1"])
    with pytest.raises(ParameterError, match="metrics must be one of"):
        geometry.layer_metrics(acts, metrics=["rank"])
    with pytest.raises(ParameterError, match="needs activation"):
        geometry.layer_metrics(acts, metrics=["saturation"], activation="relu")
    frame = geometry.per_epoch_frame([1.0, 2.0], layer="output", metric="x", epochs=[5, 6])
    assert frame.to_dict("list") == {"epoch": [5, 6], "layer": ["output"] * 2, "metric": ["x"] * 2, "value": [1, 2]}


def test_wrong_shapes_name_parameter_dimensions_and_received_shape():
    msg = r"acts must be an array of shape \(n_epochs, n_samples, n_units\) or \(n_samples, n_units\); got shape \(4,\)"
    with pytest.raises(ParameterError, match=msg):
        geometry.effective_rank(np.zeros(4))
    with pytest.raises(ParameterError, match=r"got shape \(1, 2, 3, 4\)"):
        geometry.saturation_fraction(np.zeros((1, 2, 3, 4)))
    with pytest.raises(ParameterError, match=r"labels must be an array of shape \(n_samples,\) = \(5,\)"):
        geometry.nc1(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ParameterError, match=r"acts must be an array of shape \(n_epochs, n_samples, n_units\);"):
        geometry.cka_matrix(np.zeros((5, 2)))
