"""Hidden space: the probe set's hidden points, the output units' boundaries, and the regions they cut out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from analysis import boundaries
from data.errors import ParameterError

from ._style import class_colors, get_ax, level_lines

__all__ = ["HiddenSpaceDisplay", "HiddenSpaceAnimation"]


class HiddenSpaceDisplay:
    """A layer's hidden space at one epoch: points, output boundaries, shaded decision regions.

    For a last hidden layer of 2 units the plane is the layer's own space and
    the boundaries are the exact lines ``W[k] @ h + b[k] = 0`` of each output
    unit k (the course's encoder picture); otherwise the plane is a 2-D PCA
    plane of the layer (pass a ``basis`` fitted on all epochs to keep it fixed
    while training goes on) and the boundaries are the zero contours of the
    outputs pushed forward from a grid of that plane.  Build it with
    :meth:`from_network` (the expensive part), then :meth:`plot` it on any Axes.

    Attributes
    ----------
    layer : str
    values : ndarray of shape (n_outputs, n_y, n_x)
        The output logits over the plane.
    extent : (x_min, x_max, y_min, y_max)
    points : ndarray of shape (n_samples, 2)
        The probe set's hidden points in plane coordinates.
    labels : ndarray of shape (n_samples,)
    segments : list of (ndarray of shape (2, 2) or None), or None
        The exact boundary segments (2-unit last hidden layer), one per output unit.
    exact : bool
        Whether the boundaries are exact lines (else contours of ``values``).
    axis_labels : (str, str)
    epoch : int or None
    """

    def __init__(
        self,
        *,
        layer: str,
        values: np.ndarray,
        extent: tuple[float, float, float, float],
        points: np.ndarray,
        labels: np.ndarray,
        segments: list[np.ndarray | None] | None,
        axis_labels: tuple[str, str],
        epoch: int | None = None,
    ) -> None:
        self.layer = layer
        self.values = values
        self.extent = extent
        self.points = points
        self.labels = labels
        self.segments = segments
        self.exact = segments is not None
        self.axis_labels = axis_labels
        self.epoch = epoch

    @classmethod
    def from_network(
        cls,
        network: Any,
        points: Any,
        *,
        layer: str,
        labels: Any = None,
        params: Mapping[str, Any] | None = None,
        basis: Any = None,
        extent: Sequence[float] | None = None,
        grid_size: int = 81,
        epoch: int | None = None,
    ) -> HiddenSpaceDisplay:
        """Compute the boundaries of ``network``'s outputs in the space of ``layer``.

        Parameters
        ----------
        network : hud Network, NetworkConfig or dict
            See :func:`analysis.boundaries.load_network`.
        points : ndarray of shape (n_samples, n_units)
            The probe set's activations of ``layer`` at these weights.
        layer : str
            A hidden layer with at least 2 units.
        labels : array-like of shape (n_samples,), optional
            Class (or input index) of each point, for colours.
        params : mapping parameter name -> ndarray, optional
            The weights (with a config).
        basis : fitted PCA, optional
            The plane for a layer of more than 2 units (default: the points' own PCA plane).
        extent : (x_min, x_max, y_min, y_max), optional
            In plane coordinates; default the points' box plus a margin.
        grid_size : int
        epoch : int, optional
            For titles.

        Returns
        -------
        HiddenSpaceDisplay
        """
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2:
            raise ParameterError(f"points must have shape (n_samples, n_units); got {pts.shape}")
        width = pts.shape[1]
        net = boundaries.load_network(network, params=params)
        hidden = getattr(net, "hidden_layers", [])
        exact = width == 2 and bool(hidden) and layer == hidden[-1]
        field = boundaries.hidden_plane_field(
            net, layer=layer, points=pts, basis=None if width == 2 else basis, extent=extent, grid_size=grid_size
        )
        segments = None
        if exact:
            planes = boundaries.output_hyperplanes(net, layer=layer)
            segments = planes.segments(field.extent)
            names = (f"{layer} unit 1", f"{layer} unit 2")
        else:
            names = (f"{layer} PC1", f"{layer} PC2") if width > 2 else (f"{layer} unit 1", f"{layer} unit 2")
        lab = np.zeros(len(pts), np.int64) if labels is None else np.asarray(labels)
        if lab.shape != (len(pts),):
            raise ParameterError(f"labels must have shape (n_samples,) = ({len(pts)},); got {lab.shape}")
        return cls(
            layer=layer,
            values=field.values,
            extent=field.extent,
            points=field.points,
            labels=lab,
            segments=segments,
            axis_labels=names,
            epoch=epoch,
        )

    @property
    def n_outputs(self) -> int:
        return int(self.values.shape[0])

    def regions(self) -> np.ndarray:
        """ndarray of shape (n_y, n_x): the predicted class at each grid point (argmax, or logit > 0 for one output)."""
        if self.n_outputs == 1:
            return (self.values[0] > 0).astype(np.int64)
        return np.argmax(self.values, axis=0)

    def plot(
        self,
        *,
        shade: bool = True,
        annotate: bool | None = None,
        title: str | None = None,
        legend: bool = True,
        ax: Axes | None = None,
    ) -> Axes:
        """Draw the regions, the boundaries (labelled by output unit) and the points.

        Parameters
        ----------
        shade : bool
            Shade each region in the colour of the class predicted there.
        annotate : bool, optional
            Number the points by probe sample (default: up to 20 samples).
        title : str, optional
        legend : bool
        ax : Axes, optional

        Returns
        -------
        Axes
        """
        ax = get_ax(ax)

        self.draw_content(ax, shade=shade, annotate=annotate)
        if annotate is None:
            annotate = self.points is not None and len(self.points) <= 20
        x0, x1, y0, y1 = self.extent
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xlabel(self.axis_labels[0], fontsize=8)
        ax.set_ylabel(self.axis_labels[1], fontsize=8)
        ax.tick_params(labelsize=7)
        when = f" at epoch {self.epoch:,}" if self.epoch is not None else ""
        ax.set_title(title or f"hidden space of {self.layer}{when}", fontsize=9)
        if legend:
            ax.legend(
                handles=self.legend_handles(annotate=bool(annotate)), fontsize=6, loc="upper right", framealpha=0.8
            )
        return ax

    def legend_handles(self, *, annotate: bool | None = None) -> list[Any]:
        """Legend entries for the boundaries and the points (for a legend of a whole grid of panels)."""
        from matplotlib.lines import Line2D

        if annotate is None:
            annotate = self.points is not None and len(self.points) <= 20
        line = "output = 0.5" if self.n_outputs == 1 else "output unit k: logit 0 (numbered k)"
        shade = "shade: the class predicted there"
        return [
            Line2D([], [], color="#111111", lw=1.3, label=line + (", exact" if self.exact else "")),
            Line2D(
                [],
                [],
                color="#888888",
                marker="o",
                mec="k",
                ls="none",
                label="probe point" + (" (numbered)" if annotate else "") + ", colour = class",
            ),
            Line2D([], [], color="#BBBBBB", lw=6, alpha=0.5, label=shade),
        ]

    def draw_content(self, ax: Axes, *, shade: bool = True, annotate: bool | None = None) -> list[Any]:
        """Draw the regions, boundaries and points only (no labels, limits or title); return the artists.

        :class:`HiddenSpaceAnimation` swaps these artists from frame to frame
        and keeps the rest of the Axes.
        """
        from matplotlib.colors import ListedColormap, to_rgba_array

        n_classes = max(self.n_outputs, 2, int(self.labels.max()) + 1 if len(self.labels) else 0)
        colors = class_colors(n_classes)
        artists: list[Any] = []
        if shade:
            artists.append(
                ax.imshow(
                    self.regions(),
                    extent=self.extent,
                    origin="lower",
                    cmap=ListedColormap(colors),
                    vmin=0,
                    vmax=n_classes - 1,
                    alpha=0.16,
                    aspect="auto",
                    interpolation="nearest",
                )
            )
        unit_colors = ["#111111"] if self.n_outputs == 1 else colors
        if self.exact:
            for k, seg in enumerate(self.segments or []):
                if seg is None:
                    continue
                artists += ax.plot(seg[:, 0], seg[:, 1], color=unit_colors[k], lw=1.3)
                if self.n_outputs > 1:
                    artists.append(_unit_label(ax, seg[0] + 0.82 * (seg[1] - seg[0]), str(k + 1), unit_colors[k]))
        else:
            for k in range(self.n_outputs):
                v = self.values[k]
                if not (np.nanmin(v) < 0 < np.nanmax(v)):
                    continue
                lines, segs = level_lines(ax, v, self.extent, [0.0], color=unit_colors[k], linewidth=1.3)
                artists += [lines] if lines is not None else []
                if segs and self.n_outputs > 1:
                    longest = max(segs, key=len)
                    artists.append(_unit_label(ax, longest[int(0.8 * (len(longest) - 1))], str(k + 1), unit_colors[k]))
        pts = self.points
        if pts is not None and len(pts):
            c = to_rgba_array(colors)[np.asarray(self.labels, dtype=np.int64) % len(colors)]
            artists.append(
                ax.scatter(
                    pts[:, 0], pts[:, 1], c=c, s=28 if len(pts) <= 20 else 10, edgecolors="k", linewidths=0.5, zorder=4
                )
            )
            if annotate is None:
                annotate = len(pts) <= 20
            if annotate:
                for j, (px, py) in enumerate(pts):
                    artists.append(
                        ax.annotate(
                            str(j + 1),
                            (px, py),
                            xytext=(3, -9),
                            textcoords="offset points",
                            fontsize=7,
                            zorder=5,
                            annotation_clip=True,
                        )
                    )
        return artists

    def to_frame(self) -> pd.DataFrame:
        """The data behind the figure: the points (plane coordinates, label) and the boundary segments."""
        rows: dict[str, Any] = {
            "kind": "point",
            "index": np.arange(len(self.points)),
            "x": self.points[:, 0],
            "y": self.points[:, 1],
            "label": self.labels,
        }
        frame = pd.DataFrame(rows)
        if self.segments:
            segs = [
                {"kind": "boundary", "index": k, "x": p[0], "y": p[1], "label": k}
                for k, seg in enumerate(self.segments)
                if seg is not None
                for p in seg
            ]
            frame = pd.concat([frame, pd.DataFrame(segs)], ignore_index=True)
        frame.insert(0, "epoch", self.epoch)
        frame.insert(0, "layer", self.layer)
        return frame


def _unit_label(ax: Axes, point: Sequence[float], text: str, color: str) -> Any:
    return ax.text(
        point[0],
        point[1],
        text,
        color=color,
        fontsize=7,
        fontweight="bold",
        ha="center",
        va="center",
        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": color, "lw": 0.6, "alpha": 0.9},
        zorder=6,
        clip_on=True,
    )


class HiddenSpaceAnimation:
    """A layer's hidden space over epochs, one frame per :class:`HiddenSpaceDisplay`.

    The Axes (labels, limits, ticks) is laid out once; each frame only swaps
    the regions, boundaries, points and the title.  :meth:`frames` renders
    every frame as an RGBA array by blitting onto an Agg canvas (only the
    changing artists are drawn); :meth:`animation` gives a
    :class:`~matplotlib.animation.FuncAnimation` for a notebook.  Nothing is
    saved: the report writes the frames as a GIF with Pillow.

    Parameters
    ----------
    displays : sequence of HiddenSpaceDisplay
        The frames, in order, sharing one plane and one extent (build them with
        the same ``basis`` and ``extent``).
    titles : sequence of str, optional
        One per frame (default: 'hidden space of LAYER at epoch E').
    fig : Figure, optional
        Default a new pyplot figure of 4.4 x 4.2 inches.
    """

    def __init__(
        self, displays: Sequence[HiddenSpaceDisplay], *, titles: Sequence[str] | None = None, fig: Any = None
    ) -> None:
        if not displays:
            raise ParameterError("displays must hold at least one HiddenSpaceDisplay; got none")
        if titles is not None and len(titles) != len(displays):
            raise ParameterError(f"titles must have one entry per display ({len(displays)}); got {len(titles)}")
        if fig is None:
            import matplotlib.pyplot as plt

            fig = plt.figure(figsize=(4.4, 4.2))
        self.displays = list(displays)
        self.titles = list(titles) if titles is not None else None
        self.fig = fig
        self.ax = fig.add_axes((0.15, 0.11, 0.8, 0.74))
        self.displays[0].plot(ax=self.ax, legend=False, title=self._title(0))
        self._current: list[Any] = [*self.ax.images, *self.ax.lines, *self.ax.collections, *self.ax.texts]

    def __len__(self) -> int:
        return len(self.displays)

    def _title(self, k: int) -> str:
        if self.titles is not None:
            return self.titles[k]
        d = self.displays[k]
        return f"hidden space of {d.layer}" + (f" at epoch {d.epoch:,}" if d.epoch is not None else "")

    def draw(self, k: int) -> list[Any]:
        """Show frame ``k`` on the figure; return its content artists."""
        for artist in self._current:
            artist.remove()
        self._current = self.displays[k].draw_content(self.ax)
        self.ax.set_title(self._title(k), fontsize=9)
        return self._current

    def animation(self, *, interval: int = 250, hold: int = 2) -> Any:
        """A FuncAnimation of the frames (the last one held ``hold`` frames longer)."""
        from matplotlib.animation import FuncAnimation

        order = [*range(len(self)), *[len(self) - 1] * int(hold)]
        return FuncAnimation(self.fig, lambda i: self.draw(order[i]), frames=len(order), interval=interval)

    def frames(self, *, dpi: float = 64) -> Any:
        """Yield every frame as an ndarray of shape (height, width, 4), uint8 RGBA.

        The figure's static part is drawn once; each frame restores it and
        draws only its own artists (blitting), which makes a frame some ten
        times cheaper than a full draw.
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig, ax = self.fig, self.ax
        canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
        fig.set_dpi(dpi)
        for artist in self._current:
            artist.remove()
        self._current = []
        ax.set_title(" ")
        canvas.draw()
        background = canvas.copy_from_bbox(fig.bbox)
        for k in range(len(self)):
            canvas.restore_region(background)
            self._current = self.displays[k].draw_content(ax)
            ax.title.set_text(self._title(k))
            for artist in sorted([*self._current, ax.title], key=lambda a: a.get_zorder()):
                ax.draw_artist(artist)
            yield np.asarray(canvas.buffer_rgba()).copy()
            for artist in self._current:
                artist.remove()
            self._current = []
