"""TrajectoryPCA and Procrustes, checked against scikit-learn, scipy and constructed data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import procrustes as scipy_procrustes
from sklearn.decomposition import PCA

from analysis import pca
from analysis.pca import TrajectoryPCA, procrustes
from data.errors import NotRecordedError, ParameterError


@pytest.fixture
def acts():
    """(n_epochs=6, n_samples=30, n_units=5), anisotropic and drifting, float32 like a recording."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(30, 5)) * np.array([3.0, 2.0, 1.0, 0.5, 0.1])
    drift = rng.normal(size=(6, 1, 5)).cumsum(axis=0) * 0.3
    return (base[None] * np.linspace(0.5, 1.5, 6)[:, None, None] + drift).astype(np.float32)


def _match_up_to_sign(a, b, atol):
    """Columns of a equal those of b up to a sign per column."""
    signs = np.sign(np.sum(a * b, axis=0))
    np.testing.assert_allclose(a * signs, b, atol=atol)


def test_pooled_basis_matches_sklearn_on_the_stacked_matrix(acts):
    est = TrajectoryPCA(3).fit(acts, basis="pooled")
    ref = PCA(3).fit(acts.reshape(-1, 5).astype(np.float64))
    _match_up_to_sign(est.components_.T, ref.components_.T, atol=1e-8)
    np.testing.assert_allclose(est.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-8)
    np.testing.assert_allclose(est.mean_, ref.mean_, atol=1e-10)
    proj = est.transform(acts)
    assert proj.shape == (6, 30, 3)
    _match_up_to_sign(proj.reshape(-1, 3), ref.transform(acts.reshape(-1, 5).astype(np.float64)), atol=1e-8)
    assert not est.incremental_ and est.n_rows_ == 180


def test_final_and_indexed_bases_fit_on_one_epoch(acts):
    final = TrajectoryPCA(2).fit(acts, basis="final")
    ref = PCA(2).fit(acts[-1].astype(np.float64))
    _match_up_to_sign(final.components_.T, ref.components_.T, atol=1e-8)
    third = TrajectoryPCA(2).fit(acts, basis=2)
    _match_up_to_sign(third.components_.T, PCA(2).fit(acts[2].astype(np.float64)).components_.T, atol=1e-8)
    initial = TrajectoryPCA(2).fit(acts, basis="initial")
    _match_up_to_sign(initial.components_.T, PCA(2).fit(acts[0].astype(np.float64)).components_.T, atol=1e-8)
    with pytest.raises(NotRecordedError, match="epoch position 9"):
        TrajectoryPCA(2).fit(acts, basis=9)


def test_several_runs_pool_into_one_basis_and_project_each(acts):
    other = acts[:4] * 0.5 + 1.0  # a shorter run
    est = TrajectoryPCA(2).fit([acts, other])
    stacked = np.concatenate([acts.reshape(-1, 5), other.reshape(-1, 5)]).astype(np.float64)
    _match_up_to_sign(est.components_.T, PCA(2).fit(stacked).components_.T, atol=1e-8)
    out = est.transform({"a": acts, "b": other})
    assert set(out) == {"a", "b"} and out["a"].shape == (6, 30, 2) and out["b"].shape == (4, 30, 2)
    only_b = TrajectoryPCA(2).fit({"a": acts, "b": other}, runs=["b"])
    _match_up_to_sign(
        only_b.components_.T, PCA(2).fit(other.reshape(-1, 5).astype(np.float64)).components_.T, atol=1e-8
    )
    traj = est.trajectories({"a": acts, "b": other})
    assert list(traj.columns) == ["run", "epoch", "sample", "pc1", "pc2"]
    assert len(traj) == (6 + 4) * 30


def test_incremental_pca_beyond_the_memory_budget_finds_the_same_subspace():
    # IncrementalPCA keeps only n_components directions between batches: exact for (nearly) low-rank data
    rng = np.random.default_rng(5)
    acts = rng.normal(size=(6, 30, 2)) @ rng.normal(size=(2, 5)) + 0.01 * rng.normal(size=(6, 30, 5))
    exact = TrajectoryPCA(2).fit(acts)
    inc = TrajectoryPCA(2, memory_budget=1000, batch_size=40).fit(acts)
    assert inc.incremental_
    np.testing.assert_allclose(inc.mean_, exact.mean_, atol=1e-9)
    # same 2-D subspace: projector matrices agree
    p_exact = exact.components_.T @ exact.components_
    p_inc = inc.components_.T @ inc.components_
    np.testing.assert_allclose(p_inc, p_exact, atol=1e-3)
    np.testing.assert_allclose(inc.explained_variance_ratio_, exact.explained_variance_ratio_, rtol=1e-3)
    assert inc.n_rows_ == 180


def test_explained_variance_by_epoch_by_hand():
    # epoch 0 spreads along unit 0 only, epoch 1 along unit 1 only, epoch 2 all points equal
    x = np.zeros((3, 4, 3))
    x[0, :, 0] = [-2.0, -1.0, 1.0, 2.0]
    x[1, :, 1] = [-1.0, 1.0, -1.0, 1.0]
    est = TrajectoryPCA(2).fit(x[:2])
    df = est.explained_variance_by_epoch(x, epochs=[0, 10, 20])
    assert list(df.columns) == ["epoch", "component", "value"]
    table = df.pivot(index="epoch", columns="component", values="value")
    # variance of epoch 0 is 2.5 along unit 0 (> 0.5 along unit 1), so PC1 = unit 0, PC2 = unit 1
    np.testing.assert_allclose(table.loc[0].to_numpy(), [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(table.loc[10].to_numpy(), [0.0, 1.0], atol=1e-12)
    assert table.loc[20].isna().all()  # zero total variance: undefined, NaN


def test_class_means_are_projections_of_class_means(acts):
    labels = np.repeat([0, 1, 2], 10)
    est = TrajectoryPCA(2).fit(acts)
    means = est.class_means(acts, labels)
    assert means.shape == (6, 3, 2)
    # independent route: average in unit space with pandas, then project with sklearn's basis
    ref = PCA(2).fit(acts.reshape(-1, 5).astype(np.float64))
    for e in (0, 5):
        mu = pd.DataFrame(acts[e].astype(np.float64)).groupby(labels).mean().to_numpy()
        _match_up_to_sign(means[e], ref.transform(mu), atol=1e-8)
    df = est.class_mean_trajectories(acts, labels, epochs=np.arange(6) * 100)
    assert list(df.columns) == ["epoch", "label", "pc1", "pc2"]
    np.testing.assert_allclose(df.loc[(df.epoch == 500) & (df.label == 2), ["pc1", "pc2"]].to_numpy()[0], means[5, 2])
    traj = est.trajectories(acts, labels=labels)
    assert list(traj.columns) == ["epoch", "sample", "label", "pc1", "pc2"] and len(traj) == 180
    row = traj[(traj.epoch == 3) & (traj["sample"] == 7)]
    np.testing.assert_allclose(row[["pc1", "pc2"]].to_numpy()[0], est.transform(acts)[3, 7])


def test_single_epoch_and_inverse_transform(acts):
    est = TrajectoryPCA(5).fit(acts)
    z = est.transform(acts[0])
    assert z.shape == (30, 5)
    np.testing.assert_allclose(est.inverse_transform(z), acts[0], atol=1e-5)


def test_nan_policy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 20, 4))
    x[4, 3, 1] = np.nan  # the run diverged at its last epoch
    with pytest.raises(ParameterError, match="NaN"):
        TrajectoryPCA(2).fit(x)
    est = TrajectoryPCA(2, nan_policy="omit").fit(x)
    _match_up_to_sign(est.components_.T, PCA(2).fit(x[:4].reshape(-1, 4)).components_.T, atol=1e-8)
    final = TrajectoryPCA(2, nan_policy="omit").fit(x, basis="final")  # last finite epoch
    _match_up_to_sign(final.components_.T, PCA(2).fit(x[3]).components_.T, atol=1e-8)
    z = est.transform(x)
    assert np.isnan(z[4, 3]).all() and np.isfinite(z[4, :3]).all() and np.isfinite(z[:4]).all()
    df = est.explained_variance_by_epoch(x)
    assert df[df.epoch == 4].value.isna().all() and df[df.epoch < 4].value.notna().all()


def test_bad_inputs_name_the_parameter_and_the_shape(acts):
    with pytest.raises(
        ParameterError, match=r"acts must be an array of shape \(n_epochs, n_samples, n_units\).*\(7,\)"
    ):
        TrajectoryPCA(2).fit(np.zeros(7))
    with pytest.raises(ParameterError, match="basis must be one of"):
        TrajectoryPCA(2).fit(acts, basis="last")
    with pytest.raises(ParameterError, match="n_components"):
        TrajectoryPCA(9).fit(acts)
    with pytest.raises(ParameterError, match="nan_policy"):
        TrajectoryPCA(2, nan_policy="ignore").fit(acts)
    est = TrajectoryPCA(2).fit(acts)
    with pytest.raises(ParameterError, match=r"n_units = 5.*\(6, 30, 4\)"):
        est.transform(acts[..., :4])
    with pytest.raises(ParameterError, match="not fitted"):
        TrajectoryPCA(2).transform(acts)
    with pytest.raises(ParameterError, match="labels"):
        est.class_means(acts, np.zeros(29))


def test_procrustes_recovers_a_known_rotation_scale_and_shift():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    y = 2.5 * x @ q + np.array([1.0, -2.0, 0.5])
    res = procrustes(x, y)
    np.testing.assert_allclose(res.rotation, q, atol=1e-10)
    assert res.scale == pytest.approx(2.5)
    assert res.disparity == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(res.aligned, y, atol=1e-10)


def test_procrustes_disparity_equals_scipy_on_noisy_data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(25, 2))
    y = x @ np.array([[0.0, 1.0], [-1.0, 0.0]]) + 0.3 * rng.normal(size=(25, 2))
    res = procrustes(x, y)
    _, _, disparity = scipy_procrustes(y, x)
    assert res.disparity == pytest.approx(disparity, rel=1e-10)
    assert 0 < res.disparity < 1


def test_procrustes_on_trajectories_pooled_and_per_epoch():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(4, 10, 2))
    theta = 0.7
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    b = a @ rot
    pooled = procrustes(a, b)
    assert pooled.aligned.shape == (4, 10, 2) and pooled.rotation.shape == (2, 2)
    np.testing.assert_allclose(pooled.rotation, rot, atol=1e-10)
    per = procrustes(a, b, per_epoch=True, scale=False)
    assert per.rotation.shape == (4, 2, 2) and per.disparity.shape == (4,)
    np.testing.assert_allclose(per.aligned, b, atol=1e-10)
    np.testing.assert_allclose(per.scale, 1.0)


def test_procrustes_constant_sides_and_errors():
    x = np.ones((5, 2))
    y = np.arange(10.0).reshape(5, 2)
    assert procrustes(x, y).disparity == 1.0
    assert procrustes(x, x * 3).disparity == 0.0
    with pytest.raises(ParameterError, match="target"):
        procrustes(x, np.ones((5, 3)))
    bad = y.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ParameterError, match="source holds NaN"):
        procrustes(bad, y)


def test_module_exports():
    assert set(pca.__all__) >= {"TrajectoryPCA", "procrustes", "ProcrustesResult"}
