"""The recording format: every HDF5 path, dimension name and attribute key.

This module is the single owner of the layout of a recording (format version
1, documented in docs/recording-format.md).  Nothing else in hud spells an
HDF5 path or attribute key; readers and writers call the helpers below.

Layout (``E`` recorded epochs, ``N`` probe samples, ``U`` units, ``P`` parameter tensors)::

    /                       attrs: hud_format, format_version, config (JSON), versions (JSON),
                                   created, status, status_epoch, status_message
    /commit                 int64 (2,)   [committed rows, checkpoint slot]  -- the commit marker
    /epoch                  int64 (epoch,)            dimension scale of every epoch axis
    /metrics/<name>         float64 (epoch,)
    /probe/inputs           float32 (sample, input)
    /probe/targets          float32 (sample, output)
    /probe/labels           int64 (sample,)
    /grid/points            float32 (grid_point, input)   attrs: shape (ny, nx), extent
    /layers/<layer>/activation     float32 (epoch, sample, unit)
    /layers/<layer>/preactivation  float32 (epoch, sample, unit)   (optional)
    /parameter_names        str (parameter,)          dimension scale of every parameter axis
    /parameters/<name>      float32 (epoch, unit[, fan_in])
    /norms/gradient         float64 (epoch, parameter)
    /norms/update           float64 (epoch, parameter)
    /optimizer/<state>      float64 (epoch, parameter)     momentum, adam_m, adam_v, rmsprop_v
    /checkpoint/slot0|slot1/<key>  the optimizer state and RNG at the last committed epoch
"""

from __future__ import annotations

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ROOT_ATTRS",
    "COMMIT",
    "EPOCH",
    "PARAMETER_NAMES",
    "PROBE_INPUTS",
    "PROBE_TARGETS",
    "PROBE_LABELS",
    "GRID_POINTS",
    "GRID_SHAPE",
    "GRID_EXTENT",
    "ACTIVATION",
    "PREACTIVATION",
    "LAYER_KINDS",
    "NORM_KINDS",
    "metric",
    "layer",
    "parameter",
    "norm",
    "optimizer_state",
    "checkpoint",
    "dims",
    "is_epoch_indexed",
    "split",
    "LAYERS",
    "PARAMETERS",
    "METRICS",
    "NORMS",
    "OPTIMIZER",
    "CHECKPOINT",
]

FORMAT_NAME = "hud-recording"
FORMAT_VERSION = 1


class ROOT_ATTRS:  # noqa: N801 - a namespace of constants
    """Attribute keys on the file's root group."""

    FORMAT = "hud_format"  # always FORMAT_NAME
    VERSION = "format_version"  # int
    CONFIG = "config"  # JSON: task, network, loss, optimizer, training
    VERSIONS = "versions"  # JSON: hud, torch, numpy, h5py, hdf5, python
    CREATED = "created"  # ISO 8601, UTC
    STATUS = "status"  # running | complete | converged | stopped | diverged | interrupted | failed
    STATUS_EPOCH = "status_epoch"  # the epoch the status refers to (-1 if none)
    STATUS_MESSAGE = "status_message"  # free text (the error, for 'failed')
    SCHEDULE = "schedule"  # JSON: how epochs were chosen
    LAYERS = "layers"  # JSON list: recorded layer names, in network order
    MODULES = "modules"  # JSON: layer name -> module path in the model


COMMIT = "commit"
EPOCH = "epoch"
PARAMETER_NAMES = "parameter_names"
PROBE_INPUTS = "probe/inputs"
PROBE_TARGETS = "probe/targets"
PROBE_LABELS = "probe/labels"
GRID_POINTS = "grid/points"
GRID_SHAPE = "shape"  # attribute of GRID_POINTS: (ny, nx)
GRID_EXTENT = "extent"  # attribute of GRID_POINTS: (x_min, x_max, y_min, y_max)

METRICS = "metrics"
LAYERS = "layers"
PARAMETERS = "parameters"
NORMS = "norms"
OPTIMIZER = "optimizer"
CHECKPOINT = "checkpoint"

ACTIVATION = "activation"
PREACTIVATION = "preactivation"
LAYER_KINDS = (ACTIVATION, PREACTIVATION)
NORM_KINDS = ("gradient", "update")

_EPOCH_GROUPS = (METRICS, LAYERS, PARAMETERS, NORMS, OPTIMIZER)


def _name(kind: str, name: str) -> str:
    if not name or "/" in name:
        raise ValueError(f"{kind} name must be non-empty and contain no '/'; got {name!r}")
    return name


def metric(name: str) -> str:
    """Path of metric ``name``: float64 (epoch,)."""
    return f"{METRICS}/{_name('metric', name)}"


def layer(name: str, kind: str = ACTIVATION) -> str:
    """Path of a layer's activations: float32 (epoch, sample, unit)."""
    if kind not in LAYER_KINDS:
        raise ValueError(f"kind must be one of {LAYER_KINDS}; got {kind!r}")
    return f"{LAYERS}/{_name('layer', name)}/{kind}"


def parameter(name: str) -> str:
    """Path of a parameter tensor over epochs: float32 (epoch, *shape)."""
    return f"{PARAMETERS}/{_name('parameter', name)}"


def norm(kind: str) -> str:
    """Path of the per-parameter gradient or update norms: float64 (epoch, parameter)."""
    if kind not in NORM_KINDS:
        raise ValueError(f"kind must be one of {NORM_KINDS}; got {kind!r}")
    return f"{NORMS}/{kind}"


def optimizer_state(name: str) -> str:
    """Path of an optimizer-state norm (momentum, adam_m, adam_v, ...): float64 (epoch, parameter)."""
    return f"{OPTIMIZER}/{_name('optimizer state', name)}"


def checkpoint(slot: int, key: str) -> str:
    """Path of one checkpoint array in slot 0 or 1."""
    return f"{CHECKPOINT}/slot{int(slot)}/{_name('checkpoint', key)}"


def is_epoch_indexed(path: str) -> bool:
    """Whether the dataset at ``path`` has the epoch as its first axis."""
    return path == EPOCH or path.split("/", 1)[0] in _EPOCH_GROUPS


def split(path: str) -> tuple[str, str]:
    """(group, name) of an epoch-indexed path, e.g. ('layers', 'hidden1') or ('metrics', 'loss')."""
    parts = path.split("/")
    return parts[0], parts[1] if len(parts) > 1 else ""


def dims(path: str, ndim: int) -> tuple[str, ...]:
    """Dimension names of the dataset at ``path`` with ``ndim`` axes."""
    group = path.split("/", 1)[0]
    if path == EPOCH or group == METRICS:
        names: tuple[str, ...] = ("epoch",)
    elif group == LAYERS:
        names = ("epoch", "sample", "unit")
    elif group in (NORMS, OPTIMIZER):
        names = ("epoch", "parameter")
    elif group == PARAMETERS:
        names = ("epoch", "unit", "fan_in", *(f"axis{k}" for k in range(3, ndim)))
    elif path == PROBE_INPUTS:
        names = ("sample", "input")
    elif path == PROBE_TARGETS:
        names = ("sample", "output")
    elif path == PROBE_LABELS:
        names = ("sample",)
    elif path == GRID_POINTS:
        names = ("grid_point", "input")
    elif path == PARAMETER_NAMES:
        names = ("parameter",)
    else:
        names = tuple(f"axis{k}" for k in range(ndim))
    return names[:ndim]
