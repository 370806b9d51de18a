"""Weight-norm growth per layer: each configuration's mean over seeds, with a band."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from ._style import check_frame, get_ax, log_scale, placeholder, plot_groups, spread_text

__all__ = ["weight_norm_growth"]


def weight_norm_growth(
    data: pd.DataFrame,
    *,
    layer: str,
    group: str = "config",
    palette: Mapping[Any, str] | None = None,
    order: Sequence[Any] | None = None,
    spread: str = "range",
    relative: bool = False,
    log: bool = True,
    title: str | None = None,
    legend: bool = True,
    ax: Axes | None = None,
) -> Axes:
    """The norm of one layer's parameters over epochs (cross entropy keeps growing it on separable data).

    Parameters
    ----------
    data : DataFrame
        Tidy, as :func:`analysis.dynamics.weight_norms` returns it (columns
        ``epoch``, ``layer``, ``metric``, ``value``) plus ``run`` and ``group`` columns.
    layer : str
        E.g. 'hidden1' or 'output'.
    group : str
    palette : mapping configuration -> colour, optional
    order : sequence, optional
    spread : {'range', 'std', 'iqr', 'none'}
    relative : bool
        The values are growth factors (norm / initial norm): for the axis label.
    log : bool
        Log-scale y axis.
    title : str, optional
    legend : bool
    ax : Axes, optional

    Returns
    -------
    Axes
    """
    ax = get_ax(ax)
    check_frame(data, ["run", "epoch", "layer", "value", group])
    sub = data[data["layer"] == layer]
    what = "growth of ||w||" if relative else "||w||"
    title = title or f"weight norm of {layer}"
    if sub.empty or not np.isfinite(sub["value"].to_numpy(np.float64)).any():
        return placeholder(ax, f"no finite weights of {layer}", title=title)
    log = bool(log and (sub["value"].to_numpy(np.float64) > 0).any())
    plot_groups(ax, sub, group=group, palette=palette, spread=spread, order=order, positive=log)
    if log:
        log_scale(ax)
    ax.set_xlim(left=0)
    ax.set_xlabel("epoch", fontsize=8)
    ax.set_ylabel(f"{what} of {layer} (weights and biases)" + (", log" if log else ""), fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=6, title=spread_text(spread) or None, title_fontsize=6)
    return ax
