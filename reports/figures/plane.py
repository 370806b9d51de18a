"""The input plane: the network's decision boundary over a 2-D input task, with the data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from analysis import boundaries
from data.errors import ParameterError

from ._style import class_colors, get_ax, level_lines

__all__ = ["DecisionBoundaryDisplay"]


class DecisionBoundaryDisplay:
    """The network's output over the input plane, its decision boundary, and the data.

    Build it with :meth:`from_network` (evaluates the network on the grid), then
    :meth:`plot` it on any Axes.

    Attributes
    ----------
    values : ndarray of shape (n_outputs, n_y, n_x)
        The output after the loss's non-linearity (sigmoid or softmax).
    extent : (x_min, x_max, y_min, y_max)
    output : str
    epoch : int or None
    """

    def __init__(
        self, *, values: np.ndarray, extent: tuple[float, float, float, float], output: str, epoch: int | None = None
    ) -> None:
        self.values = values
        self.extent = extent
        self.output = output
        self.epoch = epoch

    @classmethod
    def from_network(
        cls,
        network: Any,
        grid: Any,
        *,
        grid_shape: tuple[int, int],
        extent: Sequence[float],
        output: str = "sigmoid",
        params: Mapping[str, Any] | None = None,
        epoch: int | None = None,
    ) -> DecisionBoundaryDisplay:
        """Evaluate the network on a grid of the input plane.

        Parameters
        ----------
        network : nn.Module, NetworkConfig or dict
        grid : ndarray of shape (n_grid, 2)
            Row-major over ``grid_shape`` (y outer, x inner), like ``task.grid``.
        grid_shape : (n_y, n_x)
        extent : (x_min, x_max, y_min, y_max)
        output : {'sigmoid', 'softmax', 'logits'}
            The output non-linearity of the network's loss.
        params : mapping parameter name -> ndarray, optional
        epoch : int, optional

        Returns
        -------
        DecisionBoundaryDisplay
        """
        g = np.asarray(grid, dtype=np.float64)
        if g.ndim != 2 or g.shape[1] != 2:
            raise ParameterError(f"grid must have shape (n_grid, 2) (an input plane); got {g.shape}")
        ny, nx = (int(s) for s in grid_shape)
        if ny * nx != len(g):
            raise ParameterError(f"grid_shape must be (n_y, n_x) with n_y * n_x = {len(g)}; got {grid_shape!r}")
        out = boundaries.network_outputs(network, g, params=params, output=output)
        values = out.T.reshape(out.shape[1], ny, nx)
        return cls(values=values, extent=tuple(float(v) for v in extent), output=output, epoch=epoch)

    def plot(
        self,
        inputs: Any = None,
        labels: Any = None,
        *,
        colorbar: bool = True,
        title: str | None = None,
        legend: bool = True,
        equal: bool = True,
        ax: Axes | None = None,
    ) -> Axes:
        """Draw the output (binary: P(class 1); several outputs: the winning class), the boundary, the data.

        Parameters
        ----------
        inputs : ndarray of shape (n_samples, 2), optional
            The data points.
        labels : array-like of shape (n_samples,), optional
        colorbar : bool
        title : str, optional
        legend : bool
        equal : bool
            Equal scales on both input axes (a square plane looks square).
        ax : Axes, optional

        Returns
        -------
        Axes
        """
        ax = get_ax(ax)
        from matplotlib.colors import ListedColormap, to_rgba_array
        from matplotlib.lines import Line2D

        x0, x1, y0, y1 = self.extent
        n_out = self.values.shape[0]
        lab = None if labels is None else np.asarray(labels).astype(np.int64)
        n_classes = max(2, n_out, int(lab.max()) + 1 if lab is not None and len(lab) else 0)
        colors = class_colors(n_classes)
        handles = []
        if n_out == 1:
            level = 0.0 if self.output == "logits" else 0.5
            vmin, vmax = (0.0, 1.0) if self.output != "logits" else (None, None)
            im = ax.imshow(
                self.values[0],
                extent=self.extent,
                origin="lower",
                cmap="RdBu_r",
                vmin=vmin,
                vmax=vmax,
                alpha=0.75,
                aspect="auto",
                interpolation="bilinear",
            )
            if np.nanmin(self.values[0]) < level < np.nanmax(self.values[0]):
                level_lines(ax, self.values[0], self.extent, [level], color="k", linewidth=1.4)
            handles.append(Line2D([], [], color="k", lw=1.4, label=f"decision boundary (output = {level:g})"))
            if colorbar:
                ax.figure.colorbar(
                    im, ax=ax, shrink=0.85, label="network output" if self.output == "logits" else "output (P(class 1))"
                )
        else:
            win = np.argmax(self.values, axis=0)
            ax.imshow(
                win,
                extent=self.extent,
                origin="lower",
                cmap=ListedColormap(colors[:n_classes]),
                vmin=0,
                vmax=n_classes - 1,
                alpha=0.35,
                aspect="auto",
                interpolation="nearest",
            )
            level_lines(ax, win, self.extent, np.arange(n_out) + 0.5, color="k", linewidth=0.8)
            handles.append(Line2D([], [], color="k", lw=0.8, label="class boundaries (largest output)"))
        if inputs is not None:
            pts = np.asarray(inputs, dtype=np.float64)
            if pts.ndim != 2 or pts.shape[1] != 2:
                raise ParameterError(f"inputs must have shape (n_samples, 2); got {pts.shape}")
            cols = to_rgba_array(colors)[lab % len(colors)] if lab is not None else "#333333"
            ax.scatter(pts[:, 0], pts[:, 1], c=cols, s=12, edgecolors="k", linewidths=0.4, zorder=4)
            if lab is not None:
                for c in np.unique(lab)[:10]:
                    handles.append(
                        Line2D([], [], color=colors[int(c)], marker="o", mec="k", ls="none", label=f"class {c}")
                    )
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        if equal:
            ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel("input x1", fontsize=8)
        ax.set_ylabel("input x2", fontsize=8)
        ax.tick_params(labelsize=7)
        when = f" at epoch {self.epoch:,}" if self.epoch is not None else ""
        ax.set_title(title or f"decision boundary in the input plane{when}", fontsize=9)
        if legend:
            ax.legend(handles=handles, fontsize=6, loc="upper right", framealpha=0.8)
        return ax

    def legend_handles(self, labels: Any = None) -> list[Any]:
        """Legend entries: the decision boundary and one marker per class (for a legend of a whole grid)."""
        from matplotlib.lines import Line2D

        n_out = self.values.shape[0]
        if n_out == 1:
            level = 0.0 if self.output == "logits" else 0.5
            handles = [Line2D([], [], color="k", lw=1.4, label=f"decision boundary (output = {level:g})")]
        else:
            handles = [Line2D([], [], color="k", lw=0.8, label="class boundaries (largest output)")]
        if labels is not None:
            lab = np.asarray(labels).astype(np.int64)
            colors = class_colors(max(2, n_out, int(lab.max()) + 1))
            handles += [
                Line2D([], [], color=colors[int(c)], marker="o", mec="k", ls="none", label=f"class {c}")
                for c in np.unique(lab)[:10]
            ]
        return handles

    def to_frame(self) -> pd.DataFrame:
        """The data behind the figure: the output at every grid point (columns x, y, output, value)."""
        x0, x1, y0, y1 = self.extent
        n_out, ny, nx = self.values.shape
        xx, yy = np.meshgrid(np.linspace(x0, x1, nx), np.linspace(y0, y1, ny))
        return pd.DataFrame(
            {
                "epoch": self.epoch,
                "output": np.repeat(np.arange(n_out), ny * nx),
                "x": np.tile(xx.ravel(), n_out),
                "y": np.tile(yy.ravel(), n_out),
                "value": self.values.reshape(-1),
            }
        )
