"""What a report computes once and draws many times: epochs, curves, geometry, displays, the summary.

:class:`ReportContext` holds an open :class:`~reports.experiment.Experiment`
and the report's options, and calls the analysis functions (never
re-implementing them); page composers in :mod:`reports.pages` ask it for
data and figures' ``Display`` objects, which it caches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis import dynamics, geometry
from data.errors import HudError, ParameterError

from .experiment import Cell, Experiment, Run
from .figures import DecisionBoundaryDisplay, HiddenSpaceDisplay, TrajectoryDisplay

__all__ = ["ReportContext", "pick_epochs", "default_snapshot_epochs"]

GROUP = "config"  # the column naming a run's configuration in tidy frames
_SATURATING = ("tanh", "sigmoid")
_PLANE_POINTS = 61  # grid points per side of input-plane pictures (a finer recorded grid is thinned)


def pick_epochs(epochs: Sequence[int], n: int) -> list[int]:
    """At most ``n`` of ``epochs`` (sorted), half evenly spaced in position and half evenly in log-epoch.

    The first and the last are always kept, so early training (where most
    happens) and late training both show.
    """
    ep = np.unique(np.asarray(epochs, dtype=np.int64))
    if len(ep) <= n:
        return ep.tolist()
    idx = set(np.linspace(0, len(ep) - 1, max(2, n // 2)).round().astype(int).tolist())
    targets = np.geomspace(1, max(int(ep[-1]), 1) + 1, n - len(idx) + 2) - 1
    for t in targets:
        idx.add(int(np.argmin(np.abs(ep - t))))
    return ep[sorted(idx)].tolist()


def default_snapshot_epochs(last: int) -> list[int]:
    """Epochs 0, last/100, last/10 and last (the course's snapshots a decade apart), deduplicated."""
    return sorted({0, int(round(last / 100)), int(round(last / 10)), int(last)})


def _nearest(recorded: np.ndarray, targets: Sequence[int]) -> list[int]:
    if not len(recorded):
        return []
    out = [int(recorded[np.argmin(np.abs(recorded - t))]) for t in targets]
    return sorted(set(out))


@dataclass
class ReportContext:
    """The data of one report, computed on demand and cached.

    Parameters
    ----------
    experiment : Experiment
    layers : list of str
        Hidden layers to report on.
    snapshot_epochs : list of int
        Requested snapshot epochs (each run shows its nearest recorded epoch with a finite loss).
    max_epochs : int
        Epochs subsampled for trajectories, geometry and weight norms.
    cka_n : int
        Epochs subsampled for epoch x epoch CKA matrices.
    spread : str
        The band around mean lines.
    figures : dict
        Figures kept between pages of the same layout (the per-run pages draw
        every run into one figure, see :func:`reports.pages.run_page`).
    """

    experiment: Experiment
    layers: list[str]
    snapshot_epochs: list[int]
    max_epochs: int = 48
    cka_n: int = 24
    spread: str = "range"
    figures: dict[Any, Any] = field(default_factory=dict, repr=False)
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    # -- basics ---------------------------------------------------------------------

    @property
    def palette(self) -> dict[str, str]:
        if "palette" not in self._cache:
            self._cache["palette"] = self.experiment.palette
        return self._cache["palette"]

    @property
    def order(self) -> list[str]:
        return [c.label for c in self.experiment.cells]

    @property
    def statuses(self) -> dict[str, str]:
        return {r.id: r.status for r in self.experiment.runs}

    @property
    def data_runs(self) -> list[Run]:
        return list(self.experiment.iter_data_runs())

    @property
    def last_epoch(self) -> int:
        return max((int(r.epochs[-1]) for r in self.data_runs), default=0)

    def config_value(self, *keys: str, default: Any = None) -> Any:
        """A value of the first run's config, e.g. ``config_value('network', 'activation')``."""
        for r in self.data_runs:
            d: Any = r.config
            for k in keys:
                d = d.get(k, {}) if isinstance(d, dict) else {}
            return d if d != {} else default
        return default

    def activation(self, layer: str) -> str | None:
        """The activation function of a hidden layer ('tanh', ...), from the config."""
        act = self.config_value("network", "activation")
        hidden = self.config_value("network", "hidden", default=[])
        names = [f"hidden{k + 1}" for k in range(len(hidden))]
        if layer not in names:
            return None
        return act if isinstance(act, str) else list(act)[names.index(layer)] if act else None

    @property
    def output(self) -> str:
        """The output non-linearity of the loss of the first run ('sigmoid', 'softmax', 'linear')."""
        return str(self.config_value("loss", "output", default="sigmoid"))

    @property
    def labels(self) -> np.ndarray:
        if "labels" not in self._cache:
            run = self.data_runs[0]
            self._cache["labels"] = np.asarray(run.recording.probe.labels)
        return self._cache["labels"]

    @property
    def probe_inputs(self) -> np.ndarray:
        if "inputs" not in self._cache:
            self._cache["inputs"] = np.asarray(self.data_runs[0].recording.probe.inputs)
        return self._cache["inputs"]

    @property
    def grid(self) -> tuple[np.ndarray, tuple[int, int], tuple[float, float, float, float]] | None:
        """The input-plane grid of a 2-D task (None otherwise)."""
        if "grid" not in self._cache:
            self._cache["grid"] = self.data_runs[0].recording.grid
        return self._cache["grid"]

    def coarse_grid(self, n: int) -> tuple[np.ndarray, tuple[int, int], tuple[float, float, float, float]]:
        """The input-plane grid thinned to at most about ``n`` points per side (every k-th row and column)."""
        points, (ny, nx), extent = self.grid
        step = max(1, -(-max(ny, nx) // n))
        if step == 1:
            return points, (ny, nx), extent
        sub = np.asarray(points).reshape(ny, nx, -1)[::step, ::step]
        pts = sub.reshape(-1, sub.shape[2])
        ext = (float(pts[:, 0].min()), float(pts[:, 0].max()), float(pts[:, 1].min()), float(pts[:, 1].max()))
        return pts, sub.shape[:2], ext

    def analysis_epochs(self, run: Run, n: int | None = None) -> list[int]:
        """A subsample of the run's recorded epochs, the same targets for every run."""
        key = ("targets", n or self.max_epochs)
        if key not in self._cache:
            longest = max(self.data_runs, key=lambda r: int(r.epochs[-1]))
            self._cache[key] = pick_epochs(longest.epochs, n or self.max_epochs)
        return _nearest(run.epochs, self._cache[key])

    def snapshots(self, run: Run) -> list[int]:
        """The run's recorded epochs (finite loss) nearest to the requested snapshot epochs."""
        return sorted({e for e in (run.snap(t) for t in self.snapshot_epochs) if e is not None})

    def snap(self, run: Run, epoch: int) -> int | None:
        return run.snap(epoch)

    # -- curves and summary ------------------------------------------------------------

    def curves(self) -> pd.DataFrame:
        """Tidy learning curves of every run with data: run, epoch, metric, value, config, seed, status."""
        if "curves" not in self._cache:
            runs = {r.id: r.metrics for r in self.data_runs}
            metrics = [m for m in ("loss", "accuracy", "total") if all(m in df.columns for df in runs.values())]
            df = dynamics.learning_curves(runs, metrics=metrics or None)
            self._add_run_columns(df)
            self._cache["curves"] = df
        return self._cache["curves"]

    def _add_run_columns(self, df: pd.DataFrame) -> None:
        by_id = {r.id: r for r in self.experiment.runs}
        df[GROUP] = df["run"].map(lambda i: by_id[i].cell.label)
        df["seed"] = df["run"].map(lambda i: by_id[i].seed)
        df["status"] = df["run"].map(lambda i: by_id[i].status)

    @property
    def criterion(self) -> tuple[str, float, str]:
        """(metric, threshold, text) of success: 100 % accuracy, or a small loss where accuracy is not defined."""
        if "criterion" not in self._cache:
            has_acc = all(
                "accuracy" in r.metrics.columns and np.isfinite(r.metrics["accuracy"].to_numpy(np.float64)).any()
                for r in self.data_runs
            )
            self._cache["criterion"] = ("accuracy", 1.0, "100 % accuracy") if has_acc else ("loss", 0.01, "loss 0.01")
        return self._cache["criterion"]

    def thresholds(self) -> pd.DataFrame:
        """One row per run with data: run, config, seed, status, epochs (to the success criterion, NaN if never)."""
        if "thresholds" not in self._cache:
            metric, value, _ = self.criterion
            runs = {r.id: r.metrics for r in self.data_runs}
            s = dynamics.epochs_to_threshold_by_run(runs, threshold=value, metric=metric)
            df = s.rename("epochs").reset_index()
            self._add_run_columns(df)
            self._cache["thresholds"] = df
        return self._cache["thresholds"]

    def success(self) -> dict[str, dynamics.SuccessRate]:
        """Success rate (with its Wilson interval) of every configuration that has runs with data."""
        th = self.thresholds()
        out = {}
        for cell in self.experiment.cells:
            v = th.loc[th[GROUP] == cell.label, "epochs"].to_numpy(np.float64)
            if len(v):
                out[cell.label] = dynamics.success_rate(np.isfinite(v))
        return out

    def summary(self) -> pd.DataFrame:
        """One row per configuration: runs and their statuses, final loss and accuracy, success, epochs to it."""
        if "summary" in self._cache:
            return self._cache["summary"]
        metric, _, text = self.criterion
        th = self.thresholds()
        rates = self.success()
        rows = []
        for cell in self.experiment.cells:
            runs = self.experiment.runs_of(cell)
            finals = [r.metrics.iloc[-1] for r in runs if r.has_data and len(r.metrics)]
            loss = np.array([f.get("loss", np.nan) for f in finals], np.float64)
            acc = np.array([f.get("accuracy", np.nan) for f in finals], np.float64)
            counts = pd.Series([r.status for r in runs]).value_counts()
            ep = th.loc[th[GROUP] == cell.label, "epochs"].to_numpy(np.float64)
            ep = ep[np.isfinite(ep)]
            rate = rates.get(cell.label)
            rows.append(
                {
                    "config": cell.label,
                    "runs": len(runs),
                    "status": ", ".join(f"{n} {s}" for s, n in counts.items()),
                    "final loss (mean)": _nanmean(loss),
                    "final loss (sd)": float(np.nanstd(loss)) if np.isfinite(loss).sum() > 1 else np.nan,
                    "final accuracy (mean)": _nanmean(acc),
                    "success": f"{rate.successes}/{rate.trials}" if rate else "-",
                    "success rate": rate.rate if rate else np.nan,
                    "wilson low": rate.low if rate else np.nan,
                    "wilson high": rate.high if rate else np.nan,
                    f"epochs to {text} (median)": float(np.median(ep)) if len(ep) else np.nan,
                }
            )
        self._cache["summary"] = pd.DataFrame(rows)
        return self._cache["summary"]

    # -- activations and geometry -------------------------------------------------------

    def acts(self, run: Run, layer: str, n: int | None = None) -> tuple[list[int], np.ndarray]:
        """(epochs, activations of shape (n_epochs, n_samples, n_units)) at the run's analysis epochs."""
        epochs = self.analysis_epochs(run, n)
        return epochs, run.activations(layer, epochs)

    def n_units(self, layer: str) -> int:
        return int(self.data_runs[0].recording.layer_shape(layer)[1])

    def geometry_metrics(self, layer: str) -> list[str]:
        """The geometry metrics that apply to a layer (its activation, the probe's classes)."""
        act = self.activation(layer)
        metrics = ["effective_rank", "participation_ratio"]
        if act in _SATURATING:
            metrics.append("saturation")
        if act == "relu":
            metrics.append("dead_fraction")
        _, counts = np.unique(self.labels, return_counts=True)
        if len(counts) >= 2 and counts.max() >= 2:  # NC1 needs a within-class scatter
            metrics.append("nc1")
        if act in _SATURATING and self.n_units(layer) <= 4:
            metrics.append("corner_distance")
        return metrics

    def geometry(self, layer: str) -> pd.DataFrame:
        """Tidy geometry metrics of one layer for every run with data (plus run, config, seed, status)."""
        key = ("geometry", layer)
        if key not in self._cache:
            metrics = self.geometry_metrics(layer)
            frames = []
            for run in self.data_runs:
                epochs, acts = self.acts(run, layer)
                df = geometry.layer_metrics(
                    acts,
                    layer=layer,
                    metrics=metrics,
                    labels=self.labels,
                    activation=self.activation(layer),
                    epochs=epochs,
                )
                df.insert(0, "run", run.id)
                frames.append(df)
            out = pd.concat(frames, ignore_index=True)
            self._add_run_columns(out)
            self._cache[key] = out
        return self._cache[key]

    def weight_norms(self) -> pd.DataFrame:
        """Tidy per-layer weight norms of every run with data (plus run, config, seed, status)."""
        if "norms" not in self._cache:
            frames = []
            for run in self.data_runs:
                epochs = self.analysis_epochs(run)
                df = dynamics.weight_norms(run.parameter_histories(epochs), epochs=epochs)
                df.insert(0, "run", run.id)
                frames.append(df)
            out = pd.concat(frames, ignore_index=True)
            self._add_run_columns(out)
            self._cache["norms"] = out
        return self._cache["norms"]

    def epoch_cka(self, run: Run, layer: str) -> tuple[list[int], np.ndarray]:
        """(epochs, epoch x epoch linear CKA matrix) of one run's layer on a subsample of epochs."""
        key = ("cka", run.id, layer)
        if key not in self._cache:
            epochs, acts = self.acts(run, layer, self.cka_n)
            self._cache[key] = (epochs, geometry.cka_matrix(acts))
        return self._cache[key]

    def cka_runs(self, layer: str, epoch: int) -> tuple[list[Run], np.ndarray, list[int]]:
        """(runs, run x run linear CKA matrix at their recorded epoch nearest ``epoch``, those epochs)."""
        runs = self.data_runs
        epochs = [int(r.epochs[np.argmin(np.abs(r.epochs - epoch))]) for r in runs]
        acts = [r.activations(layer, [e]) for r, e in zip(runs, epochs)]
        if len(runs) < 2:
            return runs, np.ones((len(runs), len(runs))), epochs
        return runs, geometry.cka_across_runs(acts)[0], epochs

    # -- displays --------------------------------------------------------------------------

    def trajectories(self, layer: str) -> TrajectoryDisplay | str:
        """One shared PCA basis over the representative run of every configuration (or why there is none)."""
        key = ("traj", layer)
        if key not in self._cache:
            reps = [r for r in (self.experiment.representative(c) for c in self.experiment.cells) if r is not None]
            acts, epochs = {}, {}
            for r in reps:
                epochs[r.id], acts[r.id] = self.acts(r, layer)
            try:
                self._cache[key] = TrajectoryDisplay.from_activations(
                    acts, epochs=epochs, labels=self.labels, layer=layer
                )
            except HudError as exc:
                self._cache[key] = str(exc)
        return self._cache[key]

    def hidden_extent(self, layer: str) -> tuple[float, float, float, float] | None:
        """A fixed extent for a 2-unit layer with a bounded activation (tanh: -1..1), else None."""
        if self.n_units(layer) != 2:
            return None
        act = self.activation(layer)
        if act == "tanh":
            return (-1.1, 1.1, -1.1, 1.1)
        if act == "sigmoid":
            return (-0.05, 1.05, -0.05, 1.05)
        return None

    def hidden_display(
        self, run: Run, layer: str, epoch: int, *, basis: Any = None, extent: Any = None, grid_size: int = 121
    ) -> HiddenSpaceDisplay | str:
        """The hidden space of a run's layer at a recorded epoch (or the reason it cannot be drawn)."""
        key = ("hidden", run.id, layer, int(epoch), id(basis), None if extent is None else tuple(extent), grid_size)
        if key in self._cache:
            return self._cache[key]
        if self.n_units(layer) < 2:
            out: HiddenSpaceDisplay | str = f"{layer} has 1 unit: no plane to draw"
        else:
            try:
                points = run.activations(layer, [epoch])[0]
                if not np.isfinite(points).all():
                    raise ParameterError(f"activations of {layer} at epoch {epoch} hold NaN (diverged)")
                if basis is None and self.n_units(layer) > 2:  # the shared plane of the trajectory pages
                    traj = self.trajectories(layer)
                    if isinstance(traj, TrajectoryDisplay):
                        basis = traj.pca_
                        extent = traj.limits if extent is None else extent
                out = HiddenSpaceDisplay.from_network(
                    run.network(epoch),
                    points,
                    layer=layer,
                    labels=self.labels,
                    basis=basis,
                    extent=extent if extent is not None else self.hidden_extent(layer),
                    grid_size=grid_size,
                    epoch=epoch,
                )
            except HudError as exc:
                out = str(exc)
        self._cache[key] = out
        return out

    def run_plane(self, run: Run, layer: str) -> tuple[Any, Any]:
        """(basis, extent) of a plane fixed over a run's epochs: its own PCA plane for more than 2 units."""
        key = ("plane_of", run.id, layer)
        if key not in self._cache:
            extent = self.hidden_extent(layer)
            epochs = self.analysis_epochs(run)
            acts = run.activations(layer, epochs)
            basis = None
            if acts.shape[2] > 2:
                try:
                    disp = TrajectoryDisplay.from_activations({run.id: acts}, labels=self.labels, layer=layer)
                    basis, extent = disp.pca_, disp.limits
                except HudError:
                    basis, extent = None, None
            elif extent is None:
                ok = np.isfinite(acts).all(axis=(1, 2))
                if ok.any():
                    lo, hi = acts[ok].min(axis=(0, 1)), acts[ok].max(axis=(0, 1))
                    pad = np.maximum((hi - lo) * 0.08, 1e-3)
                    extent = (lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1])
            self._cache[key] = (basis, extent)
        return self._cache[key]

    def plane_display(self, run: Run, epoch: int) -> DecisionBoundaryDisplay | str | None:
        """The input-plane decision boundary of a run at an epoch (None for a task without a plane)."""
        grid = self.grid
        if grid is None:
            return None
        key = ("plane", run.id, int(epoch))
        if key not in self._cache:
            points, shape, extent = self.coarse_grid(_PLANE_POINTS)
            try:
                self._cache[key] = DecisionBoundaryDisplay.from_network(
                    run.network(epoch),
                    points,
                    grid_shape=shape,
                    extent=extent,
                    output=self.output if self.output in ("sigmoid", "softmax") else "logits",
                    epoch=epoch,
                )
            except HudError as exc:
                self._cache[key] = str(exc)
        return self._cache[key]

    def cells_with_runs(self) -> list[Cell]:
        return [c for c in self.experiment.cells if self.experiment.representative(c) is not None]

    def forget(self, run: Run) -> None:
        """Free a run's cached networks, activations and displays once its pages are written."""
        run.forget()
        for key in [k for k in self._cache if isinstance(k, tuple) and len(k) > 1 and k[1] == run.id]:
            del self._cache[key]


def _nanmean(values: np.ndarray) -> float:
    ok = np.isfinite(values)
    return float(values[ok].mean()) if ok.any() else float("nan")
