"""Learning dynamics from metrics and parameter histories.

Inputs are per-epoch metric tables (a DataFrame indexed by ``epoch`` with columns
such as ``loss`` and ``accuracy``, as ``models.train`` returns) and parameter
histories ``{param_name: ndarray of shape (n_epochs, *shape)}`` (as a recording
stores them, named like ``hidden1.linear.weight``).  Per-layer results group
parameters by their layer: the name up to the first '.'.

Epoch convention (``models.training``): epoch 0 is the initial weights w_0 and
epoch k the weights after k epochs; in full-batch training the gradient g_k
recorded at epoch k is the one at w_k, which takes the step w_k -> w_{k+1}.
So the *update of epoch k* is w_{k+1} - w_k, the step taken with g_k.

Outputs are tidy DataFrames with columns ``epoch, layer, metric, value`` (or
``run, epoch, metric, value`` for learning curves) and small dataclasses.
NaN (a diverged run) is kept where it occurs and never counts as reaching a
threshold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from data.errors import ParameterError, check_choice, check_number

from ._checks import as_array, epoch_labels, shape_error

__all__ = [
    "learning_curves",
    "epochs_to_threshold",
    "epochs_to_threshold_by_run",
    "wilson_interval",
    "SuccessRate",
    "success_rate",
    "layer_of",
    "weight_norms",
    "gradient_norms",
    "update_norms",
    "norms_by_layer",
    "effective_step_size",
    "DIRECTIONS",
]

DIRECTIONS = ("below", "above")
#: Metrics that are good when low: reaching a threshold means falling below it.
_LOW_IS_GOOD = ("loss", "penalty", "total", "error", "sse")


def _metric_frame(name: str, frame: Any) -> pd.DataFrame:
    """A run's metrics as a DataFrame indexed by epoch."""
    if not isinstance(frame, pd.DataFrame):
        raise ParameterError(
            f"{name} must be a DataFrame indexed by epoch with metric columns (e.g. loss, accuracy); "
            f"got {type(frame).__name__}"
        )
    if "epoch" in frame.columns:
        frame = frame.set_index("epoch")
    return frame


def learning_curves(runs: Mapping[str, pd.DataFrame], *, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Several runs' per-epoch metrics in one tidy frame.

    Parameters
    ----------
    runs : mapping run name -> DataFrame
        Each indexed by epoch (or with an ``epoch`` column), one column per metric.
    metrics : sequence of str, optional
        The columns to keep (default: every numeric column).

    Returns
    -------
    DataFrame
        Columns ``run``, ``epoch``, ``metric``, ``value``; NaN values (a diverged
        run) are kept.
    """
    if not isinstance(runs, Mapping) or not runs:
        raise ParameterError(f"runs must be a non-empty mapping run name -> metrics DataFrame; got {runs!r:.80}")
    frames = []
    for run, raw in runs.items():
        df = _metric_frame(f"runs[{run!r}]", raw)
        cols = list(metrics) if metrics is not None else [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
        for c in cols:
            check_choice(f"metrics (in run {run!r})", c, list(df.columns))
        long = df[cols].rename_axis("epoch").reset_index().melt(id_vars="epoch", var_name="metric", value_name="value")
        long.insert(0, "run", run)
        frames.append(long)
    out = pd.concat(frames, ignore_index=True)
    out["value"] = out["value"].astype(np.float64)
    return out


def _direction(metric: str, direction: str | None) -> str:
    if direction is None:
        return "below" if str(metric).lower() in _LOW_IS_GOOD else "above"
    return check_choice("direction", direction, DIRECTIONS)


def epochs_to_threshold(
    metrics: pd.DataFrame | pd.Series,
    *,
    threshold: float,
    metric: str = "loss",
    direction: str | None = None,
) -> float:
    """The first epoch at which a metric reaches a threshold.

    Parameters
    ----------
    metrics : DataFrame indexed by epoch, or Series indexed by epoch
    threshold : float
    metric : str
        The column of ``metrics`` (ignored for a Series).
    direction : {'below', 'above'}, optional
        Reaching means value <= threshold ('below') or value >= threshold
        ('above'); default 'below' for loss-like metrics (loss, penalty, total)
        and 'above' otherwise (accuracy).

    Returns
    -------
    float
        The epoch (the index label), or NaN if the metric never reaches the
        threshold (NaN values never do).
    """
    check_number("threshold", threshold)
    if isinstance(metrics, pd.Series):
        series = metrics
        name = metrics.name if metrics.name is not None else metric
    else:
        df = _metric_frame("metrics", metrics)
        check_choice("metric", metric, list(df.columns))
        series, name = df[metric], metric
    way = _direction(str(name), direction)
    values = series.to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        hit = values <= threshold if way == "below" else values >= threshold
    idx = np.flatnonzero(hit)
    return float(series.index[idx[0]]) if len(idx) else float("nan")


def epochs_to_threshold_by_run(
    runs: Mapping[str, pd.DataFrame],
    *,
    threshold: float,
    metric: str = "loss",
    direction: str | None = None,
) -> pd.Series:
    """:func:`epochs_to_threshold` for each run.

    Returns
    -------
    Series
        Indexed by run name, named ``epochs_to_threshold``; NaN for runs that never reach it.
    """
    if not isinstance(runs, Mapping) or not runs:
        raise ParameterError(f"runs must be a non-empty mapping run name -> metrics DataFrame; got {runs!r:.80}")
    values = {
        run: epochs_to_threshold(
            _metric_frame(f"runs[{run!r}]", df), threshold=threshold, metric=metric, direction=direction
        )
        for run, df in runs.items()
    }
    return pd.Series(values, name="epochs_to_threshold", dtype=np.float64).rename_axis("run")


# ----------------------------------------------------------------------------- success rates


def wilson_interval(successes: int, trials: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score confidence interval of a binomial proportion.

    With p = k/n and z the two-sided normal quantile of ``confidence``:
    (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n).

    Parameters
    ----------
    successes : int
        k, in [0, trials].
    trials : int
        n >= 1.
    confidence : float
        In (0, 1).

    Returns
    -------
    (low, high) : tuple of float
    """
    n = int(check_number("trials", trials, low=1, integer=True))
    k = int(check_number("successes", successes, low=0, high=n, integer=True))
    conf = check_number("confidence", confidence, low=0, high=1, low_open=True, high_open=True)
    z = NormalDist().inv_cdf(0.5 + conf / 2)
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if k == 0 else max(0.0, center - half)  # exact at the ends, free of rounding
    high = 1.0 if k == n else min(1.0, center + half)
    return low, high


@dataclass(frozen=True)
class SuccessRate:
    """The share of runs (seeds) that succeeded, with its Wilson interval.

    Attributes
    ----------
    successes, trials : int
    rate : float
        successes / trials.
    low, high : float
        The Wilson score interval at ``confidence``.
    confidence : float
    """

    successes: int
    trials: int
    rate: float
    low: float
    high: float
    confidence: float


def success_rate(outcomes: Any, *, confidence: float = 0.95) -> SuccessRate:
    """Success rate across seeds with a Wilson score confidence interval.

    Parameters
    ----------
    outcomes : array-like of bool of shape (n_runs,), or mapping run -> bool
        Whether each run succeeded (e.g. ``np.isfinite(epochs_to_threshold_by_run(...))``).
    confidence : float

    Returns
    -------
    SuccessRate
    """
    if isinstance(outcomes, Mapping):
        outcomes = list(outcomes.values())
    if isinstance(outcomes, pd.Series):
        outcomes = outcomes.to_numpy()
    arr = np.asarray(outcomes)
    if arr.ndim != 1 or arr.size == 0:
        raise shape_error("outcomes", "(n_runs,), one bool per run, at least one", arr)
    if arr.dtype != bool:
        if arr.dtype.kind not in "iuf" or not np.all(np.isin(arr, (0, 1))):
            raise ParameterError("outcomes must hold booleans (or 0 / 1), one per run; got other values")
        arr = arr.astype(bool)
    k, n = int(arr.sum()), int(arr.size)
    low, high = wilson_interval(k, n, confidence=confidence)
    return SuccessRate(successes=k, trials=n, rate=k / n, low=low, high=high, confidence=float(confidence))


# ----------------------------------------------------------------------------- norms per layer


def layer_of(param_name: str) -> str:
    """The layer a parameter belongs to: its name up to the first '.' ('hidden1.linear.weight' -> 'hidden1')."""
    return str(param_name).split(".", 1)[0]


def _histories(name: str, params: Any) -> tuple[dict[str, list[np.ndarray]], int]:
    """Parameter histories grouped by layer, each flattened to (n_epochs, n_values)."""
    if not isinstance(params, Mapping) or not params:
        raise ParameterError(
            f"{name} must be a non-empty mapping parameter name -> ndarray of shape (n_epochs, *shape); "
            f"got {type(params).__name__}"
        )
    layers: dict[str, list[np.ndarray]] = {}
    n_epochs = None
    for key, value in params.items():
        arr = as_array(f"{name}[{key!r}]", value, expected="(n_epochs, *shape)", ndim=range(1, 8))
        if n_epochs is None:
            n_epochs = arr.shape[0]
        elif arr.shape[0] != n_epochs:
            raise shape_error(f"{name}[{key!r}]", f"(n_epochs, *shape) with n_epochs = {n_epochs}", arr)
        layers.setdefault(layer_of(key), []).append(arr.reshape(arr.shape[0], -1))
    return layers, int(n_epochs)


def _norm_frame(
    norms: dict[str, np.ndarray], epochs: np.ndarray, metric: str, *, relative: bool = False
) -> pd.DataFrame:
    frames = []
    for layer, v in norms.items():
        if relative:
            with np.errstate(invalid="ignore", divide="ignore"):
                v = v / v[0]
        frames.append(pd.DataFrame({"epoch": epochs, "layer": layer, "metric": metric, "value": v}))
    return pd.concat(frames, ignore_index=True)


def _layer_norms(layers: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    return {
        layer: np.sqrt(sum((np.asarray(a, dtype=np.float64) ** 2).sum(axis=1) for a in arrays))
        for layer, arrays in layers.items()
    }


def weight_norms(
    params: Mapping[str, Any],
    *,
    epochs: Any = None,
    include_biases: bool = True,
    relative: bool = False,
) -> pd.DataFrame:
    """Euclidean norm of each layer's parameters at each epoch (weight-norm growth).

    Parameters
    ----------
    params : mapping parameter name -> ndarray of shape (n_epochs, *shape)
        E.g. ``{'hidden1.linear.weight': (n_epochs, 10, 2), 'hidden1.linear.bias': (n_epochs, 10), ...}``.
    epochs : array-like of shape (n_epochs,), optional
        Epoch numbers (default 0..n_epochs-1).
    include_biases : bool
        Whether parameters whose name ends in 'bias' count.
    relative : bool
        Divide by each layer's norm at the first epoch (growth factor).

    Returns
    -------
    DataFrame
        Columns ``epoch``, ``layer``, ``metric`` ('weight_norm'), ``value``.
    """
    if isinstance(params, Mapping) and not include_biases:
        params = {k: v for k, v in params.items() if not str(k).endswith("bias")}
    layers, n_epochs = _histories("params", params)
    return _norm_frame(_layer_norms(layers), epoch_labels("epochs", epochs, n_epochs), "weight_norm", relative=relative)


def gradient_norms(grads: Mapping[str, Any], *, epochs: Any = None) -> pd.DataFrame:
    """Euclidean norm of each layer's gradient at each epoch.

    Parameters
    ----------
    grads : mapping parameter name -> ndarray of shape (n_epochs, *shape)
        The gradient dE/dw recorded at each epoch (at the weights of that epoch).
    epochs : array-like of shape (n_epochs,), optional

    Returns
    -------
    DataFrame
        Columns ``epoch``, ``layer``, ``metric`` ('gradient_norm'), ``value``.
    """
    layers, n_epochs = _histories("grads", grads)
    return _norm_frame(_layer_norms(layers), epoch_labels("epochs", epochs, n_epochs), "gradient_norm")


def update_norms(params: Mapping[str, Any], *, epochs: Any = None) -> pd.DataFrame:
    """Norm of each layer's update ||w_{k+1} - w_k|| between consecutive recorded epochs.

    The update is labelled with the earlier epoch k (the step taken with the
    gradient of epoch k); the last recorded epoch has none.  If the recorded
    epochs are not consecutive, an update spans several steps.

    Parameters
    ----------
    params : mapping parameter name -> ndarray of shape (n_epochs, *shape)
        n_epochs >= 2.
    epochs : array-like of shape (n_epochs,), optional

    Returns
    -------
    DataFrame
        Columns ``epoch``, ``layer``, ``metric`` ('update_norm'), ``value``;
        n_epochs - 1 rows per layer.
    """
    layers, n_epochs = _histories("params", params)
    if n_epochs < 2:
        raise ParameterError(f"params must hold at least 2 epochs to take differences; got {n_epochs}")
    ep = epoch_labels("epochs", epochs, n_epochs)
    diffs = {layer: [np.diff(np.asarray(a, np.float64), axis=0) for a in arrays] for layer, arrays in layers.items()}
    return _norm_frame(_layer_norms(diffs), ep[:-1], "update_norm")


def norms_by_layer(norms: pd.DataFrame, *, metric: str, shift: int = 0) -> pd.DataFrame:
    """Per-parameter L2 norms (a recording's layout) combined into per-layer norms, in tidy form.

    A layer's norm is the root of the sum of its parameters' squared norms.

    Parameters
    ----------
    norms : DataFrame of shape (n_epochs, n_parameters)
        Index: epoch; columns: parameter names such as 'hidden1.linear.weight'
        (what ``Recording.norms(kind)`` and ``Recording.optimizer_state(name)`` return).
    metric : str
        The ``metric`` column's value, e.g. 'gradient_norm'.
    shift : int
        Added to the epochs.  A recording labels the update w_k - w_{k-1}
        with epoch k; ``shift=-1`` labels it with k - 1, the epoch whose
        gradient took that step, as :func:`update_norms` and
        :func:`effective_step_size` do.

    Returns
    -------
    DataFrame
        Columns ``epoch``, ``layer``, ``metric``, ``value``.
    """
    if not isinstance(norms, pd.DataFrame) or norms.shape[1] == 0:
        raise ParameterError(
            f"norms must be a DataFrame indexed by epoch with one column per parameter; got {type(norms).__name__}"
        )
    values = norms.to_numpy(np.float64)
    epochs = np.asarray(norms.index, np.int64) + int(shift)
    layers: dict[str, list[int]] = {}
    for j, name in enumerate(norms.columns):
        layers.setdefault(layer_of(name), []).append(j)
    per_layer = {layer: np.sqrt(np.sum(values[:, cols] ** 2, axis=1)) for layer, cols in layers.items()}
    return _norm_frame(per_layer, epochs, metric)


def effective_step_size(updates: pd.DataFrame, gradients: pd.DataFrame, *, lr: float) -> pd.DataFrame:
    """Effective step size ||Delta w_k|| / (lr * ||g_k||) per layer and epoch.

    It is 1 for plain SGD at learning rate ``lr`` (Delta w = -lr g) and shows how
    much further (or shorter) an adaptive optimizer such as Adam steps than
    SGD with the same learning rate would.  Needs every epoch recorded (so that
    an update is one step).

    Parameters
    ----------
    updates : DataFrame
        From :func:`update_norms` (columns epoch, layer, value).
    gradients : DataFrame
        From :func:`gradient_norms`.
    lr : float
        The learning rate.

    Returns
    -------
    DataFrame
        Columns ``epoch``, ``layer``, ``metric`` ('effective_step'), ``value``, for
        the (epoch, layer) pairs present in both; inf where the gradient is
        zero and the update is not, NaN where both are zero.
    """
    lr = check_number("lr", lr, low=0, low_open=True)
    for name, df in (("updates", updates), ("gradients", gradients)):
        if not isinstance(df, pd.DataFrame) or not {"epoch", "layer", "value"} <= set(df.columns):
            raise ParameterError(
                f"{name} must be a DataFrame with columns epoch, layer, value; got {type(df).__name__}"
            )
    merged = updates[["epoch", "layer", "value"]].merge(
        gradients[["epoch", "layer", "value"]], on=["epoch", "layer"], suffixes=("_update", "_grad")
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = merged["value_update"].to_numpy(np.float64) / (lr * merged["value_grad"].to_numpy(np.float64))
    return pd.DataFrame(
        {"epoch": merged["epoch"], "layer": merged["layer"], "metric": "effective_step", "value": ratio}
    )
