"""Recording every member of a batched run, each into its own file, as if it were trained alone.

:func:`models.batched.train_batched` trains many runs of one architecture as
one batched model.  A per-member :class:`~models.recorder.Recorder` works there
as a callback, but it costs a chain of Python calls and a probe pass per member
and epoch, and one writer thread per file.  :class:`BatchRecorder` instead
watches the whole batch (``train_batched(..., observer=recorder)``):

- once per recorded epoch, the training thread keeps references to the layer
  outputs and logits of every member (the batch makes new tensors every epoch
  and never changes them afterwards) and copies what changes in place --
  weights, gradients, optimizer state -- into one block buffer of shape
  (member, epoch, row), a handful of small copies whatever the number of
  members (copying the layers there too cost the training thread ~0.5 ms an
  epoch for 32 members of the 2-10-10-1 net, a tenth of the run);
- the layer outputs come from the batch's own forward pass (no probe pass):
  the probe set is the task's training inputs, in order, as ``Recorder`` uses
  by default;
- one writer thread stacks each layer over the block's epochs, transposed to
  the file's (sample, unit), computes the outputs z = f(logits) and the norms,
  and appends and commits every member's rows to that member's file with
  ``data.recording.RecordingWriter`` (the same commit protocol, chunking and
  layout as ``Recorder``; no chunk cache: its blocks are hundreds of rows).

Each file is what ``train(config, task, ..., callbacks=[Recorder(path)])`` of
the same member would have written: same config, attributes, datasets, shapes
and dtypes, the same checkpoints (so ``Recorder(path, resume=True)`` under
``train`` resumes a member of an interrupted batch), and values equal up to
the float rounding that separates batched from alone training.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from data import schema as S
from data.errors import ParameterError, RecordingError, check_number
from data.recording import RecordingWriter

from .optim import STATE_KEYS
from .recorder import Schedule

__all__ = ["BatchRecorder"]


@dataclass
class _Meta:
    """One captured epoch of the pending block."""

    epoch: int
    want: np.ndarray  # (member,) bool: rows recorded at this epoch
    values: np.ndarray  # (3, member) float32: loss, penalty, accuracy
    time: float
    prev: torch.Tensor | None  # (member, parameter): the weights of epoch - 1 (a snapshot), or None
    layers: list[torch.Tensor | None] = field(default_factory=list)  # per `_big` entry: (member, unit, sample)


@dataclass
class _Block:
    """What the training thread hands the writer thread."""

    chunks: list[tuple[torch.Tensor, int]]  # (member, chunk_rows, row) buffers and rows used
    meta: list[_Meta]
    checkpoints: dict[int, dict[str, Any]] = field(default_factory=dict)  # row -> checkpoint at its last epoch
    closing: list[tuple[int, str, int | None, str]] = field(default_factory=list)  # row, status, epoch, message
    nbytes: int = 0


class BatchRecorder:
    """Record each member of a ``train_batched`` run into its own recording.

    Parameters
    ----------
    paths : sequence of str, PathLike or None
        One entry per member of ``train_batched``'s ``members``, in that order:
        the recording to write (``.h5``), or None to record nothing for that
        member.  An existing file is an error unless ``overwrite=True``.
    layers : sequence of str, optional
        The layers to record (default: the hidden layers ``hidden1``, ...).
        Batched runs can record ``polar``, ``hiddenK``, ``hiddenK.linear`` and
        ``hiddenK.act``; the output is always recorded as the layer ``output``.
    schedule : 'every', int, 'log', 'course' or list of int
        Which epochs are recorded (see ``models.recorder.Schedule``); epoch 0
        and each member's last epoch always are.
    preactivation : bool
        Also record each hidden layer's pre-activation.
    overwrite : bool
        Replace existing files.
    commit_every : float
        Seconds of training between group commits (the rows of every member
        since the last commit are written and committed together; default 5,
        longer than ``Recorder``'s 0.25 because each commit flushes every
        member's file).  A killed process loses at most this much; Ctrl-C
        loses nothing (pending rows are written at close, without checkpoint).
    max_buffer_bytes : int
        Memory the blocks queued for the writer thread may hold; training waits
        beyond it.
    block_bytes : int
        Bytes of one block (the epochs' layer outputs, kept by reference, and
        their (member, epoch, row) buffer of weights, gradients and optimizer
        state): a block is handed to the writer thread when it is full or
        ``commit_every`` has passed.
        Large blocks pay HDF5's fixed cost per commit and file (two flushes)
        less often; memory peaks at about ``block_bytes + max_buffer_bytes``.

    Notes
    -----
    Use it as the ``observer`` of ``train_batched`` and close it afterwards,
    best with ``with``::

        with BatchRecorder([f"run{i}.h5" for i in range(len(members))]) as rec:
            train_batched(config, task, members, epochs=2000, observer=rec)

    Leaving the ``with`` block by an exception closes the files still open with
    status 'interrupted' (KeyboardInterrupt, SystemExit) or 'failed'; every
    committed epoch stays readable.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike | None],
        *,
        layers: Sequence[str] | None = None,
        schedule: str | int | Sequence[int] = "every",
        preactivation: bool = False,
        overwrite: bool = False,
        commit_every: float = 5.0,
        max_buffer_bytes: int = 256 << 20,
        block_bytes: int = 256 << 20,
    ) -> None:
        if isinstance(paths, (str, os.PathLike)) or not isinstance(paths, Sequence):
            raise ParameterError(f"paths must be a sequence with one path (or None) per member; got {paths!r}")
        self.paths: list[str | None] = []
        for i, p in enumerate(paths):
            if p is not None and not isinstance(p, (str, os.PathLike)):
                raise ParameterError(f"paths[{i}] must be a file path or None; got {type(p).__name__}")
            self.paths.append(None if p is None else os.fspath(p))
        if not any(p is not None for p in self.paths):
            raise ParameterError("paths must hold at least one path; got none")
        if not overwrite:
            for p in self.paths:
                if p is not None and os.path.exists(p):
                    raise RecordingError(
                        f"path {p!r} already exists; pass overwrite=True (CLI: --force) to replace it, "
                        "or resume it with Recorder(resume=True) under train()"
                    )
        if layers is not None and (isinstance(layers, str) or not all(isinstance(n, str) for n in layers)):
            raise ParameterError(f"layers must be a list of module names; got {layers!r}")
        self.layers = None if layers is None else list(layers)
        self.schedule = schedule if isinstance(schedule, Schedule) else Schedule(schedule)
        self.preactivation = bool(preactivation)
        self.overwrite = bool(overwrite)
        self.commit_every = float(check_number("commit_every", commit_every, low=0))
        self.max_buffer_bytes = int(check_number("max_buffer_bytes", max_buffer_bytes, low=1, integer=True))
        self.block_bytes = int(check_number("block_bytes", block_bytes, low=1, integer=True))
        self.closed = False
        self.error: BaseException | None = None
        self._reported = False
        self._started = False
        self._writers: dict[int, RecordingWriter] = {}  # internal row -> its open file
        self._chunks: list[tuple[torch.Tensor, int]] = []
        self._meta: list[_Meta] = []
        self._closing: list[tuple[int, str, int | None, str]] = []
        self._final_ckpts: dict[int, dict[str, Any]] = {}
        self._ended: set[int] = set()  # rows whose final status is queued
        self._rows: list[int] = []
        self._snap: tuple[int, torch.Tensor] | None = None
        self._block_start = 0.0
        self._pool: queue.SimpleQueue[torch.Tensor] = queue.SimpleQueue()
        self._queue: queue.SimpleQueue[_Block | None] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._buffered = 0
        self._thread: threading.Thread | None = None
        self._last: dict[int, tuple[int, np.ndarray]] = {}  # writer thread: last written epoch and weights per row

    # ------------------------------------------------------------------ setup (epoch 0)

    def _sources(self, net: torch.nn.Module) -> list[tuple[str, str, str]]:
        """(schema path, source, kind) of each recorded hidden layer; source is a key of layer_outputs or 'polar'."""
        modules = dict(net.named_modules())
        names = [n for n in (self.layers if self.layers is not None else net.hidden_layers) if n != "output"]
        acts: list[tuple[str, str, str]] = []
        pres: list[tuple[str, str, str]] = []
        for name in names:
            if not name or name not in modules:
                raise ParameterError(
                    f"layer {name!r} is not a module of this model; named modules: {', '.join(n for n in modules if n)}"
                )
            parts = name.split(".")
            hidden = parts[0].startswith("hidden") and parts[0][6:].isdigit()
            pre: str | None = None
            if name == "polar":
                source = "polar"
            elif hidden and (len(parts) == 1 or parts[1:] == ["act"]):
                source, pre = parts[0], f"{parts[0]}.linear"  # a hud layer, or its activation module
            elif hidden and parts[1:] == ["linear"]:
                source = name
            else:
                raise ParameterError(
                    f"layer {name!r} cannot be recorded in a batched run (recordable: polar, hiddenK, hiddenK.linear, "
                    "hiddenK.act); record it with models.Recorder under train()"
                )
            acts.append((S.layer(name), source, name))
            if self.preactivation:
                if pre is None:
                    raise ParameterError(
                        f"preactivation=True needs each layer to be a hud layer or an activation module; "
                        f"layer {name!r} is a {type(modules[name]).__name__}"
                    )
                pres.append((S.layer(name, S.PREACTIVATION), pre, name))
        return acts + pres

    def _open(self, run: Any, outputs: Mapping[str, torch.Tensor]) -> None:
        b = run.b
        m = b.n
        if len(self.paths) != m:
            raise ParameterError(f"paths must hold one entry per member ({m}); got {len(self.paths)}")
        self._rows = [r for r in range(m) if self.paths[b.members[r].index] is not None]
        self._recorded = np.zeros(m, dtype=bool)
        self._recorded[self._rows] = True
        net = b.nets[0]
        self._layers = self._sources(net)
        self._modules = list(dict.fromkeys(name for _, _, name in self._layers))
        n_samples = b.x.shape[0]
        shapes: dict[str, tuple[int, int]] = {}
        for path, source, _ in self._layers:
            if source == "polar":
                shapes[path] = (n_samples, int(b.x.shape[1]))
            else:
                out = outputs[source]  # (member, unit, sample)
                shapes[path] = (int(out.shape[2]), int(out.shape[1]))
        n_out = int(outputs["output"].shape[1])
        shapes[S.layer("output", S.PREACTIVATION)] = shapes[S.layer("output")] = (int(n_samples), n_out)
        self._slots = [(s.name, s.shape) for s in b.slots]
        self._offsets = np.array([0] + [s.stop for s in b.slots], dtype=np.int64)
        p = int(b.n_params)
        self._keys: dict[int, list[str]] = {}
        for r in self._rows:  # the batched optimizers keep torch.optim's state under torch.optim's keys
            opt, _ = b.block_of[r]
            self._keys[r] = list(opt.state_keys)
        n_state = max((len(k) for k in self._keys.values()), default=0)
        # layer outputs: kept by reference at capture (the batch makes new ones each epoch), copied by the writer
        self._big = [(path, source, shapes[path]) for path, source, _ in self._layers]
        self._big += [(S.layer("output", S.PREACTIVATION), "output", shapes[S.layer("output")])]
        self._big += [(S.layer("output"), "z", shapes[S.layer("output")])]  # z = f(logits), by the writer
        self._big_bytes = 4 * m * sum(math.prod(shape) for *_, shape in self._big)  # per epoch
        # weights, gradients, optimizer state: changed in place by the next step, copied into a row at capture
        layout: dict[str, tuple[int, int, tuple[int, ...]]] = {}
        start = 0
        for key, size in (("params", p), ("grads", p), ("state", n_state * p)):
            layout[key] = (start, start + size, (size,))
            start += size
        self._layout = layout
        self._row_size = start
        per_epoch = 4 * m * max(start, 1) + self._big_bytes
        self._chunk_rows = int(max(1, min(8192, self.block_bytes // per_epoch)))
        self._n_params = p
        self._full_batch = bool(run.full_batch)
        self._polar = b.x
        self._activations = b.activations
        task = b.task
        grid = (task.grid, task.grid_shape, task.extent) if task.grid is not None else None
        attrs = {
            S.ROOT_ATTRS.SCHEDULE: self.schedule.to_json(),
            S.ROOT_ATTRS.LAYERS: [*self._modules, "output"],
            S.ROOT_ATTRS.MODULES: {**{name: name for name in self._modules}, "output": "output"},
        }
        names = [name for name, _ in self._slots]
        try:
            for r in self._rows:
                self._writers[r] = RecordingWriter(
                    self.paths[b.members[r].index],
                    config=run.configs[r],
                    probe=task.probe,
                    grid=grid,
                    attrs=attrs,
                    mode="overwrite" if self.overwrite else "create",
                    parameter_names=names,
                    chunk_cache=0,  # blocks of hundreds of rows: whole chunks straight to the file
                )
        except BaseException:
            for writer in self._writers.values():
                writer.close("failed", message="another member's recording could not be created")
            self._writers.clear()
            raise
        self._thread = threading.Thread(target=self._run_writer, name="hud-batch-writer", daemon=True)
        self._thread.start()
        self._started = True

    # ------------------------------------------------------------------ the observer (training thread)

    def __call__(self, run: Any, epoch: int, outputs: Mapping[str, torch.Tensor]) -> None:
        """Record epoch ``epoch`` of every recorded member (``train_batched``'s ``observer`` protocol)."""
        if self.closed:
            raise RecordingError("this BatchRecorder is closed; create a new one for another batch")
        if not self._started:
            self._open(run, outputs)
        self._raise_if_failed()
        b = run.b
        status = np.asarray(run.status)
        live = self._recorded & run.active
        running = status == "running"
        scheduled = epoch in self.schedule or epoch == run.epochs
        want = live.copy() if scheduled else live & ~running
        if want.any():
            self._capture(run, epoch, outputs, want, status)
        if not scheduled and (epoch + 1) in self.schedule and (live & running).any():
            self._snap = (epoch, b.w.detach().clone())  # the update norm of the next recorded epoch
        for r in np.flatnonzero(want & ~running):  # members that end now: their last row, checkpoint and status
            self._final_ckpts[int(r)] = self._checkpoint(run, int(r), epoch)
            self._closing.append((int(r), str(status[r]), epoch, ""))
            self._ended.add(int(r))
            self._recorded[r] = False
        full = bool(self._chunks) and self._chunks[-1][1] == self._chunk_rows
        if scheduled and self._meta and (full or time.perf_counter() - self._block_start >= self.commit_every):
            ckpts = {int(r): self._checkpoint(run, int(r), epoch) for r in np.flatnonzero(want & running)}
            self._handoff(ckpts)

    def _next_row(self) -> tuple[torch.Tensor, int]:
        if self._chunks and self._chunks[-1][1] == self._chunk_rows:  # full at an unscheduled epoch: no checkpoints
            self._handoff({})
        if not self._chunks:
            if not self._meta:
                self._block_start = time.perf_counter()
            shape = (len(self._recorded), self._chunk_rows, self._row_size)
            try:
                chunk = self._pool.get_nowait()
            except queue.Empty:
                chunk = torch.empty(shape, dtype=torch.float32)
            self._chunks.append((chunk, 0))
        chunk, used = self._chunks[-1]
        self._chunks[-1] = (chunk, used + 1)
        return chunk, used

    def _capture(
        self, run: Any, epoch: int, outputs: Mapping[str, torch.Tensor], want: np.ndarray, status: np.ndarray
    ) -> None:
        """Keep epoch ``epoch`` of every member: references to the layer outputs, a row copy of the rest.

        The layer outputs are new tensors every epoch that nothing changes
        afterwards, so the writer thread copies them, transposed to the file's
        (sample, unit), from the references (copying them here cost the training
        thread ~0.5 ms an epoch for 32 members of the 2-10-10-1 net); weights,
        gradients and optimizer state change in place, so they are copied now
        (one row per member, a few hundred numbers).
        """
        b = run.b
        chunk, i = self._next_row()
        row = chunk[:, i]  # (member, row)
        lay = self._layout
        layers = [
            None if source == "polar" else outputs["output" if source == "z" else source] for _, source, _ in self._big
        ]
        with torch.no_grad():
            a, z, _ = lay["params"]
            row[:, a:z].copy_(b.w)
            a, z, _ = lay["grads"]
            row[:, a:z].copy_(b.grad)
            if self._full_batch:  # train() takes no backward pass at a non-finite full-batch loss
                for r in np.flatnonzero(want & (status == "diverged")):
                    row[r, a:z].zero_()
            s0 = lay["state"][0]
            p = self._n_params
            for opt in b.optimizers:
                for j, key in enumerate(opt.state_keys):
                    part = row[opt.rows, s0 + j * p : s0 + (j + 1) * p]
                    if opt.steps:
                        part.copy_(opt.state[key])
                    else:  # no state before the first step: NaN, as Recorder records it
                        part.fill_(math.nan)
        prev = self._snap[1] if self._snap is not None and self._snap[0] == epoch - 1 else None
        self._snap = None
        self._meta.append(_Meta(epoch, want.copy(), np.array(run.history[-1], np.float32), run.times[-1], prev, layers))

    def _checkpoint(self, run: Any, r: int, epoch: int) -> dict[str, Any]:
        """Member ``r``'s optimizer state and batch-order RNG at ``epoch``, keyed as ``Recorder`` keys them."""
        opt, i = run.b.block_of[r]
        ckpt: dict[str, Any] = {"epoch": np.int64(epoch)}
        for key in self._keys[r]:
            if opt.steps:
                ckpt[f"optimizer.{key}"] = opt.state[key][i].detach().cpu().clone().numpy()
            else:
                ckpt[f"optimizer.{key}"] = np.full(self._n_params, np.nan, np.float32)
        step = float(opt.steps) if opt.counts_steps else 0.0
        ckpt["optimizer.step"] = np.full(len(self._slots), step, np.float64)
        if not self._full_batch:
            ckpt["rng"] = run.generators[r].get_state().numpy().copy()
        return ckpt

    def _handoff(self, checkpoints: dict[int, dict[str, Any]]) -> None:
        """Queue the pending rows (and the statuses of members that ended) for the writer thread."""
        if not self._meta and not self._closing:
            return
        checkpoints = {**checkpoints, **self._final_ckpts}
        nbytes = sum(c.numel() * 4 for c, _ in self._chunks) + self._big_bytes * len(self._meta)
        block = _Block(self._chunks, self._meta, checkpoints, self._closing, nbytes)
        with self._cond:
            while self._buffered > self.max_buffer_bytes and self.error is None:
                self._cond.wait(0.1)
            self._buffered += nbytes
        self._raise_if_failed()
        self._queue.put(block)
        self._chunks, self._meta, self._closing, self._final_ckpts = [], [], [], {}

    def _raise_if_failed(self) -> None:
        if self.error is not None and not self._reported:
            self._reported = True
            raise RecordingError(f"batched recording stopped: {self.error}") from self.error

    # ------------------------------------------------------------------ the writer thread

    def _run_writer(self) -> None:
        while True:
            block = self._queue.get()
            if block is None:
                return
            try:
                if self.error is None:
                    self._write(block)
            except BaseException as exc:  # noqa: BLE001 - reported to the training thread
                self.error = exc
            finally:
                for chunk, _ in block.chunks:
                    self._pool.put(chunk)
                with self._cond:
                    self._buffered -= block.nbytes
                    self._cond.notify_all()

    def _write(self, block: _Block) -> None:
        meta = block.meta
        parts = [c.numpy()[:, :used] for c, used in block.chunks]  # each (member, rows, row)
        epochs = np.array([mt.epoch for mt in meta], np.int64)
        want = np.stack([mt.want for mt in meta]) if meta else np.zeros((0, 0), bool)  # (epoch, member)
        values = np.stack([mt.values for mt in meta]).astype(np.float64) if meta else None  # (epoch, 3, member)
        times = np.array([mt.time for mt in meta], np.float64)
        offsets = self._offsets
        closing = {r: (status, epoch, message) for r, status, epoch, message in block.closing}

        def norms(flat: np.ndarray) -> np.ndarray:  # (epoch, scalar) -> (epoch, parameter)
            return np.sqrt(np.add.reduceat(np.square(flat, dtype=np.float64), offsets[:-1], axis=1))

        big = self._stack_layers(meta)  # path -> (member, epoch, sample, unit)

        for r in list(self._writers):
            sel = np.flatnonzero(want[:, r]) if meta else np.zeros(0, np.int64)
            writer = self._writers[r]
            if len(sel):
                rows = parts[0][r] if len(parts) == 1 else np.concatenate([part[r] for part in parts])
                if len(sel) != len(rows):
                    rows = rows[sel]
                k = len(sel)
                ep = epochs[sel]
                out: dict[str, np.ndarray] = {S.EPOCH: ep}
                for key, stacked in big.items():
                    out[key] = stacked[r] if len(sel) == len(meta) else stacked[r][sel]  # (epoch, sample, unit)
                a, z, _ = self._layout["params"]
                params = rows[:, a:z]
                for (name, shape), o0, o1 in zip(self._slots, offsets[:-1], offsets[1:]):
                    out[S.parameter(name)] = params[:, o0:o1].reshape(k, *shape)
                a, z, _ = self._layout["grads"]
                out[S.norm("gradient")] = norms(rows[:, a:z])
                s0 = self._layout["state"][0]
                p = self._n_params
                for j, key in enumerate(self._keys[r]):
                    out[S.optimizer_state(STATE_KEYS[key])] = norms(rows[:, s0 + j * p : s0 + (j + 1) * p])
                prev = np.full_like(params, np.nan)
                last = self._last.get(r)
                for i, e in enumerate(ep):
                    snapshot = meta[sel[i]].prev
                    if i and ep[i - 1] == e - 1:
                        prev[i] = params[i - 1]
                    elif snapshot is not None:
                        prev[i] = snapshot[r].numpy()
                    elif i == 0 and last is not None and last[0] == e - 1:
                        prev[i] = last[1]
                out[S.norm("update")] = norms(params - prev)
                loss, penalty, acc = values[sel, 0, r], values[sel, 1, r], values[sel, 2, r]
                for key, column in (
                    ("loss", loss),
                    ("penalty", penalty),
                    ("total", loss + penalty),
                    ("accuracy", acc),
                    ("time", times[sel]),
                ):
                    out[S.metric(key)] = column
                writer.append(out)
                self._last[r] = (int(ep[-1]), params[-1].copy())
            if len(sel) or r in block.checkpoints:
                writer.commit(block.checkpoints.get(r))
            if r in closing:
                status, epoch, message = closing[r]
                del self._writers[r]
                writer.close(status, epoch=epoch, message=message)

    def _stack_layers(self, meta: list[_Meta]) -> dict[str, np.ndarray]:
        """Each layer's outputs over the block's epochs, shape (member, epoch, sample, unit), one copy per epoch.

        The outputs z = f(logits) are computed here, from the logits, by each member's own loss.
        """
        out: dict[str, np.ndarray] = {}
        m = len(self._recorded)
        with torch.no_grad():
            for j, (path, source, (n, u)) in enumerate(self._big):
                stacked = torch.empty((m, len(meta), n, u), dtype=torch.float32)
                for i, mt in enumerate(meta):
                    t = mt.layers[j]
                    if t is None:
                        stacked[:, i].copy_(self._polar.expand(m, n, u))
                    else:
                        stacked[:, i].copy_((self._activations(t) if source == "z" else t).transpose(1, 2))
                out[path] = stacked.numpy()
        return out

    # ------------------------------------------------------------------ closing

    def close(self, status: str = "interrupted", *, message: str = "") -> None:
        """Write what is pending and close every file.

        Members that ended (complete, converged, stopped, diverged) get their
        own status; the files of members still running get ``status``
        ('interrupted' or 'failed').  Safe to call twice.
        """
        if self.closed:
            return
        self.closed = True
        if not self._started:
            return
        try:
            if self.error is None:
                for r in self._rows:
                    if r not in self._ended:
                        self._closing.append((r, status, None, message))
                self._handoff({})
        finally:
            self._queue.put(None)
            assert self._thread is not None
            self._thread.join()
            if self.error is not None:
                for writer in list(self._writers.values()):
                    try:
                        writer.close("failed", message=f"{type(self.error).__name__}: {self.error}")
                    except Exception:  # noqa: BLE001 - the disk may be full: committed epochs stay readable
                        pass
                self._writers.clear()
                self._raise_if_failed()

    def __enter__(self) -> BatchRecorder:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close("interrupted", message="")
        elif issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            self.close("interrupted")
        else:
            self.close("failed", message=f"{exc_type.__name__}: {exc}")
