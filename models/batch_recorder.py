"""Recording every member of a batched run, each into its own file, as if it were trained alone.

:func:`models.batched.train_batched` trains many runs of one architecture as
one batched model.  A per-member :class:`~models.recorder.Recorder` works there
as a callback, but it costs a chain of Python calls and a probe pass per member
and epoch, and one writer thread per file.  :class:`BatchRecorder` instead
watches the whole batch (``train_batched(..., observer=recorder)``):

- every recorded epoch goes into *chunks*, block buffers of a few dozen epochs
  of every member cut from one pool of memory shared with a writer process
  (``data.batch_writer``); chunks are reused once written, so a long run
  touches the same memory again and again;
- the layer outputs come from the batch's own forward pass (no probe pass:
  the probe set is the task's training inputs, in order, as ``Recorder`` uses
  by default), and that pass writes them straight into the chunk: before each
  recorded epoch ``train_batched`` asks the recorder where to put them
  (``outputs_for``), one (member, unit, sample) view per layer, the logits and
  the outputs z = f(logits); nothing is copied on the training thread;
- the weights, gradients and optimizer state, which the next step changes in
  place, are copied into the chunk: a handful of copies whatever the number of
  members;
- a full chunk goes to the writer process with a small message; it transposes
  each member's rows to the file's (sample, unit), computes the norms, and
  appends and commits them to that member's file with
  ``data.recording.RecordingWriter`` (the same commit protocol, chunking and
  layout as ``Recorder``).  The writer is a process, not a thread, because h5py
  holds the GIL through each HDF5 call: a writer thread slowed training down by
  half again (see ``data.batch_writer``).

Each file is what ``train(config, task, ..., callbacks=[Recorder(path)])`` of
the same member would have written: same config, attributes, datasets, shapes
and dtypes, the same checkpoints (so ``Recorder(path, resume=True)`` under
``train`` resumes a member of an interrupted batch), and values equal up to
the float rounding that separates batched from alone training.
"""

from __future__ import annotations

import math
import os
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from data import schema as S
from data.batch_writer import start_writer
from data.errors import ParameterError, RecordingError, check_choice, check_number
from data.recording import chunk_rows

from .optim import STATE_KEYS
from .recorder import Schedule

__all__ = ["BatchRecorder"]

_MAX_CHUNKS = 16


@dataclass
class _Meta:
    """One captured epoch of the pending chunks."""

    epoch: int
    want: np.ndarray  # (member,) bool: rows recorded at this epoch
    values: np.ndarray  # (3, member) float32: loss, penalty, accuracy
    time: float
    prev: np.ndarray | None  # (member, parameter): the weights of epoch - 1 (a snapshot), or None


class _Chunk:
    """One chunk of the pool, as torch views: the training side fills its rows.

    ``states`` lists, for each optimizer block and state key, the (row, block member,
    parameter) view of the state buffer it is copied into, with the optimizer and the key.
    """

    def __init__(self, index: int, views: Mapping[str, np.ndarray], optimizers: Sequence[Any]) -> None:
        self.index = index
        self.views = {name: torch.from_numpy(v) for name, v in views.items()}
        state = self.views["state"]
        self.states = [(state[:, j, opt.rows], opt, key) for opt in optimizers for j, key in enumerate(opt.state_keys)]
        self.used = 0


def _stop_writer(link: Any) -> None:
    """Tell the writer of a recorder that was never closed to stop (it closes any file it opened)."""
    try:
        link.send("close")
    except OSError:
        pass
    link.release()


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
        since the last commit are committed together, each file with the
        checkpoint of its member; default 5, longer than ``Recorder``'s 0.25
        because each commit flushes every member's file).  A killed training
        process loses at most this much (its writer process commits what it
        holds in full); Ctrl-C loses nothing (pending rows are written at
        close, without checkpoint).
    max_buffer_bytes : int
        Memory of the chunk pool shared with the writer (at most 16 chunks):
        training waits for a chunk when every chunk is full and not yet written.
    block_bytes : int
        Bytes of one chunk (the epochs' layer outputs, weights, gradients and
        optimizer state of every member), rounded down to whole HDF5 chunks of
        the largest layer.  Small chunks keep the memory in use small (and
        reused: no page faults once warm); the writer's fixed costs per chunk
        are a few HDF5 calls per file.
    writer : {'process', 'thread'}
        Where the files are written: a process of its own (the default; POSIX),
        or a thread of this process (h5py then competes with training for the
        GIL).

    Notes
    -----
    Use it as the ``observer`` of ``train_batched`` and close it afterwards,
    best with ``with``::

        with BatchRecorder([f"run{i}.h5" for i in range(len(members))]) as rec:
            train_batched(config, task, members, epochs=2000, observer=rec)

    Leaving the ``with`` block by an exception closes the files still open with
    status 'interrupted' (KeyboardInterrupt, SystemExit) or 'failed'; every
    committed epoch stays readable.  On CUDA the layer outputs are copied to
    the chunks (on the CPU, the forward pass writes them there directly).
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
        block_bytes: int = 32 << 20,
        writer: str = "process",
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
        for p in self.paths:
            if p is None:
                continue
            if not overwrite and os.path.exists(p):
                raise RecordingError(
                    f"path {p!r} already exists; pass overwrite=True (CLI: --force) to replace it, "
                    "or resume it with Recorder(resume=True) under train()"
                )
            parent = os.path.dirname(os.path.abspath(p))
            if not os.path.isdir(parent):
                raise RecordingError(f"path {p!r}: the folder {parent!r} does not exist")
        if layers is not None and (isinstance(layers, str) or not all(isinstance(n, str) for n in layers)):
            raise ParameterError(f"layers must be a list of module names; got {layers!r}")
        self.layers = None if layers is None else list(layers)
        self.schedule = schedule if isinstance(schedule, Schedule) else Schedule(schedule)
        self.preactivation = bool(preactivation)
        self.overwrite = bool(overwrite)
        self.commit_every = float(check_number("commit_every", commit_every, low=0))
        self.max_buffer_bytes = int(check_number("max_buffer_bytes", max_buffer_bytes, low=1, integer=True))
        self.block_bytes = int(check_number("block_bytes", block_bytes, low=1, integer=True))
        self.writer = check_choice("writer", writer, ("process", "thread"))
        self.closed = False
        self.error: str | None = None  # what stopped the writer
        self._reported = False
        self._started = False
        self._pool: list[_Chunk] = []  # every chunk of the pool
        self._free: list[int] = []  # chunks not in use, the most recently freed last (reused first: warm memory)
        self._chunks: list[_Chunk] = []  # chunks filled since the last handoff; the last one may have room
        self._lent: tuple[_Chunk, int] | None = None  # the row the next forward pass writes to (outputs_for)
        self._meta: list[_Meta] = []
        self._closing: list[tuple[int, str, int | None, str]] = []
        self._final_ckpts: dict[int, dict[str, Any]] = {}
        self._ended: set[int] = set()  # rows whose final status is queued
        self._rows: list[int] = []
        self._snap: tuple[int, np.ndarray] | None = None
        self._appended = False  # chunks handed off since the last commit, not committed yet
        self._block_start = 0.0
        # the writer starts now (a process takes ~0.2 s to be ready) and gets its pool at epoch 0
        self._link = start_writer(kind=self.writer)
        self._finalizer = weakref.finalize(self, _stop_writer, self._link)  # a recorder dropped unclosed

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
        layers = self._sources(net)
        modules = list(dict.fromkeys(name for _, _, name in layers))
        n_samples = int(b.x.shape[0])
        shapes: dict[str, tuple[int, int]] = {}  # (sample, unit) of each recorded path
        for path, source, _ in layers:
            if source == "polar":
                shapes[path] = (n_samples, int(b.x.shape[1]))
            else:
                out = outputs[source]  # (member, unit, sample)
                shapes[path] = (int(out.shape[2]), int(out.shape[1]))
        n_out = int(outputs["output"].shape[1])
        shapes[S.layer("output", S.PREACTIVATION)] = shapes[S.layer("output")] = (n_samples, n_out)
        big = [(path, source, shapes[path]) for path, source, _ in layers]
        big += [(S.layer("output", S.PREACTIVATION), "output", shapes[S.layer("output")])]
        big += [(S.layer("output"), "z", shapes[S.layer("output")])]  # z = f(logits), from the forward pass
        # the chunk buffers the forward pass fills: each layer output once, shape (unit, sample) per member
        self._sources = list(dict.fromkeys(source for _, source, _ in big if source != "polar"))
        units = {source: shape[::-1] for _, source, shape in big}
        p = int(b.n_params)
        keys = {r: list(b.block_of[r][0].state_keys) for r in self._rows}  # torch.optim's state keys
        n_state = max((len(k) for k in keys.values()), default=0)
        per_epoch = 4 * m * (p * (2 + n_state) + sum(math.prod(units[s]) for s in self._sources))
        rows = int(max(1, min(8192, self.block_bytes // per_epoch)))
        # whole HDF5 chunks of the largest layer per block: none is written in two parts
        per_chunk = chunk_rows(max((shape for *_, shape in big), key=math.prod), 4)
        self._rows_per_chunk = rows - rows % per_chunk if rows >= per_chunk else rows
        spec = {
            "rows": self._rows_per_chunk,
            "members": m,
            "params": p,
            "states": n_state,
            "sources": [(s, units[s]) for s in self._sources],
        }
        # enough chunks to keep the writer busy while training fills the next ones (more only cost memory)
        n_chunks = int(min(_MAX_CHUNKS, max(2, self.max_buffer_bytes // max(per_epoch * self._rows_per_chunk, 1))))
        self._n_params = p
        self._full_batch = bool(run.full_batch)
        self._direct = b.device.type == "cpu"  # the forward pass can write into the (CPU) chunks
        self._slots = [(s.name, s.shape) for s in b.slots]
        self._keys = keys
        task = b.task
        attrs = {
            S.ROOT_ATTRS.SCHEDULE: self.schedule.to_json(),
            S.ROOT_ATTRS.LAYERS: [*modules, "output"],
            S.ROOT_ATTRS.MODULES: {**{name: name for name in modules}, "output": "output"},
        }
        mode = "overwrite" if self.overwrite else "create"
        payload = {
            "files": [(r, self.paths[b.members[r].index], run.configs[r], mode) for r in self._rows],
            "probe": task.probe,
            "grid": (task.grid, task.grid_shape, task.extent) if task.grid is not None else None,
            "attrs": attrs,
            "parameter_names": [name for name, _ in self._slots],
            "planned_rows": self.schedule.count(run.epochs),  # a member stopping early records fewer
            "slots": self._slots,
            "offsets": np.array([0] + [s.stop for s in b.slots], dtype=np.int64),
            "states": {r: [S.optimizer_state(STATE_KEYS[key]) for key in keys[r]] for r in self._rows},
            "layers": big,
            "polar": b.x.detach().cpu().numpy() if any(source == "polar" for _, source, _ in big) else None,
            "checkpoint": {r: self._checkpoint_shapes(run, r) for r in self._rows},
        }
        pool = self._link.open_pool(spec, n_chunks)
        self._pool = [_Chunk(c, pool.views(c), b.optimizers) for c in range(n_chunks)]
        pool.prefault(range(n_chunks))  # in the order the chunks are first taken
        self._n_chunks = n_chunks
        self._free = list(range(n_chunks))[::-1]
        self._started = True
        self._send("open", payload)

    # ------------------------------------------------------------------ the observer (training thread)

    def __call__(self, run: Any, epoch: int, outputs: Mapping[str, torch.Tensor]) -> None:
        """Record epoch ``epoch`` of every recorded member (``train_batched``'s ``observer`` protocol)."""
        if self.closed:
            raise RecordingError("this BatchRecorder is closed; create a new one for another batch")
        if not self._started:
            self._open(run, outputs)
        self._raise_if_failed()
        b = run.b
        live = self._recorded & run.active
        scheduled = epoch in self.schedule or epoch == run.epochs
        if run.status.count("running") == len(run.status):  # the usual epoch: no member ends
            status = running = None
            want = live if scheduled else None
        else:
            status = np.asarray(run.status)
            running = status == "running"
            want = live if scheduled else live & ~running
        if want is not None and want.any():
            self._capture(run, epoch, outputs, want, status)
        if not scheduled and (epoch + 1) in self.schedule and (live if running is None else live & running).any():
            self._snap = (epoch, b.w.detach().cpu().numpy().copy())  # the update norm of the next recorded epoch
        if status is not None:
            for r in np.flatnonzero(want & ~running):  # members that end now: their last row, checkpoint, status
                self._final_ckpts[int(r)] = self._checkpoint(run, int(r), epoch)
                self._closing.append((int(r), str(status[r]), epoch, ""))
                self._ended.add(int(r))
                self._recorded[r] = False
        if not scheduled:
            return
        full = bool(self._chunks) and self._chunks[-1].used == self._rows_per_chunk
        due = time.perf_counter() - self._block_start >= self.commit_every
        # members that ended go to the writer at once: their files are finished while training goes on
        if (self._meta or self._appended) and (full or due) or self._closing:
            if due:  # commit every file, with each running member's checkpoint at this epoch
                alive = want if running is None else want & running
                ckpts = {int(r): self._checkpoint(run, int(r), epoch) for r in np.flatnonzero(alive)}
                self._handoff(ckpts)
            else:  # a full chunk between commits: appended now, committed with a later one
                self._handoff({}, commit=False)

    def outputs_for(self, run: Any, epoch: int) -> dict[str, torch.Tensor] | None:
        """Where the forward pass of ``epoch`` writes its layer outputs (``train_batched``'s observer protocol).

        For a scheduled epoch: the next free row of the chunks, one view of shape (member, unit,
        sample) per recorded layer, the logits ('output') and the outputs z = f(logits) ('z');
        None otherwise (the pass makes new tensors, copied by :meth:`__call__` if a member that
        ends there needs them), and on CUDA.
        """
        if not self._started or self.closed or self.error is not None or not self._direct:
            return None
        if not (epoch in self.schedule or epoch == run.epochs) or not self._recorded.any():
            return None  # (members that ended are no longer recorded)
        chunk, i = self._peek_row()
        self._lent = (chunk, i)
        return {name: chunk.views[name][i] for name in self._sources}

    def _peek_row(self) -> tuple[_Chunk, int]:
        """The chunk and row the next captured epoch goes to (the next free chunk when the last one is full)."""
        if self._chunks and self._chunks[-1].used == self._rows_per_chunk:  # full at an unscheduled epoch
            self._handoff({}, commit=False)
        if not self._chunks:
            if not self._meta and not self._appended:
                self._block_start = time.perf_counter()  # the first epoch since the last commit
            self._chunks.append(self._take_chunk())
        chunk = self._chunks[-1]
        return chunk, chunk.used

    def _take_chunk(self) -> _Chunk:
        """A free chunk (waiting for the writer to hand one back when all are in use)."""
        while not self._free:
            self._receive(wait=True)
            self._raise_if_failed()
        chunk = self._pool[self._free.pop()]
        chunk.used = 0
        return chunk

    def _capture(
        self, run: Any, epoch: int, outputs: Mapping[str, torch.Tensor], want: np.ndarray, status: np.ndarray | None
    ) -> None:
        """Put epoch ``epoch`` of every member into the next row of the chunks.

        The layer outputs are there already when the forward pass wrote them there
        (``outputs_for``), else they are copied; weights, gradients and optimizer state change
        in place, so they are copied now (one contiguous copy each, every member at once).
        """
        b = run.b
        lent, self._lent = self._lent, None
        chunk, i = self._peek_row()
        chunk.used += 1
        views = chunk.views  # nothing here requires grad: no autograd graph without torch.no_grad()
        if lent is None or lent[0] is not chunk or lent[1] != i:  # not written in place
            with torch.no_grad():
                for name in self._sources:
                    views[name][i].copy_(b.activations(outputs["output"]) if name == "z" else outputs[name])
        views["params"][i].copy_(b.w)
        grads = views["grads"][i]
        grads.copy_(b.grad)
        if self._full_batch and status is not None:  # train() takes no backward pass at a non-finite loss
            for r in np.flatnonzero(want & (status == "diverged")):
                grads[r].zero_()
        for target, opt, key in chunk.states:  # (row, members of the block, parameter) views
            if opt.steps:
                target[i].copy_(opt.state[key])
            else:  # no state before the first step: NaN, as Recorder records it
                target[i].fill_(math.nan)
        prev = self._snap[1] if self._snap is not None and self._snap[0] == epoch - 1 else None
        self._snap = None
        self._meta.append(_Meta(epoch, want.copy(), run.history[-1], run.times[-1], prev))

    def _checkpoint(self, run: Any, r: int, epoch: int) -> dict[str, Any]:
        """Member ``r``'s optimizer state and batch-order RNG at ``epoch``, keyed as ``Recorder`` keys them."""
        opt, i = run.b.block_of[r]
        ckpt: dict[str, Any] = {"epoch": np.int64(epoch)}
        for key in self._keys[r]:
            if opt.steps:
                ckpt[f"optimizer.{key}"] = opt.state[key][i].detach().cpu().numpy().copy()
            else:
                ckpt[f"optimizer.{key}"] = np.full(self._n_params, np.nan, np.float32)
        step = float(opt.steps) if opt.counts_steps else 0.0
        ckpt["optimizer.step"] = np.full(len(self._slots), step, np.float64)
        if not self._full_batch:
            ckpt["rng"] = run.generators[r].get_state().numpy().copy()
        return ckpt

    def _checkpoint_shapes(self, run: Any, r: int) -> dict[str, tuple[tuple[int, ...], Any]]:
        """The (shape, dtype) of each array of member ``r``'s checkpoints (see :meth:`_checkpoint`)."""
        shapes: dict[str, tuple[tuple[int, ...], Any]] = {"epoch": ((), np.int64)}
        shapes.update({f"optimizer.{key}": ((self._n_params,), np.float32) for key in self._keys[r]})
        shapes["optimizer.step"] = ((len(self._slots),), np.float64)
        if not self._full_batch:
            shapes["rng"] = (tuple(run.generators[r].get_state().shape), np.uint8)
        return shapes

    def _handoff(self, checkpoints: dict[int, dict[str, Any]], *, commit: bool = True) -> None:
        """Hand the filled chunks (and the statuses of members that ended) to the writer.

        ``commit``: the writer commits every file after appending the rows; else it only
        appends them (committed with a later handoff, at most ``commit_every`` seconds later),
        but for the files of members that ended, which it commits and closes.
        """
        if not self._meta and not self._closing and not (commit and self._appended):
            return
        meta, m = self._meta, len(self._recorded)
        block = {
            "chunks": [(c.index, c.used) for c in self._chunks],
            "epochs": np.array([mt.epoch for mt in meta], np.int64),
            "want": np.stack([mt.want for mt in meta]) if meta else np.zeros((0, m), bool),  # (row, member)
            "values": np.stack([mt.values for mt in meta]) if meta else np.zeros((0, 3, m), np.float32),
            "times": np.array([mt.time for mt in meta], np.float64),
            "prevs": {i: mt.prev for i, mt in enumerate(meta) if mt.prev is not None},
            "checkpoints": {**checkpoints, **self._final_ckpts},  # members that end commit theirs anyway
            "closing": self._closing,
            "commit": commit,
        }
        self._chunks, self._meta, self._closing, self._final_ckpts = [], [], [], {}
        self._appended = (self._appended or bool(meta)) and not commit
        self._lent = None
        self._send("block", block)
        self._receive(wait=False)
        self._raise_if_failed()

    # ------------------------------------------------------------------ talking to the writer

    def _send(self, kind: str, payload: Any = None) -> None:
        try:
            self._link.send(kind, payload)
        except OSError as exc:
            self.error = self.error or f"the recording writer ended unexpectedly ({exc})"

    def _receive(self, *, wait: bool) -> bool:
        """Take the writer's messages (freed chunks, errors); wait for one if ``wait``.  False once it has closed."""
        while wait or self._link.poll():
            wait = False
            try:
                kind, payload = self._link.recv()
            except (EOFError, OSError):
                self.error = self.error or "the recording writer ended unexpectedly"
                return False
            if kind == "free":
                self._free.extend(payload)
            elif kind == "error":
                self.error = self.error or payload
            elif kind == "closed":
                self.error = self.error or payload
                return False
        return True

    def _raise_if_failed(self) -> None:
        if self.error is not None and not self._reported:
            self._reported = True
            raise RecordingError(f"batched recording stopped: {self.error}")

    # ------------------------------------------------------------------ closing

    def close(self, status: str = "interrupted", *, message: str = "") -> None:
        """Write what is pending and close every file.

        Members that ended (complete, converged, stopped, diverged) get their
        own status; the files of members still running get ``status``
        ('interrupted' or 'failed').  Waits until the writer has closed every
        file.  Safe to call twice.
        """
        if self.closed:
            return
        self.closed = True
        try:
            if self.error is None and self._started:
                for r in self._rows:
                    if r not in self._ended:
                        self._closing.append((r, status, None, message))
                self._handoff({})
        finally:
            self._send("close")
            while self._receive(wait=True):
                pass
            self._pool, self._chunks, self._lent = [], [], None
            self._finalizer.detach()
            self._link.release()  # every file is closed: the writer's exit need not be waited for
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
