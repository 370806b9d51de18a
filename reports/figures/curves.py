"""Learning curves: each configuration's mean over seeds, with its spread."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from ._style import check_frame, get_ax, log_scale, placeholder, plot_groups, spread_text

__all__ = ["learning_curves"]

_LABELS = {"loss": "loss (data term)", "accuracy": "accuracy", "total": "loss + penalty", "penalty": "penalty"}


def learning_curves(
    data: pd.DataFrame,
    *,
    metric: str = "loss",
    group: str = "config",
    palette: Mapping[Any, str] | None = None,
    order: Sequence[Any] | None = None,
    spread: str = "range",
    log: bool | None = None,
    logx: bool = False,
    runs: bool = False,
    statuses: Mapping[Any, str] | None = None,
    title: str | None = None,
    legend: bool = True,
    ax: Axes | None = None,
) -> Axes:
    """Mean learning curve of each configuration over its seeds, with a band for the spread.

    Parameters
    ----------
    data : DataFrame
        Tidy, as :func:`analysis.dynamics.learning_curves` returns it (columns
        ``run``, ``epoch``, ``metric``, ``value``) plus a ``group`` column
        naming each run's configuration.
    metric : str
        Which metric to draw ('loss', 'accuracy', ...).
    group : str
        The column naming the configuration (one line and colour per value).
    palette : mapping configuration -> colour, optional
        Default :func:`reports.figures.cell_palette` of the configurations in order.
    order : sequence, optional
        The configurations to draw, in legend order (default: as they appear).
    spread : {'range', 'std', 'iqr', 'none'}
        The band over seeds.
    log : bool, optional
        Log-scale y axis; default True for loss-like metrics, False for accuracy.
    logx : bool
        Symmetric-log x axis (epochs), to see early and late training at once.
    runs : bool
        Also draw every run thinly, marking where a diverged or interrupted run ends.
    statuses : mapping run -> status, optional
        With ``runs``: the status of each run ('diverged', 'interrupted', ...).
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
    title = title or f"{metric} over epochs"
    if sub.empty:
        return placeholder(ax, f"no {metric!r} recorded", title=title)
    if log is None:
        log = metric != "accuracy"
    values = sub["value"].to_numpy(np.float64)
    log = bool(log and np.nanmax(np.where(np.isfinite(values), values, np.nan), initial=0.0) > 0)
    plot_groups(
        ax, sub, group=group, palette=palette, spread=spread, order=order, runs=runs, statuses=statuses, positive=log
    )
    if log:
        log_scale(ax)
    if logx:
        log_scale(ax, "x", symlog=True)
    if metric == "accuracy":
        ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel(_LABELS.get(metric, metric) + (" (log scale)" if log else ""))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="major")
    if legend:
        ax.legend(fontsize=7, title=spread_text(spread) or None, title_fontsize=7, loc="best")
    return ax
