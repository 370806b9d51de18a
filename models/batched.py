"""Many small runs of one architecture, trained together as one batched model.

A sweep over losses, optimizers, hyperparameters and seeds of a tiny network
spends nearly all its time in Python and kernel-launch overhead, not in
arithmetic.  :func:`train_batched` trains ``n_members`` such runs at once: every
parameter gets a leading ``member`` dimension, every layer is one batched matrix
product, and the optimizers update all members of a kind with one vectorised
formula whose hyperparameters are per-member tensors.

Each member ends where ``models.train`` of the same configuration, trained
alone, ends, up to floating-point summation order: the member's initial weights
are exactly ``build_network(config, seed=init_seed)``'s; its loss, its weight-decay
penalty and its optimizer follow ``train``'s formulas (the optimizers those of
``torch.optim``, written out for stacked parameters); its metrics use ``train``'s
columns and epoch convention (epoch 0 = the initial weights).  Batched and
alone-trained runs agree to ~1e-6 over tens to a hundred epochs, then drift
apart as any two float orderings of a chaotic dynamics do.

Design
------
- The weights of all members live in one tensor of shape (member, parameter):
  each member's row is its parameters in ``Network.named_parameters()`` order,
  flattened.  The forward pass splits it into per-layer views; one optimizer
  step is a handful of tensor operations whatever the number of layers.
- The backward pass is written out (``_Batch.gradient``: per layer one batched
  product for the weights' gradient, a sum for the biases', one product back),
  with no autograd graph; the loss gradients multiply by 1/n where autograd
  does, so that a linear model rounds as it does alone.  tanh is computed as
  2 sigmoid(2x) - 1 (2.3x faster than ``torch.tanh`` here, within 2e-7).
  Together: 1.19x faster training than autograd + ``torch.tanh`` (median of 8
  interleaved pairs, 32 members of the 2-10-10-1 spiral net).
- Layers are ``torch.baddbmm`` on activations kept unit-major, (member, unit,
  sample): on CPU this was ~1.6x faster than sample-major batched products and
  ~2-3x faster than ``torch.func.vmap`` over ``functional_call`` (32 members of
  a 2-10-10-1 net, one forward + backward pass; see benchmarks/bench_batched.py).
- Members are sorted internally by optimizer formula, so that each optimizer's
  members are one contiguous block of rows updated by one formula with
  (member, 1) hyperparameter tensors, then by loss, so that each loss formula
  applies to contiguous runs of rows.  Results come back in the given order.
- A member that ends (converged, stopped, diverged) gets learning rate 0 (its
  weights stay bit-for-bit where they are; a diverged member's row is zeroed so
  that no NaN lingers) and its network its own copy of its weights.  Its row
  stays in the batch: ended members still cost forward/backward time.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from data.errors import ParameterError, check_choice, check_number
from data.tasks import Task

from .losses import Loss
from .networks import NetworkConfig, build_network
from .optim import OPTIMIZERS, get_optimizer, optimizer_options
from .training import METRICS, Callback, TrainResult, TrainState, _check_run_options, _device, _resolve_loss

__all__ = ["BATCHED_OPTIMIZERS", "MemberSpec", "MemberState", "train_batched"]

#: the optimizers a batched member may use (every name of ``models.OPTIMIZERS`` but 'lbfgs')
BATCHED_OPTIMIZERS = tuple(name for name in OPTIMIZERS if name != "lbfgs")

_TABLE_STEPS = 256  # Adam's bias corrections are tabulated this many steps at a time


def _tanh(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """tanh(x) as 2 sigmoid(2x) - 1: 2.3x faster than ``torch.tanh`` on this CPU (AVX2, float32, one thread).

    Its error is at most ~2e-7 absolute (1.5 float32 ulps of 1), against ``torch.tanh``'s 3e-8:
    below the float rounding that already separates a batched run from one trained alone.
    ``out``: a tensor of x's shape to write the result into (no new tensor).
    """
    if x.requires_grad:  # under autograd: out of place
        return torch.sigmoid(x * 2.0) * 2.0 - 1.0
    y = torch.mul(x, 2.0, out=out) if out is not None else torch.mul(x, 2.0)
    return torch.sigmoid_(y).mul_(2.0).sub_(1.0)


def _sigmoid(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    return torch.sigmoid(x) if out is None else torch.sigmoid(x, out=out)


def _relu(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    return torch.relu(x) if out is None else torch.clamp_min(x, 0.0, out=out)


#: each activation as f(pre, out=None); None for the identity
_ACTIVATIONS: dict[str, Callable[..., torch.Tensor] | None] = {
    "tanh": _tanh,
    "sigmoid": _sigmoid,
    "relu": _relu,
    "linear": None,
}
#: each activation's backward from (d loss / d output, output), as autograd computes it
_ACTIVATION_GRADS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "tanh": torch.ops.aten.tanh_backward,
    "sigmoid": torch.ops.aten.sigmoid_backward,
    "relu": lambda d, h: torch.ops.aten.threshold_backward(d, h, 0),
    "linear": lambda d, h: d,
}


@dataclass(frozen=True)
class MemberSpec:
    """One run of a batch: what ``train()`` would get besides the network and the task.

    Parameters
    ----------
    loss : {'sse', 'bce', 'softmax'} or Loss
        As ``train(loss=...)``; for a regression task 'sse' uses linear outputs.
    optimizer : str
        One of ``BATCHED_OPTIMIZERS``: 'sgd', 'momentum', 'nesterov', 'adam',
        'adamw', 'rmsprop' ('lbfgs' cannot be batched).
    lr : float, optional
        Learning rate (default: the optimizer's).
    optimizer_options : dict
        The optimizer's hyperparameters, e.g. ``{'momentum': 0.9}`` or
        ``{'beta1': 0.8}`` (see ``models.optimizer_options``).
    weight_decay : float
        lambda of the penalty (lambda/2) sum w^2, reported apart from the data loss.
    seed : int
        Seed of the mini-batch order, and of the initial weights when
        ``init_seed`` is None (as in ``train``).
    init_seed : int, optional
        Seed of the initial weights: the member starts at exactly
        ``build_network(config, seed=init_seed)``'s weights.
    """

    loss: str | Loss = "bce"
    optimizer: str = "sgd"
    lr: float | None = None
    optimizer_options: Mapping[str, Any] = field(default_factory=dict)
    weight_decay: float = 0.0
    seed: int = 0
    init_seed: int | None = None

    def train_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``train(config, task, **kwargs)`` that train this member alone."""
        return {
            "loss": self.loss,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "optimizer_options": dict(self.optimizer_options),
            "weight_decay": self.weight_decay,
            "seed": self.seed,
            "init_seed": self.init_seed,
        }


@dataclass
class MemberState(TrainState):
    """What a callback of one member sees: ``train()``'s :class:`TrainState`, for this member alone.

    Every field of ``TrainState`` means what it means there, for this member:
    ``config`` is the config ``train`` would have stored, ``metrics`` this
    member's metrics of epoch ``epoch``, ``status`` its status; setting
    ``stop = True`` ends this member (status 'stopped') and no other.

    ``network`` is a regular :class:`~models.Network` whose parameters are views
    of this member's row of the batched weights (so it always holds the current
    weights w_epoch, and ``p.grad`` the gradient computed at them, as in
    ``train``); once the member ends, they become its own copies.  Do not
    modify them in place.  ``optimizer`` is a torch optimizer with this member's
    hyperparameters whose ``state`` holds views of the batched optimizer state
    (so ``models.optim.state_norms`` works); never call its ``step()``.  The
    network's forward hooks do not fire during batched training: read the
    activations from ``layer_outputs``.

    Attributes
    ----------
    member : int
        The member's position in ``train_batched``'s ``members``.
    n_members : int
    layer_outputs : dict of str to Tensor of shape (sample, unit)
        At ``on_epoch_end``: what a forward hook on each named module would
        have seen on the full training inputs (``inputs``, in order) at the
        weights of epoch ``epoch``: ``'polar'`` (PolarNet only), then for each
        hidden layer ``'hiddenK.linear'`` (pre-activations) and ``'hiddenK'``
        (activations), then ``'output'`` (the logits).  Detached; in full batch
        they come from the training forward pass itself.  Empty at
        ``on_epoch_begin``.
    parameters : dict of str to Tensor
        ``dict(network.named_parameters())``: names as in
        ``Network.named_parameters()``, e.g. ``'hidden1.linear.weight'``.
    gradients : dict of str to Tensor
        The gradient of data loss + penalty for each parameter, same names;
        empty before the first backward pass (mini-batch epoch 0) and after a
        divergence (``train`` does not backpropagate a non-finite loss).
    generator : torch.Generator
        This member's own mini-batch order generator, seeded with its ``seed``.

    Resuming (a callback setting ``start_epoch`` in ``on_train_begin``) is not
    supported: ``train_batched`` raises ParameterError.
    """

    member: int = 0
    n_members: int = 1
    layer_outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    parameters: dict[str, torch.Tensor] = field(default_factory=dict)
    gradients: dict[str, torch.Tensor] = field(default_factory=dict)


# ----------------------------------------------------------------------------- optimizers


def _column(values: Sequence[float] | np.ndarray, device: torch.device) -> torch.Tensor:
    """Per-member scalars as a float32 tensor of shape (member, 1) (rounded from float64 as torch does)."""
    return torch.tensor(np.asarray(values, dtype=np.float64), dtype=torch.float32, device=device).reshape(-1, 1)


class _Optimizer:
    """One optimizer formula applied to a contiguous block of members.

    ``step(p, g)`` updates ``p`` of shape (member, parameter) in place from the
    gradient ``g`` of the same shape.  Hyperparameters are float32 tensors of
    shape (member, 1), rounded from the float64 values that ``torch.optim``
    would round.  A frozen member has lr 0, so its weights stay exactly as they
    are (every update below is ``p + 0 * finite``).
    """

    #: names of the torch.optim state entries this formula keeps, each of shape (member, parameter)
    state_keys: tuple[str, ...] = ()
    #: whether torch.optim keeps a 'step' count in its state
    counts_steps = False

    def __init__(self, name: str, rows: slice, options: list[dict[str, Any]], n_params: int, device: torch.device):
        self.name = name
        self.rows = rows
        self.options = options
        self.device = device
        self.lr = np.array([o["lr"] for o in options], dtype=np.float64)
        self.state = {k: torch.zeros(len(options), n_params, device=device) for k in self.state_keys}
        self.steps = 0
        self.step_t = torch.zeros((), device=device)
        self._derive()

    def _col(self, key: str) -> torch.Tensor:
        return _column([o[key] for o in self.options], self.device)

    def _derive(self) -> None:
        """(Re)compute the hyperparameter tensors that depend on the learning rates."""
        self.neg_lr = _column(-self.lr, self.device)

    def freeze(self, i: int, *, reset: bool) -> None:
        """Stop updating member ``i`` of this block; ``reset`` also zeroes its state (after a divergence)."""
        self.lr[i] = 0.0
        self._derive()
        if reset:
            for buf in self.state.values():
                buf[i].zero_()

    def step(self, p: torch.Tensor, g: torch.Tensor) -> None:
        self.steps += 1
        if self.counts_steps:
            self.step_t.fill_(float(self.steps))
        self._update(p, g)

    def _update(self, p: torch.Tensor, g: torch.Tensor) -> None:
        # torch.optim.SGD: p.add_(g, alpha=-lr)
        p.addcmul_(g, self.neg_lr)

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """Member ``i``'s state rows (views), keyed as torch.optim keys them; empty before the first step."""
        if not self.steps:
            return {}
        out = {"step": self.step_t} if self.counts_steps else {}
        out.update({k: v[i] for k, v in self.state.items()})
        return out


class _Momentum(_Optimizer):
    """torch.optim.SGD(momentum=mu, nesterov=...), dampening 0: buf <- mu buf + g; p <- p - lr buf (or g + mu buf)."""

    state_keys = ("momentum_buffer",)

    def __init__(self, *args: Any, nesterov: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.nesterov = nesterov
        self.mu = self._col("momentum")

    def _update(self, p: torch.Tensor, g: torch.Tensor) -> None:
        buf = self.state["momentum_buffer"]
        if self.steps == 1:
            buf.copy_(g)
        else:
            buf.mul_(self.mu).add_(g)
        p.addcmul_(torch.addcmul(g, buf, self.mu) if self.nesterov else buf, self.neg_lr)


class _Adam(_Optimizer):
    """torch.optim.Adam / AdamW (decoupled weight decay), amsgrad off.

    m <- lerp(m, g, 1 - beta1); v <- beta2 v + (1 - beta2) g^2;
    p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps),
    after p <- p (1 - lr wd) for AdamW; the bias corrections in float64 as in torch.
    """

    state_keys = ("exp_avg", "exp_avg_sq")
    counts_steps = True

    def __init__(self, *args: Any, decoupled: bool = False, **kwargs: Any):
        self.decoupled = decoupled
        super().__init__(*args, **kwargs)
        self.beta1 = [float(o["beta1"]) for o in self.options]
        self.beta2 = [float(o["beta2"]) for o in self.options]
        self.one_minus_beta1 = _column([1 - b for b in self.beta1], self.device)
        self.one_minus_beta2 = _column([1 - b for b in self.beta2], self.device)
        self.b2 = self._col("beta2")
        self.eps = self._col("eps")

    def _derive(self) -> None:
        super()._derive()
        self._table: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None  # the learning rates changed
        self._table_start = 0
        if self.decoupled:
            wd = np.array([o["weight_decay"] for o in self.options], dtype=np.float64)
            self.decay = _column(1 - self.lr * wd, self.device)

    def _update(self, p: torch.Tensor, g: torch.Tensor) -> None:
        m, v = self.state["exp_avg"], self.state["exp_avg_sq"]
        if self.decoupled:
            p.mul_(self.decay)
        m.lerp_(g, self.one_minus_beta1)
        v.mul_(self.b2).addcmul_(g * self.one_minus_beta2, g)
        neg_step, bc2_sqrt = self._bias_corrections(self.steps)
        denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
        p.addcdiv_(m * neg_step, denom)

    def _bias_corrections(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """-lr / (1 - beta1^t) and sqrt(1 - beta2^t), each of shape (member, 1), from a table of the next steps.

        Computed in Python floats exactly as torch.optim.Adam computes them, then rounded to float32.
        """
        start = self._table_start
        if self._table is None or not start <= t < start + _TABLE_STEPS:
            steps = [float(s) for s in range(t, t + _TABLE_STEPS)]
            lrs = self.lr.tolist()
            neg = [[-(lr / (1 - b1**s)) for lr, b1 in zip(lrs, self.beta1)] for s in steps]
            bc2 = [[(1 - b2**s) ** 0.5 for b2 in self.beta2] for s in steps]
            as_table = lambda rows: list(torch.tensor(rows, dtype=torch.float32, device=self.device).unsqueeze(-1))
            self._table, self._table_start, start = (as_table(neg), as_table(bc2)), t, t  # lists: no tensor indexing
        return self._table[0][t - start], self._table[1][t - start]


class _RMSprop(_Optimizer):
    """torch.optim.RMSprop (not centered): v <- alpha v + (1 - alpha) g^2; p <- p - lr g / (sqrt(v) + eps).

    With momentum mu > 0: buf <- mu buf + g / (sqrt(v) + eps); p <- p - lr buf.  A
    block holds members that all have momentum or all have none (torch rounds
    the two cases differently).
    """

    counts_steps = True

    def __init__(self, *args: Any, momentum: bool = False, **kwargs: Any):
        self.state_keys = ("square_avg", "momentum_buffer") if momentum else ("square_avg",)
        super().__init__(*args, **kwargs)
        self.alpha = self._col("alpha")
        self.one_minus_alpha = _column([1 - o["alpha"] for o in self.options], self.device)
        self.eps = self._col("eps")
        self.mu = self._col("momentum") if momentum else None

    def _update(self, p: torch.Tensor, g: torch.Tensor) -> None:
        v = self.state["square_avg"]
        v.mul_(self.alpha).addcmul_(g * self.one_minus_alpha, g)
        avg = v.sqrt().add_(self.eps)
        if self.mu is None:
            p.addcdiv_(g * self.neg_lr, avg)
        else:
            buf = self.state["momentum_buffer"]
            buf.mul_(self.mu).addcdiv_(g, avg)
            p.addcmul_(buf, self.neg_lr)


def _group_key(name: str, options: Mapping[str, Any]) -> str:
    if name == "rmsprop" and options["momentum"] > 0:
        return "rmsprop+momentum"
    return name


def _make_optimizer(
    key: str, rows: slice, options: list[dict[str, Any]], n_params: int, device: torch.device
) -> _Optimizer:
    args = (key, rows, options, n_params, device)
    if key == "sgd":
        return _Optimizer(*args)
    if key in ("momentum", "nesterov"):
        return _Momentum(*args, nesterov=key == "nesterov")
    if key in ("adam", "adamw"):
        return _Adam(*args, decoupled=key == "adamw")
    return _RMSprop(*args, momentum=key == "rmsprop+momentum")


# ----------------------------------------------------------------------------- validation


@dataclass
class _Member:
    """A validated member: its external index and everything train() would have resolved."""

    index: int
    loss: Loss
    optimizer: str
    options: dict[str, Any]  # lr and hyperparameters, defaults filled in (train's config['optimizer'])
    seed: int
    init_seed: int
    callbacks: list[Callback]


def _resolve_members(members: Sequence[MemberSpec], task: Task, callbacks: Sequence[Any]) -> list[_Member]:
    if isinstance(members, MemberSpec) or not isinstance(members, Sequence):
        raise ParameterError(f"members must be a sequence of MemberSpec; got {type(members).__name__}")
    if not members:
        raise ParameterError("members must hold at least one MemberSpec; got none")
    if callbacks and len(callbacks) != len(members):
        raise ParameterError(
            f"callbacks must hold one entry (None, a Callback or a list of them) per member ({len(members)}); "
            f"got {len(callbacks)}"
        )
    out = []
    for i, spec in enumerate(members):
        if not isinstance(spec, MemberSpec):
            raise ParameterError(f"members[{i}] must be a MemberSpec; got {type(spec).__name__}")
        if spec.optimizer == "lbfgs":
            raise ParameterError(
                f"members[{i}].optimizer must be one of {', '.join(map(repr, BATCHED_OPTIMIZERS))}; got 'lbfgs' "
                "(its line search needs one closure per run): train it alone with models.train()"
            )
        try:
            check_choice(f"members[{i}].optimizer", spec.optimizer, BATCHED_OPTIMIZERS)
            if not isinstance(spec.optimizer_options, Mapping):
                raise ParameterError(f"optimizer_options must be a dict; got {type(spec.optimizer_options).__name__}")
            user_options = dict(spec.optimizer_options)
            lr = user_options.pop("lr", None) if spec.lr is None else spec.lr
            if "lr" in user_options:
                raise ParameterError("lr must be given once, as lr or in optimizer_options; got both")
            options = optimizer_options(spec.optimizer, lr=lr, **user_options)
            weight_decay = float(check_number("weight_decay", spec.weight_decay, low=0))
            loss = _resolve_loss(spec.loss, task, weight_decay)
            seed = int(check_number("seed", spec.seed, low=0, integer=True))
            init_seed = seed
            if spec.init_seed is not None:
                init_seed = int(check_number("init_seed", spec.init_seed, low=0, integer=True))
        except ParameterError as exc:
            msg = str(exc)
            raise ParameterError(msg if msg.startswith(f"members[{i}]") else f"members[{i}]: {msg}") from None
        entry = callbacks[i] if callbacks else None
        cbs = [] if entry is None else [entry] if isinstance(entry, Callback) else list(entry)
        for cb in cbs:
            if not isinstance(cb, Callback):
                raise ParameterError(f"callbacks[{i}] must hold models.Callback objects; got {type(cb).__name__}")
        out.append(_Member(i, loss, spec.optimizer, options, seed, init_seed, cbs))
    return out


def _resolve_config(config: NetworkConfig | Mapping[str, Any], task: Task) -> NetworkConfig:
    if isinstance(config, Mapping):
        config = NetworkConfig.from_dict(config)
    if not isinstance(config, NetworkConfig):
        raise ParameterError(
            f"config must be a NetworkConfig (batched training builds its own networks); got {type(config).__name__}"
        )
    if (config.n_inputs, config.n_outputs) != (task.n_inputs, task.n_outputs):
        raise ParameterError(
            f"config must have {task.n_inputs} inputs and {task.n_outputs} outputs for task {task.name!r}; "
            f"got {config.n_inputs} and {config.n_outputs}"
        )
    return config


# ----------------------------------------------------------------------------- the batched model


@dataclass(frozen=True)
class _Slot:
    """Where one named parameter lives in a member's row."""

    name: str
    shape: tuple[int, ...]
    start: int
    stop: int


def _polar(x: torch.Tensor) -> torch.Tensor:
    """Polar.forward's formula: (x, y) -> (r, atan2(y, x))."""
    r = torch.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2)
    a = torch.atan2(x[:, 1], x[:, 0])
    return torch.stack([r, a], dim=1)


class _Batch:
    """The stacked weights, the forward pass, the losses and the optimizers of a batch.

    Rows are the members in internal order (sorted by optimizer block, then by loss).
    """

    def __init__(self, config: NetworkConfig, task: Task, members: list[_Member], device: torch.device):
        self.config = config
        self.task = task
        self.members = members
        self.device = device
        self.n = len(members)
        self.nets = [build_network(config, seed=m.init_seed) for m in members]
        named = list(self.nets[0].named_parameters())
        self.slots, start = [], 0
        for name, p in named:
            self.slots.append(_Slot(name, tuple(p.shape), start, start + p.numel()))
            start += p.numel()
        self.n_params = start
        self.numels = [s.stop - s.start for s in self.slots]
        with torch.no_grad():
            rows = [torch.cat([p.detach().reshape(-1) for p in net.parameters()]) for net in self.nets]
            self.w = torch.stack(rows).to(device)  # (member, parameter)
        self.grad = torch.zeros_like(self.w)
        self._own_layers: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._alias_networks()

        # inputs (after the parameter-free polar stage) and targets
        self.inputs = torch.tensor(task.inputs, device=device)  # (sample, input)
        self.x = _polar(self.inputs) if config.architecture == "polar" else self.inputs  # after the polar stage
        self.t = torch.tensor(task.targets, device=device)  # (sample, output)
        self.xT = self.x.T.contiguous()  # (input, sample)
        self.tT = self.t.T.contiguous()  # (output, sample)
        self.t_argmax = self.t.argmax(-1)  # (sample,)
        self.t_positive = self.tT > 0.5  # (output, sample)

        # losses: contiguous runs of rows with the same loss formula
        self.segments: list[tuple[int, int, Loss]] = []
        for r, m in enumerate(members):
            key = (m.loss.name, m.loss.output)
            if self.segments and (self.segments[-1][2].name, self.segments[-1][2].output) == key:
                self.segments[-1] = (self.segments[-1][0], r + 1, self.segments[-1][2])
            else:
                self.segments.append((r, r + 1, m.loss))

        # the course's binary losses (sse and bce on sigmoid outputs), however the rows interleave them:
        # one pass over every member (loss_terms), not one per run of rows (4 runs in a 2 x 2 grid)
        kinds = {loss.output for _, _, loss in self.segments}
        #: the one output non-linearity of every member (None if they differ): ``activations`` in one pass
        self.output_kind = kinds.pop() if len(kinds) == 1 else None
        names = {loss.name for _, _, loss in self.segments}
        self.sigmoid_family = len(self.segments) > 1 and names <= {"sse", "bce"} and self.output_kind == "sigmoid"
        if self.sigmoid_family:
            is_sse = [m.loss.name == "sse" for m in members]
            self.sse_rows = torch.tensor(is_sse, device=device).view(-1, 1, 1)  # (member, 1, 1)
            self.half = torch.tensor([0.5 if x else 1.0 for x in is_sse], device=device)  # sse's 0.5, bce's 1

        # weight-decay penalty: which slots each member decays, and lambda per element
        lam = [m.loss.weight_decay for m in members]
        self.any_decay = any(lam)
        if self.any_decay:
            decays = torch.tensor(
                [[m.loss.decay_biases or len(s.shape) >= 2 for s in self.slots] for m in members], device=device
            )  # (member, slot), bool
            # per slot: True (decayed by every member), False (by none) or the (member,) bool mask
            self.slot_decay = [True if bool(c.all()) else False if not bool(c.any()) else c for c in decays.T]
            per_element = torch.repeat_interleave(decays.float(), torch.tensor(self.numels, device=device), dim=1)
            self.lam_mask = _column(lam, device) * per_element  # (member, parameter)
            self.half_lam = torch.tensor([0.5 * x for x in lam], dtype=torch.float32, device=device)
            self.has_decay = torch.tensor([x > 0 for x in lam], device=device)

        # optimizers: one per contiguous block of rows with the same formula
        self.optimizers: list[_Optimizer] = []
        keys = [_group_key(m.optimizer, m.options) for m in members]
        r = 0
        while r < self.n:
            end = r
            while end < self.n and keys[end] == keys[r]:
                end += 1
            rows = slice(r, end)
            opt = _make_optimizer(keys[r], rows, [m.options for m in members[rows]], self.n_params, device)
            opt.p, opt.g = self.w[rows], self.grad[rows]
            self.optimizers.append(opt)
            r = end
        self.block_of = [(opt, i) for opt in self.optimizers for i in range(opt.rows.stop - opt.rows.start)]

    # -- member views ----------------------------------------------------------------

    def _alias_networks(self) -> None:
        """Make each member's Network parameters views of its row of the batched weights."""
        for r, net in enumerate(self.nets):
            for s, p in zip(self.slots, net.parameters()):
                p.data = self.w[r, s.start : s.stop].view(s.shape)

    def attach_grads(self, r: int) -> None:
        """Give member ``r``'s Network parameters ``.grad`` views of its row of the gradient."""
        for s, p in zip(self.slots, self.nets[r].parameters()):
            p.grad = self.grad[r, s.start : s.stop].view(s.shape)

    def detach_member(self, r: int, *, keep_grads: bool) -> None:
        """Give member ``r``'s Network its own copies of its weights (and gradients), freeing it from the batch."""
        for s, p in zip(self.slots, self.nets[r].parameters()):
            p.data = self.w[r, s.start : s.stop].view(s.shape).clone()
            p.grad = self.grad[r, s.start : s.stop].view(s.shape).clone() if keep_grads else None

    def state_views(self, r: int) -> dict[str, dict[str, torch.Tensor]]:
        """Member ``r``'s optimizer state per parameter name, as views shaped like the parameter."""
        opt, i = self.block_of[r]
        rows = opt.member_state(i)
        out = {}
        for s in self.slots:
            out[s.name] = {k: (v if v.dim() == 0 else v[s.start : s.stop].view(s.shape)) for k, v in rows.items()}
        return out

    # -- computation -----------------------------------------------------------------

    def forward(
        self,
        flat: torch.Tensor,
        x: torch.Tensor,
        keep: bool = False,
        out: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits of every member, in unit-major layout (the fast one for batched products here).

        Parameters
        ----------
        flat : Tensor of shape (member, parameter)
        x : Tensor of shape (input, sample) shared by every member, or (member, input, sample)
            Inputs after the polar stage, transposed.
        keep : bool
            Return the layer outputs too.
        out : dict of str to Tensor of shape (member, unit, sample), optional
            Where to write some layer outputs (keys as in ``MemberState.layer_outputs``, e.g.
            ``'hidden1'``, ``'output'``): the pass computes them there instead of in new tensors
            (a recorder's block buffers: no copy, no allocation).  Implies ``keep``.

        Returns
        -------
        logits : Tensor of shape (member, output, sample)
        outputs : dict of str to Tensor of shape (member, unit, sample)
            Empty unless ``keep`` or ``out``; see ``MemberState.layer_outputs``.
        """
        logits, trace = self._trace(self._layers(flat), x, out)
        return logits, (self._outputs(trace, logits) if keep or out else {})

    def _layers(self, flat: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each layer's (weight, bias) views of ``flat``: (member, out, in) and (member, out)."""
        m = flat.shape[0]
        params = flat.split_with_sizes(self.numels, dim=1)
        return [(params[i].view(m, *self.slots[i].shape), params[i + 1]) for i in range(0, len(params), 2)]

    def _trace(
        self,
        layers: list[tuple[torch.Tensor, torch.Tensor]],
        x: torch.Tensor,
        out: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, ...]]]:
        """The forward pass through ``layers`` (from ``_layers``), keeping each layer's (input,
        pre-activation, output) for the backward pass.

        Returns the logits, shape (member, output, sample), and one (input, pre, output) triple per
        hidden layer, then the output layer's (input,); inputs of shape (input, sample) (the shared
        inputs of the first layer) or (member, input, sample), the rest (member, unit, sample).
        ``out`` as in :meth:`forward`.
        """
        m = layers[0][0].shape[0]
        cfg = self.config
        out = out or {}
        trace: list[tuple[torch.Tensor, ...]] = []
        seen, h = [x], x
        for k, ((w, b), act) in enumerate(zip(layers, cfg.activations), start=1):
            inp = _cat_units(seen, m) if cfg.shortcut and len(seen) > 1 else h
            pre = _linear(inp, w, b, out.get(f"hidden{k}.linear"))
            fn = _ACTIVATIONS[act]
            dest = out.get(f"hidden{k}")
            if fn is not None:
                h = fn(pre, dest)
            elif dest is not None:  # linear: the layer's output is its pre-activation
                h = dest.copy_(pre)
            else:
                h = pre
            seen.append(h)
            trace.append((inp, pre, h))
        inp = _cat_units(seen, m) if cfg.shortcut and len(seen) > 1 else h
        trace.append((inp,))
        w, b = layers[-1]
        return _linear(inp, w, b, out.get("output")), trace

    def _outputs(self, trace: list[tuple[torch.Tensor, ...]], logits: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs: dict[str, torch.Tensor] = {}
        for k, (_, pre, h) in enumerate(trace[:-1]):
            outputs[f"hidden{k + 1}.linear"], outputs[f"hidden{k + 1}"] = pre, h
        outputs["output"] = logits
        return outputs

    def gradient(
        self,
        x: torch.Tensor,
        targets: torch.Tensor,
        keep: bool = False,
        out: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """One forward and one hand-written backward pass: fill ``self.grad`` with d(data + penalty)/dw.

        The backward pass is the chain rule written out for this architecture
        (the same products autograd would take, without its graph): per layer
        one batched product for the weights' gradient, one sum over samples for
        the biases', one product back to the layer's input.

        Parameters
        ----------
        x : Tensor of shape (input, sample) or (member, input, sample)
        targets : Tensor of shape (output, sample) or (member, output, sample)
        keep, out
            As in :meth:`forward`.

        Returns
        -------
        data : Tensor of shape (member,)
            Each member's data loss.
        logits : Tensor of shape (member, output, sample)
        outputs : dict of str to Tensor of shape (member, unit, sample)
            Empty unless ``keep`` or ``out``.
        z : Tensor of shape (member, output, sample)
            The outputs z = f(logits) of each member's loss (``out['z']`` when given).
        """
        m = self.w.shape[0]
        cfg = self.config
        if self._own_layers is None:  # views of self.w, which is only ever updated in place
            self._own_layers = self._layers(self.w)
        layers = self._own_layers
        logits, trace = self._trace(layers, x, out)
        data, d, z = self.loss_terms(logits, targets, out.get("z") if out else None)
        grads: list[torch.Tensor] = []  # in reverse slot order
        widths = [x.shape[-2]] + [h.shape[1] for _, _, h in trace[:-1]]  # units of each entry of `seen`
        d_seen: list[torch.Tensor | None] = [None] * len(widths)  # d loss / d seen[j], for j >= 1
        for k in range(len(layers) - 1, -1, -1):
            inp = trace[k][0]
            if k < len(layers) - 1:  # a hidden layer: through its activation
                _, pre, h = trace[k]
                dh = d_seen[k + 1]
                d = _ACTIVATION_GRADS[cfg.activations[k]](dh, h) if dh is not None else torch.zeros_like(pre)
            w, _ = layers[k]
            grads.append(d.sum(dim=2))
            if inp.dim() == 2:
                inp = inp.expand(m, *inp.shape)
            grads.append(torch.bmm(d, inp.transpose(1, 2)))
            if k == 0:  # the first layer reads the inputs only: nothing to pass back
                continue
            # back to the hidden outputs this layer read: seen[k] alone, or seen[1..k] with shortcuts
            first = 1 if cfg.shortcut else k
            skip = widths[0] if cfg.shortcut else 0  # the inputs' columns: no gradient needed
            w_read = w[:, :, skip:].transpose(1, 2)  # (member, units read, out)
            # (member, units read, sample); one output unit: an outer product, the same single products as bmm's
            d_in = w_read * d if w_read.shape[2] == 1 else torch.bmm(w_read, d)
            parts = d_in.split_with_sizes(widths[first : k + 1], dim=1) if k > first else (d_in,)
            for j, part in zip(range(first, k + 1), parts):
                d_seen[j] = part if d_seen[j] is None else d_seen[j] + part
        torch.cat([g.reshape(m, -1) for g in reversed(grads)], dim=1, out=self.grad)
        if self.any_decay:
            self.grad.addcmul_(self.w, self.lam_mask)
        return data, logits, (self._outputs(trace, logits) if keep or out else {}), z

    def _by_loss(self, logits: torch.Tensor) -> list[tuple[torch.Tensor, slice, Loss]]:
        """``logits`` (..., member, output, sample) cut into the runs of members that share a loss formula
        (one split along the member dimension)."""
        if len(self.segments) == 1:
            return [(logits, slice(None), self.segments[0][2])]
        parts = torch.split(logits, [b - a for a, b, _ in self.segments], dim=-3)
        return [(part, slice(a, b), loss) for part, (a, b, loss) in zip(parts, self.segments)]

    def data_losses(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Each member's data loss (``Loss.data_loss``'s formula), shape (member,).

        ``logits`` has shape (member, output, sample), ``targets`` (output, sample)
        or (member, output, sample).
        """
        parts = []
        for s, rows, loss in self._by_loss(logits):
            t = targets if targets.dim() == 2 else targets[rows]
            n = max(s.shape[2], 1)
            if loss.name == "softmax":
                parts.append(-(t * F.log_softmax(s, dim=1)).sum(dim=(1, 2)) / n)
            elif loss.name == "bce":
                bce = F.binary_cross_entropy_with_logits(s, t.expand_as(s), reduction="none")
                parts.append(bce.sum(dim=(1, 2)) / n)
            else:
                z = torch.sigmoid(s) if loss.output == "sigmoid" else s
                parts.append(0.5 * ((t - z) ** 2).sum(dim=(1, 2)) / n)
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def loss_terms(
        self, logits: torch.Tensor, targets: torch.Tensor, z_out: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each member's data loss, its gradient with respect to the logits, and the outputs z, in one pass.

        The data loss is ``data_losses``'s; the gradient, with g = d loss / d z = (z - t) / n:
        softmax: g - softmax(s) sum_k g_k (g = -t / n here); bce: (sigmoid(s) - t) / n; sse:
        g f'(s), f'(s) = z (1 - z) for sigmoid outputs, 1 for linear ones; each multiplied by 1/n
        where autograd multiplies (the same rounding); z = f(s) is ``activations``'s.  One pass
        computes each output non-linearity once (the three apart cost ~0.1 ms an epoch in small
        operations for a batch of 32 spiral nets).

        Parameters
        ----------
        logits : Tensor of shape (member, output, sample)
        targets : Tensor of shape (output, sample) or (member, output, sample)
        z_out : Tensor of shape (member, output, sample), optional
            Where to write z.

        Returns
        -------
        data : Tensor of shape (member,)
        d : Tensor of shape (member, output, sample)
        z : Tensor of shape (member, output, sample)
        """
        if self.sigmoid_family:
            return self._sigmoid_loss_terms(logits, targets, z_out)
        return self._loss_terms_by_segment(logits, targets, z_out)

    def _sigmoid_loss_terms(
        self, logits: torch.Tensor, targets: torch.Tensor, z_out: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``loss_terms`` for members that all have sigmoid outputs and the loss sse or bce: each
        operation once over every member, then the sse rows' and the bce rows' results picked by
        ``torch.where``.  Element by element the formulas of ``_loss_terms_by_segment`` ((0.5 S) / n
        and S / n, x 0.5 and x 1 being exact); torch's vector kernels round the last elements of a
        tensor apart, so a value may differ from the run-by-run one in its last bit (tested).
        """
        n = max(logits.shape[2], 1)
        t = targets.expand_as(logits)
        z = torch.sigmoid(logits) if z_out is None else torch.sigmoid(logits, out=z_out)
        diff = z - t
        bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
        data = torch.where(self.sse_rows, diff.square(), bce).sum(dim=(1, 2)).mul_(self.half).div_(n)
        d = diff.mul_(1.0 / n)  # bce's gradient; sse's goes on through the sigmoid
        d = torch.where(self.sse_rows, torch.ops.aten.sigmoid_backward(d, z), d)
        return data, d, z

    def _loss_terms_by_segment(
        self, logits: torch.Tensor, targets: torch.Tensor, z_out: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``loss_terms``, one run of rows with the same loss at a time (any mix of losses)."""
        data, grads, zs = [], [], []
        for s, rows, loss in self._by_loss(logits):
            t = targets if targets.dim() == 2 else targets[rows]
            n = max(s.shape[2], 1)
            inv_n = 1.0 / n
            z = _output(s, loss.output)
            if loss.name == "softmax":
                data.append(-(t * F.log_softmax(s, dim=1)).sum(dim=(1, 2)) / n)
                g = t * -inv_n
                p = z if loss.output == "softmax" else torch.softmax(s, dim=1)
                grads.append(g - p * g.sum(dim=-2, keepdim=True))
            elif loss.name == "bce":
                bce = F.binary_cross_entropy_with_logits(s, t.expand_as(s), reduction="none")
                data.append(bce.sum(dim=(1, 2)) / n)
                grads.append(((z if loss.output == "sigmoid" else torch.sigmoid(s)) - t).mul_(inv_n))
            else:  # sse: 0.5 sum (z - t)^2, through the sigmoid or a linear output
                diff = z - t
                data.append(0.5 * (diff**2).sum(dim=(1, 2)) / n)
                d = diff.mul_(inv_n)
                grads.append(torch.ops.aten.sigmoid_backward(d, z) if loss.output == "sigmoid" else d)
            zs.append(z)
        if len(zs) == 1:
            z = zs[0] if z_out is None else z_out.copy_(zs[0])
            return data[0], grads[0], z
        z = torch.cat(zs, out=z_out) if z_out is not None else torch.cat(zs)
        return torch.cat(data), torch.cat(grads), z

    def activations(self, logits: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Each member's outputs z = f(s) under its own loss (``Loss.activation``).

        ``logits`` has shape (member, output, sample), or (epoch, member, output, sample) for a
        block of epochs; z has the same shape (written into ``out`` when given).
        """
        if self.output_kind is not None:  # one pass (the same values as loss_terms' z, which also takes one)
            z = _output(logits, self.output_kind)
            return z if out is None else out.copy_(z)
        parts = [_output(s, loss.output) for s, _, loss in self._by_loss(logits)]
        if out is not None:
            return torch.cat(parts, dim=-3, out=out) if len(parts) > 1 else out.copy_(parts[0])
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-3)

    def accuracy(self, z: torch.Tensor) -> torch.Tensor:
        """``models.accuracy`` per member, shape (member,); z of shape (member, output, sample)."""
        kind = self.task.kind
        if kind == "regression":
            return torch.full((z.shape[0],), math.nan, device=z.device)
        if kind == "multiclass":
            return (z.argmax(1) == self.t_argmax).float().mean(-1)
        return ((z > 0.5) == self.t_positive).all(dim=1).float().mean(-1)

    def penalty(self) -> torch.Tensor:
        """Each member's (lambda/2) sum w^2 over its decayed parameters, shape (member,)."""
        if not self.any_decay:
            return torch.zeros(self.n, device=self.device)
        sq = self.w * self.w
        total: Any = 0  # summed slot by slot in named_parameters() order, as Loss.penalty sums
        zero = torch.zeros((), device=self.device)
        for decayed, s in zip(self.slot_decay, self.slots):
            if decayed is True:
                total = total + sq[:, s.start : s.stop].sum(dim=1)
            elif decayed is not False:
                total = total + torch.where(decayed, sq[:, s.start : s.stop].sum(dim=1), zero)
        return torch.where(self.has_decay, self.half_lam * total, zero)

    def step(self) -> None:
        with torch.no_grad():
            for opt in self.optimizers:
                opt.step(opt.p, opt.g)

    def freeze(self, r: int, *, reset: bool) -> None:
        """Stop updating member ``r``; ``reset`` zeroes its weights and state (non-finite after a divergence)."""
        opt, i = self.block_of[r]
        opt.freeze(i, reset=reset)
        if reset:  # finite zeros: lr 0 then keeps the row at 0 (a NaN row would stay NaN even at lr 0)
            self.w[r].zero_()
            self.grad[r].zero_()


def _output(s: torch.Tensor, kind: str) -> torch.Tensor:
    """A loss's output non-linearity of logits ``s`` (..., output, sample): sigmoid, softmax over outputs, or none."""
    return torch.sigmoid(s) if kind == "sigmoid" else torch.softmax(s, dim=-2) if kind == "softmax" else s


def _linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """W h + b for every member: h (in, sample) or (member, in, sample), w (member, out, in), b (member, out).

    Returns a Tensor of shape (member, out, sample): nn.Linear's x W^T + b, transposed (written
    into ``out`` when given).
    """
    if h.dim() == 2:
        h = h.expand(w.shape[0], *h.shape)
    if out is None:
        return torch.baddbmm(b.unsqueeze(2), w, h)
    return torch.baddbmm(b.unsqueeze(2), w, h, out=out)


def _cat_units(seen: list[torch.Tensor], m: int) -> torch.Tensor:
    """A shortcut layer's input: the inputs and every earlier hidden layer's outputs, along units."""
    return torch.cat([s.expand(m, *s.shape) if s.dim() == 2 else s for s in seen], dim=1)


# ----------------------------------------------------------------------------- the loop


def train_batched(
    config: NetworkConfig | Mapping[str, Any],
    task: Task,
    members: Sequence[MemberSpec],
    *,
    epochs: int = 1000,
    batch_size: int | None = None,
    stop_loss: float | None = None,
    stop_accuracy: float | None = None,
    callbacks: Sequence[Callback | Sequence[Callback] | None] = (),
    device: str | torch.device = "cpu",
    num_threads: int | str = "auto",
    progress: bool = False,
    observer: Callable[[Any, int, Mapping[str, torch.Tensor]], None] | None = None,
) -> list[TrainResult]:
    """Train many runs of one architecture at once, each as ``models.train`` would train it alone.

    Parameters
    ----------
    config : NetworkConfig or dict
        The architecture every member shares ('mlp' or 'polar', any hidden
        sizes, activations, shortcuts).
    task : Task
    members : sequence of MemberSpec
        One per run: loss, optimizer, learning rate, hyperparameters, weight
        decay, seeds.
    epochs : int
        Number of epochs of updates; epochs 0..epochs are reported.
    batch_size : int, optional
        Mini-batch size, shared by every member; None (the default) or >=
        n_samples is full batch.  Each member's batch order comes from its own
        ``seed``, exactly as in ``train``.
    stop_loss, stop_accuracy : float, optional
        ``train``'s stop rules, applied to each member apart: a member that
        reaches them stops (status 'converged') while the others go on.
    callbacks : sequence, optional
        One entry per member: None, a ``models.Callback`` or a list of them.
        Each sees a :class:`MemberState` of its own member, with ``train``'s
        hook order: ``on_train_begin``, then ``on_epoch_begin`` /
        ``on_epoch_end`` for each of the member's epochs, then
        ``on_train_end`` as soon as the member ends (or when the batch fails).
    device : str or torch.device
    num_threads : int or 'auto'
        Torch CPU threads while training; 'auto' uses 1 when the whole batch
        has fewer than 100,000 parameters.
    progress : bool
        Show a tqdm progress bar with an ETA.
    observer : callable, optional
        Called once per epoch with ``(run, epoch, layer_outputs)`` after every
        member's metrics, status and callbacks of that epoch and before the
        members that end are frozen: ``run`` is the batch's internal state (the
        stacked weights, gradients and optimizer state, in internal member
        order), ``layer_outputs`` the layer outputs of every member, each of
        shape (member, unit, sample).  For recorders that copy every member at
        once (``models.batch_recorder.BatchRecorder``); per-member callbacks
        cost a Python call chain per member and epoch.  An observer with a
        method ``outputs_for(run, epoch)`` is asked before each epoch where
        that epoch's forward pass should write its layer outputs: a dict of
        output name (as in ``layer_outputs``, and 'z' for the outputs
        z = f(logits) of each member's loss) to a tensor of shape (member,
        unit, sample), or None for new tensors.

    Returns
    -------
    list of TrainResult
        One per member, in the order of ``members``: its metrics (``train``'s
        columns and epochs), status ('complete', 'converged', 'stopped' or
        'diverged'), config (the one ``train`` would report) and network, a
        ``models.Network`` with the member's final weights.  A diverging member
        does not raise: it stops at the first non-finite loss, as in ``train``,
        while the others go on.

    Raises
    ------
    ParameterError
        For a bad member (e.g. optimizer 'lbfgs'), a config that does not fit
        the task, or bad training settings.

    Notes
    -----
    A member ends where ``train(config, task, loss=..., optimizer=..., lr=...,
    optimizer_options=..., weight_decay=..., seed=..., init_seed=...)`` ends up
    to float rounding: batched matrix products and vectorised optimizer
    updates sum in another order than the per-run ones, and the difference
    grows with the epochs (compare over ~100 epochs, not thousands).
    """
    epochs, batch_size, full_batch = _check_run_options(task, epochs, stop_loss, stop_accuracy, batch_size)
    config = _resolve_config(config, task)
    if isinstance(num_threads, str):
        check_choice("num_threads", num_threads, ["auto"])
    else:
        check_number("num_threads", num_threads, low=1, integer=True)
    if isinstance(callbacks, Callback):
        raise ParameterError("callbacks must hold one entry per member (None, a Callback or a list); got a Callback")
    dev = _device(device)
    specs = _resolve_members(members, task, list(callbacks))

    # internal order: by optimizer formula (contiguous blocks), then by loss formula
    order = sorted(
        range(len(specs)),
        key=lambda i: (_group_key(specs[i].optimizer, specs[i].options), specs[i].loss.name, specs[i].loss.output),
    )
    ordered = [specs[i] for i in order]
    threads_before = torch.get_num_threads()
    try:
        batch = _Batch(config, task, ordered, dev)
        if num_threads == "auto":
            num_threads = 1 if batch.n * batch.n_params < 100_000 else threads_before
        torch.set_num_threads(int(num_threads))
        run = _Run(batch, epochs, batch_size, full_batch, stop_loss, stop_accuracy)
        run.observer = observer
        run.train(progress)
    finally:
        torch.set_num_threads(threads_before)
    results: list[TrainResult | None] = [None] * len(specs)
    for r, i in enumerate(order):
        results[i] = TrainResult(
            network=batch.nets[r], metrics=run.frame(r), status=run.status[r], config=run.configs[r]
        )
    return results  # type: ignore[return-value]


class _Run:
    """The epochs of one ``train_batched`` call: statuses, metrics and callbacks per member."""

    def __init__(
        self,
        batch: _Batch,
        epochs: int,
        batch_size: int | None,
        full_batch: bool,
        stop_loss: float | None,
        stop_accuracy: float | None,
    ):
        self.b = batch
        self.epochs = epochs
        self.batch_size = batch_size
        self.full_batch = full_batch
        self.stop_loss = stop_loss
        self.stop_accuracy = stop_accuracy
        n = batch.n
        self.status = ["running"] * n
        self.active = np.ones(n, dtype=bool)
        self.last_epoch = np.full(n, -1)
        self.ended = np.zeros(n, dtype=bool)  # on_train_end called (or would have been)
        self.history: list[np.ndarray] = []  # per epoch, (3, member) float32: loss, penalty, accuracy
        self._stacked = np.zeros((0, 3, n), np.float32)
        self.times: list[float] = []
        self.has_grads = False
        task, dev = batch.task, batch.device
        self.configs = [
            {
                "task": {"name": task.name, **task.options},
                "network": batch.config.to_dict(),
                "loss": m.loss.to_dict(),
                "optimizer": {"name": m.optimizer, **m.options},
                "training": {
                    "epochs": epochs,
                    "batch_size": batch_size,
                    "seed": m.seed,
                    "init_seed": m.init_seed,
                    "stop_loss": stop_loss,
                    "stop_accuracy": stop_accuracy,
                    "device": str(dev),
                },
            }
            for m in batch.members
        ]
        # each member's batch-order generator, seeded as train() seeds its own
        self.generators = [torch.Generator().manual_seed(m.seed) for m in batch.members]
        # a MemberState for each member with callbacks
        self.watched = [r for r, m in enumerate(batch.members) if m.callbacks]
        self.states: dict[int, MemberState] = {}
        for r in self.watched:
            m = batch.members[r]
            net = batch.nets[r]
            opt = get_optimizer(m.optimizer, net.parameters(), **m.options)
            self.states[r] = MemberState(
                network=net,
                task=task,
                loss=m.loss,
                optimizer=opt,
                config=self.configs[r],
                epochs=epochs,
                full_batch=full_batch,
                inputs=batch.inputs,
                device=dev,
                generator=self.generators[r],
                member=m.index,
                n_members=n,
                parameters=dict(net.named_parameters()),
            )
        self.observer: Callable[[Any, int, Mapping[str, torch.Tensor]], None] | None = None
        self.start = time.perf_counter()

    # -- results ---------------------------------------------------------------------

    def frame(self, r: int) -> pd.DataFrame:
        """Member ``r``'s metrics, as ``train`` reports them."""
        k = int(self.last_epoch[r]) + 1
        if len(self._stacked) != len(self.history):
            self._stacked = np.stack(self.history) if self.history else np.zeros((0, 3, self.b.n), np.float32)
        values = self._stacked[:k, :, r].astype(np.float64)
        df = pd.DataFrame(
            {
                "loss": values[:, 0],
                "penalty": values[:, 1],
                "total": values[:, 0] + values[:, 1],
                "accuracy": values[:, 2],
                "time": np.asarray(self.times[:k], dtype=np.float64),
            },
            index=pd.Index(np.arange(k, dtype=np.int64), name="epoch"),
        )
        return df[list(METRICS)]

    # -- one epoch -------------------------------------------------------------------

    def _full_batch_epoch(
        self, keep: bool, out: Mapping[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        b = self.b
        with torch.no_grad():
            data, _, outputs, z = b.gradient(b.xT, b.tT, keep=keep, out=out)
            acc = b.accuracy(z)
            return torch.stack([data, b.penalty(), acc]), outputs

    def _evaluate(
        self, keep: bool, out: Mapping[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        b = self.b
        with torch.no_grad():
            logits, outputs = b.forward(b.w, b.xT, keep=keep, out=out)
            acc = b.accuracy(b.activations(logits, out.get("z") if out else None))
            return torch.stack([b.data_losses(logits, b.tT), b.penalty(), acc]), outputs

    def _minibatch_epoch(self) -> torch.Tensor:
        b = self.b
        n = b.x.shape[0]
        order = torch.stack([torch.randperm(n, generator=g) for g in self.generators]).to(b.device)  # (member, sample)
        total = torch.zeros(b.n, device=b.device)
        outputs = torch.empty(b.n, *b.t.shape, device=b.device)  # (member, sample, output)
        rows = torch.arange(b.n, device=b.device).unsqueeze(1)
        with torch.no_grad():
            for idx in torch.split(order, self.batch_size, dim=1):  # (member, batch)
                data, _, _, z = b.gradient(b.x[idx].transpose(1, 2), b.t[idx].transpose(1, 2))
                b.step()
                total += data * idx.shape[1]
                outputs[rows, idx] = z.transpose(1, 2)
            return torch.stack([total / n, b.penalty(), b.accuracy(outputs.transpose(1, 2))])

    # -- the loop --------------------------------------------------------------------

    def train(self, progress: bool) -> None:
        b = self.b
        try:
            for r in self.watched:
                for cb in b.members[r].callbacks:
                    cb.on_train_begin(self.states[r])
                if self.states[r].start_epoch:
                    raise ParameterError(
                        f"callbacks[{b.members[r].index}] asked to resume at epoch {self.states[r].start_epoch}; "
                        "train_batched cannot resume runs: resume each with models.train()"
                    )
            label = f"{b.task.name} x{b.n} batched"
            with tqdm(total=self.epochs, disable=not progress, unit="epoch", desc=label, leave=False) as bar:
                for epoch in range(self.epochs + 1):
                    self._epoch(epoch)
                    if epoch:
                        bar.update(1)
                    if not self.active.any():
                        break
                    if self.full_batch:
                        b.step()
        except BaseException:
            # as train's: every member not yet ended ends 'interrupted' or 'failed', its callbacks told so
            status = "interrupted" if isinstance(sys.exc_info()[1], (KeyboardInterrupt, SystemExit)) else "failed"
            for r in np.flatnonzero(~self.ended):
                self.status[r] = status
                self.active[r] = False
                self.last_epoch[r] = len(self.history) - 1
                b.detach_member(r, keep_grads=self.has_grads)
                if r in self.states:
                    self.states[r].status = status
                    for cb in b.members[r].callbacks:
                        cb.on_train_end(self.states[r])
            raise

    def _epoch(self, epoch: int) -> None:
        b = self.b
        watched = [r for r in self.watched if self.active[r]]
        for r in watched:
            state = self.states[r]
            state.epoch, state.layer_outputs = epoch, {}
            for cb in b.members[r].callbacks:
                cb.on_epoch_begin(state)
        keep = bool(watched) or self.observer is not None
        outputs_for = getattr(self.observer, "outputs_for", None)
        out = outputs_for(self, epoch) if outputs_for is not None else None
        if self.full_batch:
            values, outputs = self._full_batch_epoch(keep, out)
            self.has_grads = True
        elif epoch == 0:
            values, outputs = self._evaluate(keep, out)
        else:
            values = self._minibatch_epoch()
            self.has_grads = True
            outputs = self._evaluate(True, out)[1] if keep else {}
        values = values.cpu().numpy()
        now = time.perf_counter() - self.start
        self.history.append(values)
        self.times.append(now)

        loss, penalty, acc = values.astype(np.float64)
        diverged = ~np.isfinite(loss + penalty)
        converged = np.zeros(b.n, dtype=bool)
        if self.stop_loss is not None:
            converged |= loss < self.stop_loss
        if self.stop_accuracy is not None:
            converged |= acc >= self.stop_accuracy
        ending = self.active & (diverged | converged | (epoch == self.epochs))
        for r in np.flatnonzero(ending):
            self.status[r] = "diverged" if diverged[r] else "converged" if converged[r] else "complete"
        if self.has_grads:
            for r in watched:
                if not self.states[r].gradients:
                    b.attach_grads(r)
                    self.states[r].gradients = {n: p.grad for n, p in b.nets[r].named_parameters()}
        for r in watched:
            state = self.states[r]
            state.status = self.status[r]
            if state.status == "diverged" and self.full_batch:  # train() skips backward on a non-finite loss
                for p in b.nets[r].parameters():
                    p.grad = None
                state.gradients = {}
            state.metrics = {
                "loss": float(loss[r]),
                "penalty": float(penalty[r]),
                "total": float(loss[r] + penalty[r]),
                "accuracy": float(acc[r]),
                "time": now,
            }
            state.layer_outputs = {k: v[r].T for k, v in outputs.items()}
            if self.b.config.architecture == "polar":
                state.layer_outputs = {"polar": b.x, **state.layer_outputs}
            self._sync_optimizer_state(r)
            for cb in b.members[r].callbacks:
                cb.on_epoch_end(state)
            if state.status == "running" and state.stop:
                self.status[r] = state.status = "stopped"
                ending[r] = True
        if self.observer is not None:
            self.observer(self, epoch, outputs)
        for r in np.flatnonzero(ending):
            self._end(r, epoch)

    def _sync_optimizer_state(self, r: int) -> None:
        """Once the first step is taken, fill the member's torch optimizer state with views of the batched state."""
        opt = self.states[r].optimizer
        if opt.state:
            return
        views = self.b.state_views(r)
        for name, p in self.b.nets[r].named_parameters():
            if views[name]:
                opt.state[p] = views[name]

    def _end(self, r: int, epoch: int) -> None:
        """Member ``r`` ended at ``epoch``: freeze its row, give its network its own weights, tell its callbacks."""
        b = self.b
        self.active[r] = False
        self.ended[r] = True
        self.last_epoch[r] = epoch
        diverged = self.status[r] == "diverged"
        b.detach_member(r, keep_grads=self.has_grads and not diverged)
        if r in self.states:
            state = self.states[r]
            opt = state.optimizer
            for p in list(opt.state):
                opt.state[p] = {k: v.clone() for k, v in opt.state[p].items()}
            state.parameters = dict(b.nets[r].named_parameters())
            state.gradients = {n: p.grad for n, p in b.nets[r].named_parameters() if p.grad is not None}
        b.freeze(r, reset=diverged)
        if r in self.states:
            for cb in b.members[r].callbacks:
                cb.on_train_end(self.states[r])
