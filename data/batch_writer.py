"""The writer of a batched recording: each member's rows into its own file, from a process of its own.

``models.batch_recorder.BatchRecorder`` (the training side) puts every recorded epoch of every
member into *chunks*: block buffers of ``rows`` epochs cut from one pool of float32 memory
(:class:`ChunkPool`).  The forward pass writes the layer outputs straight into them; the
weights, gradients and optimizer state are copied in.  A full chunk is handed over with a
small message (its epochs, metrics, which members want which rows); :class:`BatchWriter`
appends each member's rows to that member's recording (``data.recording.RecordingWriter``:
the same format, commit protocol and chunking as ``models.Recorder``) and hands the chunk
back.

Why a process: h5py holds the GIL through every HDF5 call, and a writer *thread* writing a
32-member batch's 1.2 GB next to training held it often enough to slow training down by half
again (each torch operation of the training thread gives the GIL up and must take it back;
measured: a loop of small torch operations ran 3.4x slower beside a thread writing HDF5,
unchanged beside a thread doing torch copies).  The writer process shares only the pool
(a memfd, or an unlinked file in /dev/shm, mapped by both) and a socket pair of small pickled
messages with the training process; it imports numpy and h5py, not torch (0.2 s to start,
while training goes on).  Where a process cannot be started with the pool's file descriptor
(Windows), the same :class:`BatchWriter` runs in a thread.

The writer starts with the recorder (before the batch's shapes are known: its pool comes with
the first message).  Messages, training side to writer: ``("pool", (spec, n))``,
``("open", payload)``, ``("block", payload)``, ``("close", None)``; writer to training side:
``("free", [chunk ids])``, ``("error", text)``, ``("closed", text or None)``.  The writer
appends blocks in groups of at least ``_MERGE_ROWS`` rows (waiting for the next block while the
pool leaves training two free chunks), the small datasets every ``_SMALL_ROWS`` rows, and
commits when a block says so or a member ends.  An error stops the writing (chunks still come
back, so that training never waits forever) and is raised by the training side at its next
call.  If the training process dies, the writer sees the socket close, commits the blocks it
received whole and closes its files as interrupted.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from . import schema as S
from .errors import HudError
from .recording import RecordingTemplate, RecordingWriter, SmallRows

__all__ = ["ChunkPool", "BatchWriter", "WriterLink", "start_writer", "chunk_layout"]

_SMALL_ROWS = 256  # a member's small datasets are written at least every this many rows (less left for the end)
_MERGE_ROWS = 64  # the writer appends at least this many rows at a time, where the pool allows
_ALIGN = 16  # floats: every buffer of a chunk starts on a 64-byte boundary


def chunk_layout(spec: Mapping[str, Any]) -> tuple[dict[str, tuple[int, tuple[int, ...]]], int]:
    """Where each buffer of a chunk lies, in floats from the chunk's start, and the chunk's size in floats.

    Parameters
    ----------
    spec : dict
        ``rows`` (epochs per chunk), ``members``, ``params`` (parameters per member),
        ``states`` (optimizer-state tensors per member), ``sources``: a list of
        (name, (unit, sample)) for each layer output the forward pass writes.

    Returns
    -------
    layout : dict of str to (offset, shape)
        ``params`` and ``grads`` of shape (rows, member, parameter), ``state`` of shape
        (rows, state, member, parameter), and each source of shape (rows, member, unit, sample).
    size : int
    """
    k, m, p = int(spec["rows"]), int(spec["members"]), int(spec["params"])
    entries = [("params", (k, m, p)), ("grads", (k, m, p)), ("state", (k, int(spec["states"]), m, p))]
    entries += [(name, (k, m, *map(int, shape))) for name, shape in spec["sources"]]
    layout: dict[str, tuple[int, tuple[int, ...]]] = {}
    offset = 0
    for name, shape in entries:
        layout[name] = (offset, shape)
        offset += -(-math.prod(shape) // _ALIGN) * _ALIGN
    return layout, offset


def _shared_fd(nbytes: int) -> int:
    """A file descriptor of ``nbytes`` of memory that a child process can map (memfd, or an unlinked tmpfs file)."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("hud-batch-chunks", os.MFD_CLOEXEC)
    else:  # pragma: no cover - macOS and other POSIX systems
        folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, name = tempfile.mkstemp(prefix="hud-batch-chunks-", dir=folder)
        os.unlink(name)
    os.ftruncate(fd, nbytes)
    return fd


class ChunkPool:
    """``n`` chunks of one :func:`chunk_layout` in one float32 buffer.

    Parameters
    ----------
    spec : dict
        See :func:`chunk_layout`.
    n : int
        Number of chunks.
    fd : int, optional
        Map this file descriptor (shared memory made by :meth:`shared`) instead of private memory.
    """

    def __init__(self, spec: Mapping[str, Any], n: int, fd: int | None = None) -> None:
        self.spec = dict(spec)
        self.n = int(n)
        self.layout, self.chunk_size = chunk_layout(spec)
        nbytes = 4 * self.n * self.chunk_size
        self.fd = fd
        if fd is None:
            self._map = None
            self.buffer = np.empty(self.n * self.chunk_size, np.float32)
        else:
            self._map = mmap.mmap(fd, nbytes)
            self.buffer = np.frombuffer(self._map, np.float32)
        self._views = [self._chunk_views(c) for c in range(self.n)]

    def _chunk_views(self, c: int) -> dict[str, np.ndarray]:
        base = c * self.chunk_size
        return {
            name: self.buffer[base + offset : base + offset + math.prod(shape)].reshape(shape)
            for name, (offset, shape) in self.layout.items()
        }

    def views(self, c: int) -> dict[str, np.ndarray]:
        """Chunk ``c``'s buffers by name (numpy views into the pool), shapes as in :func:`chunk_layout`."""
        return self._views[c]

    @property
    def nbytes(self) -> int:
        return 4 * self.chunk_size

    def prefault(self, order: Sequence[int]) -> threading.Thread | None:
        """Map the pool's pages in the background, chunk after chunk in ``order`` (shared pools only).

        Writing a page of fresh shared memory for the first time costs a page fault (3.3 us a
        4 KB page here, ~0.2 s for a 240 MB pool, and shared memory gets no huge pages); a
        thread reading one float per page ahead of training takes those faults instead (reads:
        they never change what training may already have written), on the other core.
        """
        if self._map is None:
            return None

        def touch() -> None:
            with contextlib.suppress(Exception):  # the pool was closed meanwhile
                for c in order:
                    chunk = self.buffer[c * self.chunk_size : (c + 1) * self.chunk_size]
                    float(chunk[::1024].sum())  # one read a page; numpy gives the GIL up meanwhile

        thread = threading.Thread(target=touch, name="hud-pool-prefault", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Release the mapping (views must not be used afterwards)."""
        self._views = []
        self.buffer = np.empty(0, np.float32)
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a view is still alive somewhere: the mapping goes with it
                pass
            self._map = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class BatchWriter:
    """Appends blocks of a batch's rows to one recording per member (numpy and h5py only).

    Parameters
    ----------
    pool : ChunkPool
    payload : dict
        The ``open`` message: ``files`` (a list of (member, path, config, mode)), ``probe``,
        ``grid``, ``attrs``, ``parameter_names``, ``slots`` (a list of (parameter name, shape)),
        ``offsets`` (where each parameter starts in a member's row, and the end), ``states``
        (per member, the schema path of each optimizer-state norm, in the pool's state order),
        ``planned_rows`` (the rows of a member that runs every epoch, or None: see
        ``RecordingWriter``),
        ``layers`` (a list of (schema path, source, (sample, unit)); source is a buffer name or
        'polar'), ``polar`` (the inputs after the polar stage, shape (sample, input), or None),
        ``checkpoint`` (per member, the (shape, dtype) of each array of its checkpoints: made
        in the file from the start, so that commits only overwrite them).
    """

    def __init__(self, pool: ChunkPool, payload: Mapping[str, Any]) -> None:
        self.pool = pool
        self.slots = [(name, tuple(shape)) for name, shape in payload["slots"]]
        self.offsets = np.asarray(payload["offsets"], np.int64)
        self.states = {int(r): list(paths) for r, paths in payload["states"].items()}
        self.layers = [(path, source, tuple(shape)) for path, source, shape in payload["layers"]]
        self.polar = payload.get("polar")
        self.writers: dict[int, RecordingWriter] = {}
        self._last: dict[int, tuple[int, np.ndarray]] = {}  # per member: last written epoch and weights
        self._small: dict[int, SmallRows] = {}  # per member: the small datasets' rows not yet written
        self._scratch: list[np.ndarray | None] = [None] * len(self.layers)
        common = {
            "probe": payload.get("probe"),
            "grid": payload.get("grid"),
            "attrs": payload.get("attrs"),
            "parameter_names": payload.get("parameter_names", ()),
        }
        templates: dict[tuple[str, ...], RecordingTemplate] = {}  # one per set of optimizer-state datasets
        try:
            for r, path, config, mode in payload["files"]:
                states = tuple(self.states[int(r)])
                if states not in templates:
                    checkpoint = payload.get("checkpoint", {}).get(int(r))
                    templates[states] = RecordingTemplate(
                        **common, datasets=self._datasets(states), checkpoint=checkpoint
                    )
                self.writers[int(r)] = RecordingWriter(
                    path,
                    config=config,
                    **common,
                    mode=mode,
                    chunk_cache=0,  # whole chunks of the layers straight to the file
                    template=templates[states],
                    planned_rows=payload.get("planned_rows"),
                )
        except BaseException:
            for writer in self.writers.values():
                writer.close("failed", message="another member's recording could not be created")
            self.writers.clear()
            raise

    def _datasets(self, states: Sequence[str]) -> dict[str, tuple[tuple[int, ...], Any]]:
        """Every epoch-indexed dataset a member's file gets (row shape, dtype), those of ``states`` among them."""
        out: dict[str, tuple[tuple[int, ...], Any]] = {path: (shape, np.float32) for path, _, shape in self.layers}
        out.update({S.parameter(name): (shape, np.float32) for name, shape in self.slots})
        per_parameter = ((len(self.slots),), np.float64)
        out.update({path: per_parameter for path in (S.norm("gradient"), *states, S.norm("update"))})
        out.update({S.metric(name): ((), np.float64) for name in ("loss", "penalty", "accuracy", "total", "time")})
        return out

    # -- one block ---------------------------------------------------------------------

    def write(self, block: Mapping[str, Any]) -> None:
        """Append a block's rows to every member's file; on a committing block, commit every file.

        The layers (nearly all the bytes) are appended at once, in whole HDF5 chunks; the small
        datasets (parameters, norms, metrics: ~20 HDF5 calls a file, ~30 us each whatever their
        size) are kept and written for many blocks at once, before a commit (or every
        ``_SMALL_ROWS`` rows).
        """
        chunks = [(self.pool.views(c), used) for c, used in block["chunks"] if used]
        epochs = np.asarray(block["epochs"], np.int64)
        want = np.asarray(block["want"], bool)  # (row, member)
        closing = {int(r): (status, epoch, message) for r, status, epoch, message in block["closing"]}
        checkpoints = block["checkpoints"]
        small = self._block_small(block, chunks) if len(epochs) else {}
        for r in list(self.writers):
            writer = self.writers[r]
            sel = np.flatnonzero(want[:, r]) if len(epochs) else np.zeros(0, np.int64)
            if len(sel):
                ep = epochs[sel]
                rows: dict[str, np.ndarray] = {S.EPOCH: ep}
                for j, (path, source, shape) in enumerate(self.layers):
                    rows[path] = self._layer_rows(j, source, shape, chunks, r, sel)
                start = writer.rows
                writer.append(rows)
                kept = self._small.setdefault(r, SmallRows())
                kept.add(writer, self._small_rows(r, small, block["prevs"], sel, ep), start)
                if kept.rows >= _SMALL_ROWS:
                    self._write_small(r)
            if r in closing or block["commit"] and (writer.rows != writer.committed or r in checkpoints):
                self._write_small(r)
                writer.commit(checkpoints.get(r))  # a member that ends: its last rows and checkpoint
            if r in closing:
                status, epoch, message = closing[r]
                del self.writers[r]
                writer.close(status, epoch=epoch, message=message)

    def _layer_rows(
        self, j: int, source: str, shape: tuple[int, ...], chunks: list, r: int, sel: np.ndarray
    ) -> np.ndarray:
        """Member ``r``'s rows ``sel`` of layer ``j``, transposed to (epoch, sample, unit), in a reused buffer."""
        k = len(sel)
        if source == "polar":  # the polar stage: the inputs after it, every epoch
            return np.broadcast_to(self.polar, (k, *shape))
        scratch = self._scratch[j]
        if scratch is None or len(scratch) < k:
            scratch = self._scratch[j] = np.empty((max(k, self.pool.spec["rows"]), *shape), np.float32)
        at = start = 0
        for views, used in chunks:  # the block's rows, chunk after chunk
            local = sel[(sel >= start) & (sel < start + used)] - start
            if len(local):
                part = views[source][:used, r]  # (rows, unit, sample)
                part = part if len(local) == used else part[local]
                np.copyto(scratch[at : at + len(part)], part.transpose(0, 2, 1))
                at += len(part)
            start += used
        return scratch[:k]

    def _norms(self, flat: np.ndarray) -> np.ndarray:
        """L2 norm of each parameter tensor: (..., parameter) -> (..., tensor), in float64."""
        return np.sqrt(np.add.reduceat(np.square(flat, dtype=np.float64), self.offsets[:-1], axis=-1))

    def _block_small(self, block: Mapping[str, Any], chunks: list) -> dict[str, np.ndarray]:
        """The block's weights and norms, every member at once (one pass, not one per member).

        ``params`` (row, member, parameter), a copy (the chunks are reused); ``gradient``
        (row, member, tensor) and ``state`` (row, state, member, tensor) norms.
        """

        def rows(name: str) -> np.ndarray:
            parts = [views[name][:used] for views, used in chunks]
            return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()

        params = rows("params")
        out = {
            "params": params,
            "gradient": self._norms(rows("grads")),
            "state": self._norms(rows("state")),
            "values": np.asarray(block["values"], np.float64),  # (row, 3, member)
            "times": np.asarray(block["times"], np.float64),
        }
        # update norms of every member at once, for the members that want every row of the block
        epochs = np.asarray(block["epochs"], np.int64)
        prev = np.full_like(params, np.nan)
        follows = np.zeros(len(epochs), bool)
        follows[1:] = epochs[1:] == epochs[:-1] + 1
        prev[1:][follows[1:]] = params[:-1][follows[1:]]
        for i in np.flatnonzero(~follows):
            if int(i) in block["prevs"]:
                prev[i] = block["prevs"][int(i)]
        if not follows[0] and 0 not in block["prevs"]:
            for r, (epoch, weights) in self._last.items():
                if epoch == epochs[0] - 1:
                    prev[0, r] = weights
        out["update"] = self._norms(params - prev)  # (row, member, tensor)
        return out

    def _small_rows(
        self, r: int, small: Mapping[str, np.ndarray], prevs: Mapping[int, np.ndarray], sel: np.ndarray, ep: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Member ``r``'s parameters, norms and metrics at the block's rows ``sel`` (epochs ``ep``)."""
        k = len(sel)
        params = small["params"][sel, r]  # (epoch, parameter), a copy
        out: dict[str, np.ndarray] = {}
        for (name, shape), o0, o1 in zip(self.slots, self.offsets[:-1], self.offsets[1:]):
            out[S.parameter(name)] = params[:, o0:o1].reshape(k, *shape)
        out[S.norm("gradient")] = small["gradient"][sel, r]
        for j, path in enumerate(self.states[r]):
            out[path] = small["state"][sel, j, r]
        if k == len(small["params"]):  # every row of the block: computed for every member at once
            out[S.norm("update")] = small["update"][:, r]
        else:
            prev = self._previous(r, ep, params, [prevs.get(int(i)) for i in sel])
            out[S.norm("update")] = self._norms(params - prev)
        values = small["values"][sel, :, r]  # (epoch, 3): loss, penalty, accuracy
        out[S.metric("loss")], out[S.metric("penalty")], out[S.metric("accuracy")] = values.T.copy()
        out[S.metric("total")] = values[:, 0] + values[:, 1]
        out[S.metric("time")] = small["times"][sel]
        self._last[r] = (int(ep[-1]), params[-1].copy())
        return out

    def _previous(
        self, r: int, ep: np.ndarray, params: np.ndarray, snapshots: Sequence[np.ndarray | None]
    ) -> np.ndarray:
        """Member ``r``'s weights at the epoch before each of ``ep`` (NaN where unknown), shape (epoch, parameter).

        From the row before it in the block, a snapshot of every member's weights taken at that
        epoch (shape (member, parameter)), or the last row of the previous block.
        """
        prev = np.empty_like(params)
        follows = np.zeros(len(ep), bool)  # rows whose epoch's predecessor is the row before
        follows[1:] = ep[1:] == ep[:-1] + 1
        prev[1:][follows[1:]] = params[:-1][follows[1:]]
        last = self._last.get(r)
        for i in np.flatnonzero(~follows):
            if snapshots[i] is not None:
                prev[i] = snapshots[i][r]
            elif i == 0 and last is not None and last[0] == ep[0] - 1:
                prev[i] = last[1]
            else:
                prev[i] = np.nan
        return prev

    def _write_small(self, r: int) -> None:
        """Write member ``r``'s small datasets kept since they were last written."""
        kept = self._small.get(r)
        if kept is not None:
            kept.write(self.writers[r])

    def close(self, status: str = "interrupted", message: str = "") -> None:
        """Commit every row appended so far (each a whole epoch) and close every file still open, with ``status``."""
        for r in list(self.writers):
            try:
                self._write_small(r)
            except Exception:  # noqa: BLE001 - e.g. a full disk: committed epochs stay readable, and the
                self.writers[r].discard_uncommitted()  # rows whose small datasets are not written are not claimed
            try:
                self.writers.pop(r).close(status, message=message)
            except Exception:  # noqa: BLE001
                pass


# ----------------------------------------------------------------------------- the two ends


def _merge(blocks: list[Mapping[str, Any]]) -> Mapping[str, Any]:
    """Blocks handed over one after another as one block (only the last may commit or close files)."""
    if len(blocks) == 1:
        return blocks[0]
    out = dict(blocks[-1])
    for key in ("epochs", "want", "values", "times"):
        out[key] = np.concatenate([b[key] for b in blocks])
    out["chunks"] = [c for b in blocks for c in b["chunks"]]
    out["prevs"], start = {}, 0
    for b in blocks:
        out["prevs"].update({start + int(i): v for i, v in b["prevs"].items()})
        start += len(b["epochs"])
    return out


def _next_blocks(first: Mapping[str, Any], link: Any, pending: list, hold: int) -> list[Mapping[str, Any]]:
    """``first`` and the blocks after it, until one commits or closes files, or they hold ``_MERGE_ROWS`` rows
    or ``hold`` chunks.

    The writer's fixed costs are per block and file (~20 HDF5 calls, ~30 us each whatever their
    size), so it writes chunks in groups: it waits for the training side to hand over up to
    ``hold`` chunks (the pool keeps two more, so that training never waits for it).
    """
    blocks = [first]
    rows, chunks = len(first["epochs"]), len(first["chunks"])
    while not (blocks[-1]["commit"] or blocks[-1]["closing"]) and rows < _MERGE_ROWS and chunks < hold:
        try:
            kind, payload = message = link.recv()
        except (EOFError, OSError):  # the training process is gone: write what came, then stop
            pending.append(("eof", None))
            break
        if kind != "block":
            pending.append(message)
            break
        blocks.append(payload)
        rows += len(payload["epochs"])
        chunks += len(payload["chunks"])
    return blocks


def serve(link: Any, pool_fd: int | None = None) -> None:
    """The writer's loop: take messages from ``link`` until ``close`` (or the link closes), answer on it.

    ``link`` has ``send(obj)``, ``recv()`` and ``poll()`` (a ``multiprocessing.connection.Connection``,
    or :class:`_QueueEnd` in a thread).  The ``pool`` message brings the chunk pool: its spec and
    size, mapped from ``pool_fd`` (a process), or the pool itself (a thread).
    """
    pool: ChunkPool | None = None
    writer: BatchWriter | None = None
    error: str | None = None
    pending: list[tuple[str, Any]] = []
    while True:
        try:
            kind, payload = pending.pop(0) if pending else link.recv()
        except (EOFError, OSError):
            kind, payload = "eof", None
        if kind == "eof":  # the training process is gone: keep what is complete
            if writer is not None and error is None:
                writer.close("interrupted", message="the training process ended without closing the recording")
            return
        try:
            if kind == "pool":
                pool = payload if isinstance(payload, ChunkPool) else ChunkPool(*payload, fd=pool_fd)
            elif kind == "open":
                assert pool is not None
                writer = BatchWriter(pool, payload)
            elif kind == "block":
                assert pool is not None
                blocks = _next_blocks(payload, link, pending, pool.n - 2)
                try:
                    if error is None and writer is not None:
                        writer.write(_merge(blocks))
                finally:
                    if not _reply(link, ("free", [c for b in blocks for c, _ in b["chunks"]])):
                        pending.insert(0, ("eof", None))
            elif kind == "close":  # files still open (none, when the training side closed them): end them
                if writer is not None:
                    writer.close("failed" if error else "interrupted", message=error or "")
                _reply(link, ("closed", error))
                return
        except Exception as exc:  # noqa: BLE001 - reported to the training side, which raises it
            error = str(exc) if isinstance(exc, HudError) else f"{type(exc).__name__}: {exc}"
            if not _reply(link, ("error", error)):
                pending.insert(0, ("eof", None))


def _reply(link: Any, message: tuple[str, Any]) -> bool:
    """Send ``message`` to the training side; False if it is gone."""
    try:
        link.send(message)
    except OSError:
        return False
    return True


class _QueueEnd:
    """One end of a two-way link between threads (the in-process stand-in for a pipe)."""

    def __init__(self, inbox: queue.SimpleQueue, outbox: queue.SimpleQueue) -> None:
        self._in, self._out = inbox, outbox

    def send(self, obj: Any) -> None:
        self._out.put(obj)

    def recv(self) -> Any:
        return self._in.get()

    def poll(self) -> bool:
        return not self._in.empty()


class WriterLink:
    """The training side's handle on a running writer (a process, or a thread where processes cannot share the pool).

    Attributes
    ----------
    pool : ChunkPool or None
        The chunks, mapped in this process too (None until :meth:`open_pool`).
    kind : {'process', 'thread'}
    """

    def __init__(self, end: Any, kind: str, worker: Any, pool_fd: int | None = None) -> None:
        self.pool: ChunkPool | None = None
        self.kind = kind
        self._end = end
        self._worker = worker
        self._pool_fd = pool_fd

    def open_pool(self, spec: Mapping[str, Any], n_chunks: int) -> ChunkPool:
        """Make the pool of ``n_chunks`` chunks of ``spec`` (see :func:`chunk_layout`) and hand it to the writer."""
        if self.kind == "process":
            assert self._pool_fd is not None
            layout, size = chunk_layout(spec)
            os.ftruncate(self._pool_fd, max(4 * n_chunks * size, 1))
            self.pool = ChunkPool(spec, n_chunks, fd=self._pool_fd)
            self._pool_fd = None  # the pool owns it now
            self.send("pool", (dict(spec), n_chunks))
        else:
            self.pool = ChunkPool(spec, n_chunks)
            self.send("pool", self.pool)
        return self.pool

    def send(self, kind: str, payload: Any = None) -> None:
        """Send one message; OSError (a broken pipe) if the writer is gone."""
        self._end.send((kind, payload))

    def poll(self) -> bool:
        """Whether a message is waiting."""
        return self._end.poll()

    def recv(self) -> tuple[str, Any]:
        """The next message from the writer (waits); EOFError if the writer is gone."""
        return self._end.recv()

    def release(self, timeout: float = 60.0) -> None:
        """Once the writer has said 'closed': wait for it to end and release the pool, in the background.

        Its files are closed already; what is left is process exit and unmapping the pool (~0.1 s
        for a 256 MB pool), which need not hold up the caller.
        """
        threading.Thread(target=self.join, args=(timeout,), name="hud-batch-writer-reaper", daemon=True).start()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the writer to end, then release the pool."""
        if self.kind == "process":
            try:
                self._worker.wait(timeout)
            except subprocess.TimeoutExpired:
                self._worker.kill()
                self._worker.wait()
            self._end.close()
        else:
            self._worker.join(timeout)
        if self.pool is not None:
            self.pool.close()
        elif self._pool_fd is not None:
            os.close(self._pool_fd)
            self._pool_fd = None


def start_writer(*, kind: str = "process") -> WriterLink:
    """Start a writer; its pool comes later (:meth:`WriterLink.open_pool`), once the batch's shapes are known.

    A writer process takes ~0.2 s to start (an interpreter importing numpy and h5py): started
    before the batch is built, it is ready sooner, and training fills fewer chunks meanwhile.

    Parameters
    ----------
    kind : {'process', 'thread'}
        'process' (the default) needs POSIX file descriptors passed to a child; elsewhere the
        writer runs in a thread.
    """
    if kind == "process" and os.name == "posix":
        import socket

        pool_fd = _shared_fd(0)  # sized by open_pool
        ours, theirs = socket.socketpair()
        # room for the messages sent while the writer still starts up (the open message, the first
        # blocks: ~0.5 MB), so that training does not wait for it (capped by net.core.wmem_max)
        with contextlib.suppress(OSError):
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        args = [sys.executable, "-m", "data.batch_writer", str(theirs.fileno()), str(pool_fd)]
        try:
            proc = subprocess.Popen(
                args,
                pass_fds=(theirs.fileno(), pool_fd),
                env=env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C reaches training, which closes the writer
            )
        except BaseException:
            os.close(pool_fd)
            raise
        finally:
            theirs.close()
        return WriterLink(Connection(ours.detach()), "process", proc, pool_fd)
    to_writer: queue.SimpleQueue = queue.SimpleQueue()
    to_trainer: queue.SimpleQueue = queue.SimpleQueue()
    end = _QueueEnd(to_writer, to_trainer)
    thread = threading.Thread(target=serve, args=(end,), name="hud-batch-writer", daemon=True)
    thread.start()
    return WriterLink(_QueueEnd(to_trainer, to_writer), "thread", thread)


def _main(argv: Sequence[str]) -> None:
    """The writer process: ``python -m data.batch_writer LINK_FD POOL_FD``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the training side, which closes us
    link_fd, pool_fd = (int(a) for a in argv[:2])
    serve(Connection(link_fd), pool_fd)
    # every file is closed (and the training side told so): leave without tearing the interpreter down
    # (~0.15 s of module and h5py cleanup)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    _main(sys.argv[1:])
