"""Experiment files: a task, a network, training settings and a grid of what varies, in TOML.

An experiment is one TOML file (read with :mod:`tomllib`)::

    name = "encoder"                      # the default output folder is runs/<name>/
    description = "9-2-9 encoder: SSE vs cross entropy, momentum vs Adam"

    [task]                                # load_task(name, **options); seed = the data's seed (default 0)
    name = "encoder"
    n = 9

    [network]                             # NetworkConfig fields but n_inputs/n_outputs (from the task);
    hidden = [2]                          # defaults from the task's hints (hidden sizes, activation, init)
    activation = "tanh"
    init = 0.001                          # std of the normal initial weights (omit: PyTorch's default init)
    architecture = "mlp"                  # or "polar" (PolarNet, 2-D inputs)
    shortcut = false

    [training]
    epochs = 3000                         # default 1000
    batch_size = 64                       # omit for full batch
    stop_loss = 0.01                      # omit: no stop rule
    stop_accuracy = 1.0
    loss = "bce"                          # 'sse', 'bce', 'softmax' (default 'bce')
    optimizer = "momentum"                # a name, or a table {name = "momentum", lr = 0.4, momentum = 0.9}
    lr = 0.4                              # default: the optimizer's own
    weight_decay = 0.0

    [record]                              # what each recording holds (models.recorder.Recorder)
    schedule = "course"                   # 'every' (default), 'log', 'course', an int k, or a list of epochs
    layers = ["hidden1"]                  # default: every hidden layer; the output is always recorded
    preactivation = false

    [grid]                                # the axes: every combination is one run
    loss = ["sse", "bce"]
    optimizer = [{name = "momentum", lr = 0.4, momentum = 0.9}, {name = "adam", lr = 0.01}]
    seeds = 4                             # shorthand for seed = [0, 1, 2, 3]

Grid axes: ``loss``, ``optimizer``, ``lr``, ``weight_decay``, ``batch_size``,
``epochs``, ``stop_loss``, ``stop_accuracy`` (training), ``hidden``,
``activation``, ``architecture``, ``init``, ``shortcut`` (network) and
``seed``.  A value is either fixed in its table or varied in ``[grid]``, not
both.  An optimizer given as a table sets its own hyperparameters; its ``lr``
wins over ``[training].lr`` (and cannot be combined with a ``grid.lr`` axis).

Controlled comparison: a run's seed is both the seed of its initial weights
and of its mini-batch order, so for each seed every cell of the grid starts
from the same weights (when the cells share an architecture and init) and
sees the data in the same order.

Loading validates everything and fails with one :class:`~data.errors.ParameterError`
naming the key, where it is and what is allowed (with the closest valid key
for a typo).  :meth:`Experiment.runs` expands the grid into :class:`RunSpec`
objects, one per run, in the order of the cartesian product (the first axis
outermost, the seed innermost).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from data.errors import ParameterError, did_you_mean
from data.tasks import Task, load_task

from .batched import MemberSpec
from .losses import LOSSES
from .networks import ACTIVATIONS, ARCHITECTURES, NetworkConfig
from .optim import OPTIMIZERS, optimizer_options
from .recorder import Schedule
from .training import _resolve_loss

__all__ = [
    "Experiment",
    "RunSpec",
    "load_experiment",
    "parse_experiment",
    "apply_overrides",
    "parse_assignment",
    "format_value",
    "TRAINING_KEYS",
    "NETWORK_KEYS",
    "RECORD_KEYS",
    "GRID_AXES",
]

TOP_KEYS = ("name", "description", "task", "network", "training", "record", "grid")
NETWORK_KEYS = ("hidden", "activation", "architecture", "init", "shortcut")
TRAINING_KEYS = ("epochs", "batch_size", "stop_loss", "stop_accuracy", "loss", "optimizer", "lr", "weight_decay")
RECORD_KEYS = ("schedule", "layers", "preactivation")
#: what a [grid] may vary (plus ``seeds``, the shorthand for ``seed = [0, ..., n - 1]``)
GRID_AXES = TRAINING_KEYS + NETWORK_KEYS + ("seed",)

_DEFAULT_TRAINING = {
    "epochs": 1000,
    "batch_size": None,
    "stop_loss": None,
    "stop_accuracy": None,
    "loss": "bce",
    "optimizer": "sgd",
    "lr": None,
    "weight_decay": 0.0,
}
_DEFAULT_RECORD = {"schedule": "every", "layers": None, "preactivation": False}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")


# ----------------------------------------------------------------------------- value checks


def _typename(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _bad(where: str, expected: str, value: Any) -> ParameterError:
    return ParameterError(f"{where} must be {expected}; got {value!r} ({_typename(value)})")


def _int(where: str, value: Any, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(where, "an integer" + (f" >= {low}" if low is not None else ""), value)
    if low is not None and value < low:
        raise ParameterError(f"{where} must be an integer >= {low}; got {value}")
    return value


def _num(where: str, value: Any, low: float | None = None, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(where, "a finite number", value)
    if positive and value <= 0:
        raise ParameterError(f"{where} must be a number > 0; got {value!r}")
    if low is not None and value < low:
        raise ParameterError(f"{where} must be a number >= {low}; got {value!r}")
    return float(value)


def _str(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _bad(where, "a string", value)
    return value


def _bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad(where, "true or false", value)
    return value


def _choice(where: str, value: Any, allowed: Sequence[str]) -> str:
    _str(where, value)
    if value not in allowed:
        raise ParameterError(
            f"{where} must be one of {', '.join(map(repr, allowed))}; got {value!r}" + did_you_mean(value, allowed)
        )
    return value


def _keys(where: str, table: Mapping[str, Any], allowed: Sequence[str]) -> None:
    for key in table:
        if key not in allowed:
            raise ParameterError(
                f"unknown key {key!r} in {where}" + did_you_mean(key, allowed) + f"; allowed: {', '.join(allowed)}"
            )


def _table(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(where, "a table", value)
    return dict(value)


def _optimizer(where: str, value: Any) -> str | dict[str, Any]:
    """A name, or a table {name = ..., lr = ..., <hyperparameters>}; validated, kept as written."""
    if isinstance(value, str):
        return _choice(where, value, list(OPTIMIZERS))
    if not isinstance(value, Mapping):
        raise _bad(where, "an optimizer name or a table {name = ..., lr = ..., ...}", value)
    if "name" not in value:
        raise ParameterError(f"{where} must name its optimizer (name = 'adam', ...); got {dict(value)!r}")
    name = _choice(f"{where}.name", value["name"], list(OPTIMIZERS))
    allowed = ["name", "lr", *OPTIMIZERS[name].options]
    _keys(f"{where} (optimizer {name!r})", value, allowed)
    out: dict[str, Any] = {"name": name}
    for key, v in value.items():
        if key == "name":
            continue
        out[key] = _num(f"{where}.{key}", v, positive=key == "lr")
    try:
        optimizer_options(name, **{k: v for k, v in out.items() if k != "name"})
    except ParameterError as exc:
        raise ParameterError(f"{where}: {exc}") from None
    return out


def _hidden(where: str, value: Any) -> list[int]:
    if not isinstance(value, list):
        raise _bad(where, "a list of layer sizes, e.g. [10, 10]", value)
    return [_int(f"{where}[{k}]", h, low=1) for k, h in enumerate(value)]


def _activation(where: str, value: Any) -> str | list[str]:
    if isinstance(value, list):
        return [_choice(f"{where}[{k}]", a, list(ACTIVATIONS)) for k, a in enumerate(value)]
    return _choice(where, value, list(ACTIVATIONS))


def _schedule(where: str, value: Any) -> str | int | list[int]:
    if isinstance(value, list):
        out = [_int(f"{where}[{k}]", e, low=0) for k, e in enumerate(value)]
    elif isinstance(value, str):
        out = _choice(where, value, ["every", "log", "course"])
    elif isinstance(value, int) and not isinstance(value, bool):
        out = _int(where, value, low=1)
    else:
        raise _bad(where, "'every', 'log', 'course', an integer k >= 1 or a list of epochs", value)
    Schedule(out)
    return out


def _layers(where: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _bad(where, "a list of layer names, e.g. ['hidden1', 'hidden2']", value)
    return [_str(f"{where}[{k}]", n) for k, n in enumerate(value)]


#: how each value is checked (and normalized), by key
_CHECKS: dict[str, Any] = {
    "epochs": lambda w, v: _int(w, v, low=0),
    "batch_size": lambda w, v: _int(w, v, low=1),
    "stop_loss": lambda w, v: _num(w, v),
    "stop_accuracy": lambda w, v: _num(w, v, low=0),
    "loss": lambda w, v: _choice(w, v, list(LOSSES)),
    "optimizer": _optimizer,
    "lr": lambda w, v: _num(w, v, positive=True),
    "weight_decay": lambda w, v: _num(w, v, low=0),
    "hidden": _hidden,
    "activation": _activation,
    "architecture": lambda w, v: _choice(w, v, list(ARCHITECTURES)),
    "init": lambda w, v: _num(w, v, positive=True),
    "shortcut": _bool,
    "seed": lambda w, v: _int(w, v, low=0),
    "schedule": _schedule,
    "layers": _layers,
    "preactivation": _bool,
}


# ----------------------------------------------------------------------------- labels


def format_value(value: Any) -> str:
    """A grid value for people and tables: 'adam', '0.01', '10x10', 'momentum(lr=0.4, momentum=0.9)'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "default"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return ("x" if all(isinstance(v, int) for v in value) else "+").join(format_value(v) for v in value)
    if isinstance(value, Mapping):
        rest = ", ".join(f"{k}={format_value(v)}" for k, v in value.items() if k != "name")
        return f"{value['name']}({rest})" if rest else str(value["name"])
    return str(value)


def _labels(axis: str, values: list[Any]) -> list[str]:
    """Short, filesystem-safe labels of an axis' values, distinct where the values are."""
    if axis == "optimizer":
        names = [v if isinstance(v, str) else v["name"] for v in values]
        out = []
        for v, name in zip(values, names):
            if isinstance(v, str) or names.count(name) == 1:
                out.append(name)
            else:
                out.append(name + "".join(f"-{k}{format_value(x)}" for k, x in v.items() if k != "name"))
    else:
        out = [format_value(v) for v in values]
    return [_UNSAFE.sub("-", s).strip("-") or "x" for s in out]


# ----------------------------------------------------------------------------- the run and the experiment


@dataclass(frozen=True)
class RunSpec:
    """One run of an experiment: everything ``train()`` (or a batched member) needs, as JSON-able values.

    Attributes
    ----------
    id : str
        Filesystem-safe, e.g. ``'loss-bce_optimizer-adam_lr-0.01_seed-0'``; the
        recording is ``<id>.h5``.
    cell : dict
        The value of every grid axis but the seed.
    seed : int
        Seed of the initial weights and of the mini-batch order.
    task : dict
        ``{'name': ..., **options}``: ``load_task(**task)`` rebuilds the task.
    network : dict
        A ``NetworkConfig.to_dict()`` (n_inputs and n_outputs from the task).
    loss : str
    weight_decay : float
    optimizer : str
    lr : float
        The learning rate (the optimizer's default filled in).
    optimizer_options : dict
        The optimizer's other hyperparameters, as given (defaults implied).
    epochs : int
    batch_size : int or None
    stop_loss, stop_accuracy : float or None
    record : dict
        ``{'schedule': ..., 'layers': list or None, 'preactivation': bool}``.
    """

    id: str
    cell: dict[str, Any]
    seed: int
    task: dict[str, Any]
    network: dict[str, Any]
    loss: str
    weight_decay: float
    optimizer: str
    lr: float
    optimizer_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 1000
    batch_size: int | None = None
    stop_loss: float | None = None
    stop_accuracy: float | None = None
    record: dict[str, Any] = field(default_factory=lambda: dict(_DEFAULT_RECORD))

    @property
    def file(self) -> str:
        """The recording's file name: ``<id>.h5``."""
        return f"{self.id}.h5"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; :meth:`from_dict` inverts it."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSpec:
        return cls(**dict(d))

    def load_task(self) -> Task:
        """The run's task."""
        options = dict(self.task)
        return load_task(options.pop("name"), **options)

    def network_config(self) -> NetworkConfig:
        return NetworkConfig.from_dict(self.network)

    def train_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``models.train`` for this run (with the network config and task apart)."""
        return {
            **self.member_spec().train_kwargs(),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "stop_loss": self.stop_loss,
            "stop_accuracy": self.stop_accuracy,
        }

    def member_spec(self) -> MemberSpec:
        """This run as a member of a batch (``models.batched.train_batched``): the same seeds and settings."""
        return MemberSpec(
            loss=self.loss,
            optimizer=self.optimizer,
            lr=self.lr,
            optimizer_options=dict(self.optimizer_options),
            weight_decay=self.weight_decay,
            seed=self.seed,
            init_seed=self.seed,
        )

    def batch_key(self) -> str:
        """What runs must share to train together in one batch: task, network, epochs, batch, stop rules, record."""
        shared = {
            "task": self.task,
            "network": self.network,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "stop_loss": self.stop_loss,
            "stop_accuracy": self.stop_accuracy,
            "record": self.record,
        }
        return json.dumps(shared, sort_keys=True)


@dataclass(frozen=True)
class Experiment:
    """A validated experiment: fixed settings and the grid of what varies.

    Attributes
    ----------
    name : str
    description : str
    task : dict
        ``{'name': ..., **options}``, every builder option filled in (seed included).
    network : dict
        The fixed network settings (the axes the grid varies are left out).
    training : dict
        The fixed training settings (the axes the grid varies are left out).
    record : dict
        ``schedule``, ``layers``, ``preactivation``.
    grid : dict of str to list
        The axes, in TOML order, ``seed`` included (``seeds = n`` expanded).
    source : str or None
        The file it was read from.
    """

    name: str
    description: str
    task: dict[str, Any]
    network: dict[str, Any]
    training: dict[str, Any]
    record: dict[str, Any]
    grid: dict[str, list[Any]]
    source: str | None = None

    @property
    def axes(self) -> dict[str, list[Any]]:
        """What varies, in TOML order, ``seed`` included."""
        return {axis: list(values) for axis, values in self.grid.items()}

    def to_dict(self) -> dict[str, Any]:
        """The normalized experiment (what the TOML means, defaults filled in), JSON-able."""
        return json.loads(
            json.dumps(
                {
                    "name": self.name,
                    "description": self.description,
                    "task": self.task,
                    "network": self.network,
                    "training": self.training,
                    "record": self.record,
                    "grid": self.grid,
                }
            )
        )

    def same_runs(self, other: Mapping[str, Any]) -> bool:
        """Whether a normalized experiment (from a manifest) describes the same runs (the description aside)."""

        def strip(d: Mapping[str, Any]) -> Any:
            return json.dumps({k: v for k, v in d.items() if k != "description"}, sort_keys=True)

        return strip(self.to_dict()) == strip(other)

    def runs(self) -> list[RunSpec]:
        """Expand the grid: one :class:`RunSpec` per combination of axis values (the seed innermost)."""
        task = _build_task(self.task)
        axes = [a for a in self.grid if a != "seed"]
        labels = {a: _labels(a, self.grid[a]) for a in axes}
        seeds = self.grid["seed"]
        out: list[RunSpec] = []
        seen: dict[str, int] = {}
        for combo in itertools.product(*(range(len(self.grid[a])) for a in axes)):
            cell = {a: self.grid[a][i] for a, i in zip(axes, combo)}
            label = "_".join(f"{a}-{labels[a][i]}" for a, i in zip(axes, combo))
            for seed in seeds:
                run_id = f"{label}_seed-{seed}" if label else f"seed-{seed}"
                if run_id in seen:  # two values with one label (e.g. 1e-17 and 1.00000000000000001e-17)
                    seen[run_id] += 1
                    run_id = f"{run_id}_{seen[run_id]}"
                seen.setdefault(run_id, 0)
                out.append(self._resolve(task, cell, seed, run_id))
        return out

    def _resolve(self, task: Task, cell: Mapping[str, Any], seed: int, run_id: str) -> RunSpec:
        where = f"grid cell {json.dumps(cell)}" if cell else "the experiment"
        net = {**self.network, **{k: v for k, v in cell.items() if k in NETWORK_KEYS}}
        tr = {**self.training, **{k: v for k, v in cell.items() if k in TRAINING_KEYS}}
        opt = tr["optimizer"]
        name, options = (opt, {}) if isinstance(opt, str) else (opt["name"], {k: v for k, v in opt.items()})
        options.pop("name", None)
        lr = options.pop("lr", None)
        if lr is not None and "lr" in cell:
            raise ParameterError(
                f"{where}: the learning rate is set twice, by grid.lr and by the optimizer table; give one"
            )
        if lr is None:
            lr = tr["lr"]
        try:
            config = NetworkConfig(task.n_inputs, task.n_outputs, **_network_args(net))
            full = optimizer_options(name, lr=lr, **options)
            _resolve_loss(tr["loss"], task, tr["weight_decay"])
            if name == "lbfgs" and tr["batch_size"] is not None and tr["batch_size"] < task.n_samples:
                raise ParameterError(
                    f"optimizer 'lbfgs' needs full-batch training (no batch_size); got batch_size={tr['batch_size']}"
                )
            _check_layers(self.record, config)
        except ParameterError as exc:
            raise ParameterError(f"{where}: {exc}") from None
        return RunSpec(
            id=run_id,
            cell=dict(cell),
            seed=int(seed),
            task=dict(self.task),
            network=config.to_dict(),
            loss=tr["loss"],
            weight_decay=float(tr["weight_decay"]),
            optimizer=name,
            lr=float(full["lr"]),
            optimizer_options=options,
            epochs=int(tr["epochs"]),
            batch_size=tr["batch_size"],
            stop_loss=tr["stop_loss"],
            stop_accuracy=tr["stop_accuracy"],
            record=dict(self.record),
        )


def _network_args(net: Mapping[str, Any]) -> dict[str, Any]:
    args = dict(net)
    args["hidden"] = tuple(args["hidden"])
    if isinstance(args.get("activation"), list):
        args["activation"] = tuple(args["activation"])
    return args


def _check_layers(record: Mapping[str, Any], config: NetworkConfig) -> None:
    from .networks import Network

    layers = record.get("layers")
    if layers is None:
        return
    modules = [n for n, _ in Network(config).named_modules() if n] + ["output"]
    for name in layers:
        if name not in modules:
            raise ParameterError(
                f"record.layers: {name!r} is not a layer of this network"
                + did_you_mean(name, modules)
                + f"; layers: {', '.join(modules)}"
            )
    if record.get("preactivation"):
        for name in layers:
            if name != "output" and not re.fullmatch(r"hidden\d+(\.act)?", name):
                raise ParameterError(
                    f"record.preactivation needs every recorded layer to be a hidden layer (hidden1, ...) or its "
                    f"activation (hidden1.act); got {name!r}"
                )


_TASKS: dict[str, Task] = {}


def _build_task(spec: Mapping[str, Any]) -> Task:
    key = json.dumps(spec, sort_keys=True)
    if key not in _TASKS:
        options = dict(spec)
        _TASKS[key] = load_task(options.pop("name"), **options)
    return _TASKS[key]


# ----------------------------------------------------------------------------- parsing


def parse_experiment(data: Mapping[str, Any], *, source: str | None = None) -> Experiment:
    """Validate an experiment given as a dict (what ``tomllib`` returns) and fill in its defaults.

    Parameters
    ----------
    data : dict
        The TOML document: ``name``, ``description``, ``[task]``,
        ``[network]``, ``[training]``, ``[record]``, ``[grid]``.
    source : str, optional
        The file it came from (named in errors; its stem is the default name).

    Returns
    -------
    Experiment

    Raises
    ------
    ParameterError
        An unknown key (naming the closest valid one), a value of the wrong
        type or out of range, a value both fixed and varied, an empty grid, or a
        grid cell that cannot be trained (e.g. 'softmax' on a binary task).
    """
    prefix = f"{source}: " if source else ""
    try:
        return _parse(data, source)
    except ParameterError as exc:
        raise ParameterError(f"{prefix}{exc}") from None


def _parse(data: Mapping[str, Any], source: str | None) -> Experiment:
    data = _table("the experiment", data)
    _keys("the experiment's top level", data, TOP_KEYS)
    default_name = os.path.splitext(os.path.basename(source))[0] if source else None
    name = _str("name", data["name"]) if "name" in data else default_name
    if not name:
        raise ParameterError("name must be given (a short name for the runs folder); got none")
    if not _NAME.match(name):
        raise ParameterError(f"name must hold only letters, digits, '.', '_' and '-' (a folder name); got {name!r}")
    description = _str("description", data.get("description", ""))

    # [task]
    if "task" not in data:
        raise ParameterError("[task] must be given, with at least name = '<task>' (see 'hud tasks')")
    task_table = _table("[task]", data["task"])
    if "name" not in task_table:
        raise ParameterError("[task] must have name = '<task>' (see 'hud tasks')")
    from data.tasks import task_names

    task_name = _choice("task.name", task_table.pop("name"), task_names())
    seed = _int("task.seed", task_table.pop("seed", 0), low=0)
    try:
        task = load_task(task_name, seed=seed, **task_table)
    except ParameterError as exc:
        raise ParameterError(f"[task]: {exc}") from None
    task_spec = {"name": task_name, **task.options}
    _TASKS[json.dumps(task_spec, sort_keys=True)] = task

    # [grid] first: what it varies is left out of the fixed tables
    grid_table = _table("[grid]", data.get("grid", {}))
    _keys("[grid]", grid_table, [*GRID_AXES, "seeds"])
    if "seeds" in grid_table and "seed" in grid_table:
        raise ParameterError("grid.seeds and grid.seed both set the seeds; give one")
    grid: dict[str, list[Any]] = {}
    for axis, values in grid_table.items():
        if axis == "seeds":
            n = _int("grid.seeds", values, low=1)
            if n > 100_000:
                raise ParameterError(f"grid.seeds must be an integer in [1, 100000]; got {n}")
            grid["seed"] = list(range(n))
            continue
        if not isinstance(values, list):
            raise _bad(f"grid.{axis}", "a list of values (an axis of the grid)", values)
        if not values:
            raise ParameterError(f"grid.{axis} is empty: an axis needs at least one value")
        checked = [_CHECKS[axis](f"grid.{axis}[{k}]", v) for k, v in enumerate(values)]
        dup = [json.dumps(v, sort_keys=True) for v in checked]
        for k, v in enumerate(dup):
            if v in dup[:k]:
                raise ParameterError(f"grid.{axis} lists {checked[k]!r} twice (grid.{axis}[{k}])")
        grid[axis] = checked
    if not grid:
        raise ParameterError(
            "the grid is empty: [grid] must vary at least one axis, e.g. seeds = 4 or loss = ['sse', 'bce']; "
            f"axes: {', '.join(GRID_AXES)}, seeds"
        )
    grid.setdefault("seed", [0])

    # [network]
    net_table = _table("[network]", data.get("network", {}))
    _keys("[network]", net_table, NETWORK_KEYS)
    hints = task.hints
    network: dict[str, Any] = {
        "hidden": list(hints.get("hidden", [10])),
        "activation": hints.get("activation", "tanh"),
        "architecture": "mlp",
        "init": hints.get("init"),
        "shortcut": False,
    }
    for key, value in net_table.items():
        network[key] = _CHECKS[key](f"network.{key}", value)

    # [training]
    tr_table = _table("[training]", data.get("training", {}))
    _keys("[training]", tr_table, TRAINING_KEYS)
    training = dict(_DEFAULT_TRAINING)
    for key, value in tr_table.items():
        training[key] = _CHECKS[key](f"training.{key}", value)

    # [record]
    rec_table = _table("[record]", data.get("record", {}))
    _keys("[record]", rec_table, RECORD_KEYS)
    record = dict(_DEFAULT_RECORD)
    for key, value in rec_table.items():
        record[key] = _CHECKS[key](f"record.{key}", value)

    for axis in grid:
        table = "network" if axis in NETWORK_KEYS else "training" if axis in TRAINING_KEYS else None
        given = net_table if table == "network" else tr_table if table == "training" else {}
        if axis in given:
            raise ParameterError(
                f"{table}.{axis} is fixed in [{table}] and varied in [grid]: give one (fixed values are the same "
                "for every run, grid values make one run each)"
            )
        if table == "network":
            network.pop(axis, None)
        elif table == "training":
            training.pop(axis, None)

    exp = Experiment(
        name=name,
        description=description,
        task=task_spec,
        network=network,
        training=training,
        record=record,
        grid=grid,
        source=source,
    )
    exp.runs()  # validates every cell
    return exp


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse one ``--set`` item: ``'training.lr=0.1'`` -> ``('training.lr', 0.1)``.

    The value is read as a TOML value (``0.1``, ``[10, 10]``, ``true``,
    ``"adam"``, ``{name = "adam", lr = 0.01}``); a bare word that is not TOML
    is taken as a string (``training.loss=sse``).
    """
    if not isinstance(text, str) or "=" not in text:
        raise ParameterError(f"--set must be KEY=VALUE, e.g. training.lr=0.1; got {text!r}")
    key, raw = (part.strip() for part in text.split("=", 1))
    if not key or not all(key.split(".")):
        raise ParameterError(f"--set must be KEY=VALUE with a dotted KEY such as training.lr; got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def apply_overrides(data: Mapping[str, Any], assignments: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the TOML document with dotted keys set: ``{'training.lr': 0.1, 'grid.seeds': 2}``.

    Unknown keys are not checked here: :func:`parse_experiment` rejects them
    with a suggestion.
    """
    out = json.loads(json.dumps(data))
    for dotted, value in assignments.items():
        parts = dotted.split(".")
        node = out
        for k, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: k + 1])
                raise ParameterError(f"--set {dotted}: {where} is {child!r}, not a table with {parts[k + 1]!r}")
            node = child
        node[parts[-1]] = value
        if dotted == "grid.seeds":
            out.get("grid", {}).pop("seed", None)
        elif dotted == "grid.seed":
            out.get("grid", {}).pop("seeds", None)
    return out


def load_experiment(
    path: str | os.PathLike,
    *,
    overrides: Mapping[str, Any] | None = None,
    epochs: int | None = None,
    seeds: int | None = None,
) -> Experiment:
    """Read, override and validate an experiment file.

    Parameters
    ----------
    path : str or PathLike
        A ``.toml`` file.
    overrides : dict, optional
        Dotted keys to set before validation, e.g. ``{'training.lr': 0.1}``
        (the CLI's ``--set``).
    epochs : int, optional
        Sets ``training.epochs`` (the CLI's ``--epochs``).
    seeds : int, optional
        Sets ``grid.seeds`` (the CLI's ``--seeds``), replacing any ``grid.seed``.

    Returns
    -------
    Experiment

    Raises
    ------
    ParameterError
        The file is missing or not valid TOML, or anything
        :func:`parse_experiment` rejects.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ParameterError(f"experiment file {path!r} does not exist")
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ParameterError(f"{path}: not valid TOML: {exc}") from None
    sets = dict(overrides or {})
    if epochs is not None:
        sets["training.epochs"] = epochs
    if seeds is not None:
        sets["grid.seeds"] = seeds
    if sets:
        data = apply_overrides(data, sets)
    return parse_experiment(data, source=path)
