"""One PCA basis for a whole training run (or several), and Procrustes alignment.

Hidden representations change as a network learns; to watch them move, every
epoch must be drawn in the same coordinates.  :class:`TrajectoryPCA` fits one
basis -- on all epochs pooled, on the final epoch, on one chosen epoch, pooled
over several runs -- and projects every epoch of every run into it.  It wraps
:class:`sklearn.decomposition.PCA`, and :class:`~sklearn.decomposition.IncrementalPCA`
when the data to fit exceed ``memory_budget`` bytes.

Activations come as ``acts : ndarray of shape (n_epochs, n_samples, n_units)``
(one epoch ``(n_samples, n_units)`` is accepted too), or several runs as a list
of such arrays or a mapping run name -> array.  Runs may differ in their number
of epochs (a run that diverged stops early) but not in n_samples or n_units.

NaN policy: fitting needs finite data -- with ``nan_policy='raise'`` (the
default) a non-finite value in the data to fit raises
:class:`~data.errors.ParameterError`; with ``'omit'`` every epoch holding one is
left out of the fit.  Projection propagates NaN: a sample with a NaN activation
projects to NaN, and per-epoch statistics of such an epoch are NaN.

Procrustes: :func:`procrustes` rotates (and scales) one representation onto
another, e.g. one run's projected trajectory onto another's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.linalg import orthogonal_procrustes
from sklearn.decomposition import PCA, IncrementalPCA

from data.errors import NotRecordedError, ParameterError, check_choice, check_number

from ._checks import as_acts, as_array, as_labels, epoch_chunks, epoch_labels, shape_error

__all__ = ["TrajectoryPCA", "ProcrustesResult", "procrustes", "BASES", "NAN_POLICIES"]

#: Named bases for :meth:`TrajectoryPCA.fit` (an integer epoch position is accepted too).
BASES = ("pooled", "final", "initial")
NAN_POLICIES = ("raise", "omit")

Acts = np.ndarray | Sequence[np.ndarray] | Mapping[str, np.ndarray]


class _Runs:
    """The runs of an ``acts`` argument, normalised to 3-D arrays, and how to rebuild the input's structure."""

    def __init__(self, name: str, acts: Any, *, n_units: int | None = None, n_samples: int | None = None) -> None:
        if isinstance(acts, Mapping):
            if not acts:
                raise ParameterError(f"{name} must hold at least one run; got an empty mapping")
            self.kind, self.keys = "mapping", list(acts)
            items = [(f"{name}[{k!r}]", acts[k]) for k in self.keys]
        elif isinstance(acts, (list, tuple)):
            if not acts:
                raise ParameterError(f"{name} must hold at least one run; got an empty {type(acts).__name__}")
            self.kind, self.keys = "list", list(range(len(acts)))
            items = [(f"{name}[{k}]", a) for k, a in enumerate(acts)]
        else:
            self.kind, self.keys = "array", [0]
            items = [(name, acts)]
        self.arrays: list[np.ndarray] = []
        self.single = False
        for label, value in items:
            arr, single = as_acts(label, value)
            if self.kind == "array":
                self.single = single
            if n_units is not None and arr.shape[2] != n_units:
                raise shape_error(label, f"(n_epochs, n_samples, n_units) with n_units = {n_units}", value)
            if n_samples is not None and arr.shape[1] != n_samples:
                raise shape_error(label, f"(n_epochs, n_samples, n_units) with n_samples = {n_samples}", value)
            n_units, n_samples = arr.shape[2], arr.shape[1]
            self.arrays.append(arr)
        self.n_units = int(n_units)
        self.n_samples = int(n_samples)

    def rebuild(self, outs: list[Any]) -> Any:
        """Return per-run results in the structure of the input."""
        if self.kind == "mapping":
            return dict(zip(self.keys, outs))
        if self.kind == "list":
            return outs
        out = outs[0]
        return out[0] if self.single and isinstance(out, np.ndarray) else out

    def frame(self, frames: list[pd.DataFrame]) -> pd.DataFrame:
        """Concatenate per-run frames, with a leading ``run`` column for several runs."""
        if self.kind == "array":
            return frames[0]
        for key, df in zip(self.keys, frames):
            df.insert(0, "run", key)
        return pd.concat(frames, ignore_index=True)


class TrajectoryPCA:
    """PCA with one basis for all epochs (and runs), so that trajectories are comparable.

    Parameters
    ----------
    n_components : int
        Number of principal components to keep.
    memory_budget : int
        Bytes the float64 copy of the data to fit may take; beyond it the basis
        is fitted with :class:`~sklearn.decomposition.IncrementalPCA` in batches
        that each stay well under the budget.  Default 512 MiB.
    batch_size : int, optional
        Rows per IncrementalPCA batch (default: from ``memory_budget``).
    nan_policy : {'raise', 'omit'}
        What :meth:`fit` does with non-finite activations: raise
        ParameterError, or leave out every epoch that holds one.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_units)
        The basis, as rows (scikit-learn's sign convention).
    mean_ : ndarray of shape (n_units,)
        Mean of the fitted data; projections are ``(acts - mean_) @ components_.T``.
    explained_variance_ : ndarray of shape (n_components,)
    explained_variance_ratio_ : ndarray of shape (n_components,)
        Share of the fitted data's total variance along each component.
    singular_values_ : ndarray of shape (n_components,)
    n_components_ : int
    n_features_in_ : int
        n_units.
    n_samples_ : int
        Probe samples per epoch.
    n_rows_ : int
        Rows (epoch x sample points) the basis was fitted on.
    basis_ : str or int
        The ``basis`` argument of :meth:`fit`.
    incremental_ : bool
        Whether IncrementalPCA was used.
    estimator_ : sklearn.decomposition.PCA or IncrementalPCA
        The fitted scikit-learn estimator.

    Examples
    --------
    >>> pca = TrajectoryPCA(2).fit(acts, basis="final")     # acts: (n_epochs, n_samples, n_units)
    >>> traj = pca.transform(acts)                           # (n_epochs, n_samples, 2)
    """

    def __init__(
        self,
        n_components: int = 2,
        *,
        memory_budget: int = 2**29,
        batch_size: int | None = None,
        nan_policy: str = "raise",
    ) -> None:
        self.n_components = n_components
        self.memory_budget = memory_budget
        self.batch_size = batch_size
        self.nan_policy = nan_policy

    # ------------------------------------------------------------------ fitting

    def fit(self, acts: Acts, *, basis: str | int = "pooled", runs: Sequence[Any] | None = None) -> TrajectoryPCA:
        """Fit the basis.

        Parameters
        ----------
        acts : ndarray of shape (n_epochs, n_samples, n_units), or a list / mapping of them
            One run's activations of one layer, or several runs' (pooled).
        basis : {'pooled', 'final', 'initial'} or int
            Which epochs to fit on: all of them pooled; each run's last epoch
            (with ``nan_policy='omit'``, its last finite epoch); each run's
            first epoch; or the epoch at this position along the epoch axis
            (negative counts from the end).
        runs : sequence, optional
            Keys (mapping) or positions (list) of the runs to fit on; default all.

        Returns
        -------
        self
        """
        k = check_number("n_components", self.n_components, low=1, integer=True)
        check_number("memory_budget", self.memory_budget, low=1, integer=True)
        if self.batch_size is not None:
            check_number("batch_size", self.batch_size, low=1, integer=True)
        check_choice("nan_policy", self.nan_policy, NAN_POLICIES)
        if not isinstance(basis, (int, np.integer)) or isinstance(basis, bool):
            check_choice("basis", basis, BASES)
        data = _Runs("acts", acts)
        arrays = self._select_runs(data, runs)
        blocks = [b for a in arrays for b in self._blocks(a, basis)]
        if not blocks:
            raise ParameterError(
                "acts holds no finite epoch to fit on (nan_policy='omit' left out every epoch with NaN or inf)"
            )
        n_rows = sum(b.shape[0] for b in blocks)
        n_units = data.n_units
        if k > min(n_rows, n_units):
            raise ParameterError(
                f"n_components must be at most min(n_rows, n_units) = min({n_rows}, {n_units}) for this fit; got {k}"
            )
        self.incremental_ = n_rows * n_units * 8 > self.memory_budget
        if self.incremental_:
            est = self._fit_incremental(blocks, n_rows, n_units, k)
        else:
            est = PCA(n_components=k).fit(np.concatenate(blocks, axis=0).astype(np.float64, copy=False))
        self.estimator_ = est
        self.components_ = np.asarray(est.components_, dtype=np.float64)
        self.mean_ = np.asarray(est.mean_, dtype=np.float64)
        self.explained_variance_ = np.asarray(est.explained_variance_, dtype=np.float64)
        self.explained_variance_ratio_ = np.asarray(est.explained_variance_ratio_, dtype=np.float64)
        self.singular_values_ = np.asarray(est.singular_values_, dtype=np.float64)
        self.n_components_ = int(k)
        self.n_features_in_ = n_units
        self.n_samples_ = data.n_samples
        self.n_rows_ = int(n_rows)
        self.basis_ = basis
        return self

    def fit_transform(self, acts: Acts, *, basis: str | int = "pooled", runs: Sequence[Any] | None = None) -> Any:
        """:meth:`fit`, then :meth:`transform` of the same ``acts``."""
        return self.fit(acts, basis=basis, runs=runs).transform(acts)

    def _select_runs(self, data: _Runs, runs: Sequence[Any] | None) -> list[np.ndarray]:
        if runs is None:
            return data.arrays
        if isinstance(runs, (str, int)):
            runs = [runs]
        chosen = []
        for key in runs:
            if key not in data.keys:
                raise ParameterError(f"runs must name runs of acts, one of {data.keys!r}; got {key!r}")
            chosen.append(data.arrays[data.keys.index(key)])
        if not chosen:
            raise ParameterError("runs must name at least one run; got an empty sequence")
        return chosen

    def _blocks(self, arr: np.ndarray, basis: str | int) -> list[np.ndarray]:
        """The 2-D blocks (rows, n_units) of one run that the basis is fitted on."""
        n_epochs = arr.shape[0]
        omit = self.nan_policy == "omit"
        if basis == "pooled":
            if not omit:
                _require_finite(arr, "acts")
                return [arr.reshape(-1, arr.shape[2])]
            return [a for a in arr if np.isfinite(a).all()]
        if basis in ("final", "initial"):
            order = range(n_epochs - 1, -1, -1) if basis == "final" else range(n_epochs)
            for e in order:
                if np.isfinite(arr[e]).all():
                    return [arr[e]]
                if not omit:
                    _require_finite(arr[e], f"acts (epoch position {e}, the {basis} epoch)")
            return []
        e = int(basis)
        if not -n_epochs <= e < n_epochs:
            raise NotRecordedError(f"basis epoch position {e} is not recorded: the run has {n_epochs} epochs")
        if np.isfinite(arr[e]).all():
            return [arr[e]]
        if not omit:
            _require_finite(arr[e], f"acts (epoch position {e})")
        return []

    def _fit_incremental(self, blocks: list[np.ndarray], n_rows: int, n_units: int, k: int) -> IncrementalPCA:
        rows = self.batch_size or max(1, self.memory_budget // (8 * n_units * 4))
        rows = max(int(rows), 2 * k)
        n_batches = max(1, -(-n_rows // rows))
        edges = np.linspace(0, n_rows, n_batches + 1).astype(int)
        offsets = np.concatenate([[0], np.cumsum([b.shape[0] for b in blocks])])
        est = IncrementalPCA(n_components=k)
        for lo, hi in zip(edges[:-1], edges[1:]):
            parts = []
            for b, start in zip(blocks, offsets[:-1]):
                end = start + b.shape[0]
                if end <= lo or start >= hi:
                    continue
                parts.append(b[max(lo - start, 0) : min(hi - start, b.shape[0])])
            est.partial_fit(np.concatenate(parts, axis=0).astype(np.float64, copy=False))
        return est

    # ------------------------------------------------------------------ projecting

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise ParameterError("this TrajectoryPCA is not fitted yet: call fit(acts) first")

    def _runs(self, acts: Acts) -> _Runs:
        self._check_fitted()
        return _Runs("acts", acts, n_units=self.n_features_in_)

    def _project(self, arr: np.ndarray) -> np.ndarray:
        return np.matmul(arr, self.components_.T) - self.mean_ @ self.components_.T

    def transform(self, acts: Acts) -> Any:
        """Project every epoch (of every run) into the fitted basis.

        Parameters
        ----------
        acts : ndarray of shape (n_epochs, n_samples, n_units) or (n_samples, n_units), or a list / mapping of them
            n_units must be the fitted one; n_samples and n_epochs may differ.

        Returns
        -------
        ndarray of shape (n_epochs, n_samples, n_components), float64
            Or (n_samples, n_components) for one epoch, or a list / dict of
            arrays for several runs.  A sample with a non-finite activation
            projects to NaN.
        """
        self._check_fitted()
        data = _Runs("acts", acts, n_units=self.n_features_in_)
        return data.rebuild([self._project(a) for a in data.arrays])

    def inverse_transform(self, points: np.ndarray) -> np.ndarray:
        """Map points of the component space back to unit space.

        Parameters
        ----------
        points : ndarray of shape (..., n_components)

        Returns
        -------
        ndarray of shape (..., n_units)
            ``mean_ + points @ components_``.
        """
        self._check_fitted()
        k = self.n_components_
        pts = as_array("points", points, expected=f"(..., n_components) = (..., {k})", ndim=(1, 2, 3, 4))
        if pts.shape[-1] != k:
            raise shape_error("points", f"(..., n_components) = (..., {k})", pts)
        return self.mean_ + np.asarray(pts, dtype=np.float64) @ self.components_

    def explained_variance_by_epoch(self, acts: Acts, *, epochs: Any = None) -> pd.DataFrame:
        """Each epoch's variance along each component, as a share of that epoch's total variance.

        For epoch e with activations X_e (n_samples, n_units), the value of
        component c is var(X_e @ v_c) / sum_j var(X_e[:, j]) -- how much of the
        spread of that epoch's points the fitted basis captures.  An epoch whose
        points all coincide (total variance 0) or that holds NaN gets NaN.

        Parameters
        ----------
        acts : ndarray of shape (n_epochs, n_samples, n_units), or a list / mapping of them
        epochs : array-like of shape (n_epochs,), optional
            Epoch numbers (default 0..n_epochs-1); for several runs, of the longest run.

        Returns
        -------
        DataFrame
            Columns ``epoch``, ``component`` (1 = first principal component), ``value``;
            for several runs a leading ``run`` column.
        """
        data = self._runs(acts)
        frames = []
        for arr in data.arrays:
            proj = self._project(arr)
            var_k = proj.var(axis=1)
            total = np.concatenate(
                [np.asarray(arr[sl], dtype=np.float64).var(axis=1).sum(axis=-1) for sl in epoch_chunks(arr)]
            )
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = np.where(total[:, None] > 0, var_k / np.where(total > 0, total, 1.0)[:, None], np.nan)
            ratio[~np.isfinite(total)] = np.nan
            n_epochs, k = ratio.shape
            ep = _epochs_for(epochs, n_epochs, data)
            frames.append(
                pd.DataFrame(
                    {
                        "epoch": np.repeat(ep, k),
                        "component": np.tile(np.arange(1, k + 1), n_epochs),
                        "value": ratio.ravel(),
                    }
                )
            )
        return data.frame(frames)

    def trajectories(self, acts: Acts, *, labels: Any = None, epochs: Any = None) -> pd.DataFrame:
        """Every probe sample's projected position at every epoch.

        Parameters
        ----------
        acts : ndarray of shape (n_epochs, n_samples, n_units), or a list / mapping of them
        labels : array-like of shape (n_samples,), optional
            Class of each sample, added as a ``label`` column.
        epochs : array-like of shape (n_epochs,), optional
            Epoch numbers (default 0..n_epochs-1).

        Returns
        -------
        DataFrame
            One row per (epoch, sample): columns ``epoch``, ``sample``, [``label``],
            ``pc1`` ... ``pcK``; for several runs a leading ``run`` column.
        """
        data = self._runs(acts)
        lab = None if labels is None else as_labels("labels", labels, data.n_samples)
        frames = []
        for arr in data.arrays:
            proj = self._project(arr)
            n_epochs, n_samples, k = proj.shape
            cols: dict[str, Any] = {
                "epoch": np.repeat(_epochs_for(epochs, n_epochs, data), n_samples),
                "sample": np.tile(np.arange(n_samples), n_epochs),
            }
            if lab is not None:
                cols["label"] = np.tile(lab, n_epochs)
            flat = proj.reshape(-1, k)
            cols.update({f"pc{c + 1}": flat[:, c] for c in range(k)})
            frames.append(pd.DataFrame(cols))
        return data.frame(frames)

    def class_means(self, acts: Acts, labels: Any) -> Any:
        """The projected mean of each class at each epoch.

        Parameters
        ----------
        acts : ndarray of shape (n_epochs, n_samples, n_units), or a list / mapping of them
        labels : array-like of shape (n_samples,)
            Classes are ordered as ``np.unique(labels)``.

        Returns
        -------
        ndarray of shape (n_epochs, n_classes, n_components)
            Or (n_classes, n_components) for one epoch, or a list / dict for several runs.
        """
        data = self._runs(acts)
        lab = as_labels("labels", labels, data.n_samples)
        classes = np.unique(lab)
        outs = []
        for arr in data.arrays:
            proj = self._project(arr)
            outs.append(np.stack([proj[:, lab == c].mean(axis=1) for c in classes], axis=1))
        return data.rebuild(outs)

    def class_mean_trajectories(self, acts: Acts, labels: Any, *, epochs: Any = None) -> pd.DataFrame:
        """:meth:`class_means` as a tidy frame.

        Returns
        -------
        DataFrame
            One row per (epoch, class): columns ``epoch``, ``label``, ``pc1`` ... ``pcK``;
            for several runs a leading ``run`` column.
        """
        data = self._runs(acts)
        lab = as_labels("labels", labels, data.n_samples)
        classes = np.unique(lab)
        means = self.class_means(data.arrays, lab)
        frames = []
        for m in means:
            n_epochs, n_classes, k = m.shape
            cols: dict[str, Any] = {
                "epoch": np.repeat(_epochs_for(epochs, n_epochs, data), n_classes),
                "label": np.tile(classes, n_epochs),
            }
            flat = m.reshape(-1, k)
            cols.update({f"pc{c + 1}": flat[:, c] for c in range(k)})
            frames.append(pd.DataFrame(cols))
        return data.frame(frames)


def _epochs_for(epochs: Any, n_epochs: int, data: _Runs) -> np.ndarray:
    """Epoch numbers of a run with n_epochs epochs; ``epochs`` may be longer (another run's)."""
    if epochs is None:
        return np.arange(n_epochs)
    longest = max(a.shape[0] for a in data.arrays)
    ep = epoch_labels("epochs", epochs, longest if data.kind != "array" else n_epochs)
    return ep[:n_epochs]


def _require_finite(arr: np.ndarray, name: str) -> None:
    if not np.isfinite(arr).all():
        raise ParameterError(
            f"{name} holds NaN or inf (a diverged run?): PCA cannot fit on them; pass nan_policy='omit' "
            "to leave such epochs out of the fit, or fit on the epochs before divergence"
        )


# ----------------------------------------------------------------------------- Procrustes


@dataclass(frozen=True)
class ProcrustesResult:
    """The orthogonal Procrustes alignment of ``source`` onto ``target``.

    Attributes
    ----------
    aligned : ndarray, the shape of ``source``
        ``scale * (source - mean(source)) @ rotation + mean(target)``.
    disparity : float or ndarray of shape (n_epochs,)
        Sum of squared differences after centring both, scaling both to unit
        Frobenius norm and rotating the source optimally -- the disparity of
        :func:`scipy.spatial.procrustes`; in [0, 1], 0 for a perfect match.
        0 when both sides are constant, 1 when exactly one is.
    rotation : ndarray of shape (n_dims, n_dims), or (n_epochs, n_dims, n_dims)
        Orthogonal (reflections allowed), applied on the right.
    scale : float or ndarray of shape (n_epochs,)
        The least-squares scale (1.0 with ``scale=False``).
    """

    aligned: np.ndarray
    disparity: float | np.ndarray
    rotation: np.ndarray
    scale: float | np.ndarray


def procrustes(source: Any, target: Any, *, scale: bool = True, per_epoch: bool = False) -> ProcrustesResult:
    """Align one representation onto another by translation, orthogonal rotation and scaling.

    Parameters
    ----------
    source, target : ndarray of shape (n_samples, n_dims) or (n_epochs, n_samples, n_dims)
        The same probe samples in two representations (e.g. two runs projected
        into a common PCA basis); same shape, finite.
    scale : bool
        Whether ``aligned`` is also scaled by the least-squares factor.
    per_epoch : bool
        For 3-D inputs: one rotation per epoch (True), or one for all epochs
        pooled (False, the default: trajectories keep their shape).

    Returns
    -------
    ProcrustesResult
    """
    expected = "(n_samples, n_dims) or (n_epochs, n_samples, n_dims)"
    src = as_array("source", source, expected=expected, ndim=(2, 3)).astype(np.float64)
    tgt = as_array("target", target, expected=expected, ndim=(2, 3)).astype(np.float64)
    if src.shape != tgt.shape:
        raise shape_error("target", f"{src.shape}, the shape of source", tgt)
    for name, a in (("source", src), ("target", tgt)):
        if not np.isfinite(a).all():
            raise ParameterError(f"{name} holds NaN or inf (a diverged run?): Procrustes needs finite values")
    if src.ndim == 3 and per_epoch:
        parts = [_procrustes2d(s, t, scale) for s, t in zip(src, tgt)]
        return ProcrustesResult(
            aligned=np.stack([p[0] for p in parts]),
            disparity=np.array([p[1] for p in parts]),
            rotation=np.stack([p[2] for p in parts]),
            scale=np.array([p[3] for p in parts]),
        )
    d = src.shape[-1]
    aligned, disparity, rotation, factor = _procrustes2d(src.reshape(-1, d), tgt.reshape(-1, d), scale)
    return ProcrustesResult(aligned.reshape(src.shape), disparity, rotation, factor)


def _procrustes2d(src: np.ndarray, tgt: np.ndarray, scale: bool) -> tuple[np.ndarray, float, np.ndarray, float]:
    mu_s, mu_t = src.mean(axis=0), tgt.mean(axis=0)
    s, t = src - mu_s, tgt - mu_t
    ns2, nt2 = float((s * s).sum()), float((t * t).sum())
    if ns2 == 0.0 or nt2 == 0.0:
        rotation = np.eye(src.shape[1])
        disparity = 0.0 if ns2 == nt2 else 1.0
        factor = 0.0 if scale else 1.0
        return mu_t + factor * s, disparity, rotation, factor
    rotation, sv_sum = orthogonal_procrustes(s, t)
    disparity = float(np.clip(1.0 - sv_sum**2 / (ns2 * nt2), 0.0, 1.0))
    factor = float(sv_sum / ns2) if scale else 1.0
    return factor * (s @ rotation) + mu_t, disparity, rotation, factor
