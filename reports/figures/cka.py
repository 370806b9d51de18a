"""CKA similarity matrices: epoch x epoch within a run, run x run at one epoch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from data.errors import ParameterError

from ._style import get_ax

__all__ = ["cka_heatmap"]


def cka_heatmap(
    matrix: Any,
    *,
    labels: Sequence[Any] | None = None,
    col_labels: Sequence[Any] | None = None,
    axis_name: str = "epoch",
    groups: Sequence[Any] | None = None,
    max_ticks: int = 8,
    colorbar: bool = True,
    annotate: bool | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """A CKA matrix as a heatmap on a fixed 0..1 colour scale.

    Parameters
    ----------
    matrix : ndarray of shape (n, m)
        From :func:`analysis.geometry.cka_matrix` (epoch x epoch) or
        :func:`analysis.geometry.cka_across_runs` at one epoch (run x run).
        NaN cells (a diverged epoch) are drawn grey.
    labels : sequence of length n, optional
        Row labels (epochs or run names); columns use ``col_labels`` or the same.
    col_labels : sequence of length m, optional
    axis_name : str
        What the rows and columns are ('epoch', 'run').
    groups : sequence of length n, optional
        For a run x run matrix: each row's configuration; lines separate the
        groups and their names label the axes instead of every run.
    max_ticks : int
        At most this many tick labels per axis.
    colorbar : bool
    annotate : bool, optional
        Write the values in the cells (default: up to 8 x 8).
    title : str, optional
    ax : Axes, optional

    Returns
    -------
    Axes
    """
    ax = get_ax(ax)
    mat = np.asarray(matrix, dtype=np.float64)
    if mat.ndim != 2:
        raise ParameterError(f"matrix must have shape (n, m); got {mat.shape}")
    n, m = mat.shape
    rows = list(labels) if labels is not None else list(range(n))
    cols = list(col_labels) if col_labels is not None else (rows if n == m else list(range(m)))
    if len(rows) != n or len(cols) != m:
        raise ParameterError(f"labels must have {n} entries and col_labels {m}; got {len(rows)} and {len(cols)}")
    import matplotlib

    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#BBBBBB")
    im = ax.imshow(np.ma.masked_invalid(mat), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    if groups is not None:
        g = list(groups)
        if len(g) != n:
            raise ParameterError(f"groups must have one entry per row ({n}); got {len(g)}")
        edges = [k for k in range(1, n) if g[k] != g[k - 1]]
        for e in edges:
            ax.axhline(e - 0.5, color="white", lw=1.2)
            ax.axvline(e - 0.5, color="white", lw=1.2)
        starts = [0, *edges]
        ends = [*edges, n]
        centers = [(a + b - 1) / 2 for a, b in zip(starts, ends)]
        names = [str(g[a]) for a in starts]
        ax.set_yticks(centers, names, fontsize=6)
        ax.set_xticks(centers, names, fontsize=6, rotation=30, ha="right")
    else:
        _ticks(ax.set_yticks, rows, max_ticks)
        _ticks(ax.set_xticks, cols, max_ticks, rotate=True)
    if annotate is None:
        annotate = n <= 8 and m <= 8
    if annotate:
        for i in range(n):
            for j in range(m):
                if np.isfinite(mat[i, j]):
                    ax.text(
                        j,
                        i,
                        f"{mat[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if mat[i, j] < 0.6 else "black",
                    )
    ax.set_xlabel(axis_name, fontsize=8)
    ax.set_ylabel(axis_name, fontsize=8)
    ax.set_title(title or f"linear CKA, {axis_name} x {axis_name}", fontsize=9)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.85, label="linear CKA")
    return ax


def _ticks(setter: Any, labels: list[Any], max_ticks: int, rotate: bool = False) -> None:
    n = len(labels)
    step = max(1, -(-n // max_ticks))
    pos = list(range(0, n, step))
    text = [f"{v:,}" if isinstance(v, (int, np.integer)) else str(v) for v in (labels[p] for p in pos)]
    if rotate:
        setter(pos, text, fontsize=6, rotation=45, ha="right")
    else:
        setter(pos, text, fontsize=6)
