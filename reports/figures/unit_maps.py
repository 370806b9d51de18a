"""Per-hidden-unit activation maps over the input plane: one small map per unit."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from data.errors import ParameterError

from ._style import class_colors, get_ax, get_fig

__all__ = ["unit_maps", "unit_mosaic"]

_RANGES = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}


def _range(arr: np.ndarray, activation: str | None) -> tuple[float, float]:
    if activation in _RANGES:
        return _RANGES[activation]
    m = float(np.nanmax(np.abs(arr))) if np.isfinite(arr).any() else 1.0
    return -m, m


def _check(maps: Any) -> np.ndarray:
    arr = np.asarray(maps, dtype=np.float64)
    if arr.ndim != 3:
        raise ParameterError(f"maps must have shape (n_units, n_y, n_x); got {arr.shape}")
    return arr


def unit_maps(
    maps: Any,
    *,
    extent: tuple[float, float, float, float],
    activation: str | None = None,
    layer: str = "hidden1",
    inputs: Any = None,
    labels: Any = None,
    max_units: int = 16,
    ncols: int | None = None,
    title: str | None = None,
    ticks: bool = True,
    fig: Figure | Any | None = None,
) -> Any:
    """Each hidden unit's activation over the input plane, continuous, one panel (Axes) per unit.

    Parameters
    ----------
    maps : ndarray of shape (n_units, n_y, n_x)
        From :func:`analysis.boundaries.unit_maps` (with ``grid_shape``).
    extent : (x_min, x_max, y_min, y_max)
        Of the input plane.
    activation : {'tanh', 'sigmoid', ...}, optional
        Fixes the colour range to the activation's (-1..1 for tanh, 0..1 for
        sigmoid); otherwise the maps' own symmetric range.
    layer : str
        For titles.
    inputs : ndarray of shape (n_samples, 2), optional
        The data, drawn small on every panel.
    labels : array-like of shape (n_samples,), optional
    max_units : int
        Draw at most this many units (the first ones); the title says how many were left out.
    ncols : int, optional
    title : str, optional
    ticks : bool
        Tick labels (off: only the axis names).
    fig : Figure or SubFigure, optional
        Drawn into; default a new pyplot figure.

    Returns
    -------
    Figure or SubFigure

    See Also
    --------
    unit_mosaic : the same maps tiled on one Axes (much faster to draw for many units).
    """
    arr = _check(maps)
    n_units = arr.shape[0]
    shown = min(n_units, int(max_units))
    ncols = ncols or min(shown, 5 if shown > 8 else 4)
    nrows = -(-shown // ncols)
    fig = get_fig(fig, figsize=(1.9 * ncols + 0.8, 1.9 * nrows + 0.6))
    vmin, vmax = _range(arr, activation)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    im = None
    pts = None if inputs is None else np.asarray(inputs, dtype=np.float64)
    lab = None if labels is None else np.asarray(labels).astype(np.int64)
    colors = class_colors(max(2, int(lab.max()) + 1)) if lab is not None and len(lab) else None
    for k, ax in enumerate(axes.ravel()):
        if k >= shown:
            ax.set_visible(False)
            continue
        im = ax.imshow(
            arr[k],
            extent=extent,
            origin="lower",
            cmap="RdBu_r",
            vmin=vmin,
            vmax=vmax,
            aspect="equal",
            interpolation="bilinear",
        )
        if pts is not None:
            c = [colors[int(v) % len(colors)] for v in lab] if colors is not None else "k"
            ax.scatter(pts[:, 0], pts[:, 1], c=c, s=2, linewidths=0)
        ax.set_title(f"unit {k + 1}", fontsize=7, pad=2)
        ax.tick_params(labelsize=6)
        if not ticks:
            ax.set_xticks([])
            ax.set_yticks([])
        if k % ncols == 0:
            ax.set_ylabel("x2", fontsize=7)
        if k // ncols == nrows - 1 or k + ncols >= shown:
            ax.set_xlabel("x1", fontsize=7)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel()[:shown].tolist(), shrink=0.8, label=f"{layer} activation")
    more = f" (first {shown} of {n_units})" if shown < n_units else ""
    fig.suptitle((title or f"{layer}: each unit's activation over the input plane") + more, fontsize=9)
    return fig


def unit_mosaic(
    maps: Any,
    *,
    activation: str | None = None,
    layer: str = "hidden1",
    max_units: int = 16,
    ncols: int | None = None,
    title: str | None = None,
    colorbar: bool = True,
    ax: Axes | None = None,
) -> Axes:
    """Each hidden unit's activation over the input plane, tiled on one Axes (unit k labelled on its tile).

    Every tile is the whole input plane (x1 to the right, x2 up); one image
    for all units draws much faster than an Axes per unit.

    Parameters
    ----------
    maps : ndarray of shape (n_units, n_y, n_x)
        From :func:`analysis.boundaries.unit_maps` (with ``grid_shape``).
    activation : str, optional
        Fixes the colour range to the activation's (-1..1 for tanh, 0..1 for sigmoid).
    layer : str
    max_units : int
    ncols : int, optional
        Tiles per row (default: about square).
    title : str, optional
    colorbar : bool
    ax : Axes, optional

    Returns
    -------
    Axes
    """
    ax = get_ax(ax)
    arr = _check(maps)
    n_units, ny, nx = arr.shape
    shown = min(n_units, int(max_units))
    ncols = ncols or int(np.ceil(np.sqrt(shown * 1.4)))
    nrows = -(-shown // ncols)
    gap = max(2, nx // 12)
    canvas = np.full((nrows * (ny + gap), ncols * (nx + gap)), np.nan)
    for k in range(shown):
        r, c = divmod(k, ncols)
        y0 = (nrows - 1 - r) * (ny + gap)
        canvas[y0 : y0 + ny, c * (nx + gap) : c * (nx + gap) + nx] = arr[k]
    vmin, vmax = _range(arr, activation)
    import matplotlib

    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="white")
    im = ax.imshow(
        np.ma.masked_invalid(canvas),
        origin="lower",
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
        aspect="equal",
    )
    for k in range(shown):
        r, c = divmod(k, ncols)
        ax.text(
            c * (nx + gap) + 2,
            (nrows - 1 - r) * (ny + gap) + ny - 2,
            str(k + 1),
            ha="left",
            va="top",
            fontsize=6,
            fontweight="bold",
            color="black",
            bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7},
        )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("each tile: input x1 (right) by x2 (up); number = unit", fontsize=7)
    more = f" (first {shown} of {n_units})" if shown < n_units else ""
    ax.set_title((title or f"units of {layer} over the input plane") + more, fontsize=9)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.8, label=f"{layer} activation")
    return ax
