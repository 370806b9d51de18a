"""PCA trajectories of the probe set's hidden points, every run in one shared basis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from analysis.pca import TrajectoryPCA
from data.errors import ParameterError

from ._style import class_colors, get_ax, placeholder

__all__ = ["TrajectoryDisplay"]


class TrajectoryDisplay:
    """Hidden-point trajectories of several runs projected into one PCA basis.

    Fitting the basis and projecting is done once (:meth:`from_activations`);
    :meth:`plot` then draws any run on any Axes, always with the same axis
    limits, so that panels of a grid compare directly.

    Parameters
    ----------
    frame : DataFrame
        Columns ``run``, ``epoch``, ``sample``, ``label``, ``pc1``, ``pc2``.
    pca : TrajectoryPCA
        The fitted basis.
    layer : str, optional
    limits : (x_min, x_max, y_min, y_max)

    Attributes
    ----------
    frame_ : DataFrame
    pca_ : TrajectoryPCA
    layer : str or None
    limits : tuple of float
    """

    def __init__(
        self, frame: pd.DataFrame, *, pca: TrajectoryPCA, layer: str | None, limits: tuple[float, ...]
    ) -> None:
        self.frame_ = frame
        self.pca_ = pca
        self.layer = layer
        self.limits = limits

    @classmethod
    def from_activations(
        cls,
        acts: Mapping[Any, np.ndarray],
        *,
        epochs: Mapping[Any, np.ndarray] | None = None,
        labels: Any = None,
        layer: str | None = None,
        basis: str | int = "pooled",
    ) -> TrajectoryDisplay:
        """Fit one basis on every run's activations and project every epoch of every run.

        Parameters
        ----------
        acts : mapping run -> ndarray of shape (n_epochs, n_samples, n_units)
            One layer's activations of each run (the runs may differ in n_epochs).
        epochs : mapping run -> ndarray of shape (n_epochs,), optional
            The epoch numbers of each run's rows (default 0..n_epochs-1).
        labels : array-like of shape (n_samples,), optional
            Class of each probe sample (colours); default all 0.
        layer : str, optional
            The layer's name, for titles.
        basis : {'pooled', 'final', 'initial'} or int
            See :meth:`analysis.pca.TrajectoryPCA.fit`; epochs with NaN (a
            diverged run) are left out of the fit.

        Returns
        -------
        TrajectoryDisplay
        """
        if not isinstance(acts, Mapping) or not acts:
            raise ParameterError("acts must be a non-empty mapping run -> ndarray (n_epochs, n_samples, n_units)")
        first = np.asarray(next(iter(acts.values())))
        if first.ndim != 3:
            raise ParameterError(f"acts must hold arrays of shape (n_epochs, n_samples, n_units); got {first.shape}")
        if first.shape[2] < 2:
            raise ParameterError(f"a PCA plane needs a layer with at least 2 units; layer {layer!r} has 1")
        pca = TrajectoryPCA(2, nan_policy="omit").fit(dict(acts), basis=basis)
        lab = np.zeros(first.shape[1], np.int64) if labels is None else np.asarray(labels)
        frames = []
        for run, arr in acts.items():
            ep = None if epochs is None else np.asarray(epochs[run])
            df = pca.trajectories(arr, labels=lab, epochs=ep)
            df.insert(0, "run", run)
            frames.append(df)
        frame = pd.concat(frames, ignore_index=True)
        xs, ys = frame["pc1"].to_numpy(), frame["pc2"].to_numpy()
        ok = np.isfinite(xs) & np.isfinite(ys)
        if not ok.any():
            limits = (-1.0, 1.0, -1.0, 1.0)
        else:
            lo = np.array([xs[ok].min(), ys[ok].min()])
            hi = np.array([xs[ok].max(), ys[ok].max()])
            pad = np.maximum((hi - lo) * 0.06, 1e-6)
            limits = (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])
        return cls(frame, pca=pca, layer=layer, limits=tuple(float(v) for v in limits))

    @property
    def runs(self) -> list[Any]:
        """The runs, in the order given."""
        return list(dict.fromkeys(self.frame_["run"]))

    def axis_label(self, k: int) -> str:
        """'PC1 (63 % of variance)'."""
        return f"PC{k + 1} ({100 * self.pca_.explained_variance_ratio_[k]:.0f} % of variance)"

    def plot(
        self,
        run: Any = None,
        *,
        means: bool | None = None,
        title: str | None = None,
        legend: bool = True,
        ax: Axes | None = None,
    ) -> Axes:
        """Draw one run's trajectories: a line per probe sample from its first to its last epoch.

        Parameters
        ----------
        run : optional
            Which run (default the first).
        means : bool, optional
            Draw the class means' trajectories bold (default: when there are
            more than 30 probe samples, whose own lines are then drawn faint).
        title : str, optional
        legend : bool
        ax : Axes, optional

        Returns
        -------
        Axes
        """
        ax = get_ax(ax)
        runs = self.runs
        run = runs[0] if run is None else run
        if run not in runs:
            raise ParameterError(f"run must be one of {runs!r}; got {run!r}")
        df = self.frame_[self.frame_["run"] == run]
        epochs = np.unique(df["epoch"].to_numpy())
        where = f" of {self.layer}" if self.layer else ""
        title = title or f"PCA trajectories{where}, epochs {int(epochs[0]):,}-{int(epochs[-1]):,}"
        classes = np.unique(df["label"].to_numpy())
        colors = dict(zip(classes.tolist(), class_colors(len(classes))))
        n_samples = df["sample"].nunique()
        if means is None:
            means = n_samples > 30
        pivot_x = df.pivot(index="epoch", columns="sample", values="pc1").to_numpy()
        pivot_y = df.pivot(index="epoch", columns="sample", values="pc2").to_numpy()
        sample_labels = df.drop_duplicates("sample").sort_values("sample")["label"].to_numpy()
        alpha = 0.25 if means else 0.8
        for s in range(pivot_x.shape[1]):
            c = colors[sample_labels[s].item()]
            ax.plot(pivot_x[:, s], pivot_y[:, s], color=c, lw=0.7, alpha=alpha)
        ax.scatter(pivot_x[0], pivot_y[0], s=12, facecolors="none", edgecolors="#444444", lw=0.6, zorder=3)
        ends = _last_finite(pivot_x, pivot_y)
        ax.scatter(
            ends[0], ends[1], s=22, c=[colors[v.item()] for v in sample_labels], edgecolors="k", lw=0.4, zorder=4
        )
        if n_samples <= 12:
            for s in range(n_samples):
                ax.annotate(str(s + 1), (ends[0][s], ends[1][s]), xytext=(3, 3), textcoords="offset points", fontsize=7)
        if means:
            for c in classes:
                m = sample_labels == c
                ax.plot(
                    np.nanmean(pivot_x[:, m], axis=1),
                    np.nanmean(pivot_y[:, m], axis=1),
                    color=colors[c.item()],
                    lw=2.2,
                    path_effects=_outline(),
                )
        ax.set_xlim(self.limits[0], self.limits[1])
        ax.set_ylim(self.limits[2], self.limits[3])
        ax.set_xlabel(self.axis_label(0), fontsize=8)
        ax.set_ylabel(self.axis_label(1), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_title(title, fontsize=9)
        if not np.isfinite(pivot_x).any():
            placeholder(ax, "no finite activations (diverged)")
        if legend:
            ax.legend(handles=self.legend_handles(run), fontsize=6, loc="best", ncols=2 if len(classes) > 4 else 1)
        return ax

    def legend_handles(self, run: Any = None) -> list[Any]:
        """Legend entries: first and last epoch markers, and a line per class (up to 10)."""
        from matplotlib.lines import Line2D

        df = self.frame_ if run is None else self.frame_[self.frame_["run"] == run]
        classes = np.unique(df["label"].to_numpy())
        colors = dict(zip(classes.tolist(), class_colors(len(classes))))
        handles = [
            Line2D([], [], color="#444444", marker="o", mfc="none", ls="none", ms=4, label="first epoch"),
            Line2D([], [], color="#444444", marker="o", ls="none", ms=5, label="last epoch"),
        ]
        if len(classes) <= 10:
            handles += [Line2D([], [], color=colors[c.item()], lw=2, label=f"class {c}") for c in classes]
        return handles

    def to_frame(self) -> pd.DataFrame:
        """The data behind the figure: one row per (run, epoch, sample)."""
        return self.frame_.copy()


def _last_finite(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's last finite (x, y) (NaN if none): where a diverged run's samples were last seen."""
    ok = np.isfinite(xs) & np.isfinite(ys)
    idx = np.where(ok.any(axis=0), xs.shape[0] - 1 - np.argmax(ok[::-1], axis=0), 0)
    cols = np.arange(xs.shape[1])
    ex, ey = xs[idx, cols].copy(), ys[idx, cols].copy()
    ex[~ok.any(axis=0)] = np.nan
    ey[~ok.any(axis=0)] = np.nan
    return ex, ey


def _outline() -> list[Any]:
    import matplotlib.patheffects as pe

    return [pe.Stroke(linewidth=3.4, foreground="white"), pe.Normal()]
