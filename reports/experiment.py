"""A runs folder, read for a report: its manifest, each run's recording, and the grid of configurations.

``hud run`` writes ``runs/NAME/manifest.json`` and one recording per run::

    {"format": "hud-experiment", "format_version": 1, "name": ..., "hud_version": ...,
     "experiment": {...}, "axes": {axis: [values, ...]},          # the axes that vary, seed included
     "runs": [{"id": ..., "file": "<id>.h5", "cell": {axis: value}, "seed": int,
               "status": ..., "final": {...} or null}, ...]}

The recordings are the truth: a run's status is read from its file (the
manifest may be stale), and a run listed in the manifest whose file is absent
is kept with status ``'missing'`` rather than dropped.  Without a manifest,
every ``*.h5`` file of the folder is a run and the configuration axes are
derived from the recordings' configs (loss, optimizer, learning rate, weight
decay, ... -- whichever vary), so a folder of recordings made by hand works too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from data.errors import HudError, ParameterError, RecordingError, did_you_mean
from data.manifest import MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION, read_manifest
from data.recording import Recording, open_recording

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "Cell",
    "Run",
    "Experiment",
    "load_experiment",
    "format_value",
]

#: the axis laid out along the rows of comparison grids; every other axis goes along the columns
ROW_AXIS = "loss"
_LOSS_ORDER = ("sse", "bce", "softmax")
_OPTIMIZER_ORDER = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw", "lbfgs")
_ALWAYS = ("loss", "optimizer")  # derived axes kept even when constant (titles name them)


def format_value(value: Any) -> str:
    """A configuration value for people: 'adam', '0.01', '10-10', 'adam(lr=0.01)'."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "-".join(format_value(v) for v in value)
    if isinstance(value, Mapping):
        name = value.get("name")
        rest = ", ".join(f"{k}={format_value(v)}" for k, v in value.items() if k != "name")
        return f"{name}({rest})" if name is not None and rest else str(name) if name is not None else rest
    return str(value)


def _hashable(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


@dataclass(frozen=True)
class Cell:
    """One configuration of the grid: a value for every axis but the seed.

    Attributes
    ----------
    axes : tuple of str
    values : tuple
        One value per axis (as written in the manifest or config).
    """

    axes: tuple[str, ...]
    values: tuple[Any, ...]

    @property
    def key(self) -> str:
        """A stable string key (JSON of the values)."""
        return _hashable(list(zip(self.axes, self.values)))

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cell) and other.key == self.key

    def get(self, axis: str, default: Any = None) -> Any:
        """The value of one axis."""
        return self.values[self.axes.index(axis)] if axis in self.axes else default

    @property
    def label(self) -> str:
        """'sse · adam · lr=0.01' (names of loss, optimizer, task and network alone; other axes as axis=value)."""
        parts = []
        for axis, value in zip(self.axes, self.values):
            text = format_value(value)
            parts.append(text if axis in ("loss", "optimizer", "task", "network") else f"{axis}={text}")
        return " · ".join(parts) if parts else "all runs"

    def as_dict(self) -> dict[str, Any]:
        return dict(zip(self.axes, self.values))


@dataclass(eq=False)
class Run:
    """One run of an experiment: where its recording is, its configuration, seed and status.

    Attributes
    ----------
    id : str
    path : str
    cell : Cell
    seed : int or None
    status : str
        From the recording ('complete', 'converged', 'diverged', 'interrupted',
        ...), or 'missing' when the manifest lists a run whose file is absent.
    status_text : str
        E.g. 'diverged at epoch 40'.
    recording : Recording or None
        Open for lazy reading while the experiment is open.
    manifest_status : str or None
        What the manifest says (may be stale).
    """

    id: str
    path: str
    cell: Cell
    seed: int | None
    status: str
    status_text: str
    recording: Recording | None
    manifest_status: str | None = None
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def has_data(self) -> bool:
        """Whether the run has a recording with at least one committed epoch."""
        return self.recording is not None and len(self.epochs) > 0

    @property
    def ok(self) -> bool:
        """Whether the run ended normally ('complete' or 'converged')."""
        return self.status in ("complete", "converged")

    @property
    def config(self) -> dict[str, Any]:
        return self.recording.config if self.recording is not None else {}

    @property
    def epochs(self) -> np.ndarray:
        """ndarray of shape (n_recorded,): the committed epochs."""
        if "epochs" not in self._cache:
            self._cache["epochs"] = self.recording.epochs if self.recording is not None else np.empty(0, np.int64)
        return self._cache["epochs"]

    @property
    def metrics(self) -> pd.DataFrame:
        """Per-epoch metrics indexed by epoch (empty for a missing run)."""
        if "metrics" not in self._cache:
            self._cache["metrics"] = (
                self.recording.metrics if self.recording is not None else pd.DataFrame(index=pd.Index([], name="epoch"))
            )
        return self._cache["metrics"]

    @property
    def finite_epochs(self) -> np.ndarray:
        """The recorded epochs whose loss is finite (all of them unless the run diverged)."""
        if "finite" not in self._cache:
            m = self.metrics
            if "loss" in m.columns and len(m):
                ok = np.isfinite(m["loss"].to_numpy(np.float64))
                self._cache["finite"] = m.index.to_numpy(np.int64)[ok]
            else:
                self._cache["finite"] = self.epochs
        return self._cache["finite"]

    def snap(self, epoch: int) -> int | None:
        """The recorded epoch with a finite loss nearest to ``epoch`` (None if the run has none)."""
        fin = self.finite_epochs
        if not len(fin):
            return None
        return int(fin[np.argmin(np.abs(fin - int(epoch)))])

    def activations(self, layer: str, epochs: Sequence[int]) -> np.ndarray:
        """ndarray of shape (n_epochs, n_samples, n_units) of ``layer`` at recorded ``epochs`` (cached)."""
        key = ("acts", layer, tuple(int(e) for e in epochs))
        if key not in self._cache:
            self._cache[key] = np.asarray(self.recording.activations(layer, list(key[2])), dtype=np.float64)
        return self._cache[key]

    def parameter_histories(self, epochs: Sequence[int]) -> dict[str, np.ndarray]:
        """{parameter name: ndarray of shape (n_epochs, *shape)} at recorded ``epochs``."""
        rec = self.recording
        return {name: rec.parameter(name, list(epochs)) for name in rec.parameter_names}

    def network(self, epoch: int) -> Any:
        """The hud network with the weights recorded at ``epoch`` (cached)."""
        key = ("net", int(epoch))
        if key not in self._cache:
            from models.recorder import load_network

            self._cache[key] = load_network(self.recording, int(epoch))
        return self._cache[key]

    def forget(self) -> None:
        """Drop cached arrays and networks (keeps metrics and epochs)."""
        for key in [k for k in self._cache if isinstance(k, tuple)]:
            del self._cache[key]


@dataclass(eq=False)
class Experiment:
    """A runs folder opened for reading.  Use as a context manager (closes the recordings).

    Attributes
    ----------
    path : str
    name : str
    manifest : dict or None
    axes : dict axis -> list of values
        The configuration axes that vary (not the seed), in grid order.
    runs : list of Run
        Ordered by configuration, then seed.
    cells : list of Cell
        Every configuration, in grid order.
    """

    path: str
    name: str
    manifest: dict[str, Any] | None
    axes: dict[str, list[Any]]
    runs: list[Run]
    cells: list[Cell]

    def __enter__(self) -> Experiment:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        for run in self.runs:
            if run.recording is not None:
                run.recording.close()

    # -- grid ----------------------------------------------------------------------

    @property
    def row_axis(self) -> str | None:
        """The axis along grid rows ('loss' when it is an axis)."""
        return ROW_AXIS if ROW_AXIS in self.axes else None

    @property
    def col_axes(self) -> list[str]:
        """The axes along grid columns: every axis but the row axis (the optimizer first)."""
        rest = [a for a in self.axes if a != self.row_axis]
        return sorted(rest, key=lambda a: (a != "optimizer", rest.index(a)))

    def grid_shape(self) -> tuple[int, int]:
        """(rows, columns) of a comparison grid."""
        rows = {self.grid_position(c)[0] for c in self.cells}
        cols = {self.grid_position(c)[1] for c in self.cells}
        return max(rows) + 1 if rows else 1, max(cols) + 1 if cols else 1

    def grid_position(self, cell: Cell) -> tuple[int, int]:
        """(row, column) of a configuration in comparison grids: rows = loss, columns = the other axes."""
        if self.row_axis is None:
            row = 0
        else:
            row = _index(self.axes[self.row_axis], cell.get(self.row_axis))
        col_values = sorted({tuple(_index(self.axes[a], c.get(a)) for a in self.col_axes) for c in self.cells})
        col = col_values.index(tuple(_index(self.axes[a], cell.get(a)) for a in self.col_axes))
        return row, col

    def row_label(self, cell: Cell) -> str:
        return f"{self.row_axis} = {format_value(cell.get(self.row_axis))}" if self.row_axis else ""

    def col_label(self, cell: Cell) -> str:
        parts = []
        for a in self.col_axes:
            v = format_value(cell.get(a))
            parts.append(v if a in ("optimizer", "task", "network") else f"{a}={v}")
        return " · ".join(parts)

    def runs_of(self, cell: Cell) -> list[Run]:
        return [r for r in self.runs if r.cell == cell]

    def representative(self, cell: Cell) -> Run | None:
        """The run shown for a configuration in grids: the lowest seed that has data, preferring one
        seed shared by every configuration (a controlled comparison starts every cell from the same weights)."""
        common = self.common_seed()
        runs = [r for r in self.runs_of(cell) if r.has_data]
        for r in runs:
            if r.seed == common:
                return r
        return runs[0] if runs else None

    def common_seed(self) -> int | None:
        seeds = None
        for cell in self.cells:
            s = {r.seed for r in self.runs_of(cell) if r.has_data}
            seeds = s if seeds is None else seeds & s
        seeds = {s for s in (seeds or set()) if s is not None}
        return min(seeds) if seeds else None

    @property
    def palette(self) -> dict[str, str]:
        """One colour per configuration label, the same on every page."""
        from .figures import cell_palette

        return cell_palette([c.label for c in self.cells])

    def layers(self) -> list[str]:
        """Recorded layers (hidden layers first, 'output' last) of the first run with data."""
        for r in self.runs:
            if r.has_data:
                return r.recording.layers
        return []

    def iter_data_runs(self) -> Iterator[Run]:
        return (r for r in self.runs if r.has_data)


def _index(values: list[Any], value: Any) -> int:
    keys = [_hashable(v) for v in values]
    k = _hashable(value)
    return keys.index(k) if k in keys else len(keys)


def _order_key(axis: str, value: Any) -> tuple[int, str]:
    order = _LOSS_ORDER if axis == "loss" else _OPTIMIZER_ORDER if axis == "optimizer" else ()
    if isinstance(value, str) and value in order:
        return order.index(value), ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return len(order), f"{float(value):030.12f}"
    return len(order) + 1, _hashable(value)


# ----------------------------------------------------------------------------- loading


def load_experiment(path: str | os.PathLike) -> Experiment:
    """Open a runs folder: its manifest if there is one, else every ``*.h5`` recording in it.

    Parameters
    ----------
    path : str or PathLike
        ``runs/NAME/``.

    Returns
    -------
    Experiment
        With every recording open (use ``with``).

    Raises
    ------
    RecordingError
        The folder does not exist, holds no recordings, a recording is damaged,
        or the manifest cannot be read.
    FormatVersionError
        A recording (or the manifest) was written in a format this hud cannot read.
    """
    folder = os.fspath(path)
    if not os.path.exists(folder):
        raise RecordingError(f"runs folder {folder!r} does not exist")
    if not os.path.isdir(folder):
        raise RecordingError(f"{folder!r} is a file; give the runs folder that holds it (e.g. runs/NAME/)")
    manifest = read_manifest(folder)
    name = str((manifest or {}).get("name") or os.path.basename(os.path.normpath(os.path.abspath(folder))))
    entries = _manifest_entries(folder, manifest) if manifest is not None else _folder_entries(folder)
    if not entries:
        raise RecordingError(
            f"no recordings in {folder!r}: expected {MANIFEST_NAME} written by 'hud run', or *.h5 recordings"
        )
    runs: list[Run] = []
    try:
        for entry in entries:
            runs.append(_open_run(entry))
    except HudError:
        for r in runs:
            if r.recording is not None:
                r.recording.close()
        raise
    if not any(r.recording is not None for r in runs):
        raise RecordingError(
            f"no recordings in {folder!r}: the manifest lists {len(runs)} runs but none of their files exists yet"
        )
    if manifest is None:
        _derive_cells(runs)
    axes = _axes(runs, manifest)
    for r in runs:
        r.cell = Cell(tuple(axes), tuple(r.cell.get(a) for a in axes))
    cells = sorted({r.cell for r in runs}, key=lambda c: tuple(_index(axes[a], c.get(a)) for a in axes))
    runs.sort(key=lambda r: (cells.index(r.cell), r.seed if r.seed is not None else -1, r.id))
    return Experiment(path=folder, name=name, manifest=manifest, axes=axes, runs=runs, cells=cells)


def _manifest_entries(folder: str, manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    entries = []
    listed = set()
    for k, run in enumerate(manifest["runs"]):
        if not isinstance(run, Mapping) or "id" not in run:
            raise RecordingError(f"manifest in {folder!r}: run #{k} has no 'id'")
        file = str(run.get("file") or f"{run['id']}.h5")
        listed.add(file)
        cell = run.get("cell") or {}
        if not isinstance(cell, Mapping):
            raise RecordingError(f"manifest in {folder!r}: run {run['id']!r} has a 'cell' that is not a mapping")
        entries.append(
            {
                "id": str(run["id"]),
                "path": os.path.join(folder, file),
                "cell": dict(cell),
                "seed": run.get("seed"),
                "manifest_status": run.get("status"),
            }
        )
    for file in sorted(os.listdir(folder)):  # recordings the manifest does not know: never dropped silently
        if file.endswith(".h5") and file not in listed:
            axes = [a for a in (manifest.get("axes") or {}) if a != "seed"]
            entries.append(
                {"id": file[:-3], "path": os.path.join(folder, file), "cell": None, "seed": None, "extra_axes": axes}
            )
    return entries


def _folder_entries(folder: str) -> list[dict[str, Any]]:
    return [
        {"id": f[:-3], "path": os.path.join(folder, f), "cell": None, "seed": None}
        for f in sorted(os.listdir(folder))
        if f.endswith(".h5") and os.path.isfile(os.path.join(folder, f))
    ]


def _open_run(entry: Mapping[str, Any]) -> Run:
    path = entry["path"]
    if not os.path.exists(path):
        ms = entry.get("manifest_status")
        text = "no recording" + (f" (manifest says {ms!r})" if ms else "") + f": {os.path.basename(path)} is absent"
        cell = entry.get("cell") or {}
        return Run(
            entry["id"], path, Cell(tuple(cell), tuple(cell.values())), entry.get("seed"), "missing", text, None, ms
        )
    rec = open_recording(path)  # FormatVersionError / RecordingError propagate, naming the file
    cell = entry.get("cell")
    if cell is None:
        cell = _cell_from_config(rec.config)
        if "extra_axes" in entry:  # a recording the manifest does not list: its values on the manifest's axes
            cell = {a: cell.get(a) for a in entry["extra_axes"]}
    seed = entry.get("seed")
    if seed is None:
        training = rec.config.get("training", {})
        seed = training.get("init_seed", training.get("seed"))
    status_text = rec.status_text
    if "extra_axes" in entry:
        status_text += " (not listed in the manifest)"
    if len(rec.epochs) == 0:
        status_text += " (no epoch committed)"
    return Run(
        entry["id"],
        path,
        Cell(tuple(cell), tuple(cell.values())),
        seed,
        rec.status,
        status_text,
        rec,
        entry.get("manifest_status"),
    )


def _cell_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Every candidate axis of a run's configuration (the constant ones are dropped later)."""
    task = config.get("task", {}) or {}
    net = config.get("network", {}) or {}
    loss = config.get("loss", {}) or {}
    opt = config.get("optimizer", {}) or {}
    cell: dict[str, Any] = {
        "task": task.get("name"),
        "network": "-".join(str(v) for v in [net.get("n_inputs"), *net.get("hidden", []), net.get("n_outputs")])
        if "hidden" in net
        else net.get("class"),
        "loss": loss.get("name"),
        "weight_decay": loss.get("weight_decay"),
        "optimizer": opt.get("name"),
        "lr": opt.get("lr"),
        "init": net.get("init"),
    }
    for k, v in opt.items():
        if k not in ("name", "lr") and isinstance(v, (int, float, str, bool, list)):
            cell[f"optimizer.{k}"] = v
    return cell


def _derive_cells(runs: list[Run]) -> None:
    """Keep the derived axes that vary across runs (and always loss and optimizer).

    The learning rate and the optimizer's hyperparameters belong to the
    optimizer: they are axes of their own only where they vary between runs
    of one optimizer (Adam's betas are not an axis because momentum has none).
    """
    with_data = [r for r in runs if r.recording is not None]
    keys = list(dict.fromkeys(k for r in with_data for k in r.cell.axes))
    keep = []
    for k in keys:
        if k == "lr" or k.startswith("optimizer."):
            groups: dict[Any, set[str]] = {}
            for r in with_data:
                groups.setdefault(r.cell.get("optimizer"), set()).add(_hashable(r.cell.get(k)))
            varies = any(len(v) > 1 for v in groups.values())
        else:
            varies = len({_hashable(r.cell.get(k)) for r in with_data}) > 1
        if varies or (k in _ALWAYS and any(r.cell.get(k) is not None for r in with_data)):
            keep.append(k)
    for r in runs:
        r.cell = Cell(tuple(keep), tuple(r.cell.get(k) for k in keep))


def _axes(runs: list[Run], manifest: Mapping[str, Any] | None) -> dict[str, list[Any]]:
    declared = dict((manifest or {}).get("axes") or {})
    names = [a for a in declared if a != "seed"]
    for r in runs:
        for a in r.cell.axes:
            if a not in names and a != "seed":
                names.append(a)
    axes: dict[str, list[Any]] = {}
    for a in names:
        values = list(declared.get(a) or [])
        seen = {_hashable(v) for v in values}
        found = []
        for r in runs:
            v = r.cell.get(a)
            if _hashable(v) not in seen:
                seen.add(_hashable(v))
                found.append(v)
        values += sorted(found, key=lambda v: _order_key(a, v))
        if not declared.get(a):
            values = sorted(values, key=lambda v: _order_key(a, v))
        axes[a] = values
    return axes


def check_layers(experiment: Experiment, layers: Sequence[str] | None) -> list[str]:
    """The hidden layers to report on: ``layers`` validated against the recorded ones, or every hidden layer."""
    recorded = experiment.layers()
    hidden = [name for name in recorded if name != "output"]
    if layers is None:
        return hidden
    out = []
    for name in layers:
        if name not in recorded:
            raise ParameterError(
                f"layers must name recorded layers ({', '.join(recorded) or 'none'}); got {name!r}"
                + did_you_mean(name, recorded)
            )
        out.append(name)
    return out
