"""The Recorder: hidden-layer activations, parameters, norms and metrics, every scheduled epoch, into HDF5.

Three ways to use it:

- as a callback of ``train``: ``train(net, task, callbacks=[Recorder("run.h5")])``;
- from a hand-written loop, in three lines::

      with Recorder("run.h5", probe=x_probe, epochs=n_epochs) as rec:   # open
          for epoch in range(n_epochs + 1):
              ...                                                       # your training step
              rec.record(model, epoch, metrics={"loss": loss.item()}, optimizer=opt)

- on CUDA: copies leave the device asynchronously (pinned host buffers and a
  CUDA event); the writer thread waits for the event, not the training thread.

Forward hooks on named modules (or, for hud's networks, ``Network.tap``)
capture each layer's output.  In full-batch training whose probe set is the
training set, the training forward pass itself is captured (no extra probe
pass); otherwise a probe pass runs under ``torch.no_grad()`` in eval mode.
Each recorded epoch is copied into a row of a block buffer (a region per
recorded array); full buffers go to a writer thread, which computes the norms
and the output non-linearity, appends the rows, commits every ``commit_every``
seconds (see ``data.recording.BackgroundWriter``) and hands the buffer back.
"""

from __future__ import annotations

import atexit
import functools
import json
import math
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from data import schema as S
from data.errors import ParameterError, RecordingError, check_choice, check_number
from data.recording import (
    BackgroundWriter,
    Recording,
    RecordingTemplate,
    RecordingWriter,
    bytes_on_disk,
    chunk_rows,
    expected_size,
    format_bytes,
    free_space,
    warn_if_no_room,
)
from data.tasks import Probe, Task

from .networks import Dense, Network, NetworkConfig, build_network
from .optim import STATE_KEYS, state_keys
from .training import METRICS, Callback, TrainState

__all__ = ["Recorder", "Schedule", "COURSE_EPOCHS", "load_network"]

#: the course's plot epochs: 50, then 1, 1.5, 2, 3, 5, 7 times each power of ten from 100 on
COURSE_MANTISSAS = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
COURSE_EPOCHS = (50, 100, 150, 200, 300, 500, 700, 1000, 1500, 2000, 3000, 5000, 7000, 10000)
_ACTIVATION_MODULES = (
    nn.Tanh,
    nn.Sigmoid,
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Softplus,
    nn.Hardtanh,
    nn.ReLU6,
    nn.Mish,
    nn.SELU,
    nn.CELU,
    nn.Softsign,
    nn.Tanhshrink,
)
_BLOCK_BYTES = 8 << 20  # a block buffer: the epochs the writer gets at a time (a row at least)...
_BLOCK_ROWS = 1024  # ...and at most this many
_SPARE_BLOCKS = 2  # written block buffers kept for reuse
_TAIL_ROWS = 16  # when the last epoch is known, a block is handed over this many epochs before it
_SCALARS = "scalars"  # a block's parameters, gradients and optimizer state
_TEMPLATE_PROBE_BYTES = 1 << 20  # a Recorder's files start from a cached template below this probe size
_MODE_DEPENDENT = (nn.Dropout, nn.modules.batchnorm._BatchNorm, nn.AlphaDropout)
_OPEN: weakref.WeakSet[Recorder] = weakref.WeakSet()


class _Signals:
    """SIGTERM or SIGINT arriving while a Recorder method runs waits until it returns, so no block is torn."""

    depth = 0  # Recorder methods running in the main thread
    pending: int | None = None  # a signal that arrived meanwhile


def _raise_for(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)  # unwinds through train()/with-blocks, which close the file


def _on_signal(signum: int, frame: Any) -> None:
    if _Signals.depth:
        _Signals.pending = signum
    else:
        _raise_for(signum)


_MAIN_THREAD = threading.main_thread().ident
_clock = time.perf_counter  # when commits are due (a test's to replace)


def _whole(method: Any) -> Any:
    """Decorator: SIGTERM/SIGINT handled by the Recorder take effect when ``method`` returns."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() != _MAIN_THREAD:
            return method(*args, **kwargs)
        _Signals.depth += 1
        try:
            result = method(*args, **kwargs)
        finally:
            _Signals.depth -= 1
        if _Signals.pending is not None and not _Signals.depth:
            signum, _Signals.pending = _Signals.pending, None
            _raise_for(signum)
        return result

    return wrapper


class Schedule:
    """Which epochs get recorded.  Epoch 0 and the last epoch always are.

    Parameters
    ----------
    spec : 'every', int, 'log', 'course', or sequence of int
        'every' epoch; every k epochs (an int k >= 1); 'log': about ten epochs
        per decade (1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, ...); 'course': the
        course's plot epochs (50, 100, 150, 200, 300, 500, 700, 1000, 1500, ...);
        or an explicit list of epochs.
    """

    def __init__(self, spec: str | int | Sequence[int] = "every") -> None:
        self.spec = spec
        if isinstance(spec, bool):
            raise ParameterError(
                f"schedule must be 'every', 'log', 'course', an int >= 1 or a list of epochs; got {spec!r}"
            )
        if isinstance(spec, str):
            check_choice("schedule", spec, ("every", "log", "course"))
            self._explicit: frozenset[int] | None = None
        elif isinstance(spec, (int, np.integer)):
            check_number("schedule", int(spec), low=1, integer=True)
            self.spec = int(spec)
            self._explicit = None
        else:
            try:
                epochs = [int(e) for e in spec]
            except (TypeError, ValueError):
                raise ParameterError(
                    f"schedule must be 'every', 'log', 'course', an int >= 1 or a list of epochs; got {spec!r}"
                ) from None
            if any(e < 0 for e in epochs):
                raise ParameterError(f"schedule epochs must be >= 0; got {sorted(epochs)[:5]}")
            self._explicit = frozenset(epochs)
            self.spec = sorted(self._explicit)

    def __contains__(self, epoch: int) -> bool:
        if epoch == 0:
            return True
        spec = self.spec
        if self._explicit is not None:
            return epoch in self._explicit
        if spec == "every":
            return True
        if isinstance(spec, int):
            return epoch % spec == 0
        if spec == "log":
            i = round(10 * math.log10(epoch))
            return any(round(10 ** (j / 10)) == epoch for j in (i - 1, i, i + 1))
        if epoch == 50:
            return True
        if epoch < 100:
            return False
        decade = 10 ** (len(str(epoch)) - 1)
        return epoch / decade in COURSE_MANTISSAS

    def epochs(self, last: int) -> list[int]:
        """The epochs recorded in a run of ``last`` epochs (0 and ``last`` included)."""
        if self.spec == "every":
            return list(range(last + 1))
        return sorted({e for e in self._candidates(last) if e <= last and e in self} | {0, last})

    def _candidates(self, last: int) -> Iterable[int]:
        """Epochs up to ``last`` among which are all those of the schedule (a few per decade, not ``last``)."""
        if self._explicit is not None:
            return self._explicit
        if isinstance(self.spec, int):
            return range(0, last + 1, self.spec)
        if self.spec == "log":  # round(10 ** (j / 10)) for j up to one past 10 log10(last)
            return {round(10 ** (j / 10)) for j in range(-1, round(10 * math.log10(max(last, 1))) + 2)}
        return {50} | {round(m * 10**k) for k in range(2, len(str(last))) for m in COURSE_MANTISSAS}

    def count(self, last: int) -> int:
        """How many epochs a run of ``last`` epochs records: ``len(self.epochs(last))``, without the list
        for the schedules of a closed form."""
        if self.spec == "every":
            return last + 1
        if isinstance(self.spec, int):
            return last // self.spec + 1 + (last % self.spec != 0)
        return len(self.epochs(last))

    def to_json(self) -> Any:
        return self.spec


def _default_layers(model: nn.Module) -> list[str]:
    if isinstance(model, Network):
        return model.hidden_layers
    names = [name for name, m in model.named_modules() if name and isinstance(m, _ACTIVATION_MODULES)]
    if not names:
        raise ParameterError(
            "layers must be given for this model: it has no activation modules (nn.Tanh, nn.ReLU, ...) to "
            f"record by default; named modules: {', '.join(n for n, _ in model.named_modules() if n) or '(none)'}"
        )
    return names


def _flat(tensors: Sequence[torch.Tensor | None], sizes: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    parts = [
        t.detach().reshape(-1) if t is not None else like.new_full((n,), float("nan")) for t, n in zip(tensors, sizes)
    ]
    return torch.cat(parts) if parts else like.new_empty(0)


_set_grad_enabled = torch._C._set_grad_enabled


def _copy_each(dst: Sequence[torch.Tensor], src: Sequence[torch.Tensor]) -> None:  # pragma: no cover - old torch
    for d, s in zip(dst, src):
        d.copy_(s)


#: ``d.copy_(s)`` for each pair of two lists: one call (torch's foreach kernel, ~2x faster for a few small tensors)
_copy_all = getattr(torch, "_foreach_copy_", _copy_each)


def _metric_columns(metrics: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The metrics of some epochs by name.

    Parameters
    ----------
    metrics : sequence of dict of str to float
        One per epoch.

    Returns
    -------
    dict of str to ndarray of shape (epoch,)
        float64; NaN where an epoch lacks the metric.
    """
    keys = list(metrics[0]) if metrics else []
    if all(list(m) == keys for m in metrics):  # train()'s: the same names in the same order every epoch
        try:  # one conversion in numpy (a float() a value held the writer thread's GIL ~10 ms a spirals run)
            table = np.array([list(m.values()) for m in metrics], np.float64).reshape(len(metrics), len(keys))
        except (TypeError, ValueError):
            table = None
        if table is not None:
            return {key: table[:, j].copy() for j, key in enumerate(keys)}
    keys = list(dict.fromkeys(key for m in metrics for key in m))
    return {key: np.array([float(m.get(key, np.nan)) for m in metrics], np.float64) for key in keys}


def _host(t: torch.Tensor) -> torch.Tensor:
    """A host copy: asynchronous into pinned memory for a CUDA tensor (valid once ``_copies_done()``'s wait
    returns); a CPU tensor itself."""
    if t.device.type == "cpu":
        return t
    buf = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    buf.copy_(t, non_blocking=True)
    return buf


def _asynchronous(device: torch.device) -> bool:
    """Whether what is recorded on ``device`` leaves it by asynchronous copies (CUDA): the block buffer is then
    reused at once, and the writer thread, not the training thread, waits for the copies."""
    return device.type == "cuda"


def _copies_done() -> Callable[[], None]:
    """A wait, for the writer thread, on every copy enqueued so far on the current CUDA stream (an event)."""
    event = torch.cuda.Event()
    event.record()
    return event.synchronize


class _Block:
    """A block buffer: per recorded array (a layer's output, the scalars) a region of shape (row, *shape),
    a row an epoch, in one allocation; written by the training thread, read by the writer thread.

    ``rows[i]`` holds row i of every region (views made once, by ``unbind``: indexing costs ~1 us a tensor
    an epoch).
    """

    def __init__(self, pieces: Mapping[str, tuple[int, ...]], rows: int, *, dtype: torch.dtype, device: Any) -> None:
        sizes = [rows * math.prod(shape) for shape in pieces.values()]
        storage = torch.empty(sum(sizes), dtype=dtype, device=device)
        self.storage = storage
        self.regions = {
            key: region.view(rows, *shape) for (key, shape), region in zip(pieces.items(), storage.split(sizes))
        }
        self.rows = [list(row) for row in zip(*(region.unbind(0) for region in self.regions.values()))]
        self.device = storage.device


class Recorder(Callback):
    """Record hidden layers, the output, parameters, norms and metrics into one HDF5 file.

    Parameters
    ----------
    path : str or PathLike
        The recording to write (``.h5``).  An existing file is an error unless
        ``overwrite=True`` or ``resume=True``.
    layers : sequence of str, optional
        Module names (from ``model.named_modules()``) whose outputs are
        recorded.  Default: a hud network's hidden layers (``hidden1``, ...);
        for another model, its activation modules (nn.Tanh, nn.ReLU, ...).
        The network output is always recorded as the layer ``output``.
    probe : Probe, Task, array or tensor of shape (n_samples, n_inputs), optional
        The inputs whose activations are recorded.  Default under ``train``:
        the task's probe set; required when recording by hand.
    schedule : 'every', int, 'log', 'course' or list of int
        See :class:`Schedule`.
    preactivation : bool
        Also record each layer's pre-activation (a hud layer's ``linear``
        output, or the input of an activation module).
    loss : Loss, optional
        Gives the output non-linearity (sigmoid, softmax) of the recorded
        output; ``train`` supplies it.  Without it the output is the model's return.
    optimizer : torch.optim.Optimizer, optional
        Whose state norms (momentum, Adam's m and v) are recorded; ``train`` supplies it.
    config : dict, optional
        Stored as the run's config (``train`` supplies the full config).
    epochs : int, optional
        The last epoch, when recording by hand: it is then always recorded,
        the expected size can be printed, and the file's datasets are made
        whole at the start (every chunk allocated, the file sparse until
        written), which makes every later flush safe to interrupt (see
        docs/recording-format.md, "Chunks are allocated ahead").
    resume : bool
        Append to an existing recording after its last committed epoch; under
        ``train``, also restore the weights, optimizer state and RNG of that epoch.
    overwrite : bool
        Replace an existing file.
    commit_every : float
        Seconds between group commits: a SIGKILL loses at most the epochs of
        this last interval.  0 commits every epoch on its own (slower for tiny nets).
    max_buffer_bytes : int
        Memory the queue between training and the writer thread may hold.
    compression : {None, 'lzf', 'gzip'}
        Compress the recording when it is closed (it is written uncompressed: see
        ``data.recording.RecordingWriter``).
    verbose : bool
        Print the expected size on disk before recording starts.
    on_commit : callable, optional
        Called from the writer thread with the last committed epoch.

    Attributes
    ----------
    expected_size : int or None
        Bytes on disk the recording is expected to take, known once it starts when its last epoch is
        (under ``train``, or given ``epochs``); None before (and without ``epochs``).
    """

    def __init__(
        self,
        path: Any,
        *,
        layers: Sequence[str] | None = None,
        probe: Probe | Task | np.ndarray | torch.Tensor | None = None,
        schedule: str | int | Sequence[int] = "every",
        preactivation: bool = False,
        loss: Any = None,
        optimizer: torch.optim.Optimizer | None = None,
        config: Mapping[str, Any] | None = None,
        epochs: int | None = None,
        resume: bool = False,
        overwrite: bool = False,
        commit_every: float = 1.0,
        max_buffer_bytes: int = 256 << 20,
        compression: str | None = None,
        verbose: bool = True,
        on_commit: Any = None,
    ) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise ParameterError(f"path must be a file path (str or PathLike); got {type(path).__name__}")
        self.path = os.fspath(path)
        self.schedule = schedule if isinstance(schedule, Schedule) else Schedule(schedule)
        self._every = self.schedule.spec == "every"
        if layers is not None and (isinstance(layers, str) or not all(isinstance(n, str) for n in layers)):
            raise ParameterError(f"layers must be a list of module names; got {layers!r}")
        self.layers = list(layers) if layers is not None else None
        self.preactivation = bool(preactivation)
        self.loss = loss
        self.optimizer = optimizer
        self.config = dict(config) if config else None
        self.epochs = None if epochs is None else int(check_number("epochs", epochs, low=0, integer=True))
        if resume and overwrite:
            raise ParameterError("resume and overwrite must not both be true; got both")
        self.resume = bool(resume)
        self.overwrite = bool(overwrite)
        self.commit_every = float(check_number("commit_every", commit_every, low=0))
        self.max_buffer_bytes = int(check_number("max_buffer_bytes", max_buffer_bytes, low=1, integer=True))
        check_choice("compression", compression, (None, "lzf", "gzip"))
        self.compression = compression
        self.verbose = bool(verbose)
        self.on_commit = on_commit
        self._probe = self._as_probe(probe) if probe is not None else None
        self._task = probe if isinstance(probe, Task) else None  # by hand: its grid and name go in the file
        self._writer: BackgroundWriter | None = None
        self._model: nn.Module | None = None
        self._handles: list[Any] = []
        self._captured: dict[str, torch.Tensor] = {}
        self._armed = False
        self._reuse = False
        self._last_recorded = -1
        self._prev: tuple[int, torch.Tensor] | None = None
        self._flat: Any = None
        # the pending block: its rows are the first len(self._rows) rows of self._block, and
        # self._rows holds, per recorded epoch, (epoch, metrics, previous weights or None)
        self._rows: list[tuple[int, dict[str, Any], torch.Tensor | None]] = []
        self._block: _Block | None = None
        self._block_rows = 1  # rows of a block buffer
        # the epoch after which the pending rows are handed over early, when the last epoch is known: what
        # is left to write when training ends (and waits for it) is then a few rows, not up to a whole block
        self._tail = -1
        self._spare: list[_Block] = []  # block buffers the writer has written (list.append/pop: atomic)
        self._uncommitted = False  # a block went to the writer without a commit since the last commit
        self._since: float | None = None  # when the first row not yet committed was recorded
        self._written: tuple[int, np.ndarray] | None = None  # writer thread: last written epoch and its params
        self._t0 = time.perf_counter()
        self._old_handlers: dict[int, Any] = {}
        self.closed = False
        self.expected_size: int | None = None

    # ------------------------------------------------------------------ setup

    @staticmethod
    def _as_probe(probe: Any) -> Probe:
        if isinstance(probe, Task):
            return probe.probe
        if isinstance(probe, Probe):
            return probe
        if isinstance(probe, (tuple, list)) and len(probe) in (2, 3) and not np.isscalar(probe[0]):
            inputs = np.asarray(probe[0], np.float32)
            targets = np.asarray(probe[1], np.float32).reshape(len(inputs), -1)
            labels = np.asarray(probe[2], np.int64) if len(probe) == 3 else np.full(len(inputs), -1, np.int64)
            return Probe(inputs, targets, labels)
        arr = probe.detach().cpu().numpy() if isinstance(probe, torch.Tensor) else np.asarray(probe)
        if arr.ndim != 2 or arr.shape[0] < 1:
            raise ParameterError(f"probe must have shape (n_samples, n_inputs); got shape {arr.shape}")
        arr = arr.astype(np.float32)
        return Probe(arr, np.zeros((len(arr), 0), np.float32), np.full(len(arr), -1, np.int64))

    def _resolve_layers(self, model: nn.Module) -> dict[str, nn.Module]:
        modules = dict(model.named_modules())
        names = self.layers if self.layers is not None else _default_layers(model)
        out = {}
        for name in names:
            if name == "output":
                continue
            if name not in modules or not name:
                raise ParameterError(
                    f"layer {name!r} is not a module of this model; named modules: {', '.join(n for n in modules if n)}"
                )
            out[name] = modules[name]
        return out

    def _attach(self, model: nn.Module) -> None:
        self._model = model
        self._modules = self._resolve_layers(model)
        self._clone = not isinstance(model, Network)  # a user's model may modify outputs in place
        # hud's own networks store their layer outputs in a dict when asked (Network.tap), far cheaper than
        # forward hooks; any other module, or pre-activations, take hooks
        self._tap = (
            isinstance(model, Network)
            and not self.preactivation
            and all(n in model.hidden_layers for n in self._modules)
        )
        self._take = [*self._modules, *(f"{n}:pre" for n in self._modules if self.preactivation), "output"]
        if self._tap:
            model.tap = self._captured
        else:
            for name, module in self._modules.items():
                self._handles.append(module.register_forward_hook(self._hook(name)))
                if self.preactivation:
                    self._handles.append(self._pre_hook(name, module))
            self._handles.append(model.register_forward_hook(self._hook("output")))
        self._params = [(n, p) for n, p in model.named_parameters()]
        self._sizes = [p.numel() for _, p in self._params]
        self._offsets = np.concatenate([[0], np.cumsum(self._sizes)]).astype(np.int64)
        self._mode_dependent = any(isinstance(m, _MODE_DEPENDENT) for m in model.modules())
        like = self._params[0][1] if self._params else torch.zeros(0)
        self._nans = torch.full((int(self._offsets[-1]),), float("nan"), device=like.device)

    def _arm(self, on: bool) -> None:
        """Capture (or not) the layer outputs of the next forward passes.

        A hud network's tap stays on while it is recorded (it stores three
        references per pass); hooks check the flag.
        """
        self._armed = on

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if self._armed:
                out = output.detach()
                self._captured[name] = out.clone() if self._clone else out

        return hook

    def _pre_hook(self, name: str, module: nn.Module):
        key = f"{name}:pre"
        if isinstance(module, Dense):
            return module.linear.register_forward_hook(
                lambda m, i, o: self._armed and self._captured.__setitem__(key, o.detach())
            )
        if isinstance(module, _ACTIVATION_MODULES):
            return module.register_forward_pre_hook(
                lambda m, i: self._armed and self._captured.__setitem__(key, i[0].detach().clone())
            )
        raise ParameterError(
            f"preactivation=True needs each layer to be a hud layer or an activation module; "
            f"layer {name!r} is a {type(module).__name__}"
        )

    def _probe_pass(self, model: nn.Module) -> None:
        like = next(model.parameters(), None)
        x = self._probe_x
        if like is not None and (x.device != like.device or (like.is_floating_point() and x.dtype != like.dtype)):
            x = self._probe_x = x.to(like.device, like.dtype if like.is_floating_point() else x.dtype)
        was_training = model.training
        self._arm(True)
        try:
            with torch.no_grad():
                if was_training and self._mode_dependent:
                    model.eval()
                model(x)
        finally:
            self._arm(False)
            if was_training and self._mode_dependent:
                model.train()

    def _learn_layout(
        self, model: nn.Module, probe: Probe, optimizer: Any
    ) -> tuple[dict[str, tuple[int, ...]], torch.device]:
        """Attach to ``model`` and learn what a recorded epoch holds from a probe pass of two samples: each
        recorded array's shape (by capture name), the block buffers' type and layout, the optimizer's state
        keys.  Returns the shapes and the layers' device."""
        if self._model is not None:
            raise ParameterError("a Recorder records one model once; create a new Recorder for another run")
        self._attach(model)
        self.probe = probe
        self._probe_x = torch.tensor(probe.inputs[:2])
        self._probe_pass(model)  # learns the layers' widths from two samples
        n = len(probe.inputs)
        shapes = {name: (n, *t.shape[1:]) for name, t in self._captured.items()}
        # the block buffers' type: what a concatenation of the layers and parameters would have
        tensors = [*self._captured.values(), *(p for _, p in self._params)]
        self._dtype = functools.reduce(torch.promote_types, [t.dtype for t in tensors])
        self._float32 = all(t.dtype == torch.float32 for t in tensors)  # (what a cached template holds)
        device = next(iter(self._captured.values())).device
        self._captured.clear()
        self._probe_x = torch.tensor(probe.inputs)
        for name, shape in shapes.items():
            if len(shape) != 2:
                raise ParameterError(
                    f"layer {name!r} outputs shape {shape}; recorded layers must output (n_samples, n_units)"
                )
        self._layer_names = [*self._modules, "output"]
        self._opt_keys = state_keys(optimizer) if optimizer is not None else []
        self._make_layout(shapes)
        return shapes, device

    def _open(
        self,
        model: nn.Module,
        *,
        probe: Probe,
        config: Mapping[str, Any],
        grid: Any,
        epochs: int | None,
        optimizer: Any,
        metrics: Sequence[str] | None = None,
    ) -> None:
        shapes, device = self._learn_layout(model, probe, optimizer)
        float32 = self._float32
        modules = {name: name for name in self._modules}
        modules["output"] = "" if not isinstance(model, Network) else "output"
        attrs = {
            S.ROOT_ATTRS.SCHEDULE: self.schedule.to_json(),
            S.ROOT_ATTRS.LAYERS: self._layer_names,
            S.ROOT_ATTRS.MODULES: modules,
        }
        mode = "resume" if self.resume else ("overwrite" if self.overwrite else "create")
        if mode == "resume" and not os.path.exists(self.path):
            mode = "create"
        common = {
            "probe": probe,
            "grid": grid,
            "attrs": attrs,
            "parameter_names": [n for n, _ in self._params],
        }
        # a template only pays for small probe sets: its key hashes the probe (50 ms for MNIST's 31 MB)
        small = sum(np.asarray(a).nbytes for a in (probe.inputs, probe.targets)) < _TEMPLATE_PROBE_BYTES
        datasets = self._datasets(metrics) if float32 and small and metrics is not None else None
        # rows of a whole HDF5 chunk or more (a large probe set) go straight to the file, not through a chunk cache
        big_rows = any(chunk_rows(shape, 4) == 1 for shape in shapes.values())
        self._block_rows = max(1, min(_BLOCK_ROWS, _BLOCK_BYTES // (4 * self._row_size)))
        self._tail = epochs - _TAIL_ROWS if epochs is not None and epochs > 2 * _TAIL_ROWS else -1
        rows = None if epochs is None else self.schedule.count(epochs)
        writer = RecordingWriter(
            self.path,
            config=config,
            mode=mode,
            template=RecordingTemplate.cached(**common, datasets=datasets) if datasets and mode != "resume" else None,
            chunk_cache=0 if big_rows else 64 << 20,
            planned_rows=rows,
            compression=self.compression,
            **common,
        )
        self.expected_size = None if rows is None else self._expected_size(writer, rows, metrics)
        self._resumed_from = writer.last_epoch if mode == "resume" else -1
        self._last_recorded = writer.last_epoch
        self._writer = BackgroundWriter(writer, max_buffer_bytes=self.max_buffer_bytes, on_commit=self.on_commit)
        self._prefault(self._dtype, device)
        if self.verbose:
            self._announce(shapes, rows)
        self._install_signal_handler()
        _OPEN.add(self)

    def _datasets(self, metrics: Sequence[str], dtype: Any = np.float32) -> dict[str, tuple[tuple[int, ...], Any]]:
        """Every epoch-indexed dataset the writer thread will append to (row shape, dtype), for a model whose
        outputs and parameters are of ``dtype`` and whose metrics are known (``train``'s).  For float32 models
        the files then start from a cached template (see ``data.recording.RecordingTemplate``) instead of
        making ~20 datasets each; for every model, the expected size is computed from them."""
        out: dict[str, tuple[tuple[int, ...], Any]] = {
            key: (shape, dtype) for key, shape in self._pieces.items() if key.startswith(S.LAYERS + "/")
        }
        out[S.layer("output")] = out[S.layer("output", S.PREACTIVATION)]  # z = f(logits)
        out.update({S.parameter(name): (tuple(p.shape), dtype) for name, p in self._params})
        per_parameter = ((len(self._params),), np.float64)
        out[S.norm("gradient")] = out[S.norm("update")] = per_parameter
        out.update({S.optimizer_state(STATE_KEYS[key]): per_parameter for key in self._opt_keys})
        out.update({S.metric(key): ((), np.float64) for key in metrics})
        return out

    def _make_layout(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        """What a block buffer holds a row of per epoch: each recorded layer array, then the scalars."""
        n_scalars = int(self._offsets[-1])
        pieces: list[tuple[str, tuple[int, ...]]] = [(S.layer(name), shapes[name]) for name in self._modules]
        if self.preactivation:
            pieces += [(S.layer(name, S.PREACTIVATION), shapes[f"{name}:pre"]) for name in self._modules]
        pieces += [(S.layer("output", S.PREACTIVATION), shapes["output"])]  # z = f(logits): the writer's
        # the parameters, their gradients, then each optimizer-state key's tensors (train()'s FlatStorage.whole)
        pieces += [(_SCALARS, ((2 + len(self._opt_keys)) * n_scalars,))]
        self._pieces = {key: tuple(shape) for key, shape in pieces}
        self._row_size = sum(math.prod(shape) for shape in self._pieces.values())
        n_par = len(self._params)
        z_bytes = 4 * math.prod(shapes["output"])
        self._epoch_bytes = 4 * self._row_size + z_bytes + 8 * n_par * (2 + len(self._opt_keys)) + 8 * 8

    def _expected_size(self, writer: RecordingWriter, rows: int, metrics: Sequence[str] | None) -> int:
        """Bytes on disk the recording will take with ``rows`` recorded epochs (the writer's estimate)."""
        datasets, checkpoint = self._planned(metrics)
        return writer.expected_size(datasets, rows) + checkpoint

    def _planned(self, metrics: Sequence[str] | None) -> tuple[dict[str, tuple[tuple[int, ...], Any]], int]:
        """The epoch-indexed datasets the run will write (a hand-written loop's metrics are not known before
        its first epoch: ``time`` stands for them), and the bytes of the two checkpoint slots' optimizer
        state."""
        dtype = torch.empty(0, dtype=self._dtype).numpy().dtype
        datasets = self._datasets(metrics if metrics is not None else ["time"], dtype)
        return datasets, 2 * len(self._opt_keys) * int(self._offsets[-1]) * dtype.itemsize

    def _announce(self, shapes: Mapping[str, tuple[int, ...]], rows: int | None) -> None:
        per = self._epoch_bytes
        layers = ", ".join(f"{n} {s[0]}x{s[1]}" for n, s in shapes.items() if not n.endswith(":pre"))
        free = free_space(self.path)
        if rows is not None and self.expected_size is not None:  # (a run whose last epoch is known)
            have = bytes_on_disk(self.path) if self.resume and os.path.exists(self.path) else 0
            total = max(0, self.expected_size - have)  # what the run adds (to a resumed recording)
            text = f"{format_bytes(per)} per epoch x {rows} epochs, {format_bytes(self.expected_size)} on disk in all"
        else:
            total, text = per, f"{format_bytes(per)} per recorded epoch"
        print(
            f"hud: recording {layers} and {int(self._offsets[-1])} parameters to {self.path}: about {text} "
            f"({format_bytes(free)} free)",
            file=sys.stderr,
        )
        advice = "record fewer epochs with schedule='log' or a smaller probe set"
        warn_if_no_room(f"the recording {self.path}", total, free, advice=advice, stacklevel=3)

    def _install_signal_handler(self) -> None:
        """SIGTERM raises SystemExit(143), SIGINT KeyboardInterrupt, both deferred out of Recorder methods.

        Only where the default handlers are in place, and only from the main thread.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, default in ((signal.SIGTERM, signal.SIG_DFL), (signal.SIGINT, signal.default_int_handler)):
            if signal.getsignal(signum) is default:
                self._old_handlers[signum] = default
                signal.signal(signum, _on_signal)

    def _restore_signal_handler(self) -> None:
        if self._old_handlers and threading.current_thread() is threading.main_thread():
            for signum, handler in self._old_handlers.items():
                signal.signal(signum, handler)
            self._old_handlers.clear()

    # ------------------------------------------------------------------ recording

    def _wants(self, epoch: int) -> bool:
        return epoch > self._last_recorded and (self._every or epoch in self.schedule or epoch == self.epochs)

    def _capture(
        self, model: nn.Module, epoch: int, metrics: Mapping[str, Any], optimizer: Any, captured: bool
    ) -> None:
        """Copy what epoch ``epoch`` shows into the next row of the block buffer.

        The heavy work (the output non-linearity, norms, HDF5) is the writer thread's.
        """
        cap = self._captured
        if not captured or "output" not in cap:
            cap.clear()
            self._probe_pass(model)
        block = self._block or self._new_block(cap)
        row = block.rows[len(self._rows)]
        layers = [cap[name] for name in self._take]
        flat = self._flat
        grad = torch.is_grad_enabled()
        _set_grad_enabled(False)  # what torch.no_grad() does, at a third of its cost
        try:
            if flat is not None:  # train()'s contiguous storage: the scalars in one tensor
                layers.append(flat.whole)
                _copy_all(row, layers)
            else:
                _copy_all(row[:-1], layers)
                torch.cat([t.reshape(-1) for t in self._scalars(optimizer)], out=row[-1])
        finally:
            _set_grad_enabled(grad)
        cap.clear()
        prev = self._prev[1] if self._prev is not None and self._prev[0] == epoch - 1 else None
        values = dict(metrics)
        if "time" not in values:
            values["time"] = time.perf_counter() - self._t0
        if self._since is None:
            self._since = _clock()
        self._rows.append((epoch, values, prev))
        self._last_recorded = epoch
        self._prev = None

    def _scalars(self, optimizer: Any) -> list[torch.Tensor]:
        """The parameters, gradients and optimizer state of a model without train()'s flat storage (NaN where
        a gradient or a state is missing)."""
        tensors = [p for _, p in self._params]
        nans = self._nans
        parts = tensors + [p.grad if p.grad is not None else nans[: p.numel()] for p in tensors]
        per_param = [optimizer.state.get(p, {}) for p in tensors] if optimizer is not None else []
        for key in self._opt_keys:
            parts += [st[key] if key in st else nans[: p.numel()] for st, p in zip(per_param, tensors)]
        return parts

    def _new_block(self, cap: Mapping[str, torch.Tensor]) -> _Block:
        """A block buffer the writer has written and given back, or a new one (on the layers' device)."""
        for name, shape in zip(self._take, self._pieces.values()):  # the same order
            if tuple(cap[name].shape) != shape:
                raise RecordingError(
                    f"layer {name.removesuffix(':pre')!r} gave shape {tuple(cap[name].shape)} this epoch, {shape} "
                    f"when the recording started (recorded layers must keep their shapes)"
                )
        device = cap[self._take[0]].device
        while self._spare:
            block = self._spare.pop()
            if block.device == device:
                self._block = block
                return block
        self._block = _Block(self._pieces, self._block_rows, dtype=self._dtype, device=device)
        return self._block

    def _prefault(self, dtype: torch.dtype, device: torch.device) -> None:
        """Have the writer thread make a spare block buffer and touch its memory before training writes to
        it: its making (~1 ms) and page faults (~2 ms for 8 MB) then cost the writer's core, not the
        training thread."""
        if device.type != "cpu" or self._block_rows * self._row_size * dtype.itemsize < 1 << 20:
            return

        def make() -> tuple[None, None, Any, bool]:
            block = _Block(self._pieces, self._block_rows, dtype=dtype, device=device)
            # numpy, not torch: a multi-threaded torch operation in this thread would start an OpenMP team
            # of its own, and libgomp, then managing more threads than there are cores, stops letting
            # training's threads spin between parallel regions (MNIST-size epochs measured ~2x longer)
            block.storage.numpy().fill(0)
            return None, None, self._give_back(block), False

        self._writer.put(make, 0)  # one: the training thread's first buffer comes back before it fills the next

    def _handoff(
        self, optimizer: Any, generator: torch.Generator | None, *, force: bool = False, checkpoint: bool = True
    ) -> None:
        """Hand the pending block to the writer thread when the buffer is full, and commit once
        ``commit_every`` has passed (or when ``force``).

        ``checkpoint`` must be true only while the optimizer and RNG are still
        at the block's last epoch: their state is then saved with the block.
        """
        rows, since = self._rows, self._since
        commit = force or (since is not None and _clock() - since >= self.commit_every)
        if not (commit or len(rows) == self._block_rows or self._last_recorded == self._tail):
            return
        if commit:
            self._since = None
        if not rows:
            if commit and self._uncommitted:  # blocks went over uncommitted: commit them
                self._writer.put(lambda: (None, None, None, True), 0)
                self._uncommitted = False
            return
        self._rows = []
        k = len(rows)
        ckpt = self._checkpoint(optimizer, generator, rows[-1][0]) if checkpoint else None
        block = self._block
        arrays = {key: region[:k] for key, region in block.regions.items()}
        prevs = [prev for *_, prev in rows]
        ready = done = None
        if _asynchronous(block.device):  # asynchronous copies to pinned host memory; the writer waits for them
            arrays = {key: _host(t) for key, t in arrays.items()}  # (the buffer is reused at once: later
            prevs = [None if p is None else _host(p) for p in prevs]  # rows are written after the copies)
            ready = _copies_done()  # (after the checkpoint's copies too)
        else:
            self._block = None
            done = self._give_back(block)
        meta = [(epoch, values, prev) for (epoch, values, _), prev in zip(rows, prevs)]
        self._writer.put(self._block_maker(arrays, meta, ckpt, ready, done, commit), self._epoch_bytes * k)
        self._uncommitted = not commit

    def _give_back(self, block: _Block) -> Any:
        """What the writer thread calls once ``block``'s rows are written: keep it for later blocks."""

        def done() -> None:
            if len(self._spare) < _SPARE_BLOCKS:
                self._spare.append(block)

        return done

    def _checkpoint(self, optimizer: Any, generator: torch.Generator | None, epoch: int) -> dict[str, Any]:
        """Optimizer state (flat, per state key), step counts and RNG state at ``epoch``."""
        ckpt: dict[str, Any] = {"epoch": np.int64(epoch)}
        if optimizer is not None:
            per_param = [optimizer.state.get(p, {}) for _, p in self._params]
            like = self._params[0][1]
            for key in self._opt_keys:
                ckpt[f"optimizer.{key}"] = _host(_flat([st.get(key) for st in per_param], self._sizes, like))
            steps = [float(st.get("step", 0)) for st in per_param]
            ckpt["optimizer.step"] = torch.tensor(steps, dtype=torch.float64)
        if generator is not None:
            ckpt["rng"] = generator.get_state()
        return ckpt

    def _block_maker(
        self,
        arrays: Mapping[str, torch.Tensor],
        meta: list[tuple[int, dict[str, Any], torch.Tensor | None]],
        ckpt: dict[str, Any] | None,
        ready: Any,
        done: Any,
        commit: bool,
    ):
        """The closure the writer thread calls: the block's arrays by dataset, the norms, the metrics."""

        def make_block() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None, Any, bool]:
            if ready is not None:
                ready()
            k = len(meta)
            epochs = np.array([e for e, _, _ in meta], np.int64)
            offsets = self._offsets
            n = int(offsets[-1])
            out: dict[str, np.ndarray] = {S.EPOCH: epochs}
            out.update({key: t.numpy() for key, t in arrays.items() if key != _SCALARS})  # (epoch, sample, unit)
            scalars = arrays[_SCALARS].numpy()  # (epoch, scalar): params, grads, each state
            cols = {"params": scalars[:, :n], "grads": scalars[:, n : 2 * n]}
            cols.update({f"state:{key}": scalars[:, (2 + j) * n : (3 + j) * n] for j, key in enumerate(self._opt_keys)})
            logits = out[S.layer("output", S.PREACTIVATION)]  # the output z, for every epoch of the block at once
            out[S.layer("output")] = self.loss.activation_numpy(logits) if self.loss is not None else logits.copy()

            params = cols["params"]
            for (name, p), a, b in zip(self._params, offsets[:-1], offsets[1:]):
                out[S.parameter(name)] = params[:, a:b].reshape(k, *p.shape)

            def norms(flat: np.ndarray) -> np.ndarray:  # (epoch, scalar) -> (epoch, parameter)
                return np.sqrt(np.add.reduceat(np.square(flat, dtype=np.float64), offsets[:-1], axis=1))

            out[S.norm("gradient")] = norms(cols["grads"])
            for key in self._opt_keys:
                out[S.optimizer_state(STATE_KEYS[key])] = norms(cols[f"state:{key}"])
            # vectorised (a Python loop over a block's ~1000 rows held the GIL for milliseconds)
            prev = np.full_like(params, np.nan)
            follows = np.zeros(k, bool)  # rows whose epoch's predecessor is the row before
            follows[1:] = epochs[1:] == epochs[:-1] + 1
            prev[1:][follows[1:]] = params[:-1][follows[1:]]
            last = self._written
            for i in np.flatnonzero(~follows):
                snapshot = meta[i][2]
                if snapshot is not None:
                    prev[i] = snapshot.numpy()
                elif i == 0 and last is not None and last[0] == epochs[0] - 1:
                    prev[i] = last[1]
            out[S.norm("update")] = norms(params - prev)
            out.update({S.metric(key): values for key, values in _metric_columns([m for _, m, _ in meta]).items()})
            self._written = (int(epochs[-1]), params[-1].copy())
            return out, None if ckpt is None else {key: np.asarray(v) for key, v in ckpt.items()}, done, commit

        return make_block

    def _snapshot(self, epoch: int) -> None:
        """Keep this epoch's weights when the next epoch is recorded but this one is not (its update norm)."""
        if epoch + 1 in self.schedule and epoch != self._last_recorded:
            self._prev = (epoch, torch.cat([p.detach().reshape(-1) for _, p in self._params]).float())

    # ------------------------------------------------------------------ by hand

    @_whole
    def record(
        self,
        model: nn.Module,
        epoch: int,
        *,
        metrics: Mapping[str, float] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        force: bool = False,
    ) -> bool:
        """Record ``model`` at ``epoch`` if the schedule says so (or ``force``).

        Call it once per epoch, after the epoch's updates (epoch 0: before any).
        The first call opens the file.

        Parameters
        ----------
        model : nn.Module
        epoch : int
            Increasing from call to call.
        metrics : dict of str to float, optional
            E.g. ``{'loss': 0.31, 'accuracy': 0.9}``; ``time`` (seconds since
            the Recorder was made) is added unless given.
        optimizer : torch.optim.Optimizer, optional
            Records its state norms (overrides the constructor's).
        force : bool
            Record even if the schedule would skip this epoch.

        Returns
        -------
        bool
            Whether the epoch was recorded.
        """
        if self.closed:
            raise RecordingError(f"recording {self.path!r} is closed; create a new Recorder")
        epoch = int(check_number("epoch", epoch, low=0, integer=True))
        optimizer = optimizer or self.optimizer
        if self._model is None:
            if self._probe is None:
                raise ParameterError(
                    "probe must be given when recording by hand: the inputs whose activations "
                    "are recorded, shape (n_samples, n_inputs)"
                )
            self._open(
                model,
                probe=self._probe,
                config=self.config or _describe(model, self._task),
                grid=_grid(self._task),
                epochs=self.epochs,
                optimizer=optimizer,
            )
        elif model is not self._model:
            raise ParameterError("model must be the model this Recorder started recording; got another module")
        if epoch <= self._last_recorded and not force:
            return False
        if not (force or self._wants(epoch)):
            self._snapshot(epoch)
            self._handoff(optimizer, None, checkpoint=False)
            return False
        self._capture(model, epoch, metrics or {}, optimizer, captured=False)
        self._handoff(optimizer, None, force=epoch == self.epochs)
        return True

    @_whole
    def flush(self) -> None:
        """Block until every recorded epoch is committed to disk."""
        if self._writer is not None:
            self._handoff(self.optimizer, None, force=True, checkpoint=False)
            self._writer.flush()

    def _detach(self) -> None:
        """Remove the hooks (or the tap) from the model."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if getattr(self, "_tap", False) and self._model.tap is self._captured:
            self._model.tap = None

    @_whole
    def close(self, status: str = "complete", *, epoch: int | None = None, message: str = "") -> None:
        """Commit everything, set the final status, close the file.  Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        self._detach()
        _OPEN.discard(self)
        try:
            if self._writer is not None:
                try:
                    if self._writer.error is None:  # a failed writer takes no more blocks; its error is raised once
                        self._handoff(self.optimizer, None, force=True, checkpoint=False)
                finally:
                    self._writer.close(status, epoch=epoch, message=message)
        finally:
            self._restore_signal_handler()  # after the file is closed: a second signal waits for it

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close("complete")
        elif issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            self.close("interrupted")
        else:
            self.close("failed", message=f"{exc_type.__name__}: {exc}")

    @property
    def committed_epoch(self) -> int:
        """The last epoch committed to disk (-1 if none)."""
        return self._writer.committed_epoch if self._writer is not None else -1

    # ------------------------------------------------------------------ train() callback

    def on_train_begin(self, state: TrainState) -> None:
        probe = self._probe or state.task.probe
        task = state.task
        grid = _grid(task)
        self.loss = self.loss or state.loss
        self.epochs = state.epochs
        optimizer = self.optimizer or state.optimizer
        self.optimizer = optimizer
        self._open(
            state.network,
            probe=probe,
            config=state.config,
            grid=grid,
            epochs=state.epochs,
            optimizer=optimizer,
            metrics=METRICS,  # train()'s: the files can start from a template
        )
        same = probe.inputs is task.inputs or (
            probe.inputs.shape == task.inputs.shape and np.array_equal(probe.inputs, task.inputs)
        )
        self._reuse = state.full_batch and same and not self._mode_dependent
        flat = state.flat
        same = flat is not None and flat.names == [n for n, _ in self._params] and flat.keys == self._opt_keys
        self._flat = flat if same else None  # its `whole` is then a row's scalars, as _make_layout lays them out
        if self._resumed_from >= 0:
            self._restore(state)

    def on_epoch_begin(self, state: TrainState) -> None:
        self._armed = self._reuse and self._wants(state.epoch)  # (_arm, inlined: this runs every epoch)

    def on_epoch_end(self, state: TrainState) -> None:
        if self._armed and self._flat is not None and "output" in self._captured:
            self._record_captured(state)
        else:
            self._on_epoch_end(state)

    def _record_captured(self, state: TrainState) -> None:
        """on_epoch_end's fast path, taken every epoch of a full-batch run (the training forward pass captured,
        train()'s flat storage): the epoch's row copied in one call, the metrics kept as train() made them.

        ~14 us an epoch instead of ~20 (the general path: its Python calls cost ~3x what they cost alone,
        with training's work between them): about -3 % of a 2-10-10-1 spirals run.  A signal arriving here
        leaves the block whole: the row counts once it is listed, and the handoff defers signals.
        """
        self._armed = False
        epoch, cap, rows = state.epoch, self._captured, self._rows
        block = self._block or self._new_block(cap)
        layers = [cap[name] for name in self._take]
        layers.append(self._flat.whole)
        grad = torch.is_grad_enabled()
        _set_grad_enabled(False)
        try:
            _copy_all(block.rows[len(rows)], layers)
        finally:
            _set_grad_enabled(grad)
        cap.clear()
        prev = None
        if self._prev is not None:
            prev = self._prev[1] if self._prev[0] == epoch - 1 else None
            self._prev = None
        if self._since is None:
            self._since = _clock()
        rows.append((epoch, state.metrics, prev))  # train() makes a new dict every epoch
        self._last_recorded = epoch
        if len(rows) == self._block_rows or epoch == self._tail or _clock() - self._since >= self.commit_every:
            self._handoff_whole(state.optimizer, None)

    @_whole
    def _handoff_whole(self, optimizer: Any, generator: torch.Generator | None) -> None:
        self._handoff(optimizer, generator)

    @_whole
    def _on_epoch_end(self, state: TrainState) -> None:
        captured, self._armed = self._armed, False
        epoch = state.epoch
        generator = state.generator if not state.full_batch else None
        if self._wants(epoch):
            self._capture(state.network, epoch, state.metrics, state.optimizer, captured)
            self._handoff(state.optimizer, generator)
        else:
            if state.status == "running":
                self._snapshot(epoch)
            self._handoff(state.optimizer, generator, checkpoint=False)

    @_whole
    def on_train_end(self, state: TrainState) -> None:
        if self.closed or self._writer is None:
            return
        try:
            if state.status not in ("interrupted", "failed"):
                if state.epoch > self._last_recorded:
                    self._capture(state.network, state.epoch, state.metrics, state.optimizer, False)
                generator = state.generator if not state.full_batch else None
                current = self._last_recorded == state.epoch  # pending, or handed over with its checkpoint
                self._handoff(state.optimizer, generator, force=True, checkpoint=current)
        finally:
            status = state.status if state.status != "running" else "interrupted"
            epoch = state.epoch if status not in ("interrupted", "failed") else None
            self.close(status, epoch=epoch)

    # ------------------------------------------------------------------ resuming

    def _restore(self, state: TrainState) -> None:
        """Load the checkpointed epoch's weights, optimizer state and RNG into the run.

        The checkpoint is the state at the last epoch of the last block
        committed while training was at that epoch; rows after it (rare: only
        when a block was handed over between scheduled epochs) are dropped and
        recomputed, identically, by the resumed run.
        """
        if isinstance(state.optimizer, torch.optim.LBFGS):
            raise ParameterError("resume is not supported with optimizer 'lbfgs' (its history is not recorded)")
        with Recording(self.path) as rec:
            _check_same_run(rec.config, state.config, self.path)
            ckpt = rec.checkpoint()
            epoch = int(ckpt.get("epoch", -1))
            if epoch < 0:
                raise RecordingError(
                    f"recording {self.path!r} holds no checkpoint; it cannot be resumed exactly "
                    "(start again with overwrite=True)"
                )
            params = rec.parameters(epoch)
            times = rec.metrics.get("time")
            time_spent = float(times.loc[epoch]) if times is not None else 0.0
        if epoch < self._writer.writer.last_epoch:
            self._writer.writer.rewind(epoch)
        load_parameters(state.network, params)
        _load_optimizer_state(state.optimizer, [p for _, p in self._params], ckpt, self._offsets)
        if "rng" in ckpt:
            state.generator.set_state(torch.from_numpy(ckpt["rng"]))
        # full batch: epoch k's pass at w_k takes the step to w_{k+1}, so it runs again; mini-batch: epoch k's
        # updates happened inside epoch k, so the run goes on with epoch k + 1
        state.start_epoch = epoch if state.full_batch else epoch + 1
        state.time_offset = time_spent
        self._last_recorded = epoch
        # the weights of the epoch resumed from: the update norm of the next recorded epoch
        self._prev = (epoch, torch.cat([p.detach().reshape(-1) for _, p in self._params]).float())


def expected_recording_size(
    model: nn.Module,
    probe: Probe | Task | np.ndarray | torch.Tensor,
    *,
    epochs: int,
    schedule: str | int | Sequence[int] = "every",
    layers: Sequence[str] | None = None,
    preactivation: bool = False,
    optimizer: torch.optim.Optimizer | None = None,
    metrics: Sequence[str] | None = None,
) -> int:
    """Bytes on disk a :class:`Recorder` of ``model`` would write in a run of ``epochs`` epochs, known before
    any file is made (``hud run`` prints it for a whole grid).

    The model is run on two probe samples to learn its layers' widths; its weights are not changed.

    Parameters
    ----------
    model : nn.Module
    probe : Probe, Task, or array of shape (sample, input)
        The probe set (a task's, under ``train``); a task's 2-D grid is counted too.
    epochs : int
        The run's last epoch.
    schedule, layers, preactivation
        As in :class:`Recorder`.
    optimizer : torch.optim.Optimizer, optional
        Its state norms and checkpoint are counted.
    metrics : sequence of str, optional
        The metrics recorded each epoch (default: ``train``'s).

    Returns
    -------
    int
        Within a few percent of the closed recording's size on disk (uncompressed).
    """
    rec = Recorder(os.devnull, layers=layers, schedule=schedule, preactivation=preactivation, verbose=False)
    epochs = int(check_number("epochs", epochs, low=0, integer=True))
    probe_set = rec._as_probe(probe)
    try:
        rec._learn_layout(model, probe_set, optimizer)
    finally:
        rec._detach()
    datasets, checkpoint = rec._planned(list(metrics) if metrics is not None else list(METRICS))
    grid = _grid(probe) if isinstance(probe, Task) else None
    names = [name for name, _ in rec._params]
    size = expected_size(datasets, rec.schedule.count(epochs), probe=probe_set, grid=grid, parameter_names=names)
    return size + checkpoint


def _describe(model: nn.Module, task: Task | None = None) -> dict[str, Any]:
    """The config of a run recorded by hand: the network (and the task, when the probe was one)."""
    cfg = getattr(model, "config", None)
    net = (
        cfg.to_dict()
        if isinstance(cfg, NetworkConfig)
        else {"class": f"{type(model).__module__}.{type(model).__qualname__}"}
    )
    return {"network": net} if task is None else {"task": {"name": task.name, **task.options}, "network": net}


def _grid(task: Task | None) -> tuple[np.ndarray, tuple[int, int], tuple[float, ...]] | None:
    """The input-plane grid of a 2-D task, as the recording stores it."""
    if task is None or task.grid is None:
        return None
    return task.grid, task.grid_shape, task.extent


def _check_same_run(stored: Mapping[str, Any], current: Mapping[str, Any], path: str) -> None:
    """A resumed run must be the run that was recorded (the number of epochs may grow)."""

    def norm(cfg: Mapping[str, Any]) -> dict[str, Any]:
        cfg = json.loads(json.dumps(cfg, sort_keys=True, default=str))
        cfg.get("training", {}).pop("epochs", None)
        return cfg

    a, b = norm(stored), norm(current)
    if a != b:
        diffs = [
            f"{k}: recorded {a.get(k)!r}, now {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
        ]
        raise RecordingError(f"cannot resume {path!r}: it records a different run ({'; '.join(diffs)})")


def load_parameters(model: nn.Module, params: Mapping[str, np.ndarray]) -> None:
    """Copy a recorded state (name -> array) into ``model``'s parameters in place."""
    own = dict(model.named_parameters())
    missing = sorted(set(own) - set(params))
    if missing:
        raise ParameterError(f"params lacks {', '.join(missing)} for this model; got {', '.join(sorted(params))}")
    with torch.no_grad():
        for name, p in own.items():
            value = torch.as_tensor(np.asarray(params[name]), dtype=p.dtype)
            if tuple(value.shape) != tuple(p.shape):
                raise ParameterError(f"parameter {name!r} must have shape {tuple(p.shape)}; got {tuple(value.shape)}")
            p.copy_(value.to(p.device))


def _load_optimizer_state(
    optimizer: torch.optim.Optimizer, params: list[torch.Tensor], ckpt: Mapping[str, np.ndarray], offsets: np.ndarray
) -> None:
    keys = state_keys(optimizer)
    if not keys and "optimizer.step" not in ckpt:
        return
    steps = ckpt.get("optimizer.step")
    for i, p in enumerate(params):
        a, b = int(offsets[i]), int(offsets[i + 1])
        st: dict[str, Any] = {}
        for key in keys:
            flat = ckpt.get(f"optimizer.{key}")
            if flat is None or np.isnan(flat[a:b]).any():
                continue
            st[key] = torch.as_tensor(flat[a:b].copy()).reshape(p.shape).to(p.device, p.dtype)
        if (
            steps is not None
            and st
            and isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop))
        ):
            st["step"] = torch.tensor(float(steps[i]), dtype=torch.float32)
        if st:
            optimizer.state[p] = st


def load_network(recording: Recording, epoch: int | None = None) -> Network:
    """Rebuild a hud network with the weights recorded at ``epoch``.

    Parameters
    ----------
    recording : Recording
        From ``data.open_recording``.
    epoch : int, optional
        A recorded epoch (default: the last one).

    Returns
    -------
    Network
        In eval mode, on the CPU.
    """
    net_cfg = recording.config.get("network", {})
    if "hidden" not in net_cfg:
        raise ParameterError(
            f"recording {recording.path!r} holds a model hud cannot rebuild "
            f"({net_cfg.get('class', 'unknown class')}); load recording.parameters(epoch) into "
            "your own module with load_state_dict"
        )
    net = build_network(NetworkConfig.from_dict(net_cfg), seed=None)
    load_parameters(net, recording.parameters(recording.last_epoch if epoch is None else epoch))
    return net.eval()


@atexit.register
def _close_open_recorders() -> None:  # a hand-written loop that never called close()
    for rec in list(_OPEN):
        try:
            rec.close("interrupted", message="not closed before the interpreter exited")
        except Exception:  # noqa: BLE001 - nothing more can be done at exit
            pass
