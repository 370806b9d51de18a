"""Shared look of hud's figures: palettes, axis helpers, mean-and-spread lines, placeholders.

Nothing here saves or shows a figure.  ``pyplot`` is imported only when a
figure function is called without an Axes (``ax=None``), so that
:mod:`reports.report` can draw on plain :class:`matplotlib.figure.Figure`
objects without touching the global backend.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from data.errors import ParameterError, check_choice

__all__ = [
    "CELL_COLORS",
    "STATUS_STYLE",
    "SPREADS",
    "cell_palette",
    "class_colors",
    "get_ax",
    "get_fig",
    "mean_and_spread",
    "plot_groups",
    "placeholder",
    "status_label",
    "format_epoch",
    "log_scale",
    "few_ticks",
    "spread_text",
    "check_frame",
]

#: one colour per configuration (Okabe-Ito, colour-blind safe, then a few more)
CELL_COLORS = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
    "#8C564B",
    "#7F7F7F",
    "#BCBD22",
)
#: how a run that did not end normally is marked: (marker, colour, text)
STATUS_STYLE = {
    "diverged": ("X", "#B00000", "diverged"),
    "interrupted": ("|", "#555555", "interrupted"),
    "failed": ("X", "#555555", "failed"),
    "stopped": ("|", "#555555", "stopped"),
}
#: spreads :func:`mean_and_spread` can draw
SPREADS = ("range", "std", "iqr", "none")


def cell_palette(cells: Sequence[Hashable]) -> dict[Hashable, str]:
    """One colour per configuration, in the order given (the same order gives the same colours).

    Parameters
    ----------
    cells : sequence of hashable
        The configurations (cell keys or labels), in the experiment's order.

    Returns
    -------
    dict cell -> hex colour
    """
    out: dict[Hashable, str] = {}
    for k, cell in enumerate(dict.fromkeys(cells)):
        if k < len(CELL_COLORS):
            out[cell] = CELL_COLORS[k]
        else:  # past the qualitative list: evenly spaced hues
            import matplotlib

            out[cell] = to_hex(matplotlib.colormaps["hsv"]((k - len(CELL_COLORS)) * 0.618 % 1.0))
    return out


def class_colors(n_classes: int) -> list[str]:
    """Colours of probe classes (tab10, tab20 beyond 10 classes, viridis beyond 20)."""
    import matplotlib

    if n_classes <= 2:
        return ["#2166AC", "#B2182B"][: max(n_classes, 1)]
    if n_classes <= 10:
        cmap = matplotlib.colormaps["tab10"]
        return [to_hex(cmap(k)) for k in range(n_classes)]
    if n_classes <= 20:
        cmap = matplotlib.colormaps["tab20"]
        return [to_hex(cmap(k)) for k in range(n_classes)]
    cmap = matplotlib.colormaps["viridis"]
    return [to_hex(cmap(k / (n_classes - 1))) for k in range(n_classes)]


def check_frame(data: Any, columns: Sequence[str], *, name: str = "data") -> pd.DataFrame:
    """Return ``data`` if it is a DataFrame holding ``columns``, else raise ParameterError naming what is missing."""
    if not isinstance(data, pd.DataFrame):
        raise ParameterError(f"{name} must be a DataFrame with columns {', '.join(columns)}; got {type(data).__name__}")
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise ParameterError(
            f"{name} must be a DataFrame with columns {', '.join(columns)}; it has no {', '.join(missing)} "
            f"(its columns: {', '.join(map(str, data.columns))})"
        )
    return data


def get_ax(ax: Axes | None) -> Axes:
    """``ax``, or the current Axes of pyplot (a new figure if none) when ``ax`` is None."""
    if ax is not None:
        if not isinstance(ax, Axes):
            raise ParameterError(f"ax must be a matplotlib Axes or None; got {type(ax).__name__}")
        return ax
    import matplotlib.pyplot as plt

    return plt.gca()


def get_fig(fig: Figure | Any | None, *, figsize: tuple[float, float]) -> Any:
    """``fig`` (a Figure or SubFigure), or a new pyplot figure with constrained layout when None."""
    if fig is not None:
        if not hasattr(fig, "add_subplot"):
            raise ParameterError(f"fig must be a matplotlib Figure or SubFigure or None; got {type(fig).__name__}")
        return fig
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize, layout="constrained")


def format_epoch(epoch: float) -> str:
    """'epoch 1,500' (integers with thousands separators)."""
    return f"epoch {int(epoch):,}" if np.isfinite(epoch) else "epoch ?"


def status_label(status: str, status_text: str | None = None) -> str:
    """A short, visible description of a run that did not end normally ('' for complete / converged)."""
    if status in ("complete", "converged"):
        return ""
    return (status_text or status).upper()


def mean_and_spread(
    data: pd.DataFrame, *, group: str, x: str = "epoch", y: str = "value", spread: str = "range"
) -> pd.DataFrame:
    """Mean and spread of ``y`` over the runs of each group, at each ``x``.

    Parameters
    ----------
    data : DataFrame
        Tidy: one row per (run, x), with columns ``group``, ``x`` and ``y``.
    group : str
        The column naming the configuration.
    spread : {'range', 'std', 'iqr', 'none'}
        The band: min-max over runs, mean +- one standard deviation, or the
        interquartile range.

    Returns
    -------
    DataFrame
        Columns ``group``, ``x``, ``mean``, ``low``, ``high``, ``n`` (runs with a
        finite value there); NaN values (a diverged run) do not count.
    """
    check_choice("spread", spread, SPREADS)
    for col in (group, x, y):
        if col not in data.columns:
            raise ParameterError(f"data must have a {col!r} column; got columns {list(data.columns)}")
    grouped = data.groupby([group, x], sort=False)[y]
    out = grouped.agg(["mean", "min", "max", "std", "count"]).reset_index()
    if spread == "range":
        out["low"], out["high"] = out["min"], out["max"]
    elif spread == "std":
        sd = out["std"].fillna(0.0)
        out["low"], out["high"] = out["mean"] - sd, out["mean"] + sd
    elif spread == "iqr":
        q = grouped.quantile([0.25, 0.75]).unstack()
        out["low"], out["high"] = q[0.25].to_numpy(), q[0.75].to_numpy()
    else:
        out["low"], out["high"] = out["mean"], out["mean"]
    out = out.rename(columns={"count": "n"})
    return out[[group, x, "mean", "low", "high", "n"]].sort_values([group, x], kind="stable")


def plot_groups(
    ax: Axes,
    data: pd.DataFrame,
    *,
    group: str,
    palette: Mapping[Any, str] | None,
    spread: str,
    order: Sequence[Any] | None = None,
    x: str = "epoch",
    y: str = "value",
    runs: bool = False,
    run: str = "run",
    statuses: Mapping[Any, str] | None = None,
    positive: bool = False,
) -> pd.DataFrame:
    """Draw each group's mean line and spread band (and, optionally, each run thinly).

    Returns the mean-and-spread frame that was drawn (the data behind the figure).
    """
    stats = mean_and_spread(data, group=group, x=x, y=y, spread=spread)
    groups = list(order) if order is not None else list(dict.fromkeys(data[group]))
    colors = dict(palette) if palette is not None else cell_palette(groups)
    for g in groups:
        if g not in colors:
            colors.update({k: v for k, v in cell_palette([*colors, g]).items() if k == g})
    marked: set[str] = set()
    for g in groups:
        s = stats[stats[group] == g]
        if s.empty:
            continue
        color = colors[g]
        n_runs = data.loc[data[group] == g, run].nunique() if run in data.columns else 1
        label = f"{g} (n={n_runs})" if n_runs > 1 else str(g)
        xs, mean = s[x].to_numpy(np.float64), s["mean"].to_numpy(np.float64)
        if positive:
            mean = np.where(mean > 0, mean, np.nan)
        if runs and run in data.columns:
            for r, rd in data[data[group] == g].groupby(run, sort=False):
                vals = rd[y].to_numpy(np.float64)
                ax.plot(
                    rd[x].to_numpy(np.float64),
                    np.where(vals > 0, vals, np.nan) if positive else vals,
                    color=color,
                    lw=0.6,
                    alpha=0.45,
                )
                status = (statuses or {}).get(r, "complete")
                if status in STATUS_STYLE:
                    finite = np.flatnonzero(np.isfinite(vals))
                    if len(finite):
                        i = finite[-1]
                        marker, mcolor, text = STATUS_STYLE[status]
                        ax.plot(
                            rd[x].iloc[i],
                            vals[i],
                            marker=marker,
                            color=mcolor,
                            ms=7,
                            ls="none",
                            label=text if text not in marked else None,
                            zorder=5,
                        )
                        marked.add(text)
        ax.plot(xs, mean, color=color, lw=1.8, label=label)
        if spread != "none" and n_runs > 1:
            low, high = s["low"].to_numpy(np.float64), s["high"].to_numpy(np.float64)
            if positive:
                low = np.where(low > 0, low, np.nan)
            ax.fill_between(xs, low, high, color=color, alpha=0.18, lw=0)
    return stats


def log_scale(ax: Axes, axis: str = "y", *, symlog: bool = False) -> None:
    """Log-scale one axis with plain tick labels ('0.01', '1e-05'), at 1-2-5 steps when it spans few decades.

    Call it after plotting (the span is read from the current limits).
    Matplotlib's default labels (10 to a power) go through its TeX-like
    parser, which made log-scale panels several times slower to draw.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    target = ax.yaxis if axis == "y" else ax.xaxis
    if symlog:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("symlog", linthresh=10)
    else:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
        lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
        decades = np.log10(hi / lo) if lo > 0 and hi > lo else 10.0
        subs = (1.0, 2.0, 5.0) if decades < 1.6 else (1.0, 3.0) if decades < 3 else (1.0,)
        target.set_major_locator(LogLocator(base=10, subs=subs, numticks=8))
    target.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def few_ticks(ax: Axes, n: int = 4) -> None:
    """At most about ``n`` ticks per linear axis (small panels draw faster and read better)."""
    from matplotlib.ticker import MaxNLocator

    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() == "linear":
            axis.set_major_locator(MaxNLocator(nbins=n))


def level_lines(
    ax: Axes,
    values: np.ndarray,
    extent: Sequence[float],
    levels: Sequence[float],
    *,
    color: str = "k",
    linewidth: float = 1.0,
) -> tuple[Any, list[np.ndarray]]:
    """Draw the contour lines of a grid of values at ``levels`` (one colour), like ``ax.contour``, quicker.

    The lines are traced by contourpy (what ``ax.contour`` uses) and drawn as
    one LineCollection: a ContourSet's own bookkeeping was most of the cost of
    the boundaries a report draws by the hundred.

    Parameters
    ----------
    ax : Axes
    values : ndarray of shape (n_y, n_x)
        On an even grid over ``extent``; NaN marks missing values.
    extent : (x_min, x_max, y_min, y_max)
    levels : sequence of float
    color : str
    linewidth : float

    Returns
    -------
    (LineCollection or None, list of ndarray of shape (n_points, 2))
        The drawn artist (None when no level is crossed) and every line's points.
    """
    import contourpy
    from matplotlib.collections import LineCollection

    z = np.ma.masked_invalid(np.asarray(values, dtype=np.float64))
    ny, nx = z.shape
    x0, x1, y0, y1 = extent
    gen = contourpy.contour_generator(
        np.linspace(x0, x1, nx), np.linspace(y0, y1, ny), z, line_type=contourpy.LineType.Separate
    )
    segments = [np.asarray(line) for level in levels for line in gen.lines(float(level)) if len(line) > 1]
    if not segments:
        return None, []
    lines = LineCollection(segments, colors=color, linewidths=linewidth)
    ax.add_collection(lines, autolim=False)
    return lines, segments


def placeholder(ax: Axes, text: str, *, title: str | None = None) -> Axes:
    """An Axes that says why there is nothing to draw (a diverged run, a 1-unit layer, ...)."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True, fontsize=9, color="#7F0000")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def spread_text(spread: str) -> str:
    """How the band around a mean line is described in a legend or title."""
    return {
        "range": "band: min-max over seeds",
        "std": "band: +-1 sd over seeds",
        "iqr": "band: IQR over seeds",
        "none": "",
    }[spread]
