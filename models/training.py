"""The training loop and its callback protocol.

Epoch numbering: epoch 0 is the initial weights and epoch k the weights after
k epochs of updates.  In full-batch training the forward pass that computes
epoch k's metrics is also the one that takes the (k+1)-th step, so the metrics,
gradients and activations a callback sees at ``on_epoch_end`` of epoch k all
belong to the same weights w_k.  In mini-batch training the metrics of epoch
k >= 1 are averages over the epoch's batches (the weights move during it);
epoch 0 is one evaluation pass over the training set.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from data.errors import ParameterError, check_choice, check_number
from data.tasks import Task

from .flat import FlatStorage
from .losses import Loss, accuracy, get_loss
from .networks import NetworkConfig, build_network, count_parameters
from .optim import get_optimizer, state_keys
from .optim import optimizer_options as _full_options

__all__ = ["Callback", "TrainState", "TrainResult", "train", "METRICS", "STATUSES"]

#: the per-epoch metrics, in the order of the DataFrame's columns
METRICS = ("loss", "penalty", "total", "accuracy", "time")
#: how a run ended
STATUSES = ("complete", "converged", "stopped", "diverged", "interrupted", "failed")


class Callback:
    """Base class of training callbacks: every hook is a no-op.

    ``train`` calls ``on_train_begin`` once, then for each epoch k = 0..epochs
    ``on_epoch_begin`` (before the epoch's forward pass) and ``on_epoch_end``
    (after it, with ``state.metrics`` holding epoch k's metrics), then
    ``on_train_end`` once, also when training fails or is interrupted.  A
    callback may set ``state.stop = True`` to end training after this epoch.
    """

    def on_train_begin(self, state: TrainState) -> None:
        """Called once before epoch 0."""

    def on_epoch_begin(self, state: TrainState) -> None:
        """Called before epoch ``state.epoch``'s forward pass."""

    def on_epoch_end(self, state: TrainState) -> None:
        """Called when epoch ``state.epoch`` has its metrics (and, in full batch, its gradients)."""

    def on_train_end(self, state: TrainState) -> None:
        """Called once at the end, whatever ``state.status`` is."""


@dataclass
class TrainState:
    """What a callback can see and change.

    Attributes
    ----------
    network, task, loss, optimizer
        The objects being trained.
    config : dict
        The whole run's configuration (JSON-able): task, network, loss,
        optimizer, training settings.
    epochs : int
        The last epoch that will run unless training stops early.
    full_batch : bool
        Whether each step uses the whole training set.  Then the forward pass
        of epoch k runs on ``inputs`` in order, at the weights w_k.
    inputs : Tensor of shape (n_samples, n_inputs)
        The training inputs, on ``device``.
    device : torch.device
    epoch : int
    metrics : dict
        Epoch ``epoch``'s metrics: loss, penalty, total, accuracy, time.
    status : str
        'running' until the end, then one of ``STATUSES``.
    stop : bool
        Set it to end training after the current epoch.
    start_epoch : int
        The first epoch the loop runs; a callback resuming a run (the
        Recorder with ``resume=True``) sets it in ``on_train_begin`` after
        restoring the weights and optimizer state of that epoch.
    time_offset : float
        Seconds added to the ``time`` metric (the time already spent before a resume).
    generator : torch.Generator
        The mini-batch order's random generator (its state is part of a checkpoint).
    flat : FlatStorage or None
        The contiguous buffers holding the parameters, gradients and optimizer
        state (None when they could not be made, e.g. for L-BFGS).
    """

    network: nn.Module
    task: Task
    loss: Loss
    optimizer: torch.optim.Optimizer
    config: dict[str, Any]
    epochs: int
    full_batch: bool
    inputs: torch.Tensor
    device: torch.device
    epoch: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    status: str = "running"
    stop: bool = False
    start_epoch: int = 0
    time_offset: float = 0.0
    generator: torch.Generator = field(default_factory=torch.Generator)
    flat: FlatStorage | None = None


@dataclass
class TrainResult:
    """What ``train`` returns.

    Attributes
    ----------
    network : nn.Module
        The trained network (in place; the same object that was passed).
    metrics : DataFrame
        One row per epoch run, indexed by ``epoch``; columns ``METRICS``.
    status : str
        One of ``STATUSES``.
    config : dict
    """

    network: nn.Module
    metrics: pd.DataFrame
    status: str
    config: dict[str, Any]

    @property
    def epochs(self) -> int:
        """The last epoch run."""
        return int(self.metrics.index[-1]) if len(self.metrics) else 0

    @property
    def final(self) -> dict[str, float]:
        """The last epoch's metrics."""
        return self.metrics.iloc[-1].to_dict() if len(self.metrics) else {}

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"


def _resolve_loss(loss: str | Loss, task: Task, weight_decay: float) -> Loss:
    if isinstance(loss, Loss):
        if weight_decay:
            raise ParameterError("weight_decay must be given to get_loss() when loss is a Loss object; got both")
        resolved = loss
    elif isinstance(loss, str):
        output = "linear" if (loss == "sse" and task.kind == "regression") else None
        resolved = get_loss(loss, weight_decay=weight_decay, output=output)
    else:
        raise ParameterError(f"loss must be a loss name ('sse', 'bce', 'softmax') or a Loss; got {type(loss).__name__}")
    if task.kind == "regression" and resolved.output != "linear":
        raise ParameterError(
            f"loss must be 'sse' (with linear outputs) for the regression task {task.name!r}; got {resolved.name!r}"
        )
    if resolved.name == "softmax" and task.kind != "multiclass":
        raise ParameterError(
            f"loss 'softmax' needs a multiclass task (one-hot targets); task {task.name!r} is "
            f"{task.kind}: use 'bce' or 'sse'"
        )
    return resolved


def _check_network(network: nn.Module, task: Task, device: torch.device) -> None:
    cfg = getattr(network, "config", None)
    if isinstance(cfg, NetworkConfig):
        if (cfg.n_inputs, cfg.n_outputs) != (task.n_inputs, task.n_outputs):
            raise ParameterError(
                f"network must have {task.n_inputs} inputs and {task.n_outputs} outputs for task "
                f"{task.name!r}; got {cfg.n_inputs} and {cfg.n_outputs}"
            )
        return
    try:
        with torch.no_grad():
            out = network(torch.tensor(task.inputs[:1], device=device))
    except Exception as exc:  # a user's module that cannot take the task's inputs
        raise ParameterError(
            f"network could not run on task {task.name!r}'s inputs of shape (n, {task.n_inputs}): {exc}"
        ) from None
    if tuple(out.shape) != (1, task.n_outputs):
        raise ParameterError(
            f"network must output shape (n, {task.n_outputs}) for task {task.name!r}; "
            f"got {tuple(out.shape)[1:]} per sample"
        )


def _network_description(network: nn.Module) -> dict[str, Any]:
    cfg = getattr(network, "config", None)
    if isinstance(cfg, NetworkConfig):
        return cfg.to_dict()
    return {"class": f"{type(network).__module__}.{type(network).__qualname__}"}


def _check_run_options(
    task: Any, epochs: Any, stop_loss: Any, stop_accuracy: Any, batch_size: Any
) -> tuple[int, int | None, bool]:
    """Check the options ``train`` and ``train_batched`` share; return (epochs, batch_size, full_batch)."""
    if not isinstance(task, Task):
        raise ParameterError(f"task must be a Task (see data.load_task); got {type(task).__name__}")
    epochs = int(check_number("epochs", epochs, low=0, integer=True))
    if stop_loss is not None:
        check_number("stop_loss", stop_loss)
    if stop_accuracy is not None:
        check_number("stop_accuracy", stop_accuracy, low=0, high=1)
    if batch_size is not None:
        batch_size = int(check_number("batch_size", batch_size, low=1, integer=True))
    return epochs, batch_size, batch_size is None or batch_size >= task.n_samples


def _device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ParameterError(f"device must be a torch device such as 'cpu' or 'cuda'; got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device {device!r} was asked for, but CUDA is not available here; use device='cpu'")
    return dev


def train(
    network: nn.Module | NetworkConfig,
    task: Task,
    *,
    loss: str | Loss = "bce",
    optimizer: str | torch.optim.Optimizer = "sgd",
    lr: float | None = None,
    optimizer_options: Mapping[str, Any] | None = None,
    weight_decay: float = 0.0,
    epochs: int = 1000,
    batch_size: int | None = None,
    stop_loss: float | None = None,
    stop_accuracy: float | None = None,
    callbacks: Sequence[Callback] = (),
    seed: int = 0,
    init_seed: int | None = None,
    device: str | torch.device = "cpu",
    num_threads: int | str = "auto",
    contiguous: bool = True,
    progress: bool = False,
) -> TrainResult:
    """Train ``network`` on ``task``.

    Parameters
    ----------
    network : nn.Module or NetworkConfig
        Any module mapping (n_samples, n_inputs) to (n_samples, n_outputs)
        logits; a config is built with ``build_network(config, seed=init_seed)``.
    task : Task
    loss : {'sse', 'bce', 'softmax'} or Loss
        For a regression task 'sse' uses linear outputs.
    optimizer : str or torch.optim.Optimizer
        A name from ``models.OPTIMIZERS`` ('sgd', 'momentum', 'nesterov',
        'adam', 'adamw', 'rmsprop', 'lbfgs'), or an optimizer already built on
        ``network``'s parameters.
    lr : float, optional
        Learning rate (default: the optimizer's).
    optimizer_options : dict, optional
        The optimizer's hyperparameters, e.g. ``{'momentum': 0.9}``.
    weight_decay : float
        lambda of the penalty (lambda/2) sum w^2, reported apart from the data loss.
    epochs : int
        Number of epochs of updates; epochs 0..epochs are reported.
    batch_size : int, optional
        Mini-batch size; None (the default) or >= n_samples is full batch.
    stop_loss : float, optional
        Stop (status 'converged') once the data loss is below this.
    stop_accuracy : float, optional
        Stop once accuracy reaches this (1.0: every sample right).
    callbacks : sequence of Callback
        E.g. a ``Recorder``.
    seed : int
        Seed of the mini-batch order (and of the initial weights when
        ``network`` is a config and ``init_seed`` is None).
    init_seed : int, optional
        Seed of the initial weights when ``network`` is a config.
    device : str or torch.device
    num_threads : int or 'auto'
        Torch CPU threads while training; 'auto' uses 1 for small networks
        (fewer than 100,000 parameters), where more threads only add overhead.
    contiguous : bool
        Keep parameters, gradients and optimizer state in contiguous buffers
        (``models.flat.FlatStorage``) so that a recorder copies each with one
        operation; the numbers are bit-identical either way.
    progress : bool
        Show a tqdm progress bar with an ETA.

    Returns
    -------
    TrainResult
        Never raises for a diverging run: its status is 'diverged'.
    """
    epochs, batch_size, full_batch = _check_run_options(task, epochs, stop_loss, stop_accuracy, batch_size)
    seed = int(check_number("seed", seed, low=0, integer=True))
    dev = _device(device)
    loss_fn = _resolve_loss(loss, task, float(check_number("weight_decay", weight_decay, low=0)))

    if isinstance(network, NetworkConfig):
        network = build_network(network, seed=seed if init_seed is None else init_seed)
    if not isinstance(network, nn.Module):
        raise ParameterError(f"network must be an nn.Module or a NetworkConfig; got {type(network).__name__}")
    network.to(dev)
    _check_network(network, task, dev)

    if isinstance(optimizer, torch.optim.Optimizer):
        if lr is not None or optimizer_options:
            raise ParameterError("lr and optimizer_options must not be given with an optimizer object; got both")
        opt, opt_cfg = (
            optimizer,
            {
                "name": type(optimizer).__name__,
                **{k: v for k, v in optimizer.defaults.items() if isinstance(v, (int, float, bool, str))},
            },
        )
    elif isinstance(optimizer, str):
        options = dict(optimizer_options or {})
        if optimizer == "lbfgs" and not full_batch:
            raise ParameterError(
                f"optimizer 'lbfgs' needs full-batch training (batch_size=None); got batch_size={batch_size}"
            )
        opt_cfg = {"name": optimizer, **_full_options(optimizer, lr=lr, **options)}
        opt = get_optimizer(optimizer, network.parameters(), lr=lr, **options)
    else:
        raise ParameterError(
            f"optimizer must be an optimizer name or a torch.optim.Optimizer; got {type(optimizer).__name__}"
        )
    check_choice("num_threads", num_threads, ["auto"]) if isinstance(num_threads, str) else check_number(
        "num_threads", num_threads, low=1, integer=True
    )

    config = {
        "task": {"name": task.name, **task.options},
        "network": _network_description(network),
        "loss": loss_fn.to_dict(),
        "optimizer": opt_cfg,
        "training": {
            "epochs": epochs,
            "batch_size": batch_size,
            "seed": seed,
            "init_seed": seed if init_seed is None else init_seed,
            "stop_loss": stop_loss,
            "stop_accuracy": stop_accuracy,
            "device": str(dev),
        },
    }
    x = torch.tensor(task.inputs, device=dev)
    t = torch.tensor(task.targets, device=dev)
    state = TrainState(
        network=network,
        task=task,
        loss=loss_fn,
        optimizer=opt,
        config=config,
        epochs=epochs,
        full_batch=full_batch,
        inputs=x,
        device=dev,
        generator=torch.Generator().manual_seed(seed),
        flat=FlatStorage(list(network.named_parameters()), state_keys(opt))
        if contiguous and FlatStorage.possible(network, opt)
        else None,
    )
    threads_before = torch.get_num_threads()
    if num_threads == "auto":
        num_threads = 1 if count_parameters(network) < 100_000 else threads_before
    torch.set_num_threads(int(num_threads))
    loop = _Loop(state, t, batch_size, stop_loss, stop_accuracy, list(callbacks))
    try:
        for cb in loop.callbacks:
            cb.on_train_begin(state)
        with tqdm(
            total=epochs,
            initial=state.start_epoch,
            disable=not progress,
            unit="epoch",
            desc=_progress_label(config),
            dynamic_ncols=True,
            leave=False,
        ) as bar:
            loop.run(bar)
    except BaseException:
        state.status = "interrupted" if loop.interrupted() else "failed"
        raise
    finally:
        torch.set_num_threads(threads_before)
        for cb in loop.callbacks:
            cb.on_train_end(state)
    return TrainResult(network=network, metrics=loop.frame(), status=state.status, config=config)


def _progress_label(config: Mapping[str, Any]) -> str:
    return f"{config['task']['name']} {config['loss']['name']}/{config['optimizer']['name']}"


class _Loop:
    """The epochs of one ``train`` call (state kept here so ``train`` stays readable)."""

    def __init__(
        self,
        state: TrainState,
        targets: torch.Tensor,
        batch_size: int | None,
        stop_loss: float | None,
        stop_accuracy: float | None,
        callbacks: list[Callback],
    ):
        self.s = state
        self.t = targets
        self.batch_size = batch_size
        self.stop_loss = stop_loss
        self.stop_accuracy = stop_accuracy
        self.callbacks = callbacks
        self.rows: list[tuple[float, ...]] = []
        self.start = time.perf_counter()
        self.lbfgs = isinstance(state.optimizer, torch.optim.LBFGS)

    def interrupted(self) -> bool:
        import sys

        return isinstance(sys.exc_info()[1], (KeyboardInterrupt, SystemExit))

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.rows, columns=["epoch", *METRICS])
        df["epoch"] = df["epoch"].astype(np.int64)
        return df.set_index("epoch")

    # -- one epoch -------------------------------------------------------------------

    def _metrics(self, data: torch.Tensor, penalty: torch.Tensor, acc: float) -> dict[str, float]:
        d, p = torch.stack([data.detach().float().cpu(), penalty.detach().float().cpu()]).tolist()
        return {
            "loss": d,
            "penalty": p,
            "total": d + p,
            "accuracy": acc,
            "time": time.perf_counter() - self.start + self.s.time_offset,
        }

    def _zero_grad(self) -> None:
        if self.s.flat is not None:
            self.s.flat.zero_grad()
        else:
            self.s.optimizer.zero_grad(set_to_none=True)

    def _after_step(self) -> None:
        if self.s.flat is not None:
            self.s.flat.adopt_state(self.s.optimizer)

    def _full_batch_epoch(self) -> dict[str, float]:
        s = self.s
        self._zero_grad()
        logits = s.network(s.inputs)
        data = s.loss.data_loss(logits, self.t)
        penalty = s.loss.penalty(s.network)
        total = data + penalty
        if torch.isfinite(total):
            total.backward()
        with torch.no_grad():
            acc = accuracy(s.loss.activation(logits), self.t, s.task.kind)
        return self._metrics(data, penalty, acc)

    def _step(self) -> None:
        s = self.s
        if not self.lbfgs:
            s.optimizer.step()
            self._after_step()
            return

        def closure() -> torch.Tensor:
            s.optimizer.zero_grad(set_to_none=True)
            value = s.loss(s.network(s.inputs), self.t, model=s.network)
            value.backward()
            return value

        s.optimizer.step(closure)

    def _evaluate(self) -> dict[str, float]:
        s = self.s
        with torch.no_grad():
            logits = torch.cat([s.network(chunk) for chunk in torch.split(s.inputs, 8192)])
            data = s.loss.data_loss(logits, self.t)
            acc = accuracy(s.loss.activation(logits), self.t, s.task.kind)
            return self._metrics(data, s.loss.penalty(s.network), acc)

    def _minibatch_epoch(self) -> dict[str, float]:
        s = self.s
        n = s.inputs.shape[0]
        order = torch.randperm(n, generator=s.generator).to(s.device)
        total_loss = torch.zeros((), device=s.device)
        outputs = torch.empty_like(self.t)
        for idx in torch.split(order, self.batch_size):
            self._zero_grad()
            logits = s.network(s.inputs[idx])
            data = s.loss.data_loss(logits, self.t[idx])
            (data + s.loss.penalty(s.network)).backward()
            s.optimizer.step()
            self._after_step()
            total_loss += data.detach() * len(idx)
            outputs[idx] = s.loss.activation(logits.detach())
        with torch.no_grad():
            acc = accuracy(outputs, self.t, s.task.kind)
            return self._metrics(total_loss / n, s.loss.penalty(s.network), acc)

    # -- the loop --------------------------------------------------------------------

    def run(self, bar: tqdm) -> None:
        s = self.s
        if s.start_epoch > s.epochs:  # resumed from a recording that already holds every epoch
            s.status = "complete"
            return
        for epoch in range(s.start_epoch, s.epochs + 1):
            s.epoch = epoch
            for cb in self.callbacks:
                cb.on_epoch_begin(s)
            if s.full_batch:
                m = self._full_batch_epoch()
            else:
                m = self._evaluate() if epoch == 0 else self._minibatch_epoch()
            s.metrics = m
            self.rows.append((epoch, *(m[k] for k in METRICS)))
            finite = math.isfinite(m["total"])
            if not finite:
                s.status = "diverged"
            elif self._converged(m):
                s.status = "converged"
            elif epoch == s.epochs:
                s.status = "complete"
            for cb in self.callbacks:
                cb.on_epoch_end(s)
            if epoch > s.start_epoch:
                bar.update(1)
            if s.status != "running":
                return
            if s.stop:
                s.status = "stopped"
                return
            if s.full_batch:
                self._step()

    def _converged(self, m: Mapping[str, float]) -> bool:
        return (self.stop_loss is not None and m["loss"] < self.stop_loss) or (
            self.stop_accuracy is not None and m["accuracy"] >= self.stop_accuracy
        )
