"""Success rates across seeds (with Wilson intervals) and epochs to a threshold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from analysis.dynamics import SuccessRate
from data.errors import ParameterError

from ._style import cell_palette, check_frame, get_ax, placeholder

__all__ = ["success_rates", "epochs_to_threshold"]


def success_rates(
    rates: Mapping[Any, SuccessRate],
    *,
    palette: Mapping[Any, str] | None = None,
    criterion: str = "success",
    title: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Each configuration's success rate over seeds, with its Wilson confidence interval.

    Parameters
    ----------
    rates : mapping configuration -> SuccessRate
        From :func:`analysis.dynamics.success_rate`, in the order to draw
        (top to bottom).
    palette : mapping configuration -> colour, optional
    criterion : str
        What success means, for the axis label (e.g. '100 % accuracy').
    title : str, optional
    ax : Axes, optional

    Returns
    -------
    Axes
    """
    ax = get_ax(ax)
    title = title or f"success rate ({criterion})"
    if not isinstance(rates, Mapping):
        raise ParameterError(f"rates must be a mapping configuration -> SuccessRate; got {type(rates).__name__}")
    if not rates:
        return placeholder(ax, "no runs", title=title)
    names = list(rates)
    colors = dict(palette) if palette is not None else cell_palette(names)
    ys = np.arange(len(names))[::-1]
    conf = None
    for y, name in zip(ys, names):
        r = rates[name]
        if not isinstance(r, SuccessRate):
            raise ParameterError(f"rates[{name!r}] must be a SuccessRate; got {type(r).__name__}")
        conf = r.confidence
        color = colors.get(name, "#333333")
        ax.barh(y, r.rate, color=color, alpha=0.35, height=0.6)
        ax.errorbar(r.rate, y, xerr=[[r.rate - r.low], [r.high - r.rate]], fmt="o", color=color, capsize=4, lw=1.5)
        ax.text(1.04, y, f"{r.successes}/{r.trials}", va="center", ha="left", fontsize=8)
    ax.set_yticks(ys, [str(n) for n in names], fontsize=8)
    ax.set_xlim(0, 1.18)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.set_xlabel(f"share of seeds reaching {criterion}")
    ax.set_ylabel("configuration")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    ax.legend(
        handles=[
            Patch(color="#888888", alpha=0.35, label="success rate"),
            Line2D([], [], color="#333333", marker="o", label=f"Wilson {100 * (conf or 0.95):.0f} % interval"),
        ],
        fontsize=7,
        loc="lower right",
    )
    return ax


def epochs_to_threshold(
    data: pd.DataFrame,
    *,
    group: str = "config",
    value: str = "epochs",
    order: Sequence[Any] | None = None,
    palette: Mapping[Any, str] | None = None,
    criterion: str = "threshold",
    title: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Epochs each run took to reach a threshold, one row of points per configuration.

    Runs that never reached it (NaN) are drawn as open markers at the right
    edge, labelled 'not reached', so that none is dropped.

    Parameters
    ----------
    data : DataFrame
        One row per run: a ``group`` column and a ``value`` column (epochs, NaN if never).
    group, value : str
    order : sequence, optional
        Configurations top to bottom.
    palette : mapping configuration -> colour, optional
    criterion : str
        For the axis label.
    title : str, optional
    ax : Axes, optional

    Returns
    -------
    Axes
    """
    ax = get_ax(ax)
    title = title or f"epochs to {criterion}"
    check_frame(data, [group, value])
    if data.empty:
        return placeholder(ax, "no runs", title=title)
    names = list(order) if order is not None else list(dict.fromkeys(data[group]))
    colors = dict(palette) if palette is not None else cell_palette(names)
    vals = data[value].to_numpy(np.float64)
    finite = vals[np.isfinite(vals)]
    right = float(finite.max()) * 1.1 if len(finite) else 1.0
    right = max(right, 1.0)
    never = right * 1.05
    ys = np.arange(len(names))[::-1]
    rng = np.random.default_rng(0)
    any_never = False
    for y, name in zip(ys, names):
        v = data.loc[data[group] == name, value].to_numpy(np.float64)
        jitter = rng.uniform(-0.15, 0.15, len(v))
        ok = np.isfinite(v)
        color = colors.get(name, "#333333")
        ax.plot(v[ok], y + jitter[ok], "o", color=color, ms=5, alpha=0.8)
        if ok.any():
            ax.plot([np.median(v[ok])] * 2, [y - 0.3, y + 0.3], color=color, lw=2.5)
        if (~ok).any():
            any_never = True
            ax.plot(np.full((~ok).sum(), never), y + jitter[~ok], "o", mfc="none", color=color, ms=5)
    ax.set_yticks(ys, [str(n) for n in names], fontsize=8)
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.set_xlim(0, never * 1.06)
    if any_never:
        ax.axvline(right * 1.025, color="#999999", lw=0.8, ls=":")
    ax.set_xlabel(f"epochs to {criterion}")
    ax.set_ylabel("configuration")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color="#333333", marker="o", ls="none", label="one seed"),
        Line2D([], [], color="#333333", lw=2.5, label="median"),
    ]
    if any_never:
        handles.append(Line2D([], [], color="#333333", marker="o", mfc="none", ls="none", label="not reached"))
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    return ax
