"""Geometry of hidden representations over epochs (effective rank, saturation, NC1, ...)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from ._style import check_frame, get_ax, log_scale, placeholder, plot_groups, spread_text

__all__ = ["geometry_metrics", "METRIC_LABELS"]

#: axis labels of analysis.geometry's metrics
METRIC_LABELS = {
    "saturation": "fraction of saturated activations",
    "dead_fraction": "fraction of dead units",
    "effective_rank": "effective rank",
    "participation_ratio": "participation ratio",
    "nc1": "NC1 (within / between class scatter)",
    "linear_probe": "linear-probe accuracy",
    "corner_distance": "mean distance to nearest corner",
}
_LOG = ("nc1",)


def geometry_metrics(
    data: pd.DataFrame,
    *,
    metric: str,
    layer: str | None = None,
    group: str = "config",
    palette: Mapping[Any, str] | None = None,
    order: Sequence[Any] | None = None,
    spread: str = "range",
    log: bool | None = None,
    title: str | None = None,
    legend: bool = True,
    ax: Axes | None = None,
) -> Axes:
    """One geometry metric of one layer over epochs: each configuration's mean over seeds, with a band.

    Parameters
    ----------
    data : DataFrame
        Tidy, as :func:`analysis.geometry.layer_metrics` returns it (columns
        ``epoch``, ``layer``, ``metric``, ``value``) plus ``run`` and ``group`` columns.
    metric : str
        E.g. 'effective_rank', 'saturation', 'nc1'.
    layer : str, optional
        Keep only this layer's rows (default: all rows of the metric).
    group : str
    palette : mapping configuration -> colour, optional
    order : sequence, optional
    spread : {'range', 'std', 'iqr', 'none'}
    log : bool, optional
        Log-scale y axis (default for NC1).
    title : str, optional
    legend : bool
    ax : Axes, optional

    Returns
    -------
    Axes
    """
    ax = get_ax(ax)
    check_frame(data, ["run", "epoch", "metric", "value", group])
    sub = data[data["metric"] == metric]
    if layer is not None and "layer" in sub.columns:
        sub = sub[sub["layer"] == layer]
    label = METRIC_LABELS.get(metric, metric)
    title = title or f"{label}" + (f" of {layer}" if layer else "")
    if sub.empty or not np.isfinite(sub["value"].to_numpy(np.float64)).any():
        return placeholder(ax, f"{metric}: no finite values", title=title)
    if log is None:
        log = metric in _LOG
    log = bool(log and (sub["value"].to_numpy(np.float64) > 0).any())
    plot_groups(ax, sub, group=group, palette=palette, spread=spread, order=order, positive=log)
    if log:
        log_scale(ax)
    if metric in ("saturation", "dead_fraction", "linear_probe"):
        ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0)
    ax.set_xlabel("epoch", fontsize=8)
    ax.set_ylabel(label + (" (log)" if log else ""), fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=6, title=spread_text(spread) or None, title_fontsize=6)
    return ax
