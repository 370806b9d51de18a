"""Geometry of hidden representations, per layer and epoch.

Every function takes one layer's activations on the probe set,
``acts : ndarray of shape (n_epochs, n_samples, n_units)``, or a single epoch
``(n_samples, n_units)``, and returns one value (or array) per epoch -- a scalar
(or the per-epoch array without the epoch axis) for a single epoch.
:func:`layer_metrics` gathers several metrics into a tidy DataFrame with columns
``epoch, layer, metric, value``; :func:`per_epoch_frame` turns any per-epoch
array into one.

NaN policy: an epoch holding a non-finite activation (a diverged run) gives NaN
for that epoch's value (and a NaN row and column of a CKA matrix); the other
epochs are computed as usual.  Nothing is silently dropped.

References
----------
- O. Roy and M. Vetterli, "The effective rank: a measure of effective dimensionality", EUSIPCO 2007.
- V. Papyan, X. Y. Han and D. L. Donoho, "Prevalence of neural collapse during the terminal phase
  of deep learning training", PNAS 2020 (NC1).
- S. Kornblith, M. Norouzi, H. Lee and G. Hinton, "Similarity of neural network representations
  revisited", ICML 2019 (linear CKA).
- L. Song, A. Smola, A. Gretton, J. Bedo and K. Borgwardt, "Feature selection via dependence
  maximization", JMLR 2012 (unbiased HSIC); T. Nguyen, M. Raghu and S. Kornblith, "Do wide and deep
  networks learn the same things?", ICLR 2021 (debiased CKA).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from data.errors import ParameterError, check_choice, check_number

from ._checks import (
    CHUNK_ELEMENTS,
    as_acts,
    as_array,
    as_labels,
    epoch_chunks,
    epoch_labels,
    shape_error,
    tidy,
)

__all__ = [
    "saturation_fraction",
    "dead_units",
    "dead_fraction",
    "effective_rank",
    "participation_ratio",
    "class_mean_distances",
    "nc1",
    "linear_probe_accuracy",
    "linear_cka",
    "cka_matrix",
    "cka_across_runs",
    "weight_angles",
    "nearest_corners",
    "corner_distance",
    "distinct_codes",
    "per_epoch_frame",
    "layer_metrics",
    "METRICS",
    "SATURATING",
]

#: Activations with a saturation range: tanh saturates at -1 and 1, sigmoid at 0 and 1.
SATURATING = ("tanh", "sigmoid")

#: Metrics :func:`layer_metrics` knows.
METRICS = (
    "saturation",
    "dead_fraction",
    "effective_rank",
    "participation_ratio",
    "nc1",
    "linear_probe",
    "corner_distance",
)
_NEEDS_LABELS = ("nc1", "linear_probe")


def _squeeze(values: np.ndarray, single: bool) -> Any:
    if single:
        v = values[0]
        return float(v) if np.ndim(v) == 0 else v
    return values


def _finite_mask(chunk: np.ndarray) -> np.ndarray:
    """(n_epochs,) mask of epochs whose activations are all finite."""
    return np.isfinite(chunk).all(axis=tuple(range(1, chunk.ndim)))


# ----------------------------------------------------------------------------- units


def saturation_fraction(
    acts: Any, *, activation: str = "tanh", threshold: float = 0.05, per_unit: bool = False
) -> float | np.ndarray:
    """Fraction of activations within ``threshold`` of the activation's saturation values.

    tanh counts |a| >= 1 - threshold; sigmoid counts a <= threshold or a >= 1 - threshold.

    Parameters
    ----------
    acts : ndarray of shape (n_epochs, n_samples, n_units) or (n_samples, n_units)
    activation : {'tanh', 'sigmoid'}
    threshold : float
        Distance from the saturation value, in [0, 0.5].
    per_unit : bool
        Per unit (fraction over samples) instead of over all units and samples.

    Returns
    -------
    float or ndarray of shape (n_epochs,), or with ``per_unit`` (n_units,) or (n_epochs, n_units)
        NaN for an epoch holding NaN.
    """
    check_choice("activation", activation, SATURATING)
    thr = check_number("threshold", threshold, low=0, high=0.5)
    arr, single = as_acts("acts", acts)
    if activation == "tanh":
        sat = np.abs(arr) >= 1 - thr
    else:
        sat = (arr <= thr) | (arr >= 1 - thr)
    frac = sat.mean(axis=1) if per_unit else sat.mean(axis=(1, 2))
    frac = frac.astype(np.float64)
    frac[~_finite_mask(arr)] = np.nan
    return _squeeze(frac, single)


def dead_units(acts: Any, *, tol: float = 0.0) -> np.ndarray:
    """Units never active (activation <= ``tol``) on any probe sample: dead ReLUs.

    Parameters
    ----------
    acts : ndarray of shape (n_epochs, n_samples, n_units) or (n_samples, n_units)
    tol : float
        A unit is active on a sample where its activation exceeds ``tol``.

    Returns
    -------
    ndarray of bool, shape (n_units,) or (n_epochs, n_units)
        For an epoch holding NaN, a unit with a NaN activation counts as not dead
        (use :func:`dead_fraction` to get NaN for such epochs).
    """
    tol = check_number("tol", tol)
    arr, single = as_acts("acts", acts)
    dead = ~(arr > tol).any(axis=1) & np.isfinite(arr).all(axis=1)
    return dead[0] if single else dead


def dead_fraction(acts: Any, *, tol: float = 0.0) -> float | np.ndarray:
    """Fraction of units that are dead (see :func:`dead_units`).

    Returns
    -------
    float or ndarray of shape (n_epochs,)
        NaN for an epoch holding NaN.
    """
    arr, single = as_acts("acts", acts)
    frac = dead_units(arr, tol=tol).mean(axis=1).astype(np.float64)
    frac[~_finite_mask(arr)] = np.nan
    return _squeeze(frac, single)


# ----------------------------------------------------------------------------- dimensionality


def _singular_values(arr: np.ndarray, center: bool) -> np.ndarray:
    """Singular values (n_epochs, min(n_samples, n_units)) of each epoch, float64; NaN rows for NaN epochs."""
    out = np.full((arr.shape[0], min(arr.shape[1], arr.shape[2])), np.nan)
    for sl in epoch_chunks(arr):
        chunk = np.asarray(arr[sl], dtype=np.float64)
        ok = _finite_mask(chunk)
        x = chunk[ok]
        if center:
            x = x - x.mean(axis=1, keepdims=True)
        if len(x):
            out[sl][ok] = np.linalg.svd(x, compute_uv=False)
    return out


def effective_rank(acts: Any, *, center: bool = True) -> float | np.ndarray:
    """Effective rank of Roy & Vetterli: exp of the entropy of the normalised singular values.

    With singular values s_i of the (centred) activation matrix and p_i = s_i / sum s,
    erank = exp(-sum p_i log p_i); it lies in [1, rank].  A matrix with no
    variance at all has effective rank 0 (by convention here).

    Parameters
    ----------
    acts : ndarray of shape (n_epochs, n_samples, n_units) or (n_samples, n_units)
    center : bool
        Subtract each epoch's mean over samples first (the spread of the
        representation, not its offset).

    Returns
    -------
    float or ndarray of shape (n_epochs,)
    """
    arr, single = as_acts("acts", acts)
    s = _singular_values(arr, center)
    total = s.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = s / total
        ent = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=1)
    erank = np.exp(ent)
    erank[total[:, 0] == 0] = 0.0
    erank[np.isnan(total[:, 0])] = np.nan
    return _squeeze(erank, single)


def participation_ratio(acts: Any, *, center: bool = True) -> float | np.ndarray:
    """Participation ratio (sum lambda)^2 / sum lambda^2 of the covariance eigenvalues lambda.

    It lies in [1, rank]; 0 for a matrix with no variance (by convention here).

    Parameters
    ----------
    acts : ndarray of shape (n_epochs, n_samples, n_units) or (n_samples, n_units)
    center : bool
        Use the covariance (True) or the raw second moments (False).

    Returns
    -------
    float or ndarray of shape (n_epochs,)
    """
    arr, single = as_acts("acts", acts)
    lam = _singular_values(arr, center) ** 2
    num = lam.sum(axis=1) ** 2
    den = (lam**2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pr = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    pr[np.isnan(den)] = np.nan
    return _squeeze(pr, single)


# ----------------------------------------------------------------------------- classes


def _class_means(x: np.ndarray, lab: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(n_epochs, n_classes, n_units) class means of x (n_epochs, n_samples, n_units)."""
    return np.stack([x[:, lab == c].mean(axis=1) for c in classes], axis=1)


def _labels_and_classes(labels: Any, n_samples: int, *, min_classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    lab = as_labels("labels", labels, n_samples)
    classes = np.unique(lab)
    if len(classes) < min_classes:
        raise ParameterError(f"labels must hold at least {min_classes} classes; got {len(classes)}")
    return lab, classes


def class_mean_distances(acts: Any, labels: Any) -> np.ndarray:
    """Euclidean distances between class means.

    Parameters
    ----------
    acts : ndarray of shape (n_epochs, n_samples, n_units) or (n_samples, n_units)
    labels : array-like of shape (n_samples,)
        Classes are ordered as ``np.unique(labels)``.

    Returns
    -------
    ndarray of shape (n_classes, n_classes) or (n_epochs, n_classes, n_classes)
        NaN for an epoch holding NaN.
    """
    arr, single = as_acts("acts", acts)
    lab, classes = _labels_and_classes(labels, arr.shape[1], min_classes=1)
    out = np.empty((arr.shape[0], len(classes), len(classes)))
    for sl in epoch_chunks(arr):
        mu = _class_means(np.asarray(arr[sl], dtype=np.float64), lab, classes)
        diff = mu[:, :, None, :] - mu[:, None, :, :]
        out[sl] = np.sqrt((diff**2).sum(axis=-1))
    return out[0] if single else out


def nc1(acts: Any, labels: Any) -> float | np.ndarray:
    """Within-class variability relative to between-class: NC1 = tr(Sigma_W Sigma_B^+) / C.

    Sigma_W = mean over all samples of (h - mu_c)(h - mu_c)^T; Sigma_B = mean over
    the C classes of (mu_c - mu_G)(mu_c - mu_G)^T with mu_G the global mean;
    ^+ is the Moore-Penrose pseudo-inverse (Papyan, Han & Donoho 2020).  It
    falls to 0 as each class collapses to its mean.  When every class mean
    coincides (Sigma_B = 0) it is inf, or NaN if also Sigma_W = 0.

    Parameters
    ----------
    acts : ndarray of shape (n_epochs, n_samples, n_units) or (n_samples, n_units)
    labels : array-like of shape (n_samples,)
        At least two classes.

    Returns
    -------
    float or ndarray of shape (n_epochs,)
    """
    arr, single = as_acts("acts", acts)
    lab, classes = _labels_and_classes(labels, arr.shape[1])
    n_classes = len(classes)
    idx = np.searchsorted(classes, lab)
    out = np.full(arr.shape[0], np.nan)
    for sl in epoch_chunks(arr):
        x = np.asarray(arr[sl], dtype=np.float64)
        ok = _finite_mask(x)
        x = x[ok]
        if not len(x):
            continue
        mu = _class_means(x, lab, classes)
        within = x - mu[:, idx]
        sw = np.einsum("esi,esj->eij", within, within) / x.shape[1]
        between = mu - x.mean(axis=1, keepdims=True)
        sb = np.einsum("eci,ecj->eij", between, between) / n_classes
        val = np.trace(sw @ np.linalg.pinv(sb, hermitian=True), axis1=1, axis2=2) / n_classes
        sb_zero = np.abs(sb).max(axis=(1, 2)) == 0
        sw_zero = np.abs(sw).max(axis=(1, 2)) == 0
        val = np.where(sb_zero, np.where(sw_zero, np.nan, np.inf), val)
        part = out[sl]
        part[ok] = val
        out[sl] = part
    return _squeeze(out, single)


def linear_probe_accuracy(
    acts: Any,
    labels: Any,
    *,
    n_splits: int | None = 5,
    C: float = 1.0,
    seed: int = 0,
) -> float | np.ndarray:
    """Cross-validated accuracy of a logistic-regression readout of the classes.

    Features are standardised, then a multinomial :class:`~sklearn.linear_model.LogisticRegression`
    is scored with :class:`~sklearn.model_selection.StratifiedKFold` (shuffled, seeded).

    Tiny classes: the number of folds is lowered to the size of the smallest
    class.  When the smallest class has a single sample (e.g. an encoder task,
    one sample per class) no held-out estimate exists: the training-set
    accuracy (linear separability of the probe set) is returned instead, with a
    warning.  ``n_splits=None`` asks for the training-set accuracy directly.

    Parameters
    ----------
    acts : ndarray of shape (n_epochs, n_samples, n_units) or (n_samples, n_units)
    labels : array-like of shape (n_samples,)
        At least two classes.
    n_splits : int or None
        Folds (>= 2), or None for training-set accuracy.
    C : float
        Inverse regularisation strength.
    seed : int
        Seed of the fold shuffling.

    Returns
    -------
    float or ndarray of shape (n_epochs,)
        NaN for an epoch holding NaN.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    arr, single = as_acts("acts", acts)
    lab, classes = _labels_and_classes(labels, arr.shape[1])
    if n_splits is not None:
        n_splits = check_number("n_splits", n_splits, low=2, integer=True)
    check_number("C", C, low=0, low_open=True)
    check_number("seed", seed, low=0, integer=True)
    smallest = int(np.bincount(np.searchsorted(classes, lab)).min())
    folds = None if n_splits is None else min(n_splits, smallest)
    if folds is not None and folds < 2:
        warnings.warn(
            f"linear_probe_accuracy: the smallest class has {smallest} sample, too few to cross-validate; "
            "returning the training-set accuracy (pass n_splits=None to ask for it without this warning)",
            UserWarning,
            stacklevel=2,
        )
        folds = None
    out = np.full(arr.shape[0], np.nan)
    for e in range(arr.shape[0]):
        x = np.asarray(arr[e], dtype=np.float64)
        if not np.isfinite(x).all():
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
        if folds is None:
            out[e] = model.fit(x, lab).score(x, lab)
        else:
            cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
            out[e] = cross_val_score(model, x, lab, cv=cv).mean()
    return _squeeze(out, single)


# ----------------------------------------------------------------------------- CKA


def _center(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=0, keepdims=True)


def _is_constant(xc: np.ndarray, x: np.ndarray) -> bool:
    """Whether a centred matrix is zero up to float64 rounding of the uncentred one."""
    scale = max(float(np.abs(np.asarray(x, dtype=np.float64)).max(initial=0.0)), 1e-300)
    return float(np.abs(xc).max(initial=0.0)) <= 64 * np.finfo(np.float64).eps * scale


def _hsic_terms(xc: np.ndarray, yc: np.ndarray, debiased: bool) -> float:
    """Linear HSIC of centred features (up to a factor that cancels in CKA)."""
    xty = float(np.linalg.norm(xc.T @ yc) ** 2)
    if not debiased:
        return xty
    n = xc.shape[0]
    rx = np.einsum("ij,ij->i", xc, xc)
    ry = np.einsum("ij,ij->i", yc, yc)
    return xty - n / (n - 2.0) * float(rx @ ry) + float(rx.sum() * ry.sum()) / ((n - 1.0) * (n - 2.0))


def linear_cka(x: Any, y: Any, *, debiased: bool = False) -> float:
    """Linear centred kernel alignment between two representations of the same samples.

    CKA(X, Y) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with linear kernels
    K = X X^T, L = Y Y^T, computed in float64 in feature space (Kornblith et al.
    2019).  ``debiased=True`` uses the unbiased HSIC estimator (Song et al.
    2012; Nguyen et al. 2021), which needs n_samples >= 4.  CKA is invariant to
    orthogonal transforms and isotropic scaling of either side.

    Constant activations (a side with zero variance over samples, e.g. dead or
    fully saturated units): CKA is defined as 1 when both sides are constant
    (identical, degenerate representations) and 0 when only one is (a constant
    representation shares no structure with a varying one).  For the debiased
    estimator on a non-constant side whose self-HSIC estimate is not positive
    (possible for a few samples), the value is NaN.

    Parameters
    ----------
    x : ndarray of shape (n_samples, n_units_x)
    y : ndarray of shape (n_samples, n_units_y)
    debiased : bool

    Returns
    -------
    float
        NaN if either side holds NaN.
    """
    xa = as_array("x", x, expected="(n_samples, n_units_x)", ndim=2)
    ya = as_array("y", y, expected="(n_samples, n_units_y)", ndim=2)
    if ya.shape[0] != xa.shape[0]:
        raise shape_error("y", f"(n_samples, n_units_y) with n_samples = {xa.shape[0]}, as in x", ya)
    if debiased and xa.shape[0] < 4:
        raise ParameterError(f"debiased CKA needs n_samples >= 4; got {xa.shape[0]}")
    return _cka_prepared(_prepare(xa, debiased), _prepare(ya, debiased), debiased)


def _prepare(x: np.ndarray, debiased: bool) -> dict[str, Any]:
    """Per-epoch pieces of the linear CKA: centred features, self-HSIC, constancy."""
    if not np.isfinite(x).all():
        return {"nan": True}
    xc = _center(x)
    const = _is_constant(xc, x)
    return {"nan": False, "xc": xc, "const": const, "self": _hsic_terms(xc, xc, debiased)}


def _cka_prepared(a: dict[str, Any], b: dict[str, Any], debiased: bool) -> float:
    if a["nan"] or b["nan"]:
        return float("nan")
    if a["const"] or b["const"]:
        return 1.0 if (a["const"] and b["const"]) else 0.0
    num = _hsic_terms(a["xc"], b["xc"], debiased)
    den = a["self"] * b["self"]
    if not den > 0:
        return float("nan")
    return float(num / np.sqrt(den))


def cka_matrix(acts: Any, other: Any = None, *, debiased: bool = False) -> np.ndarray:
    """Linear CKA between every pair of epochs (of one run, or of two runs).

    Parameters
    ----------
    acts : ndarray of shape (n_epochs, n_samples, n_units)
    other : ndarray of shape (n_epochs_other, n_samples, n_units_other), optional
        Another run's (or layer's) activations on the same probe samples;
        default ``acts`` itself.
    debiased : bool
        See :func:`linear_cka`.

    Returns
    -------
    ndarray of shape (n_epochs, n_epochs_other)
        Entry (i, j) is CKA(acts[i], other[j]); NaN rows / columns for epochs holding NaN.

    Notes
    -----
    The cost grows as n_epochs * n_epochs_other * n_samples * n_units * n_units_other
    (computed in blocks of matrix products, memory bounded): 200 epochs of 194 x 20
    take a fraction of a second, 2000 epochs some 20 s on two cores -- pass a
    subsample of epochs (e.g. ``acts[::10]``) for long runs.
    """
    arr, _ = as_acts("acts", acts, allow_single=False)
    if other is None:
        oth = arr
    else:
        oth, _ = as_acts("other", other, allow_single=False)
        if oth.shape[1] != arr.shape[1]:
            raise shape_error(
                "other", f"(n_epochs_other, n_samples, n_units_other) with n_samples = {arr.shape[1]}", oth
            )
    if debiased and arr.shape[1] < 4:
        raise ParameterError(f"debiased CKA needs n_samples >= 4; got {arr.shape[1]}")
    symmetric = other is None
    stats_a = _cka_stats(arr, debiased)
    stats_b = stats_a if symmetric else _cka_stats(oth, debiased)
    num = _cross_frobenius(arr, oth, symmetric)
    if symmetric:
        num = np.triu(num) + np.triu(num, 1).T
    if debiased:
        n = arr.shape[1]
        rows_a, rows_b = stats_a["rows"], stats_b["rows"]
        num = num - n / (n - 2.0) * (rows_a @ rows_b.T)
        num = num + np.outer(rows_a.sum(axis=1), rows_b.sum(axis=1)) / ((n - 1.0) * (n - 2.0))
    den = np.outer(stats_a["self"], stats_b["self"])
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.sqrt(np.where(den > 0, den, 1.0)), np.nan)
    const_a, const_b = stats_a["const"][:, None], stats_b["const"][None, :]
    out = np.where(const_a & const_b, 1.0, np.where(const_a | const_b, 0.0, out))
    out[stats_a["nan"]] = np.nan
    out[:, stats_b["nan"]] = np.nan
    return out


def _cka_stats(arr: np.ndarray, debiased: bool) -> dict[str, np.ndarray]:
    """Per-epoch pieces of the linear CKA: NaN and constancy masks, self-HSIC, squared row norms."""
    n_epochs, n_samples = arr.shape[:2]
    stats = {
        "nan": np.zeros(n_epochs, bool),
        "const": np.zeros(n_epochs, bool),
        "self": np.zeros(n_epochs),
        "rows": np.zeros((n_epochs, n_samples)),
    }
    for e in range(n_epochs):
        p = _prepare(arr[e], debiased)
        if p["nan"]:
            stats["nan"][e] = True
            continue
        stats["const"][e] = p["const"]
        stats["self"][e] = p["self"]
        stats["rows"][e] = np.einsum("ij,ij->i", p["xc"], p["xc"])
    return stats


def _centered(arr: np.ndarray, sl: slice) -> np.ndarray:
    """Epochs ``sl`` centred over samples, float64, with non-finite epochs set to 0."""
    x = np.asarray(arr[sl], dtype=np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    x[~_finite_mask(x)] = 0.0
    return x


def _cross_frobenius(a: np.ndarray, b: np.ndarray, symmetric: bool) -> np.ndarray:
    """||Xc_i^T Yc_j||_F^2 for every epoch i of a and j of b, in blocks of one matrix product.

    With ``symmetric`` (b is a), only the blocks on and above the diagonal are filled.
    """
    n_a, n_b = a.shape[0], b.shape[0]
    n_samples, units_a, units_b = a.shape[1], a.shape[2], b.shape[2]
    out = np.zeros((n_a, n_b))
    for sl_b in epoch_chunks(b):
        xb = _centered(b, sl_b)
        m = xb.shape[0]
        flat_b = xb.transpose(1, 0, 2).reshape(n_samples, m * units_b)
        last_row = sl_b.stop if symmetric else n_a
        step = max(1, CHUNK_ELEMENTS // (units_a * m * units_b))
        for r0 in range(0, last_row, step):
            sl_a = slice(r0, min(r0 + step, last_row))
            xa = _centered(a, sl_a)
            ma = xa.shape[0]
            flat_a = xa.transpose(0, 2, 1).reshape(ma * units_a, n_samples)
            prod = (flat_a @ flat_b).reshape(ma, units_a, m, units_b)
            out[sl_a, sl_b] = np.square(prod).sum(axis=(1, 3))
    return out


def cka_across_runs(runs: Sequence[Any], *, debiased: bool = False) -> np.ndarray:
    """Linear CKA between runs at the same epoch.

    Parameters
    ----------
    runs : sequence of ndarray of shape (n_epochs, n_samples, n_units_r)
        Each run's activations of one layer on the same probe samples, at the
        same epochs; n_units may differ between runs.
    debiased : bool
        See :func:`linear_cka`.

    Returns
    -------
    ndarray of shape (n_epochs, n_runs, n_runs)
        Entry (e, r, q) is CKA(runs[r][e], runs[q][e]).
    """
    if isinstance(runs, np.ndarray) or not isinstance(runs, Sequence) or len(runs) < 2:
        raise ParameterError(
            "runs must be a list of at least two arrays of shape (n_epochs, n_samples, n_units); "
            f"got {type(runs).__name__}{'' if not isinstance(runs, Sequence) else f' of length {len(runs)}'}"
        )
    arrays = [as_acts(f"runs[{r}]", a, allow_single=False)[0] for r, a in enumerate(runs)]
    n_epochs, n_samples = arrays[0].shape[:2]
    for r, a in enumerate(arrays):
        if a.shape[:2] != (n_epochs, n_samples):
            raise shape_error(f"runs[{r}]", f"(n_epochs, n_samples, n_units) = ({n_epochs}, {n_samples}, n_units)", a)
    if debiased and n_samples < 4:
        raise ParameterError(f"debiased CKA needs n_samples >= 4; got {n_samples}")
    n_runs = len(arrays)
    out = np.empty((n_epochs, n_runs, n_runs))
    for e in range(n_epochs):
        prep = [_prepare(a[e], debiased) for a in arrays]
        for r in range(n_runs):
            for q in range(r, n_runs):
                out[e, r, q] = out[e, q, r] = _cka_prepared(prep[r], prep[q], debiased)
    return out


# ----------------------------------------------------------------------------- weights and codes


def weight_angles(weights: Any, *, bias: Any = None, degrees: bool = True) -> np.ndarray:
    """Angles between the hidden units' incoming weight vectors.

    Parameters
    ----------
    weights : ndarray of shape (n_units, n_inputs) or (n_epochs, n_units, n_inputs)
        A layer's weight matrix (rows are units, as in ``nn.Linear.weight``).
    bias : ndarray of shape (n_units,) or (n_epochs, n_units), optional
        Appended to each weight vector (angles in the augmented input space).
    degrees : bool
        Degrees (default) or radians.

    Returns
    -------
    ndarray of shape (n_units, n_units) or (n_epochs, n_units, n_units)
        In [0, 180] degrees; NaN where a vector is zero or non-finite.
    """
    w = as_array(
        "weights", weights, expected="(n_units, n_inputs) or (n_epochs, n_units, n_inputs)", ndim=(2, 3)
    ).astype(np.float64)
    if bias is not None:
        expected = f"{w.shape[:-1]}, i.e. (n_units,) or (n_epochs, n_units) matching weights"
        b = as_array("bias", bias, expected=expected, ndim=w.ndim - 1).astype(np.float64)
        if b.shape != w.shape[:-1]:
            raise shape_error("bias", expected, b)
        w = np.concatenate([w, b[..., None]], axis=-1)
    norms = np.linalg.norm(w, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = w / np.where(norms > 0, norms, np.nan)[..., None]
        cos = np.clip(unit @ np.swapaxes(unit, -1, -2), -1.0, 1.0)
    ang = np.arccos(cos)
    return np.degrees(ang) if degrees else ang


def _corners(arr: np.ndarray, activation: str) -> np.ndarray:
    if activation == "tanh":
        return np.where(arr >= 0, 1.0, -1.0)
    return np.where(arr >= 0.5, 1.0, 0.0)


def nearest_corners(acts: Any, *, activation: str = "tanh") -> np.ndarray:
    """The nearest corner of the hypercube {-1, 1}^n_units (tanh) or {0, 1}^n_units (sigmoid).

    Parameters
    ----------
    acts : ndarray of shape (n_epochs, n_samples, n_units) or (n_samples, n_units)
    activation : {'tanh', 'sigmoid'}

    Returns
    -------
    ndarray of float, the shape of ``acts``
        Each sample's binary code (ties at 0 or 0.5 go to the upper corner; NaN stays NaN).
    """
    check_choice("activation", activation, SATURATING)
    arr, single = as_acts("acts", acts)
    out = np.where(np.isnan(arr), np.nan, _corners(arr, activation))
    return out[0] if single else out


def corner_distance(acts: Any, *, activation: str = "tanh") -> np.ndarray:
    """Euclidean distance of each hidden point from its nearest hypercube corner.

    For an 8-3-8 encoder this tells how binary the 8 codes have become (0 = a
    perfect binary code).

    Parameters
    ----------
    acts : ndarray of shape (n_epochs, n_samples, n_units) or (n_samples, n_units)
    activation : {'tanh', 'sigmoid'}
        Corners of {-1, 1}^n (tanh) or {0, 1}^n (sigmoid).

    Returns
    -------
    ndarray of shape (n_samples,) or (n_epochs, n_samples)
    """
    check_choice("activation", activation, SATURATING)
    arr, single = as_acts("acts", acts)
    x = np.asarray(arr, dtype=np.float64)
    dist = np.linalg.norm(x - _corners(x, activation), axis=-1)
    return dist[0] if single else dist


def distinct_codes(acts: Any, *, activation: str = "tanh") -> int | np.ndarray:
    """Number of distinct nearest corners (binary codes) among the samples.

    Returns
    -------
    int or ndarray of shape (n_epochs,)
        For an 8-3-8 encoder, 8 once every input has its own code.  Epochs
        holding NaN give -1.
    """
    arr, single = as_acts("acts", acts)
    codes = nearest_corners(arr, activation=activation)
    out = np.array([len(np.unique(c, axis=0)) if np.isfinite(c).all() else -1 for c in codes])
    return int(out[0]) if single else out


# ----------------------------------------------------------------------------- tidy frames


def per_epoch_frame(values: Any, *, layer: str | None = None, metric: str, epochs: Any = None) -> pd.DataFrame:
    """Turn a per-epoch array into a tidy frame.

    Parameters
    ----------
    values : array-like of shape (n_epochs,)
    layer : str, optional
    metric : str
    epochs : array-like of shape (n_epochs,), optional
        Epoch numbers (default 0..n_epochs-1).

    Returns
    -------
    DataFrame
        Columns ``epoch``, ``layer``, ``metric``, ``value``.
    """
    vals = as_array("values", values, expected="(n_epochs,)", ndim=1)
    return tidy(vals, epochs=epoch_labels("epochs", epochs, len(vals)), layer=layer, metric=metric)


def layer_metrics(
    acts: Any,
    *,
    layer: str | None = None,
    metrics: Sequence[str] = ("effective_rank", "participation_ratio"),
    labels: Any = None,
    activation: str | None = None,
    epochs: Any = None,
    threshold: float = 0.05,
) -> pd.DataFrame:
    """Several per-epoch metrics of one layer, as one tidy frame.

    Parameters
    ----------
    acts : ndarray of shape (n_epochs, n_samples, n_units)
    layer : str, optional
        The layer's name, put in the ``layer`` column (e.g. 'hidden1').
    metrics : sequence of str
        From ``METRICS``: 'saturation' (needs a tanh / sigmoid ``activation``),
        'dead_fraction', 'effective_rank', 'participation_ratio', 'nc1' and
        'linear_probe' (need ``labels``), 'corner_distance' (mean over samples;
        needs ``activation``).
    labels : array-like of shape (n_samples,), optional
    activation : {'tanh', 'sigmoid', 'relu', 'linear'}, optional
        The layer's activation.
    epochs : array-like of shape (n_epochs,), optional
        Epoch numbers (default 0..n_epochs-1).
    threshold : float
        Saturation threshold (see :func:`saturation_fraction`).

    Returns
    -------
    DataFrame
        Columns ``epoch``, ``layer``, ``metric``, ``value``; one row per epoch and metric.
    """
    arr, _ = as_acts("acts", acts, allow_single=False)
    if isinstance(metrics, str):
        metrics = [metrics]
    for m in metrics:
        check_choice("metrics", m, METRICS)
        if m in _NEEDS_LABELS and labels is None:
            raise ParameterError(f"metric {m!r} needs labels (an array of shape (n_samples,)); got labels=None")
        if m in ("saturation", "corner_distance") and activation not in SATURATING:
            raise ParameterError(
                f"metric {m!r} needs activation to be one of {', '.join(map(repr, SATURATING))}; got {activation!r}"
            )
    ep = epoch_labels("epochs", epochs, arr.shape[0])
    frames = []
    for m in metrics:
        if m == "saturation":
            v = saturation_fraction(arr, activation=activation, threshold=threshold)
        elif m == "dead_fraction":
            v = dead_fraction(arr)
        elif m == "effective_rank":
            v = effective_rank(arr)
        elif m == "participation_ratio":
            v = participation_ratio(arr)
        elif m == "nc1":
            v = nc1(arr, labels)
        elif m == "linear_probe":
            v = linear_probe_accuracy(arr, labels)
        else:
            v = corner_distance(arr, activation=activation).mean(axis=1)
        frames.append(tidy(np.asarray(v), epochs=ep, layer=layer, metric=m))
    return pd.concat(frames, ignore_index=True)
