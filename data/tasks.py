"""Deterministic task builders: the lesson's and the course's data sets.

Every builder is a pure function of its arguments and ``seed``; ``load_task``
dispatches by name.  A :class:`Task` holds the training inputs and targets, the
class labels, a default probe set (the inputs whose hidden activations get
recorded) and, for 2-D inputs, an input-plane grid.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ParameterError, check_choice, check_keys, check_number

__all__ = ["Task", "Probe", "load_task", "task_names", "TASK_KINDS"]

#: What the targets mean: one output in {0, 1}; one-hot over classes; several
#: independent 0/1 outputs; real-valued outputs.
TASK_KINDS = ("binary", "multiclass", "multilabel", "regression")

FloatArray = np.ndarray


@dataclass(frozen=True)
class Probe:
    """The fixed inputs on which hidden activations are recorded.

    Attributes
    ----------
    inputs : ndarray of shape (n_samples, n_inputs), float32
    targets : ndarray of shape (n_samples, n_outputs), float32
    labels : ndarray of shape (n_samples,), int64
        Class label of each sample (-1 where the task has no classes).
    """

    inputs: np.ndarray
    targets: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass(frozen=True)
class Task:
    """A supervised learning task.

    Attributes
    ----------
    name : str
        The registered name (``load_task(name)`` rebuilds it with ``options``).
    kind : {'binary', 'multiclass', 'multilabel', 'regression'}
    inputs : ndarray of shape (n_samples, n_inputs), float32
    targets : ndarray of shape (n_samples, n_outputs), float32
    labels : ndarray of shape (n_samples,), int64
        Class of each sample; -1 for regression.
    probe : Probe
        The default probe set (the training inputs unless the task says otherwise).
    options : dict
        Every builder argument, ``seed`` included: ``load_task(name, **options)``
        returns an equal task.
    grid : ndarray of shape (n_grid, 2), float32, or None
        Points of the input plane, row-major over ``grid_shape`` (y outer, x inner).
    grid_shape : tuple (n_y, n_x) or None
    extent : tuple (x_min, x_max, y_min, y_max) or None
    hints : dict
        Settings the course uses for this task (hidden sizes, activation,
        learning rate); experiments may take them as defaults.
    description : str
    """

    name: str
    kind: str
    inputs: np.ndarray
    targets: np.ndarray
    labels: np.ndarray
    probe: Probe
    options: dict[str, Any] = field(default_factory=dict)
    grid: np.ndarray | None = None
    grid_shape: tuple[int, int] | None = None
    extent: tuple[float, float, float, float] | None = None
    hints: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def n_samples(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def n_inputs(self) -> int:
        return int(self.inputs.shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.targets.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of classes (0 for regression)."""
        if self.kind == "regression":
            return 0
        if self.kind == "binary":
            return 2
        return self.n_outputs

    def least_squares(self) -> np.ndarray:
        """Closed-form least-squares solution of a regression task.

        Returns
        -------
        ndarray of shape (n_inputs + 1, n_outputs)
            Weights, then the bias in the last row, minimising the sum of
            squared errors of ``inputs @ W[:-1] + W[-1]`` against ``targets``.
        """
        design = np.hstack([self.inputs, np.ones((self.n_samples, 1), self.inputs.dtype)]).astype(np.float64)
        solution, *_ = np.linalg.lstsq(design, self.targets.astype(np.float64), rcond=None)
        return solution


# ----------------------------------------------------------------------------- helpers


def _as_float(a: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def _onehot(labels: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((len(labels), n), np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


def _plane_grid(inputs: np.ndarray, grid_size: int, margin: float = 0.1):
    lo, hi = inputs.min(axis=0), inputs.max(axis=0)
    pad = (hi - lo) * margin
    pad[pad == 0] = 1.0
    x0, y0 = lo - pad
    x1, y1 = hi + pad
    xs = np.linspace(x0, x1, grid_size, dtype=np.float32)
    ys = np.linspace(y0, y1, grid_size, dtype=np.float32)
    xx, yy = np.meshgrid(xs, ys)  # y outer, x inner
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
    return grid, (grid_size, grid_size), (float(x0), float(x1), float(y0), float(y1))


def _make(
    name: str,
    kind: str,
    inputs: Any,
    targets: Any,
    labels: Any,
    options: dict[str, Any],
    *,
    grid_size: int | None = None,
    hints: dict[str, Any] | None = None,
    description: str = "",
) -> Task:
    inputs, targets = _as_float(inputs), _as_float(targets)
    if targets.ndim == 1:
        targets = targets[:, None]
    labels = np.ascontiguousarray(np.asarray(labels, dtype=np.int64))
    for a in (inputs, targets, labels):
        a.setflags(write=False)
    grid = shape = extent = None
    if inputs.shape[1] == 2 and grid_size:
        grid, shape, extent = _plane_grid(inputs, grid_size)
        grid.setflags(write=False)
    return Task(
        name=name,
        kind=kind,
        inputs=inputs,
        targets=targets,
        labels=labels,
        probe=Probe(inputs, targets, labels),
        options=options,
        grid=grid,
        grid_shape=shape,
        extent=extent,
        hints=hints or {},
        description=description,
    )


def _check_seed(seed: Any) -> int:
    return int(check_number("seed", seed, low=0, integer=True))


def _check_grid(grid_size: Any) -> int:
    return int(check_number("grid_size", grid_size, low=2, high=2000, integer=True))


# ----------------------------------------------------------------------------- builders


def xor(*, seed: int = 0, grid_size: int = 101) -> Task:
    """The four XOR points, inputs in {0, 1}^2, one binary output."""
    _check_seed(seed)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([0, 1, 1, 0])
    return _make(
        "xor",
        "binary",
        x,
        y,
        y,
        {"seed": seed, "grid_size": _check_grid(grid_size)},
        grid_size=grid_size,
        hints={"hidden": [2], "activation": "tanh", "lr": 0.5},
        description="Exclusive or of two binary inputs.",
    )


def encoder(*, n: int = 9, seed: int = 0) -> Task:
    """The N-2-N encoder: N one-hot inputs, identity targets (default N = 9)."""
    _check_seed(seed)
    n = int(check_number("n", n, low=2, high=4096, integer=True))
    eye = np.eye(n, dtype=np.float32)
    return _make(
        "encoder",
        "multiclass",
        eye,
        eye,
        np.arange(n),
        {"n": n, "seed": seed},
        hints={"hidden": [2], "activation": "tanh", "lr": 0.4, "init": 0.001},
        description=f"{n}-2-{n} encoder: one-hot inputs reproduced through a bottleneck.",
    )


def encoder838(*, seed: int = 0) -> Task:
    """The 8-3-8 encoder: 8 one-hot inputs and identity targets (3 hidden units)."""
    task = encoder(n=8, seed=seed)
    return dataclasses.replace(
        task,
        name="encoder838",
        options={"seed": seed},
        hints={"hidden": [3], "activation": "tanh", "lr": 0.4, "init": 0.001},
        description="8-3-8 encoder: the hidden codes approach the corners of a cube.",
    )


def star16_targets() -> np.ndarray:
    """The course's star16 target matrix.

    Returns
    -------
    ndarray of shape (16, 8)
        Row k (k = 0..7) has ones at columns k and k+1 mod 8; row 8+k has ones
        at columns k-1, k and k+1 mod 8.
    """
    t = np.zeros((16, 8), np.float32)
    for k in range(8):
        t[k, [k, (k + 1) % 8]] = 1
        t[8 + k, [(k - 1) % 8, k, (k + 1) % 8]] = 1
    return t


def star16(*, seed: int = 0) -> Task:
    """16 one-hot inputs mapped to the course's star16 targets (16 x 8)."""
    _check_seed(seed)
    return _make(
        "star16",
        "multilabel",
        np.eye(16, dtype=np.float32),
        star16_targets(),
        np.arange(16),
        {"seed": seed},
        hints={"hidden": [2], "activation": "tanh", "lr": 0.4, "init": 0.001},
        description="16 one-hot inputs to 8 outputs: a star of pairs and triples of adjacent units.",
    )


def custom(*, targets: str, seed: int = 0) -> Task:
    """One-hot inputs mapped to a target matrix read from a .csv or .npy file.

    Parameters
    ----------
    targets : str
        Path of a CSV (comma-separated numbers, no header) or ``.npy`` file
        holding a matrix of shape (n_samples, n_outputs); row i is the target
        of the one-hot input i.  ``.npy`` files are read with
        ``allow_pickle=False``.
    """
    _check_seed(seed)
    path = os.fspath(targets)
    if not os.path.isfile(path):
        raise ParameterError(f"targets must be the path of a .csv or .npy file; got {path!r} (no such file)")
    ext = os.path.splitext(path)[1].lower()
    check_choice("targets file extension", ext, [".csv", ".npy"])
    try:
        t = np.load(path, allow_pickle=False) if ext == ".npy" else np.loadtxt(path, delimiter=",", ndmin=2)
        t = np.asarray(t, dtype=np.float32)
    except (ValueError, OSError) as exc:
        raise ParameterError(f"targets file {path!r} could not be read as a numeric matrix: {exc}") from None
    if t.ndim != 2 or t.shape[0] < 2 or t.shape[1] < 1 or not np.all(np.isfinite(t)):
        raise ParameterError(
            f"targets must hold a finite matrix of shape (n_samples >= 2, n_outputs >= 1); got shape {t.shape}"
        )
    binary = np.isin(t, (0.0, 1.0)).all()
    onehot = binary and (t.sum(axis=1) == 1).all() and t.shape[1] > 1
    kind = "multiclass" if onehot else ("multilabel" if binary else "regression")
    labels = t.argmax(axis=1) if kind != "regression" else np.full(len(t), -1)
    if kind == "multilabel":
        labels = np.arange(len(t))
    return _make(
        "custom",
        kind,
        np.eye(len(t), dtype=np.float32),
        t,
        labels,
        {"targets": os.path.abspath(path), "seed": seed},
        hints={"hidden": [2], "activation": "tanh", "lr": 0.4, "init": 0.001},
        description=f"{len(t)} one-hot inputs to the targets in {os.path.basename(path)}.",
    )


def spirals(*, noise: float = 0.0, seed: int = 0, grid_size: int = 101) -> Task:
    """Twin spirals, 194 points (the course's data).

    For i = 0..96, phi = i*pi/16 and r = 6.5*(104 - i)/104, the point
    (r cos phi, r sin phi) has label 1 and its negation label 0.  ``noise`` is
    the standard deviation of Gaussian noise added to each coordinate.
    """
    _check_seed(seed)
    noise = float(check_number("noise", noise, low=0))
    i = np.arange(97)
    phi = i * np.pi / 16
    r = 6.5 * (104 - i) / 104
    pos = np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)
    x = np.concatenate([pos, -pos])
    y = np.concatenate([np.ones(97, int), np.zeros(97, int)])
    if noise:
        x = x + np.random.default_rng(seed).normal(0, noise, x.shape)
    return _make(
        "spirals",
        "binary",
        x,
        y,
        y,
        {"noise": noise, "seed": seed, "grid_size": _check_grid(grid_size)},
        grid_size=grid_size,
        hints={"hidden": [10, 10], "activation": "tanh", "lr": 0.01},
        description="Twin spirals, 97 points each, intertwined three times.",
    )


def circles(
    *, n_samples: int = 200, noise: float = 0.1, factor: float = 0.5, seed: int = 0, grid_size: int = 101
) -> Task:
    """Two concentric circles (scikit-learn's ``make_circles``)."""
    from sklearn.datasets import make_circles

    _check_seed(seed)
    n_samples = int(check_number("n_samples", n_samples, low=4, integer=True))
    noise = float(check_number("noise", noise, low=0))
    factor = float(check_number("factor", factor, low=0, high=1, low_open=True, high_open=True))
    x, y = make_circles(n_samples=n_samples, noise=noise, factor=factor, random_state=seed)
    return _make(
        "circles",
        "binary",
        x,
        y,
        y,
        {"n_samples": n_samples, "noise": noise, "factor": factor, "seed": seed, "grid_size": _check_grid(grid_size)},
        grid_size=grid_size,
        hints={"hidden": [8], "activation": "tanh", "lr": 0.1},
        description="Two noisy concentric circles.",
    )


def moons(*, n_samples: int = 200, noise: float = 0.1, seed: int = 0, grid_size: int = 101) -> Task:
    """Two interleaving half circles (scikit-learn's ``make_moons``)."""
    from sklearn.datasets import make_moons

    _check_seed(seed)
    n_samples = int(check_number("n_samples", n_samples, low=4, integer=True))
    noise = float(check_number("noise", noise, low=0))
    x, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return _make(
        "moons",
        "binary",
        x,
        y,
        y,
        {"n_samples": n_samples, "noise": noise, "seed": seed, "grid_size": _check_grid(grid_size)},
        grid_size=grid_size,
        hints={"hidden": [8], "activation": "tanh", "lr": 0.1},
        description="Two interleaving half moons.",
    )


def blobs(
    *, n_samples: int = 300, centers: int = 3, cluster_std: float = 1.0, seed: int = 0, grid_size: int = 101
) -> Task:
    """Gaussian blobs in the plane, one class each (scikit-learn's ``make_blobs``)."""
    from sklearn.datasets import make_blobs

    _check_seed(seed)
    n_samples = int(check_number("n_samples", n_samples, low=4, integer=True))
    centers = int(check_number("centers", centers, low=2, high=64, integer=True))
    cluster_std = float(check_number("cluster_std", cluster_std, low=0, low_open=True))
    x, y = make_blobs(n_samples=n_samples, centers=centers, cluster_std=cluster_std, random_state=seed)
    return _make(
        "blobs",
        "multiclass",
        x,
        _onehot(y, centers),
        y,
        {
            "n_samples": n_samples,
            "centers": centers,
            "cluster_std": cluster_std,
            "seed": seed,
            "grid_size": _check_grid(grid_size),
        },
        grid_size=grid_size,
        hints={"hidden": [8], "activation": "tanh", "lr": 0.1},
        description=f"{centers} Gaussian blobs in the plane.",
    )


def digits(*, seed: int = 0) -> Task:
    """scikit-learn's bundled 8x8 handwritten digits: 1797 samples, 64 inputs in [0, 1], 10 classes.

    Nothing is downloaded.  ``seed`` only names the task's identity (the data are fixed).
    """
    from sklearn.datasets import load_digits

    _check_seed(seed)
    d = load_digits()
    x = d.data / 16.0
    return _make(
        "digits",
        "multiclass",
        x,
        _onehot(d.target, 10),
        d.target,
        {"seed": seed},
        hints={"hidden": [32], "activation": "tanh", "lr": 0.1},
        description="8x8 handwritten digits (scikit-learn), 10 classes.",
    )


def degenerate(*, n: int = 100, positive: int = 80, seed: int = 0) -> Task:
    """The lesson's degenerate task: one input repeated ``n`` times, ``positive`` targets 1, the rest 0.

    At the global minimum of either SSE or cross entropy the output is
    ``positive / n`` (0.8 with the defaults).  ``seed`` shuffles the order of the targets.
    """
    _check_seed(seed)
    n = int(check_number("n", n, low=1, integer=True))
    positive = int(check_number("positive", positive, low=0, high=n, integer=True))
    y = np.zeros(n, int)
    y[:positive] = 1
    y = np.random.default_rng(seed).permutation(y)
    return _make(
        "degenerate",
        "binary",
        np.ones((n, 1)),
        y,
        y,
        {"n": n, "positive": positive, "seed": seed},
        hints={"hidden": [2], "activation": "tanh", "lr": 0.1},
        description=f"One input repeated {n} times: {positive} targets 1, {n - positive} targets 0.",
    )


def linear(*, n_samples: int = 100, n_features: int = 1, noise: float = 0.5, seed: int = 0) -> Task:
    """Linear regression with Gaussian noise (the lesson's gradient-descent exercise).

    Inputs are uniform on [-1, 1]; targets are ``x @ w + b + noise * N(0, 1)``
    with ``w`` and ``b`` drawn from N(0, 1).  ``Task.least_squares()`` gives the
    closed-form solution.
    """
    _check_seed(seed)
    n_samples = int(check_number("n_samples", n_samples, low=2, integer=True))
    n_features = int(check_number("n_features", n_features, low=1, high=10_000, integer=True))
    noise = float(check_number("noise", noise, low=0))
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n_features, 1))
    b = rng.normal()
    x = rng.uniform(-1, 1, size=(n_samples, n_features))
    y = x @ w + b + noise * rng.normal(size=(n_samples, 1))
    return _make(
        "linear",
        "regression",
        x,
        y,
        np.full(n_samples, -1),
        {"n_samples": n_samples, "n_features": n_features, "noise": noise, "seed": seed},
        grid_size=None,
        hints={"hidden": [], "lr": 0.1},
        description=f"y = x.w + b + noise, {n_samples} samples, {n_features} feature(s).",
    )


_BUILDERS: dict[str, Callable[..., Task]] = {
    "xor": xor,
    "encoder": encoder,
    "encoder838": encoder838,
    "star16": star16,
    "custom": custom,
    "spirals": spirals,
    "circles": circles,
    "moons": moons,
    "blobs": blobs,
    "digits": digits,
    "degenerate": degenerate,
    "linear": linear,
}


def task_names() -> list[str]:
    """The names ``load_task`` accepts."""
    return list(_BUILDERS)


def load_task(name: str, *, seed: int = 0, **options: Any) -> Task:
    """Build a task by name, deterministically in ``seed`` and ``options``.

    Parameters
    ----------
    name : str
        One of :func:`task_names`: 'xor', 'encoder', 'encoder838', 'star16',
        'custom', 'spirals', 'circles', 'moons', 'blobs', 'digits',
        'degenerate', 'linear'.
    seed : int
        Seed of any randomness in the data (noise, sampling, order).
    **options
        The builder's own keyword arguments (e.g. ``n=9`` for 'encoder',
        ``noise=0.1`` for 'spirals', ``targets='t.csv'`` for 'custom').

    Returns
    -------
    Task

    Raises
    ------
    ParameterError
        An unknown name or option, or an option out of range.
    """
    check_choice("task", name, _BUILDERS)
    builder = _BUILDERS[name]
    allowed = [p for p in inspect.signature(builder).parameters if p != "seed"]
    check_keys(f"task {name!r}", options, allowed)
    try:
        return builder(seed=seed, **options)
    except TypeError as exc:  # a required option is missing
        raise ParameterError(f"task {name!r}: {exc}") from None
