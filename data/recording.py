"""Reading and writing recordings (the only module of hud that imports h5py).

A recording is one HDF5 file per run; ``data.schema`` owns its layout.  Writing
is append-per-block with a commit protocol that survives SIGKILL: the rows of
a block are written and flushed first, then the commit marker (the number of
committed rows) is written and flushed in a second flush.  Readers see only
committed rows; a half-written block past the marker is ignored, and resuming
truncates it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import errno
import functools
import hashlib
import json
import os
import platform
import queue
import shutil
import sys
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
from tqdm.auto import tqdm

from . import schema as S
from ._version import __version__
from .errors import FormatVersionError, NotRecordedError, ParameterError, RecordingError, check_number
from .tasks import Probe

if TYPE_CHECKING:  # pandas is imported where a DataFrame is made: a writer process needs only h5py
    import pandas as pd

__all__ = [
    "RecordingWriter",
    "BackgroundWriter",
    "Recording",
    "open_recording",
    "library_versions",
    "STATUSES",
    "format_bytes",
    "chunk_rows",
    "RecordingTemplate",
    "SmallRows",
    "split_small",
]

#: statuses a recording can have; 'running' on disk after the writer died means interrupted
STATUSES = ("running", "complete", "converged", "stopped", "diverged", "interrupted", "failed")
_CHUNK_BYTES = 1 << 18  # target chunk size: 256 KiB
_CACHE_BYTES = 64 << 20  # chunk cache per file: partially written chunks stay in memory between blocks
_RESERVE_MARGIN = 1 << 20  # bytes reserved past a block's chunks, for HDF5's own metadata (B-tree nodes, headers)
_RESERVE_STEP = 16 << 20  # space is allocated ahead in steps of this size
_RESERVE_WHOLE = 64 << 20  # a growth of datasets allocated ahead up to this size is reserved on disk at once
_INDEX_BYTES = 64  # file bytes of a chunk index a chunk may need (a 64-entry node: 3.1 KiB on a 4 KiB page)
_DATASET_BYTES = 6 << 10  # file bytes of an epoch-indexed dataset besides its chunks (index node on its page,
# header), measured: 100-170 KB over the chunks in files of 15-20 such datasets
_DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
#: Every file opened for writing starts allocations of 2 KiB or more on a 4 KiB page: the nodes of
#: each dataset's chunk index (a B-tree, 2.1-3.6 KiB for up to 4-D datasets; 0.2-0.6 % of a file).
#: A SIGKILL can stop the kernel's copy of a write between two pages, and a node rewritten when a
#: chunk is added (uncommitted rows) then mixes its new first page with its old second one: the
#: index no longer finds a chunk of committed rows (seen once in 1500 kills of bench_crash.py: a
#: node 104 bytes before a page's end).  A write within one page is not cut.
_ALIGNMENT = {"alignment_threshold": 2048, "alignment_interval": 4096}
_REPACK_STEP = 16 << 20  # bytes of rows copied at a time when a recording is written anew (repack)
_REPACK_QUIET = 256 << 20  # writing a recording anew shows progress from this size
_WRITING: set[str] = set()  # real paths this process has open in a RecordingWriter


def library_versions() -> dict[str, str]:
    """Versions of hud and the libraries a recording depends on."""
    return dict(_versions())


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:  # looked up once a process (5 ms a file, for every file)
    out = {
        "hud": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "h5py": h5py.version.version,
        "hdf5": h5py.version.hdf5_version,
    }
    for dist in ("torch", "pandas", "scikit-learn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return tuple(out.items())


def format_bytes(n: float) -> str:
    """A byte count for people: '7.8 KB', '15.6 MB'."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _eoa_field(fd: int) -> int | None:
    """Where the superblock of the HDF5 file open as ``fd`` stores its end-of-allocation address, or None.

    Superblocks of versions 0 and 1 (the default ones, without a checksum), 8-byte addresses and
    no user block only: the address field is 40 bytes (version 0) or 44 (version 1) into the file
    (HDF5 file format specification, "Superblock").
    """
    head = os.pread(fd, 48, 0)
    if len(head) < 48 or head[:8] != _SIGNATURE or head[8] not in (0, 1) or head[13] != 8:
        return None
    at = 40 if head[8] == 0 else 44
    base = int.from_bytes(head[at - 16 : at - 8], "little")
    return at if base == 0 else None


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))


def _write_rows(ds: h5py.Dataset, start: int, values: np.ndarray, direct: int = 0) -> None:
    """Write ``values`` (n_rows, ...) at rows ``start:`` with h5py's low-level API (the fast path of a hot loop).

    The rows are made contiguous first: handing HDF5 a strided memory selection
    instead (a column range of a block) was measured 2-3x slower for the whole
    batch (it copies such selections piece by piece).  ``direct``: the rows per chunk
    of a dataset whose whole chunks may be written as they are (see
    :func:`_direct_chunk_rows`): the whole chunks among the rows go to the file
    without HDF5's copy into its chunk cache (~30 % less CPU for a batch's layers).
    """
    values = np.ascontiguousarray(values, dtype=ds.dtype)
    end = start + len(values)
    first = last = start
    if direct:  # the whole chunks among the rows: rows first:last
        first, last = -(-start // direct) * direct, end // direct * direct
    if first >= last:  # no whole chunk
        space = ds.id.get_space()
        space.select_hyperslab((start,) + (0,) * (values.ndim - 1), values.shape)
        ds.id.write(h5py.h5s.create_simple(values.shape), space, values)
        return
    if first > start:
        _write_rows(ds, start, values[: first - start])
    zeros = (0,) * (values.ndim - 1)
    for row in range(first, last, direct):  # the file's bytes are the array's: the same type, no filter
        ds.id.write_direct_chunk((row, *zeros), values[row - start : row - start + direct])
    if last < end:
        _write_rows(ds, last, values[last - start :])


def _write_whole_chunks(d: _Open, start: int, values: np.ndarray) -> None:
    """Write rows ``start:`` of a dataset allocated ahead as whole chunks, ``d.last`` completing the first
    one when it holds that chunk's earlier rows (the rows past them are zeros: never claimed).

    HDF5 would read a chunk that is already allocated from the file before writing part of it (a
    ``pread`` holding the GIL, ~60 a spirals run); writing whole chunks reads nothing.  Without
    ``d.last`` (after a resume) the first chunk is written in part through HDF5.
    """
    r, n = d.direct, len(values)
    if not r or n == 0:
        _write_rows(d.ds, start, values, r)
        return
    values = np.ascontiguousarray(values, dtype=d.ds.dtype)
    zeros, pos, end = (0,) * len(d.tail), start, start + n
    if pos % r:  # the first chunk holds rows written before
        head = pos - pos % r
        k = min(head + r, end) - pos
        if d.last is not None and d.last[0] == head:
            rows = d.last[1]
            rows[pos - head : pos - head + k] = values[:k]
            d.ds.id.write_direct_chunk((head, *zeros), rows)
        else:
            _write_rows(d.ds, pos, values[:k])
            d.last = None
        pos += k
    whole = pos + (end - pos) // r * r
    if whole > pos:
        _write_rows(d.ds, pos, values[pos - start : whole - start], r)
    if whole < end:  # a chunk begun here: kept to be completed by the next rows
        rows = np.zeros((r, *d.tail), d.ds.dtype)
        rows[: end - whole] = values[whole - start :]
        d.ds.id.write_direct_chunk((whole, *zeros), rows)
        d.last = (whole, rows)


def _direct_chunk_rows(ds: h5py.Dataset) -> int:
    """Rows per chunk of ``ds`` if a whole chunk may be written as it is, else 0.

    That is when each chunk holds whole rows (chunked along the first axis only) and no
    filter (compression, shuffle, checksum) transforms it.
    """
    chunks = ds.chunks
    if chunks is None or tuple(chunks[1:]) != ds.shape[1:] or ds.id.get_create_plist().get_nfilters():
        return 0
    return int(chunks[0])


def _label(ds: h5py.Dataset, path: str) -> None:
    for k, name in enumerate(S.dims(path, ds.ndim)):
        ds.dims[k].label = name


def chunk_rows(row_shape: tuple[int, ...], itemsize: int) -> int:
    """Rows (epochs) per HDF5 chunk of an epoch-indexed dataset whose rows have ``row_shape``.

    Chunks hold about 256 KiB (at most 1024 rows): a writer that appends whole chunks at a
    time writes each chunk once.
    """
    row = int(np.prod(row_shape, dtype=np.int64)) * itemsize
    return int(max(1, min(1024, _CHUNK_BYTES // max(row, 1))))


def _chunks(row_shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    return (chunk_rows(row_shape, itemsize), *(max(1, s) for s in row_shape))


def allocated_bytes(row_shape: tuple[int, ...], dtype: Any, rows: int) -> int:
    """Bytes on disk of an epoch-indexed dataset ``rows`` long, written uncompressed: its whole chunks,
    each of 2 KiB or more aligned to 4 KiB (``_ALIGNMENT``).

    Parameters
    ----------
    row_shape : tuple of int
        The shape of one row (epoch), e.g. (sample, unit).
    dtype : numpy dtype
    rows : int
        Rows (epochs) of the dataset.

    Returns
    -------
    int
    """
    itemsize = np.dtype(dtype).itemsize
    chunks = _chunks(tuple(row_shape), itemsize)
    nbytes = int(np.prod(chunks, dtype=np.int64)) * itemsize
    if nbytes >= _ALIGNMENT["alignment_threshold"]:
        nbytes = -(-nbytes // _ALIGNMENT["alignment_interval"]) * _ALIGNMENT["alignment_interval"]
    return -(-rows // chunks[0]) * nbytes


def _scales(f: h5py.File) -> tuple[h5py.Dataset, h5py.Dataset | None]:
    """A recording's dimension scales: epochs, and parameter names (None if it has none)."""
    return f[S.EPOCH], (f[S.PARAMETER_NAMES] if S.PARAMETER_NAMES in f else None)


def _create_dataset(
    f: h5py.File,
    path: str,
    row_shape: tuple[int, ...],
    dtype: np.dtype,
    rows: int,
    compression: str | None,
    scales: tuple[h5py.Dataset, h5py.Dataset | None],
) -> h5py.Dataset:
    """An epoch-indexed dataset of ``rows`` rows, chunked along epochs, labelled, its scales attached.

    Uncompressed datasets get their chunks allocated whenever their extent grows, never written
    by HDF5 (:func:`_allocated_ahead`): the writer writes every row it claims, fill values included,
    and a dataset made as long as the run's rows keeps its chunk index unchanged from then on.
    Compressed chunks move when rewritten (their size changes), so those are allocated as written.
    """
    dtype = np.dtype(dtype)
    ds = f.create_dataset(
        path,
        shape=(rows, *row_shape),
        maxshape=(None, *row_shape),
        dtype=dtype,
        chunks=_chunks(tuple(row_shape), dtype.itemsize),
        fillvalue=np.nan if dtype.kind == "f" else 0,
        compression=compression,
        **(_ahead_options() if compression is None else {}),
    )
    _label(ds, path)
    epoch, names = scales
    ds.dims[0].attach_scale(epoch)
    if names is not None and S.dims(path, ds.ndim)[1:2] == ("parameter",):
        ds.dims[1].attach_scale(names)
    return ds


def _ahead_options() -> dict[str, Any]:
    """``create_dataset`` options of a dataset whose chunks are allocated when its extent grows, never
    written by HDF5 (:func:`_allocated_ahead`)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    return {"dcpl": dcpl, "fill_time": "never"}


def _allocated_ahead(ds: h5py.Dataset) -> bool:
    """Whether ``ds``'s chunks are allocated when its extent grows and never filled by HDF5
    (see :func:`_create_dataset`; recordings of format 1 written before that was so have neither)."""
    plist = ds.id.get_create_plist()
    return plist.get_alloc_time() == h5py.h5d.ALLOC_TIME_EARLY and plist.get_fill_time() == h5py.h5d.FILL_TIME_NEVER


class _Open:
    """An epoch-indexed dataset open for writing, and what the writer tracks of it.

    Attributes
    ----------
    ds : h5py.Dataset
    tail : tuple of int
        Its row shape.
    length : int
        Its rows (extent).
    direct : int
        Rows of a chunk written directly, 0 if never (see ``_write_rows``).
    ahead : bool
        Its chunks are allocated when it grows and never filled by HDF5 (:func:`_allocated_ahead`).
    chunk : int
        Rows of a chunk.
    chunk_bytes : int
        Bytes of a chunk (uncompressed).
    filled : int
        Rows written or filled (only tracked when ``ahead``).
    reserved : int
        Chunks whose space on disk is allocated (only tracked when ``ahead``).
    last : tuple (row, ndarray of shape (chunk, ...)) or None
        The last chunk written in part by :func:`_write_whole_chunks`: its first row and its rows
        (those past ``filled`` are zeros).
    """

    __slots__ = ("ds", "tail", "length", "direct", "ahead", "chunk", "chunk_bytes", "filled", "reserved", "last")

    def __init__(self, ds: h5py.Dataset, filled: int) -> None:
        self.ds = ds
        self.tail = ds.shape[1:]
        self.length = ds.shape[0]
        self.direct = _direct_chunk_rows(ds)
        self.ahead = _allocated_ahead(ds)
        self.chunk = int(ds.chunks[0])
        self.chunk_bytes = int(np.prod(ds.chunks, dtype=np.int64)) * ds.dtype.itemsize
        self.filled = filled
        self.reserved = 0
        self.last: tuple[int, np.ndarray] | None = None  # (first row, rows) of the last chunk written in part

    def resize(self, length: int) -> None:
        self.ds.id.set_extent((length, *self.tail))
        self.length = length

    def reopen(self, ds: h5py.Dataset) -> None:
        """Point at ``ds``: this dataset in a new version of the file (see ``RecordingWriter._restructure``)."""
        self.ds = ds
        self.length = ds.shape[0]
        self.reserved = 0  # (that space was reserved in the old file)


def _fits(fd: int, end: int, nbytes: int) -> bool:
    """Whether ``nbytes`` more past ``end`` fit in the free space of the file system of ``fd`` and under
    this process's file size limit (RLIMIT_FSIZE)."""
    stat = os.fstatvfs(fd)
    if nbytes > stat.f_bavail * stat.f_frsize:
        return False
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return True
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return limit == resource.RLIM_INFINITY or end + nbytes + _RESERVE_STEP <= limit


def _epoch_paths(f: h5py.File) -> list[str]:
    """The paths of a recording's epoch-indexed datasets (the checkpoint slots are not visited: one being
    made when a run was killed may not be whole, and it is never claimed)."""
    paths: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and S.is_epoch_indexed(name):
            paths.append(name)

    for name in f:
        if name != S.CHECKPOINT:
            obj = f[name]
            if isinstance(obj, h5py.Group):
                obj.visititems(lambda sub, o, top=name: visit(f"{top}/{sub}", o))
            else:
                visit(name, obj)
    return paths


def _epoch_datasets_bytes(
    datasets: Mapping[str, tuple[tuple[int, ...], Any]], rows: int, have: Mapping[str, int]
) -> int:
    """Bytes on disk that the epoch-indexed ``datasets`` (and ``/epoch``) add to a file to be ``rows`` long,
    when they have ``have[path]`` rows already: their chunks, and the index of each one without rows."""
    total = 0
    for path, (row_shape, dtype) in {S.EPOCH: ((), np.int64), **datasets}.items():
        n = have.get(path, 0)
        if not n:
            total += _DATASET_BYTES
        if rows > n:
            total += allocated_bytes(row_shape, dtype, rows) - allocated_bytes(row_shape, dtype, n)
    return total


def expected_size(
    datasets: Mapping[str, tuple[tuple[int, ...], Any]],
    rows: int,
    *,
    probe: Probe,
    grid: tuple[np.ndarray, tuple[int, int], tuple[float, ...]] | None = None,
    attrs: Mapping[str, Any] | None = None,
    parameter_names: Sequence[str] = (),
) -> int:
    """Bytes on disk a new recording of ``rows`` recorded epochs is expected to take (uncompressed).

    Its skeleton (the probe set, the grid, the attributes, the datasets without rows), made in memory
    and measured, plus the chunks and chunk indexes of its epoch-indexed datasets.  Within a few
    percent of the closed file (``tests/models/test_recorder.py``).

    Parameters
    ----------
    datasets : mapping of schema path to (row shape, dtype)
        The epoch-indexed datasets, e.g. ``{'layers/hidden1/activation': ((194, 10), float32), ...}``.
    rows : int
        Recorded epochs.
    probe, grid, attrs, parameter_names
        As in :class:`RecordingWriter`.

    Returns
    -------
    int
    """
    skeleton = RecordingTemplate(
        probe=probe, grid=grid, attrs=attrs, parameter_names=parameter_names, datasets=datasets
    )
    return len(skeleton.image) + _epoch_datasets_bytes(datasets, rows, {})


def _copy_sparse(src: str, dst: str) -> None:
    """Copy the file ``src`` to ``dst`` keeping its holes (only the ranges that hold data are copied)."""
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        length = os.fstat(fi.fileno()).st_size
        seek_data, seek_hole = getattr(os, "SEEK_DATA", None), getattr(os, "SEEK_HOLE", None)
        if seek_data is None or not hasattr(os, "copy_file_range"):  # pragma: no cover - not Linux
            shutil.copyfileobj(fi, fo)
            return
        offset = 0
        while offset < length:
            try:
                start = os.lseek(fi.fileno(), offset, seek_data)
            except OSError:  # no data past offset: a hole to the end
                break
            end = os.lseek(fi.fileno(), start, seek_hole)
            while start < end:
                start += os.copy_file_range(fi.fileno(), fo.fileno(), end - start, start, start)
            offset = end
        os.ftruncate(fo.fileno(), length)


def _chunk_bytes(ds: h5py.Dataset, rows: int) -> int:
    """Bytes of the chunks of an epoch-indexed dataset ``rows`` long (uncompressed)."""
    return -(-rows // ds.chunks[0]) * int(np.prod(ds.chunks, dtype=np.int64)) * ds.dtype.itemsize


def _used_bytes(fd: int) -> int:
    """Bytes the file ``fd`` takes on disk (less than its length when it has holes)."""
    st = os.fstat(fd)
    return st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size


def bytes_on_disk(path: str | os.PathLike) -> int:
    """Bytes the file at ``path`` takes on disk (less than its length when it has holes: a recording
    allocated ahead is sparse until written)."""
    with open(path, "rb") as fh:
        return _used_bytes(fh.fileno())


def _copy_and_change(src: str, dst: str, change: Any) -> None:
    """Copy the file ``src`` to ``dst`` (keeping its holes) and apply ``change(f)`` to the copy, open in HDF5."""
    _copy_sparse(src, dst)
    with h5py.File(dst, "r+", **_ALIGNMENT) as f:
        change(f)


def _resize_all(f: h5py.File, lengths: Mapping[str, int]) -> None:
    """Give each dataset of ``lengths`` (path -> rows) that many rows."""
    for path, rows in lengths.items():
        f[path].resize(rows, axis=0)


def repack(
    src: str | os.PathLike, dst: str | os.PathLike, *, compression: str | None = None, rows: int | None = None
) -> None:
    """Write the recording ``src`` anew at ``dst``, its epoch-indexed datasets made again with ``compression``.

    Every attribute and every other object is copied as it is; the epoch-indexed datasets (the
    dimension scales ``/epoch`` and ``/parameter_names`` with them) are made again and given the
    committed rows (``/commit[0]``) only.  Uncompressed (``compression=None``) they are allocated
    ahead (see :func:`_create_dataset`) and ``rows`` long (at least the committed rows); compressed
    they hold exactly the committed rows.  Used to compress a recording when it is closed, and to
    give a compressed (or older) recording the layout of one written from its start when it is
    resumed; ``h5repack`` does not remake dimension scales.

    Parameters
    ----------
    src, dst : str or PathLike
        A recording, and the new file (created; an existing one is replaced).
    compression : {None, 'lzf', 'gzip'}
    rows : int, optional
        Rows of the uncompressed datasets (default: the committed rows).
    """
    with h5py.File(src, "r") as fi, h5py.File(dst, "w", **_ALIGNMENT) as fo:
        n = int(fi[S.COMMIT][0])
        length = n if compression is not None else max(n, rows or 0)
        for key, value in fi.attrs.items():
            fo.attrs[key] = value
        epoch_paths = _epoch_paths(fi)
        skip = {S.EPOCH, S.PARAMETER_NAMES, *epoch_paths}
        _copy_objects(fi, fo, skip)
        ep = fo.create_dataset(
            S.EPOCH, shape=(length,), maxshape=(None,), dtype=np.int64, chunks=(4096,), **_ahead_options()
        )
        ep[:n] = fi[S.EPOCH][:n]
        _label(ep, S.EPOCH)
        ep.make_scale("epoch")
        if S.PARAMETER_NAMES in fi:
            names = fo.create_dataset(S.PARAMETER_NAMES, data=fi[S.PARAMETER_NAMES][()])
            _label(names, S.PARAMETER_NAMES)
            names.make_scale("parameter")
        scales = _scales(fo)
        total = sum(_chunk_bytes(fi[p], n) for p in epoch_paths)
        bar = tqdm(total=total, unit="B", unit_scale=True, desc="rewriting recording", disable=total < _REPACK_QUIET)
        with bar:
            for path in epoch_paths:
                if path == S.EPOCH:
                    continue
                ds = fi[path]
                new = _create_dataset(fo, path, ds.shape[1:], ds.dtype, length, compression, scales)
                step = new.chunks[0] * max(1, _REPACK_STEP // _chunk_bytes(ds, new.chunks[0]))  # whole chunks
                for a in range(0, n, step):
                    new[a : min(a + step, n)] = ds[a : min(a + step, n)]
                    bar.update(_chunk_bytes(ds, min(step, n - a)))


def _copy_objects(fi: h5py.Group, fo: h5py.Group, skip: set[str]) -> None:
    """Copy the groups and datasets of ``fi`` into ``fo`` (with their attributes), but the paths of ``skip``."""
    for name, obj in fi.items():
        path = obj.name.lstrip("/")
        if path in skip:
            continue
        if isinstance(obj, h5py.Group) and any(p.startswith(path + "/") for p in skip):
            group = fo.create_group(name)
            for key, value in obj.attrs.items():
                group.attrs[key] = value
            _copy_objects(obj, group, skip)
        else:
            fi.copy(obj, fo, name=name)


def _no_room(nbytes: int, error: OSError) -> RecordingError:
    return RecordingError(
        f"no room for {format_bytes(nbytes)} more: {error.strerror} "
        f"(the disk is full, or a quota or file size limit was reached)"
    )


def _created() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _write_skeleton(
    f: h5py.File,
    config: Mapping[str, Any] | None,
    probe: Any,
    grid: Any,
    attrs: Mapping[str, Any] | None,
    parameter_names: Sequence[str] | None,
) -> None:
    """What a new recording holds before its first epoch: attributes, the commit marker, probe, grid."""
    f.attrs[S.ROOT_ATTRS.FORMAT] = S.FORMAT_NAME
    f.attrs[S.ROOT_ATTRS.VERSION] = S.FORMAT_VERSION
    f.attrs[S.ROOT_ATTRS.CONFIG] = _json(config or {})
    f.attrs[S.ROOT_ATTRS.VERSIONS] = _json(library_versions())
    f.attrs[S.ROOT_ATTRS.CREATED] = _created()
    for key, value in (attrs or {}).items():
        f.attrs[key] = _json(value)
    f.attrs[S.ROOT_ATTRS.STATUS] = "running"
    f.attrs[S.ROOT_ATTRS.STATUS_EPOCH] = -1
    f.attrs[S.ROOT_ATTRS.STATUS_MESSAGE] = ""
    f.create_dataset(S.COMMIT, data=np.array([0, -1], np.int64))
    ep = f.create_dataset(S.EPOCH, shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(4096,), **_ahead_options())
    _label(ep, S.EPOCH)
    ep.make_scale("epoch")
    if probe is not None:
        for path, arr in (
            (S.PROBE_INPUTS, probe.inputs),
            (S.PROBE_TARGETS, probe.targets),
            (S.PROBE_LABELS, probe.labels),
        ):
            _label(f.create_dataset(path, data=np.asarray(arr)), path)
    if parameter_names:
        names = f.create_dataset(S.PARAMETER_NAMES, data=np.array(list(parameter_names), dtype=h5py.string_dtype()))
        _label(names, S.PARAMETER_NAMES)
        names.make_scale("parameter")
    if grid is not None:
        points, shape, extent = grid
        ds = f.create_dataset(S.GRID_POINTS, data=np.asarray(points, np.float32))
        _label(ds, S.GRID_POINTS)
        ds.attrs[S.GRID_SHAPE] = np.asarray(shape, np.int64)
        ds.attrs[S.GRID_EXTENT] = np.asarray(extent, np.float64)


class RecordingTemplate:
    """The bytes of a new recording before its first epoch, less its config: many recordings start from one copy.

    Creating a recording and its ~20 epoch-indexed datasets (labels, dimension scales) costs
    ~15 ms; copying a template and setting its config ~2 ms.  A batched run's writer makes one
    template per set of datasets and copies it for every member.

    Parameters
    ----------
    probe, grid, attrs, parameter_names
        As in :class:`RecordingWriter`.
    datasets : mapping of schema path to (row shape, dtype)
        The epoch-indexed datasets to create (with no rows).
    checkpoint : mapping of str to (shape, dtype), optional
        The arrays of the checkpoints that :meth:`RecordingWriter.commit` will write (keys as
        there), created in both slots, so that commits only overwrite them (the commit marker
        claims neither slot until a commit has filled it).
    """

    def __init__(
        self,
        *,
        probe: Probe | None = None,
        grid: tuple[np.ndarray, tuple[int, int], tuple[float, ...]] | None = None,
        attrs: Mapping[str, Any] | None = None,
        parameter_names: Sequence[str] = (),
        datasets: Mapping[str, tuple[tuple[int, ...], Any]] | None = None,
        checkpoint: Mapping[str, tuple[tuple[int, ...], Any]] | None = None,
    ) -> None:
        f = h5py.File(f"hud-template-{id(self)}", "w", driver="core", backing_store=False, **_ALIGNMENT)
        try:
            _write_skeleton(f, {}, probe, grid, attrs, parameter_names)
            scales = _scales(f)
            for path, (row_shape, dtype) in (datasets or {}).items():
                _create_dataset(f, path, tuple(row_shape), dtype, 0, None, scales)
            #: every epoch-indexed dataset of a new file, with its row shape
            self.datasets = {S.EPOCH: (), **{path: tuple(shape) for path, (shape, _) in (datasets or {}).items()}}
            for key, (shape, dtype) in (checkpoint or {}).items():
                for slot in (0, 1):
                    f.create_dataset(S.checkpoint(slot, key), shape=tuple(shape), dtype=dtype)
            f.flush()
            self.image = f.id.get_file_image()
        finally:
            f.close()

    @classmethod
    def cached(cls, **contents: Any) -> RecordingTemplate:
        """A template of these ``contents`` (the keyword arguments of the constructor), made once a process.

        A sequence of runs of one task and network (a sweep trained run after run, a benchmark)
        then starts each recording from one copy.  The last ``_CACHED_TEMPLATES`` are kept, by
        a digest of their contents.
        """
        key = _digest(contents)
        template = _TEMPLATES.pop(key, None)
        if template is None:
            template = cls(**contents)
        _TEMPLATES[key] = template  # most recently used last
        while len(_TEMPLATES) > _CACHED_TEMPLATES:
            _TEMPLATES.pop(next(iter(_TEMPLATES)))
        return template


_CACHED_TEMPLATES = 8
_TEMPLATES: dict[bytes, RecordingTemplate] = {}


def _digest(obj: Any) -> bytes:
    """A digest of nested mappings, sequences, arrays and scalars (their values, shapes and dtypes)."""
    h = hashlib.sha256()

    def feed(x: Any) -> None:
        if isinstance(x, Mapping):
            h.update(b"{")
            for k in sorted(x, key=str):
                feed(str(k))
                feed(x[k])
            h.update(b"}")
        elif isinstance(x, (list, tuple)):
            h.update(b"(")
            for item in x:
                feed(item)
            h.update(b")")
        elif isinstance(x, np.ndarray):
            h.update(f"array{x.dtype.str}{x.shape}".encode())
            h.update(np.ascontiguousarray(x).tobytes())
        elif dataclasses.is_dataclass(x) and not isinstance(x, type):
            feed({f.name: getattr(x, f.name) for f in dataclasses.fields(x)})
        else:
            h.update(f"{type(x).__name__}:{x!r};".encode())

    feed(obj)
    return h.digest()


# ----------------------------------------------------------------------------- writing


class RecordingWriter:
    """One recording file, open for appending blocks of epochs.

    Parameters
    ----------
    path : str or PathLike
    config : dict
        The run's configuration, stored as JSON in the root attribute ``config``.
    probe : Probe
        The probe set (inputs, targets, labels).
    grid : tuple (points, shape, extent), optional
        The input-plane grid of a 2-D task.
    attrs : dict, optional
        More root attributes, each stored as a JSON string: schedule, layers, modules.
    mode : {'create', 'overwrite', 'resume'}
        'create' refuses an existing file; 'overwrite' replaces it; 'resume'
        opens it, drops rows past the commit marker and appends after them.
    compression : {None, 'lzf', 'gzip'}
        Compression of the epoch-indexed arrays of the closed recording (None by default:
        measured to save little on this kind of data; see docs).  The run is written
        uncompressed, allocated ahead like any other (crash-safe: compressed chunks move when
        written, changing chunk indexes under committed rows); closing writes it anew,
        compressed (:func:`repack`), and renames that over it.
    parameter_names : sequence of str
        Names of the parameter tensors, in the order of the ``parameter`` axis
        of the norms and optimizer-state datasets.
    chunk_cache : int
        Bytes of HDF5 chunk cache for the open file (default 64 MiB: a block of a
        few rows leaves its partly written chunks there until the next one).  A
        writer that appends large blocks passes 0: whole chunks then go to the
        file directly instead of through the cache and a flush (measured: 1.5 s
        of 5 s less CPU for a batch's 1.2 GB).
    template : RecordingTemplate, optional
        Start a new file from this template (made with the same probe, grid,
        attributes and parameter names) instead of building it: only the config
        is written.
    planned_rows : int, optional
        The rows (recorded epochs) the whole run will have, when known (``train()`` and a
        Recorder given ``epochs`` know it).  Each uncompressed epoch-indexed dataset is then
        made that long when first written, all its chunks allocated at once (in a sparse file:
        their space on disk is reserved as they are written, or at once up to 64 MB): no later
        flush changes a chunk index, so a SIGKILL during one cannot reach committed rows (see
        docs/recording-format.md).  Datasets grow past it if more rows come; a run that stops
        early has its datasets cut to its rows when closed.  Without a plan (or one that does
        not fit in the free space or under the file size limit), datasets start one chunk long
        and double; after the first commit every growth is made in a copy of the file renamed
        over it (see docs/recording-format.md, "New versions of the file").
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        config: Mapping[str, Any] | None = None,
        probe: Probe | None = None,
        grid: tuple[np.ndarray, tuple[int, int], tuple[float, ...]] | None = None,
        attrs: Mapping[str, Any] | None = None,
        mode: str = "create",
        compression: str | None = None,
        parameter_names: Sequence[str] = (),
        chunk_cache: int = _CACHE_BYTES,
        template: RecordingTemplate | None = None,
        planned_rows: int | None = None,
    ) -> None:
        if mode not in ("create", "overwrite", "resume"):
            raise ParameterError(f"mode must be one of 'create', 'overwrite', 'resume'; got {mode!r}")
        if compression not in (None, "lzf", "gzip"):
            raise ParameterError(f"compression must be one of None, 'lzf', 'gzip'; got {compression!r}")
        self.path = os.fspath(path)
        self.compression = compression
        self._cache = int(check_number("chunk_cache", chunk_cache, low=0, integer=True))
        self._slot = -1
        self._reserved = False  # space past HDF5's end of file allocated by _reserve, given back by _trim
        self._reserved_end = 0  # the file offset up to which space is allocated
        self._reserved_spans: list[tuple[int, int]] = []  # the file ranges _reserve allocated (below the file's end)
        self._may_cut = False  # HDF5's next flush may cut the file to its end of allocation (see _flush)
        self._can_reserve = hasattr(os, "posix_fallocate")
        self._eoa_at: int | None = None  # where the superblock keeps the end of allocation (0: not ours to write)
        self._layouts: dict[str, tuple[int, int]] = {}  # path -> (rows per chunk, bytes per chunk)
        self._plan = 0 if planned_rows is None else int(check_number("planned_rows", planned_rows, low=0, integer=True))
        self._ahead = True  # datasets allocated ahead of their rows (False once that found no room)
        if mode == "resume":
            self._open_resume()
            return
        if os.path.exists(self.path) and mode == "create":
            raise RecordingError(
                f"path {self.path!r} already exists; pass overwrite=True (CLI: --force) to replace it, "
                f"or resume=True to append to it"
            )
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise RecordingError(f"path {self.path!r}: the folder {parent!r} does not exist")
        # The file is written under a temporary name and renamed into place by its first commit (or
        # its closing): a run killed before (while it creates the file, or allocates its datasets'
        # chunks: see write_rows) leaves no file at ``path`` that a reader could find damaged, and an
        # overwritten recording is replaced only once its successor has committed rows.
        folder, name = os.path.split(os.path.abspath(self.path))
        creating = os.path.join(folder, f".{name}.creating-{os.getpid()}")
        _remove_stale(folder, f".{name}.creating-")
        try:
            if template is not None:
                with open(creating, "wb") as fh:
                    fh.write(template.image)
            f = h5py.File(creating, "w" if template is None else "r+", **_ALIGNMENT)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.remove(creating)
            raise RecordingError(f"cannot create recording {self.path!r}: {exc}") from None
        try:
            if template is None:
                _write_skeleton(f, config, probe, grid, attrs, parameter_names)
            else:
                f.attrs[S.ROOT_ATTRS.CONFIG] = _json(config or {})
                f.attrs[S.ROOT_ATTRS.CREATED] = _created()
            f.close()
            self.f = h5py.File(creating, "r+", rdcc_nbytes=self._cache, rdcc_nslots=100_003, **_ALIGNMENT)
        except BaseException as exc:
            f.close()
            with contextlib.suppress(OSError):
                os.remove(creating)
            if isinstance(exc, OSError):
                raise RecordingError(f"cannot create recording {self.path!r}: {exc}") from None
            raise
        self._creating: str | None = creating  # renamed to path by the first commit (_put_in_place)
        _WRITING.add(os.path.realpath(self.path))
        self.rows = 0
        self.committed = 0
        self.last_epoch = -1
        self._committed_epoch = -1  # the epoch of the last committed row
        self._known = template.datasets if template is not None else None  # no need to search the new file

    # -- resume --------------------------------------------------------------------

    def _put_in_place(self) -> None:
        """Rename a new file to its path (once: at its first commit, or closing)."""
        if self._creating is not None:
            os.replace(self._creating, self.path)
            self._creating = None

    def _open_resume(self) -> None:
        self._creating = None
        rec = open_recording(self.path)  # validates format and version
        rec.close()
        self._grow_in_copy()
        try:
            self.f = h5py.File(self.path, "r+", rdcc_nbytes=self._cache, rdcc_nslots=100_003, **_ALIGNMENT)
        except OSError as exc:
            raise RecordingError(f"cannot open recording {self.path!r} to resume it: {exc}") from None
        _WRITING.add(os.path.realpath(self.path))
        committed, slot = (int(v) for v in self.f[S.COMMIT][:2])
        self._slot = slot
        self._reserve(_RESERVE_MARGIN)
        self.rows = self.committed = committed
        for path in self._epoch_paths():
            ds = self.f[path]
            if ds.shape[0] < committed or ds.shape[0] > committed and not _allocated_ahead(ds):
                ds.resize(committed, axis=0)  # (datasets allocated ahead keep their chunks: see write_rows)
        self.last_epoch = self._committed_epoch = int(self.f[S.EPOCH][committed - 1]) if committed else -1
        self._set_status("running", self.last_epoch, "resumed")
        self._flush()
        self._trim()

    def _grow_in_copy(self) -> None:
        """Before a resumed run writes, give its file the layout it would have had from its start, in a new
        version renamed over it (:meth:`_replace`: the file at ``path`` never changes a chunk index under
        its committed rows, and a SIGKILL meanwhile leaves it as it was).

        A file whose datasets are not allocated ahead (written compressed, or by an older hud) is written
        anew, uncompressed and allocated ahead (:func:`repack`); the datasets of one that is are grown to
        the resumed run's plan.  Skipped when that does not fit in the free space (the first growth then
        needs a copy of its own, or stops the recording with the disk-full error)."""
        with h5py.File(self.path, "r") as f:
            datasets = {p: f[p] for p in _epoch_paths(f)}
            again = not all(_allocated_ahead(ds) for ds in datasets.values())
            grow = {p: ds for p, ds in datasets.items() if ds.shape[0] < self._plan}
            extra = sum(_chunk_bytes(ds, self._plan) - _chunk_bytes(ds, ds.shape[0]) for ds in grow.values())
            if again:
                extra = sum(_chunk_bytes(ds, max(ds.shape[0], self._plan)) for ds in datasets.values())
            length = f.id.get_filesize()
        if not (again or grow):
            return
        with open(self.path, "rb") as fh:
            if not _fits(fh.fileno(), length, extra + _used_bytes(fh.fileno())):
                return
        if again:
            self._replace(lambda tmp: repack(self.path, tmp, rows=self._plan))
        else:
            self._replace(
                lambda tmp: _copy_and_change(self.path, tmp, lambda f: _resize_all(f, dict.fromkeys(grow, self._plan)))
            )

    def _replace(self, make: Any) -> None:
        """Write a new version of the (closed) file under a temporary name (``make(tmp)``) and rename it over
        ``path``: a SIGKILL at any moment leaves at ``path`` either the old version or the new one, whole.
        On failure the temporary file is removed and the old version stays."""
        folder, name = os.path.split(os.path.abspath(self.path))
        tmp = os.path.join(folder, f".{name}.creating-{os.getpid()}")
        _remove_stale(folder, f".{name}.creating-")
        try:
            make(tmp)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise

    def _restructure(self, change: Any) -> None:
        """Apply ``change(f)`` (datasets grown or created) to a copy of the file renamed over it, then write on
        in the copy: after the first commit, nothing changes the structure of the file at ``path`` (a
        SIGKILL during a flush that rewrites a chunk index can leave it pointing to nodes not yet on
        disk, and the committed rows of that dataset unreadable; see docs/recording-format.md).

        The copy keeps the file's holes and costs the bytes written so far; datasets grow by doubling,
        so a run copies at most about twice its final size in all."""
        self._flush()
        self._trim()
        self._close_file()
        try:
            self._replace(lambda tmp: _copy_and_change(self.path, tmp, change))
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                raise _no_room(bytes_on_disk(self.path), exc) from None
            raise RecordingError(f"cannot grow recording {self.path!r} in a copy: {exc}") from None
        finally:
            self._reopen()

    def _reopen(self) -> None:
        """Open the file at ``path`` again (a new version of it: :meth:`_restructure`), keeping what the writer
        tracks of each dataset (rows filled, the chunk begun) but none of the old file's handles."""
        try:
            self.f = h5py.File(self.path, "r+", rdcc_nbytes=self._cache, rdcc_nslots=100_003, **_ALIGNMENT)
        except OSError as exc:
            raise RecordingError(f"cannot open recording {self.path!r} again: {exc}") from None
        _WRITING.add(os.path.realpath(self.path))
        for key in ("_marker", "_checkpoints", "_scale_datasets"):
            self.__dict__.pop(key, None)
        self._eoa_at = None
        self._may_cut = False
        for path, d in self.__dict__.get("_open_datasets", {}).items():
            d.reopen(h5py.Dataset(h5py.h5d.open(self.f.id, path.encode())))

    def expected_size(self, datasets: Mapping[str, tuple[tuple[int, ...], Any]], rows: int) -> int:
        """Bytes on disk the recording is expected to take once it holds ``rows`` rows of ``datasets``.

        The file as it is now (its skeleton: config, probe set, grid; a resumed recording's rows too),
        plus the chunks the epoch-indexed datasets (and ``/epoch``) will have beyond those they have
        (:func:`allocated_bytes`), and for each dataset not made yet its chunk index and header.

        Parameters
        ----------
        datasets : mapping of schema path to (row shape, dtype)
            The epoch-indexed datasets the run will write.
        rows : int
            Rows (recorded epochs) of the whole run.

        Returns
        -------
        int
        """
        have = {path: self.f[path].shape[0] for path in [S.EPOCH, *datasets] if path in self.f}
        return self.f.id.get_filesize() + _epoch_datasets_bytes(datasets, rows, have)

    def rewind(self, epoch: int) -> None:
        """Drop every committed row after ``epoch`` (resuming from an earlier checkpoint).

        Parameters
        ----------
        epoch : int
            A committed epoch; it and the rows before it are kept.
        """
        epochs = self.f[S.EPOCH][: self.committed]
        keep = int(np.searchsorted(epochs, epoch, side="right"))
        if keep == 0 or epochs[keep - 1] != epoch:
            raise RecordingError(f"cannot rewind {self.path!r} to epoch {epoch}: it is not a committed epoch")
        self.f[S.COMMIT][:] = np.array([keep, self._slot], np.int64)  # shrink: the marker first...
        self._flush()
        self.rows = self.committed = keep
        for path in self._epoch_paths():  # ...then the rows it no longer claims (datasets allocated
            if not _allocated_ahead(self.f[path]):  # ahead keep them, to be overwritten: no index changes)
                self.f[path].resize(keep, axis=0)
        self.__dict__.pop("_open_datasets", None)  # their lengths changed
        self._known = None
        self._flush()
        self.last_epoch = self._committed_epoch = int(epoch)

    def _epoch_paths(self) -> list[str]:
        return _epoch_paths(self.f)

    def checkpoint(self) -> dict[str, np.ndarray]:
        """The arrays of the checkpoint committed with the last commit ({} if none)."""
        if self._slot < 0:
            return {}
        group = self.f.get(f"{S.CHECKPOINT}/slot{self._slot}")
        return {} if group is None else {k: group[k][()] for k in group}

    # -- appending -------------------------------------------------------------------

    def _create(self, path: str, row: np.ndarray, rows: int) -> h5py.Dataset:
        return _create_dataset(self.f, path, row.shape, row.dtype, rows, None, self._scales())

    def _scales(self) -> tuple[h5py.Dataset, h5py.Dataset | None]:
        """The dimension scales new datasets attach: epochs and parameter names (looked up once a file)."""
        if not hasattr(self, "_scale_datasets"):
            self._scale_datasets = _scales(self.f)
        return self._scale_datasets

    def append(self, block: Mapping[str, np.ndarray]) -> None:
        """Append rows for some epochs (not yet committed).

        Parameters
        ----------
        block : mapping of schema path to ndarray of shape (n_rows, ...)
            Must hold ``schema.EPOCH`` (the epoch numbers, increasing and after
            every epoch already written).  Datasets are created on first sight;
            epoch-indexed datasets absent from the block get fill values (NaN)
            unless :meth:`write_rows` fills them in before the next commit.
        """
        epochs = np.asarray(block[S.EPOCH], np.int64)
        k = len(epochs)
        if k == 0:
            return
        if epochs[0] <= self.last_epoch or np.any(np.diff(epochs) <= 0):
            raise RecordingError(f"epochs must increase past {self.last_epoch}; got {epochs[:5].tolist()}...")
        start = self.rows
        self.rows += k
        try:
            self.write_rows(block, start)
        except BaseException:
            self.rows = start  # nothing claims rows that were not written (the marker never did)
            raise
        self.last_epoch = int(epochs[-1])

    def write_rows(self, block: Mapping[str, np.ndarray], start: int) -> None:
        """Write rows ``start:`` of some epoch-indexed datasets, among the rows appended since the last commit.

        A writer that appends the large datasets of each block as soon as it has them can write the
        small ones (parameters, norms, metrics) of many blocks at once, before committing: one HDF5
        call for many blocks (each call costs ~30 us whatever its size).

        Parameters
        ----------
        block : mapping of schema path to ndarray of shape (n_rows, ...)
            Datasets are created on first sight; rows before ``start`` they never had hold fill values.
        start : int
            The first row to write: at least the number of committed rows; ``start + n_rows`` at most
            the number of rows appended.
        """
        ends = {path: start + len(values) for path, values in block.items()}
        if start < self.committed or max(ends.values(), default=start) > self.rows:
            raise RecordingError(
                f"rows {start}:{max(ends.values(), default=start)} are not appended and uncommitted rows of "
                f"{self.path!r} (committed {self.committed}, appended {self.rows})"
            )
        datasets = self._datasets()
        lengths = self._grow(block, start, ends, datasets)
        for path, values in block.items():
            d = datasets.get(path)
            if d is None:
                d = datasets[path] = _Open(self._create(path, np.asarray(values)[0], 0), filled=0)
            if path in lengths:
                self._resize(d, lengths[path])
            if d.ahead:  # chunks allocated, never filled by HDF5: rows skipped so far get fill values here
                self._write_ahead(d, start, values)
            else:
                _write_rows(d.ds, start, values, d.direct)

    def _grow(
        self, block: Mapping[str, Any], start: int, ends: Mapping[str, int], datasets: dict[str, _Open]
    ) -> dict[str, int]:
        """Grow the datasets of ``block`` too short for rows ``start:ends[path]``, and reserve the space the rows
        need (:meth:`_reserve`).  Returns the lengths still to give in place: ``{path: rows}``.

        A dataset allocated ahead grows to the planned rows, and past them (or without a plan: from one
        chunk) by doubling.  Before the first commit it grows in place: a plan that does not fit on the
        disk (or under the file size limit) is dropped for doubling, and when that does not fit either,
        datasets grow, from then on, to the rows written.  After the first commit every growth is made
        in a new version of the file (:meth:`_grow_in_new_version`), to the rows written if doubling
        does not fit; no room for that copy is an error (the disk is full for this recording).
        """
        lengths = self._lengths(block, ends, datasets)
        whole = self.committed > 0  # (before a commit, a full disk during the growth loses nothing)
        if lengths:
            extra = self._growth_bytes(block, datasets, lengths)
            if self.committed:
                if not self._room(extra, copy=True):
                    lengths = {path: ends[path] for path in lengths}
                    extra = self._growth_bytes(block, datasets, lengths)
                    self._check_room_to_copy(extra)
                self._grow_in_new_version(block, datasets, lengths)
                lengths = {}
            else:
                if self._plan and not self._room(extra, copy=False):
                    self._plan = 0  # the plan does not fit: grow by doubling
                    lengths = self._lengths(block, ends, datasets)
                    extra = self._growth_bytes(block, datasets, lengths)
                if not self._room(extra, copy=False):
                    self._ahead = False  # no room to allocate ahead: allocate what the rows need
                    lengths = {path: ends[path] for path in lengths}
            whole = whole or extra <= _RESERVE_WHOLE  # one system call now rather than one a dataset later
        self._reserve(self._block_bytes(block, start, ends, datasets, lengths, whole=whole))
        return lengths

    def _check_room_to_copy(self, extra: int) -> None:
        """Raise the disk-full error when a copy of the file and ``extra`` bytes more do not fit."""
        if not self._room(extra, copy=True):
            need = extra + _RESERVE_MARGIN + _used_bytes(self.f.id.get_vfd_handle())
            raise RecordingError(
                f"no room to grow recording {self.path!r}: its datasets grow in a copy of the file (so that a "
                f"crash cannot damage its committed epochs), which needs {format_bytes(need)}; "
                f"{format_bytes(free_space(self.path))} are free (or a file size limit was reached)"
            )

    def _lengths(
        self, block: Mapping[str, Any], ends: Mapping[str, int], datasets: Mapping[str, _Open]
    ) -> dict[str, int]:
        """The length each dataset shorter than ``ends[path]`` rows grows to (see :meth:`_grow`)."""
        lengths = {}
        for path, end in ends.items():
            d = datasets.get(path)
            length = d.length if d is not None else 0
            if length < end:
                if (d is None or d.ahead) and self._ahead:  # without a plan, at least a chunk (no more space)
                    least = self._plan or self._layout(block, path, d)[0]
                    lengths[path] = max(end, least, 2 * length)
                else:
                    lengths[path] = end
        return lengths

    def _growth_bytes(self, block: Mapping[str, Any], datasets: Mapping[str, _Open], lengths: Mapping[str, int]) -> int:
        """Bytes of the chunks that growing the datasets to ``lengths`` allocates (new datasets included)."""
        total = 0
        for path, rows in lengths.items():
            d = datasets.get(path)
            chunk, nbytes = self._layout(block, path, d)
            total += (-(-rows // chunk) - -(-(d.length if d is not None else 0) // chunk)) * nbytes
        return total

    def _room(self, extra: int, *, copy: bool) -> bool:
        """Whether ``extra`` bytes more (and a copy of the file, if ``copy``) fit on the disk (:func:`_fits`)."""
        fd = self.f.id.get_vfd_handle()
        return _fits(fd, self.f.id.get_filesize(), extra + _RESERVE_MARGIN + (_used_bytes(fd) if copy else 0))

    def _grow_in_new_version(
        self, block: Mapping[str, Any], datasets: dict[str, _Open], lengths: Mapping[str, int]
    ) -> None:
        """Grow the datasets of ``lengths`` (create the new ones) to those lengths in a new version of the file
        (:meth:`_restructure`; one copy for all): after the first commit the file at ``path`` never changes
        its structure in place."""
        grow = {p: n for p, n in lengths.items() if p in datasets}
        create = {p: np.asarray(block[p]) for p in lengths if p not in datasets}

        def change(f: h5py.File) -> None:
            _resize_all(f, grow)
            for path, values in create.items():
                _create_dataset(f, path, values.shape[1:], values.dtype, lengths[path], None, _scales(f))

        self._restructure(change)
        for path in create:
            datasets[path] = _Open(h5py.Dataset(h5py.h5d.open(self.f.id, path.encode())), 0)

    def _write_ahead(self, d: _Open, start: int, values: np.ndarray) -> None:
        """Write rows ``start:`` of a dataset allocated ahead: fill values into the rows skipped before them,
        the space of their chunks reserved first (a full disk is an error before HDF5 writes)."""
        end = start + len(values)
        self._reserve_chunks(d, min(d.filled, start), end)
        if d.filled < start:
            _write_whole_chunks(d, d.filled, np.full((start - d.filled, *d.tail), d.ds.fillvalue, d.ds.dtype))
        _write_whole_chunks(d, start, values)
        d.filled = max(d.filled, end)

    def _reserve_chunks(self, d: _Open, start: int, end: int) -> None:
        """Allocate on disk the chunks of rows ``start:end`` of a dataset allocated ahead (HDF5 allocated
        them in the file, which stays sparse until they are written), and up to ``_RESERVE_STEP`` bytes
        of the chunks after them: one ``posix_fallocate`` for all when they lie one after the other (as
        HDF5 allocates a dataset's chunks when it grows), else one per chunk."""
        first, last = max(d.reserved, start // d.chunk), -(-end // d.chunk)
        if first >= last or not self._can_reserve:
            return
        zeros = (0,) * len(d.tail)
        info = d.ds.id.get_chunk_info_by_coord
        at, size = info((first * d.chunk, *zeros)).byte_offset, d.chunk_bytes
        step = -(-size // 4096) * 4096 if size >= _ALIGNMENT["alignment_threshold"] else size  # (page-aligned)
        ahead = min(-(-d.length // d.chunk), max(last, first + _RESERVE_STEP // step))  # chunks to reserve
        if info(((ahead - 1) * d.chunk, *zeros)).byte_offset == at + (ahead - 1 - first) * step:
            spans = [(at, (ahead - 1 - first) * step + size)]  # one after the other (those between too)
        else:
            ahead = last
            spans = [(info((c * d.chunk, *zeros)).byte_offset, size) for c in range(first, last)]
        for offset, nbytes in spans:
            if any(lo <= offset and offset + nbytes <= hi for lo, hi in self._reserved_spans):
                continue  # within space reserved when the dataset grew
            full = self._allocate(offset, nbytes)
            if full is not None:
                raise _no_room(nbytes, full)
            if not self._can_reserve:
                return
        d.reserved = ahead

    def _allocate(self, offset: int, nbytes: int) -> OSError | None:
        """``posix_fallocate`` bytes ``offset:offset + nbytes`` of the file: None when done (or when the file
        system cannot, which stops reserving: ``_can_reserve``), the error when the disk is full."""
        try:
            os.posix_fallocate(self.f.id.get_vfd_handle(), offset, nbytes)
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                return exc
            self._can_reserve = False
        return None

    def _block_bytes(
        self,
        block: Mapping[str, Any],
        start: int,
        ends: Mapping[str, int],
        datasets: Mapping[str, _Open],
        lengths: Mapping[str, int],
        *,
        whole: bool,
    ) -> int:
        """An upper bound of the bytes HDF5 allocates to write rows ``start:ends[path]`` of each path of ``block``,
        the datasets of ``lengths`` grown to those lengths.  The chunks of datasets allocated ahead are
        counted only if ``whole`` (else their index: their own space is reserved as they are written)."""
        total = _RESERVE_MARGIN
        for path, end in ends.items():
            d = datasets.get(path)
            rows, nbytes = self._layout(block, path, d)
            if d is None or d.ahead:  # allocated as it grows, not written
                old = d.length if d is not None else 0
                added = -(-lengths.get(path, old) // rows) - -(-old // rows)
                total += added * (nbytes if whole else _INDEX_BYTES)
                continue
            touched = -(-end // rows) - start // rows  # chunks written: a compressed one moves when rewritten
            total += touched * (nbytes + nbytes // 64 + 64)  # compression may make a chunk a little larger
        return total

    def _layout(self, block: Mapping[str, Any], path: str, d: _Open | None) -> tuple[int, int]:
        """(rows, bytes) of a chunk of the dataset at ``path`` (``d``, or one to create for ``block[path]``)."""
        layout = self._layouts.get(path)
        if layout is None:
            ds = d.ds if d is not None else None
            dtype = ds.dtype if ds is not None else np.asarray(block[path]).dtype
            chunks = ds.chunks if ds is not None else _chunks(np.asarray(block[path]).shape[1:], dtype.itemsize)
            layout = self._layouts[path] = (chunks[0], int(np.prod(chunks, dtype=np.int64)) * dtype.itemsize)
        return layout

    def _reserve(self, nbytes: int) -> None:
        """Make sure ``nbytes`` past HDF5's end of the file are allocated before HDF5 writes there.

        HDF5 cannot take back a flush that fails half-way: when the disk fills
        up (or a quota or file size limit is reached) during a flush, the
        superblock may already claim more bytes than the file holds, and the
        whole file no longer opens.  Allocating the space first turns a full
        disk into an error raised before HDF5 writes anything, while the file
        still holds every committed epoch.  Space is allocated in steps of
        ``_RESERVE_STEP`` (fewer system calls) and given back when the file is
        closed; a killed run leaves that tail of zeros, which HDF5 ignores.
        Where the file system cannot allocate ahead (no ``posix_fallocate``),
        writing goes on unprotected.
        """
        if not self._can_reserve:
            return
        end = self.f.id.get_filesize()  # HDF5's end of allocated space, not the file's length on disk
        if end + nbytes <= self._reserved_end:
            return
        for size in dict.fromkeys((max(nbytes, _RESERVE_STEP), nbytes)):  # a whole step if it fits, else the need
            error = self._allocate(end, size)
            if not self._can_reserve:
                return
            if error is not None:
                continue
            self._reserved_end = end + size
            self._reserved = True
            self._reserved_spans.append((end, end + size))
            self._cover()
            return
        raise _no_room(nbytes, error)

    def _trim(self) -> None:
        """Give back the space :meth:`_reserve` allocated past what HDF5 uses (after the last flush)."""
        if self._reserved:
            self._reserved = False
            self._reserved_end = 0
            self._reserved_spans.clear()
            end = self.f.id.get_filesize()
            self._write_eoa(end)  # HDF5's own end again: the file is cut there
            os.ftruncate(self.f.id.get_vfd_handle(), end)

    def _write_eoa(self, eoa: int) -> None:
        """Write ``eoa`` into the superblock on disk (not into HDF5's copy of it)."""
        at = self._eoa_at
        if at is None:
            at = self._eoa_at = _eoa_field(self.f.id.get_vfd_handle()) or 0
        if at:
            os.pwrite(self.f.id.get_vfd_handle(), eoa.to_bytes(8, "little"), at)

    def _cover(self) -> None:
        """Make the superblock on disk claim the space allocated ahead (:meth:`_reserve`) as the file's.

        HDF5 writes its metadata in address order and the superblock, which bounds every address
        a reader may follow, last (if at all: only when its end of allocation changed).  A flush cut
        short by a SIGKILL could leave a dataset's header or chunk index pointing to a node past the
        end the superblock on disk claims, and readers then refuse the whole dataset, committed rows
        too ("addr overflow": seen once in 1000 kills of bench_crash.py, a chunk index that had just
        split).  Every node HDF5 allocates lies within the reserved space, and the file is that long
        (allocated), so a superblock claiming all of it covers whatever such a flush wrote.  Called
        after each flush (which may write HDF5's own, shorter, end) and each reservation; the true end
        is written back before the file is cut to it (:meth:`_trim`).
        """
        if self._reserved:  # (never less than HDF5's own end, had it allocated more than was reserved)
            self._write_eoa(max(self._reserved_end, self.f.id.get_filesize()))

    def _flush(self) -> None:
        """Flush HDF5's caches to the file, then cover the reserved space again (:meth:`_cover`).

        A flush ends by cutting (or extending) the file to HDF5's end of allocation when HDF5 has not
        written up to it itself: after chunks were allocated ahead and not yet written (a dataset
        grown in place before the first commit, :meth:`write_rows`).  That cut comes before HDF5 writes its
        superblock, so a superblock on disk that claims the reserved space would, for a moment, claim
        more than the file holds (a SIGKILL then leaves a file that does not open): before such a
        flush the superblock claims HDF5's end only, and the reservation is made again after it.
        """
        if self._may_cut and self._reserved:
            self._write_eoa(self.f.id.get_filesize())
        self.f.flush()
        if self._may_cut:
            self._may_cut = False
            self._reserve_again()
        self._cover()

    def _reserve_again(self) -> None:
        """Allocate again the reserved space a flush cut off (see :meth:`_flush`); if that fails, reserve less."""
        if not self._reserved:
            return
        fd = self.f.id.get_vfd_handle()
        length = os.fstat(fd).st_size
        if length < self._reserved_end:
            try:
                os.posix_fallocate(fd, length, self._reserved_end - length)
            except OSError:
                self._reserved_end = length
                self._reserved_spans = [(lo, min(hi, length)) for lo, hi in self._reserved_spans if lo < length]

    def _datasets(self) -> dict[str, _Open]:
        """The open epoch-indexed datasets by path (looking any of them up costs more than writing a block)."""
        if not hasattr(self, "_open_datasets"):
            self._open_datasets = {}
            known = getattr(self, "_known", None)
            if known is not None:  # a new file from a template: every dataset is empty, its row shape known
                for path in known:  # the low-level open: half the cost of f[path]
                    self._open_datasets[path] = _Open(h5py.Dataset(h5py.h5d.open(self.f.id, path.encode())), 0)
                return self._open_datasets
            for path in self._epoch_paths():
                ds = self.f[path]
                self._open_datasets[path] = _Open(ds, min(ds.shape[0], self.committed))
        return self._open_datasets

    def _extend_all(self) -> None:
        """Give every epoch-indexed dataset all appended rows (fill values where none were written)."""
        datasets = self._datasets()
        short = {path: self.rows for path, d in datasets.items() if d.length < self.rows}
        for path, length in self._grow({}, self.rows, short, datasets).items():
            self._resize(datasets[path], length)
        for d in datasets.values():
            if d.ahead and d.filled < self.rows:
                self._write_ahead(d, self.rows, np.empty((0, *d.tail), d.ds.dtype))

    def _resize(self, d: _Open, length: int) -> None:
        """Change a dataset's extent.  Growing one allocated ahead allocates chunks that are not written, and
        shrinking frees chunks: either way HDF5's next flush may cut the file (see :meth:`_flush`)."""
        self._may_cut = self._may_cut or d.ahead or length < d.length
        d.resize(length)

    def commit(self, checkpoint: Mapping[str, np.ndarray] | None = None) -> int:
        """Make every appended row durable: flush, then write and flush the marker.

        Parameters
        ----------
        checkpoint : mapping of str to ndarray, optional
            State at the last appended epoch (optimizer state, RNG), written to
            the slot the current marker does not point at, before the marker.

        Returns
        -------
        int
            The number of committed rows.
        """
        self._extend_all()
        slot = self._slot
        if checkpoint:
            slot = 1 - self._slot if self._slot >= 0 else 0
            self._reserve(_RESERVE_MARGIN + 2 * sum(np.asarray(v).nbytes for v in checkpoint.values()))
            for key, value in checkpoint.items():
                self._write_checkpoint(S.checkpoint(slot, key), np.asarray(value))
                self._make_checkpoint(S.checkpoint(1 - slot, key), np.asarray(value))
        self._flush()  # the data first...
        if not hasattr(self, "_marker"):
            self._marker = self.f[S.COMMIT]
        self._marker.id.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array([self.rows, slot], np.int64))
        self._flush()  # ...then, in a flush of its own, the marker that claims it
        self._put_in_place()
        self.committed = self.rows
        self._committed_epoch = self.last_epoch
        self._slot = slot
        return self.committed

    def discard_uncommitted(self) -> None:
        """Forget the rows appended since the last commit (some of their datasets may not be written):
        :meth:`close` then claims no more rows than are committed.  Their data stays past the marker,
        where readers ignore it (as after a crash)."""
        self.rows = self.committed
        self.last_epoch = self._committed_epoch

    def flush(self) -> None:
        """Write the appended rows and HDF5's metadata to the file without claiming the rows (no marker).

        A writer that appends several blocks between two commits flushes after each: HDF5 may write
        metadata out of its cache at any time, and what it writes may point past the end of the file
        that the last flush recorded; a flush makes the file's structure on disk whole again.
        """
        self._flush()

    def _make_checkpoint(self, path: str, like: np.ndarray) -> None:
        """Create the other slot's array of a checkpoint written for the first time (unclaimed until a commit
        fills it): later commits then only overwrite arrays, and no commit after the first changes the
        file's structure (a new group's header not yet written when a SIGKILL came, its link already
        there, left a file that could not be listed in 1 of 1000 kills of bench_crash.py)."""
        if path not in self.__dict__.setdefault("_checkpoints", {}) and path not in self.f:
            self._checkpoints[path] = self.f.create_dataset(path, shape=like.shape, dtype=like.dtype)

    def _write_checkpoint(self, path: str, value: np.ndarray) -> None:
        """Overwrite one checkpoint array in place (same shape and dtype as last time), or create it."""
        cache = self.__dict__.setdefault("_checkpoints", {})
        ds = cache.get(path) or self.f.get(path)
        if ds is not None and (ds.shape != value.shape or ds.dtype != value.dtype):
            del self.f[path]
            ds = None
        if ds is None:
            ds = self.f.create_dataset(path, data=value)
        else:
            ds.id.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(value))
        cache[path] = ds

    def _set_status(self, status: str, epoch: int, message: str) -> None:
        self.f.attrs[S.ROOT_ATTRS.STATUS] = status
        self.f.attrs[S.ROOT_ATTRS.STATUS_EPOCH] = int(epoch)
        self.f.attrs[S.ROOT_ATTRS.STATUS_MESSAGE] = message

    def close(self, status: str | None = None, *, epoch: int | None = None, message: str = "") -> None:
        """Commit what is pending, set the final status, and close the file.

        Parameters
        ----------
        status : str, optional
            One of ``STATUSES``; default 'complete'.
        epoch : int, optional
            The epoch the status refers to; default the last committed epoch.
        """
        if not getattr(self, "f", None) or not self.f.id.valid:
            return
        try:
            if self.rows != self.committed:
                self.commit()
            last = self.last_epoch if self.committed else -1  # every row is committed now
            self._reserve(64 << 10)  # on a full disk the status stays 'running' (read as 'interrupted')
            self._set_status(status or "complete", last if epoch is None else epoch, message)
            self._flush()
            self._trim()
        except BaseException:
            self._close_file()
            with contextlib.suppress(OSError):  # a new recording that failed is still found at its path
                self._put_in_place()
            raise
        self._close_file()
        self._put_in_place()
        self._finish()

    def _finish(self) -> None:
        """Give the closed recording its final layout, in a new version renamed over it (:meth:`_replace`):
        compressed (``compression``), or its datasets cut to the committed rows when they are longer
        (allocated ahead of a run that stopped early, or grown by doubling).  Done in place, the cut would
        rewrite chunk indexes under committed rows.  When that does not fit in the free space, or
        fails, the recording stays as it is (whole, its datasets longer than its rows) and a
        ``RuntimeWarning`` says so."""
        long = {
            p: self.committed for p, d in self.__dict__.get("_open_datasets", {}).items() if d.length > self.committed
        }
        if self.compression is None and not long:
            return
        what = f"compressed ({self.compression})" if self.compression else "cut to its rows"
        try:
            with open(self.path, "rb") as fh:
                if not _fits(fh.fileno(), 0, _used_bytes(fh.fileno())):
                    raise RecordingError(f"no room for a copy of {format_bytes(_used_bytes(fh.fileno()))}")
            if self.compression is not None:
                self._replace(lambda tmp: repack(self.path, tmp, compression=self.compression))
            else:
                self._replace(lambda tmp: _copy_and_change(self.path, tmp, lambda f: _resize_all(f, long)))
        except OSError as exc:  # (RecordingError too)
            warnings.warn(
                f"recording {self.path!r} is closed, whole, but could not be {what}: {exc}",
                RuntimeWarning,
                stacklevel=3,
            )

    def _close_file(self) -> None:
        _WRITING.discard(os.path.realpath(self.path))
        self.f.close()


#: rows of an epoch-indexed dataset smaller than this make it a small dataset (parameters of a small
#: network, norms, metrics): its rows are kept and written for many blocks at once (see SmallRows)
SMALL_ROW_BYTES = 4096
_SMALL_BYTES = 16 << 20  # kept small rows are written once they hold this many bytes


def split_small(block: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A block's datasets in two: the epoch numbers and the large ones; the small ones (rows below
    ``SMALL_ROW_BYTES``).

    Parameters
    ----------
    block : mapping of schema path to ndarray of shape (n_rows, ...)

    Returns
    -------
    (large, small) : two dicts of schema path to ndarray of shape (n_rows, ...)
    """
    large: dict[str, np.ndarray] = {}
    small: dict[str, np.ndarray] = {}
    for path, values in block.items():
        values = np.asarray(values)
        row_bytes = values.nbytes // max(len(values), 1)
        (large if path == S.EPOCH or row_bytes >= SMALL_ROW_BYTES else small)[path] = values
    return large, small


class SmallRows:
    """Rows of a recording's small datasets, kept to be written for many blocks at once.

    Each HDF5 call costs ~30 us whatever its size, and from a writer thread it also hands the GIL
    to training and back (measured: ~70 us of training's time each); a block has ~20 small
    datasets and few large ones.  Keep a block's small rows here after appending its large ones
    (``RecordingWriter.append``), and :meth:`write` them before the commit that claims them.

    Attributes
    ----------
    rows : int
        Rows kept.
    nbytes : int
        Bytes kept.
    """

    def __init__(self) -> None:
        self._parts: list[dict[str, np.ndarray]] = []
        self._start = 0
        self.rows = 0
        self.nbytes = 0

    def add(self, writer: RecordingWriter, rows: Mapping[str, np.ndarray], start: int) -> None:
        """Keep ``rows`` (the small datasets of rows ``start:`` just appended to ``writer``).

        Parameters
        ----------
        writer : RecordingWriter
            Where the kept rows go first if ``rows`` has other datasets than they have.
        rows : mapping of schema path to ndarray of shape (n_rows, ...)
            Kept as they are: no views of buffers reused before :meth:`write`.
        start : int
            The row of ``writer`` the first of ``rows`` is.
        """
        if self._parts and rows.keys() != self._parts[0].keys():  # other datasets: the kept ones first
            self.write(writer)
        if not self._parts:
            self._start = start
        self._parts.append(dict(rows))
        self.rows += len(next(iter(rows.values()))) if rows else 0
        self.nbytes += sum(v.nbytes for v in rows.values())

    def write(self, writer: RecordingWriter) -> None:
        """Write the kept rows to ``writer`` (kept until written: a failed write may be tried again).

        Parameters
        ----------
        writer : RecordingWriter
        """
        parts = self._parts
        if parts and parts[0]:
            keys = parts[0].keys()
            writer.write_rows(
                parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in keys}, self._start
            )
        self._parts = []
        self.rows = self.nbytes = 0


#: what a producer hands the writer thread: a callable returning (rows, checkpoint, done, commit): the rows
#: to append (or None), the checkpoint of the state at the rows' last epoch (or None), a callable run once the
#: rows are written, when the buffers they view may be reused (or None), and whether to commit after them
BlockMaker = Callable[
    [],
    tuple["dict[str, np.ndarray] | None", "dict[str, np.ndarray] | None", "Callable[[], None] | None", bool],
]


class BackgroundWriter:
    """Appends and commits blocks of epochs from a writer thread.

    The training thread ``put``s the epochs recorded since its last block as
    one block: a callable that the writer thread calls to get the rows (it may
    wait for a CUDA copy, convert tensors, compute norms), the checkpoint of the
    rows' last epoch, a callback run once the rows are written, and whether to
    commit after them (data flushed, then the marker flushed).  A commit saves
    the newest checkpoint received if it is of the last appended epoch (a
    block handed over uncommitted may carry the checkpoint that a later,
    empty, committing block needs).  The small datasets of the blocks
    (:class:`SmallRows`) are written before the commit that claims them, for
    all those blocks at once: fewer HDF5 calls, each of which hands the GIL
    to training and back.  Memory is bounded: ``put`` waits while more than
    ``max_buffer_bytes`` are queued.

    Parameters
    ----------
    writer : RecordingWriter
    max_buffer_bytes : int
    on_commit : callable, optional
        Called in the writer thread with the last committed epoch.
    """

    def __init__(
        self,
        writer: RecordingWriter,
        *,
        max_buffer_bytes: int = 256 << 20,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self.writer = writer
        self.max_buffer_bytes = int(max_buffer_bytes)
        self.on_commit = on_commit
        self.error: BaseException | None = None
        self._reported = False  # the error was raised to the training thread once
        self.committed_epoch = writer.last_epoch
        self._queue: queue.SimpleQueue[tuple[BlockMaker, int] | None] = queue.SimpleQueue()
        self._buffered = 0
        self._cond = threading.Condition()
        self._put_count = 0
        self._done_count = 0
        self._small = SmallRows()  # the writer thread's, until it ends
        self._thread = threading.Thread(
            target=self._run, name=f"hud-writer:{os.path.basename(writer.path)}", daemon=True
        )
        self._thread.start()

    # -- training thread -------------------------------------------------------------

    def put(self, make_block: BlockMaker, nbytes: int) -> None:
        """Queue one block.  Raises RecordingError if the writer has failed."""
        self._raise_if_failed()
        with self._cond:
            while self._buffered > self.max_buffer_bytes and self.error is None:
                self._cond.wait(0.1)
            self._buffered += nbytes
            self._put_count += 1
        self._raise_if_failed()
        self._queue.put((make_block, nbytes))

    def flush(self) -> None:
        """Wait until every block put so far is written (committed, if the last one asked for a commit)."""
        with self._cond:
            while self._done_count < self._put_count and self.error is None and self._thread.is_alive():
                self._cond.wait(0.1)
        self._raise_if_failed()

    def close(self, status: str | None = None, *, epoch: int | None = None, message: str = "") -> None:
        """Commit everything queued, set the status, close the file, stop the thread."""
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            try:
                try:
                    self._small.write(self.writer)  # the small datasets of the rows appended before the error
                except Exception:  # noqa: BLE001 - then those rows are not whole: not claimed
                    self.writer.discard_uncommitted()
                self.writer.close("failed", message=f"{type(self.error).__name__}: {self.error}")
            except Exception:  # noqa: BLE001 - the disk may still be full: committed epochs stay readable
                pass
            if not self._reported:  # raised once: not again while the first one unwinds
                self._raise_if_failed()
            return
        self.writer.close(status, epoch=epoch, message=message)

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            self._reported = True
            kept = (
                f"epochs up to {self.committed_epoch} are committed and readable"
                if self.committed_epoch >= 0
                else "no epoch was committed"
            )
            raise RecordingError(f"recording to {self.writer.path!r} stopped: {self.error} ({kept})") from self.error

    # -- writer thread -------------------------------------------------------------

    def _run(self) -> None:
        checkpoint = None  # the newest checkpoint received: written at a commit if it is of the last appended epoch
        small = self._small  # the small datasets are written before a commit (or once they are many)
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    small.write(self.writer)
                    return
                make_block, nbytes = item
                rows, block_checkpoint, done, commit = make_block()
                if rows is not None:
                    large, rest = split_small(rows)
                    start = self.writer.rows
                    self.writer.append(large)
                    # copies of views: the buffers they view are reused once ``done`` is called
                    small.add(self.writer, {k: v if v.flags.owndata else v.copy() for k, v in rest.items()}, start)
                    if small.nbytes >= _SMALL_BYTES:
                        small.write(self.writer)
                    if not commit:
                        self.writer.flush()  # as after every block before commits were spaced out
                if done is not None:
                    done()
                checkpoint = block_checkpoint if block_checkpoint is not None else checkpoint
                if commit:
                    small.write(self.writer)
                    current = checkpoint is not None and int(checkpoint["epoch"]) == self.writer.last_epoch
                    self.writer.commit(checkpoint if current else None)
                    checkpoint = None
                    self.committed_epoch = self.writer.last_epoch
                with self._cond:
                    self._buffered -= nbytes
                    self._done_count += 1
                    self._cond.notify_all()
                if commit and self.on_commit is not None:  # an error here stops the recording too
                    self.on_commit(self.committed_epoch)
            except BaseException as exc:  # noqa: BLE001 - reported to the training thread
                self.error = exc
                with self._cond:
                    self._cond.notify_all()
                return


# ----------------------------------------------------------------------------- reading


def open_recording(path: str | os.PathLike) -> Recording:
    """Open a recording for lazy reading.

    Parameters
    ----------
    path : str or PathLike
        A ``.h5`` file written by hud.

    Returns
    -------
    Recording

    Raises
    ------
    RecordingError
        The path does not exist, is not HDF5, is truncated or corrupted, or is
        not a hud recording.
    FormatVersionError
        The file was written in a newer format version than this hud reads.
    """
    return Recording(path)


class Recording:
    """A recording opened read-only; arrays are read only when asked for.

    Every accessor sees the committed epochs only: rows past the commit marker
    (a block being written when the run was killed) are ignored.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise RecordingError(f"path {self.path!r} does not exist")
        if os.path.isdir(self.path):
            raise RecordingError(f"path {self.path!r} is a folder, not a recording (.h5 file)")
        if not h5py.is_hdf5(self.path):
            raise RecordingError(f"path {self.path!r} is not an HDF5 file (truncated, corrupted, or another format)")
        # locking=False reads a file another process is writing; a file this process is writing is
        # shared with the writer's handle, and HDF5 wants the same locking flags for both
        locking = None if os.path.realpath(self.path) in _WRITING else False
        try:
            self.f = h5py.File(self.path, "r", locking=locking)
        except OSError as exc:
            raise RecordingError(
                f"path {self.path!r} could not be opened as HDF5 (truncated or corrupted?): {exc}"
            ) from None
        self._check_format()
        try:
            self.n = int(self.f[S.COMMIT][0])
            self._epochs = self.f[S.EPOCH][: self.n].astype(np.int64)
        except (KeyError, OSError, ValueError) as exc:
            self.f.close()
            raise RecordingError(f"path {self.path!r} is a damaged recording: {exc}") from None
        self._index = {int(e): i for i, e in enumerate(self._epochs)}

    def _check_format(self) -> None:
        attrs = self.f.attrs
        if attrs.get(S.ROOT_ATTRS.FORMAT) != S.FORMAT_NAME:
            self.f.close()
            raise RecordingError(
                f"path {self.path!r} is an HDF5 file but not a hud recording "
                f"(no {S.ROOT_ATTRS.FORMAT}={S.FORMAT_NAME!r} attribute)"
            )
        version = int(attrs.get(S.ROOT_ATTRS.VERSION, -1))
        if version > S.FORMAT_VERSION or version < 1:
            self.f.close()
            raise FormatVersionError(
                f"recording {self.path!r} has format_version {version}; this hud ({__version__}) reads format "
                f"versions 1 to {S.FORMAT_VERSION}: upgrade hud to read it"
            )

    # -- context -----------------------------------------------------------------------

    def close(self) -> None:
        if self.f.id.valid:
            self.f.close()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Recording {self.path!r}: {len(self._epochs)} epochs, layers {self.layers}, {self.status_text}>"

    # -- what the file says about itself ---------------------------------------------

    def _json_attr(self, key: str, default: Any = None) -> Any:
        raw = self.f.attrs.get(key)
        return default if raw is None else json.loads(raw)

    @property
    def config(self) -> dict[str, Any]:
        """The run's configuration: task, network, loss, optimizer, training."""
        return self._json_attr(S.ROOT_ATTRS.CONFIG, {})

    @property
    def versions(self) -> dict[str, str]:
        """Versions of hud and its libraries that wrote the file."""
        return self._json_attr(S.ROOT_ATTRS.VERSIONS, {})

    @property
    def format_version(self) -> int:
        return int(self.f.attrs[S.ROOT_ATTRS.VERSION])

    @property
    def status(self) -> str:
        """'complete', 'converged', 'stopped', 'diverged', 'failed', or 'interrupted'.

        A file whose writer died without closing it (SIGKILL, power loss) still
        says 'running' on disk; it is reported as 'interrupted'.
        """
        raw = str(self.f.attrs.get(S.ROOT_ATTRS.STATUS, "interrupted"))
        return "interrupted" if raw == "running" else raw

    @property
    def status_epoch(self) -> int:
        """The epoch the status refers to (the last committed epoch when interrupted)."""
        if str(self.f.attrs.get(S.ROOT_ATTRS.STATUS)) == "running":
            return self.last_epoch
        return int(self.f.attrs.get(S.ROOT_ATTRS.STATUS_EPOCH, self.last_epoch))

    @property
    def status_text(self) -> str:
        """E.g. 'complete', 'interrupted at epoch 812', 'diverged at epoch 40'."""
        s = self.status
        if s in ("complete",):
            return s
        msg = str(self.f.attrs.get(S.ROOT_ATTRS.STATUS_MESSAGE, ""))
        text = f"{s} at epoch {self.status_epoch}"
        return f"{text} ({msg})" if s == "failed" and msg else text

    @property
    def epochs(self) -> np.ndarray:
        """ndarray of shape (n_recorded,): the committed epochs, increasing."""
        return self._epochs.copy()

    @property
    def last_epoch(self) -> int:
        return int(self._epochs[-1]) if len(self._epochs) else -1

    @property
    def layers(self) -> list[str]:
        """Recorded layer names in network order (``output`` last)."""
        stored = self._json_attr(S.ROOT_ATTRS.LAYERS)
        group = self.f.get(S.LAYERS)
        present = list(group) if group is not None else []
        return [n for n in stored if n in present] if stored else present

    def layer_shape(self, layer: str) -> tuple[int, int]:
        """(n_samples, n_units) of a layer."""
        return tuple(self._layer_ds(layer).shape[1:])  # type: ignore[return-value]

    @property
    def layer_shapes(self) -> dict[str, tuple[int, int]]:
        """{layer: (n_samples, n_units)}."""
        return {name: self.layer_shape(name) for name in self.layers}

    @property
    def parameter_names(self) -> list[str]:
        group = self.f.get(S.PARAMETERS)
        stored = self.f.get(S.PARAMETER_NAMES)
        if stored is not None:
            return [n.decode() if isinstance(n, bytes) else str(n) for n in stored[()]]
        return list(group) if group is not None else []

    @property
    def probe(self) -> Probe:
        """The probe set the activations were recorded on."""
        f = self.f
        inputs = f[S.PROBE_INPUTS][()]
        n = len(inputs)
        targets = f[S.PROBE_TARGETS][()] if S.PROBE_TARGETS in f else np.zeros((n, 0), np.float32)
        labels = f[S.PROBE_LABELS][()] if S.PROBE_LABELS in f else np.full(n, -1, np.int64)
        return Probe(inputs, targets, labels)

    @property
    def grid(self) -> tuple[np.ndarray, tuple[int, int], tuple[float, float, float, float]] | None:
        """(points (n_grid, 2), (ny, nx), (x_min, x_max, y_min, y_max)) for 2-D tasks, else None."""
        ds = self.f.get(S.GRID_POINTS)
        if ds is None:
            return None
        return ds[()], tuple(int(v) for v in ds.attrs[S.GRID_SHAPE]), tuple(float(v) for v in ds.attrs[S.GRID_EXTENT])

    # -- arrays --------------------------------------------------------------------------

    def _rows(self, epochs: int | Sequence[int] | np.ndarray | None) -> np.ndarray | slice:
        if epochs is None:
            return slice(0, self.n)
        wanted = np.atleast_1d(np.asarray(epochs, dtype=np.int64))
        rows = []
        for e in wanted.tolist():
            row = self._index.get(e)
            if row is None:
                raise NotRecordedError(
                    f"epoch {e} was not recorded in {self.path!r}; nearest recorded: {self._nearest(e)}"
                )
            rows.append(row)
        return np.asarray(rows, np.int64)

    def _nearest(self, epoch: int) -> str:
        if not len(self._epochs):
            return "(none: no epoch is committed)"
        order = np.argsort(np.abs(self._epochs - epoch), kind="stable")[:2]
        return ", ".join(str(int(e)) for e in sorted(self._epochs[order]))

    @staticmethod
    def _read(ds: h5py.Dataset, rows: np.ndarray | slice) -> np.ndarray:
        if isinstance(rows, slice):
            return ds[rows]
        if len(rows) == 0:
            return np.empty((0, *ds.shape[1:]), ds.dtype)
        order = np.argsort(rows, kind="stable")
        uniq, inverse = np.unique(rows[order], return_inverse=True)
        data = ds[uniq]  # h5py fancy indexing needs increasing indices; reads only those chunks
        out = np.empty((len(rows), *ds.shape[1:]), ds.dtype)
        out[order] = data[inverse]
        return out

    def _layer_ds(self, layer: str, kind: str = S.ACTIVATION) -> h5py.Dataset:
        if kind not in S.LAYER_KINDS:
            raise ParameterError(f"kind must be one of {', '.join(S.LAYER_KINDS)}; got {kind!r}")
        ds = self.f.get(S.layer(layer, kind)) if layer and "/" not in layer else None
        if ds is None:
            if layer in self.layers:
                raise NotRecordedError(
                    f"layer {layer!r} has no {kind} in {self.path!r} (record with "
                    f"preactivation=True to keep pre-activations)"
                )
            raise NotRecordedError(
                f"layer {layer!r} is not in {self.path!r}; recorded layers: {', '.join(self.layers) or '(none)'}"
            )
        return ds

    def activations(
        self, layer: str, epochs: int | Sequence[int] | None = None, *, kind: str = S.ACTIVATION
    ) -> np.ndarray:
        """One layer's activations on the probe set, reading only the epochs asked for.

        Parameters
        ----------
        layer : str
            A name from :attr:`layers`.
        epochs : int or sequence of int, optional
            Recorded epochs (default: all committed).  A single int drops the epoch axis.
        kind : {'activation', 'preactivation'}

        Returns
        -------
        ndarray of shape (n_epochs, n_samples, n_units), or (n_samples, n_units) for one epoch
        """
        ds = self._layer_ds(layer, kind)
        out = self._read(ds, self._rows(epochs))
        return out[0] if np.isscalar(epochs) else out

    def parameters(self, epoch: int) -> dict[str, np.ndarray]:
        """Every parameter at one recorded epoch, by name (a state dict of numpy arrays).

        Parameters
        ----------
        epoch : int

        Returns
        -------
        dict of str to ndarray
        """
        rows = self._rows(int(epoch))
        return {name: self._read(self.f[S.parameter(name)], rows)[0] for name in self.parameter_names}

    def parameter(self, name: str, epochs: int | Sequence[int] | None = None) -> np.ndarray:
        """One parameter over epochs: ndarray of shape (n_epochs, *shape)."""
        if name not in self.parameter_names:
            raise NotRecordedError(
                f"parameter {name!r} is not in {self.path!r}; recorded: {', '.join(self.parameter_names) or '(none)'}"
            )
        out = self._read(self.f[S.parameter(name)], self._rows(epochs))
        return out[0] if np.isscalar(epochs) else out

    @property
    def metrics(self) -> pd.DataFrame:
        """Per-epoch metrics: one row per recorded epoch (index ``epoch``), one column per metric."""
        group = self.f.get(S.METRICS)
        cols = {name: group[name][: self.n] for name in group} if group is not None else {}
        order = [c for c in ("loss", "penalty", "total", "accuracy", "time") if c in cols]
        order += sorted(c for c in cols if c not in order)
        import pandas as pd

        return pd.DataFrame({c: cols[c] for c in order}, index=pd.Index(self._epochs, name="epoch"))

    @property
    def final_metrics(self) -> dict[str, float]:
        """The metrics of the last committed epoch (``metrics.iloc[-1]`` without reading the others); {} if none."""
        group = self.f.get(S.METRICS)
        if group is None or not self.n:
            return {}
        return {name: float(group[name][self.n - 1]) for name in group}

    def norms(self, kind: str = "gradient") -> pd.DataFrame:
        """Per-parameter gradient or update L2 norms: rows epochs, columns parameter names."""
        if kind not in S.NORM_KINDS:
            raise ParameterError(f"kind must be one of {', '.join(S.NORM_KINDS)}; got {kind!r}")
        return self._per_parameter(S.norm(kind), f"{kind} norms")

    @property
    def optimizer_states(self) -> list[str]:
        """Names of the recorded optimizer-state norms (momentum, adam_m, adam_v, ...)."""
        group = self.f.get(S.OPTIMIZER)
        return list(group) if group is not None else []

    def optimizer_state(self, name: str) -> pd.DataFrame:
        """Norms of one optimizer state per parameter: rows epochs, columns parameter names."""
        if name not in self.optimizer_states:
            raise NotRecordedError(
                f"optimizer state {name!r} is not in {self.path!r}; recorded: "
                f"{', '.join(self.optimizer_states) or '(none)'}"
            )
        return self._per_parameter(S.optimizer_state(name), name)

    def _per_parameter(self, path: str, what: str) -> pd.DataFrame:
        ds = self.f.get(path)
        if ds is None:
            raise NotRecordedError(f"{what} are not in {self.path!r}")
        import pandas as pd

        return pd.DataFrame(
            ds[: self.n],
            index=pd.Index(self._epochs, name="epoch"),
            columns=pd.Index(self.parameter_names, name="parameter"),
        )

    def checkpoint(self) -> dict[str, np.ndarray]:
        """The optimizer state and RNG state at the last committed epoch ({} if none)."""
        slot = int(self.f[S.COMMIT][1])
        group = self.f.get(f"{S.CHECKPOINT}/slot{slot}") if slot >= 0 else None
        return {} if group is None else {k: group[k][()] for k in group}

    # -- summary -----------------------------------------------------------------------

    @property
    def size_on_disk(self) -> int:
        """Bytes the file takes on disk: a recording allocated ahead that stopped early (or was killed) is
        sparse, longer than that (see :attr:`file_length`)."""
        st = os.stat(self.path)
        blocks = getattr(st, "st_blocks", None)
        return min(st.st_size, blocks * 512) if blocks is not None else st.st_size

    @property
    def file_length(self) -> int:
        """The file's length in bytes (what a copy that does not keep holes writes)."""
        return os.path.getsize(self.path)

    def _sparse(self) -> bool:
        return self.file_length > 2 * self.size_on_disk + (1 << 20)

    def summary(self) -> str:
        """A few lines for people: task, network, loss, optimizer, epochs, layers, size, status."""
        cfg = self.config
        task = cfg.get("task", {})
        net = cfg.get("network", {})
        opt = cfg.get("optimizer", {})
        loss = cfg.get("loss", {})
        task_txt = task.get("name", "?") + _opts(task, skip=("name",))
        if "hidden" in net:
            sizes = [net.get("n_inputs"), *net["hidden"], net.get("n_outputs")]
            net_txt = (
                "-".join(str(s) for s in sizes)
                + f" {net.get('architecture', 'mlp')}, "
                + (net["activation"] if isinstance(net.get("activation"), str) else ",".join(net.get("activation", [])))
            )
        else:
            net_txt = str(net.get("class", "?"))
        loss_txt = loss.get("name", "?") + (
            f", weight decay {loss['weight_decay']:g}" if loss.get("weight_decay") else ""
        )
        lines = [
            f"recording  {self.path}",
            f"task       {task_txt}",
            f"network    {net_txt}",
            f"loss       {loss_txt}",
            f"optimizer  {opt.get('name', '?')}{_opts(opt, skip=('name',))}",
            f"epochs     {len(self._epochs)} recorded"
            + (f", {int(self._epochs[0])}..{self.last_epoch}" if len(self._epochs) else ""),
            "layers     " + (", ".join(f"{n} {s[0]}x{s[1]}" for n, s in self.layer_shapes.items()) or "(none)"),
            f"size       {format_bytes(self.size_on_disk)}"
            + (f" on disk (a sparse file of {format_bytes(self.file_length)})" if self._sparse() else ""),
            f"status     {self.status_text}",
            f"format     {S.FORMAT_NAME} v{self.format_version}, written by hud {self.versions.get('hud', '?')}",
        ]
        return "\n".join(lines)


def _opts(d: Mapping[str, Any], skip: Sequence[str]) -> str:
    items = [f"{k}={v}" for k, v in d.items() if k not in skip and v is not None]
    return f" ({', '.join(items)})" if items else ""


def _remove_stale(folder: str, prefix: str) -> None:
    """Remove the files ``prefix<pid>`` in ``folder`` left by processes no longer running (killed before
    their recording's first commit).  POSIX only (on Windows ``os.kill(pid, 0)`` would end the process)."""
    if os.name != "posix":
        return
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix) and n[len(prefix) :].isdigit()]
    except OSError:
        return
    for n in names:
        try:
            os.kill(int(n[len(prefix) :]), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, n))
        except (PermissionError, OverflowError):  # another user's process, still running
            pass


def free_space(path: str | os.PathLike) -> int:
    """Free bytes on the file system holding ``path`` (or its folder)."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    return shutil.disk_usage(folder).free


def warn_if_no_room(what: str, nbytes: int, free: int, *, advice: str, stacklevel: int = 2) -> None:
    """Warn, as a ``ResourceWarning`` and on standard error, when ``nbytes`` more do not fit in ``free`` bytes.

    Parameters
    ----------
    what : str
        What is expected to take the space, e.g. ``'the recording runs/a.h5'``.
    nbytes, free : int
        Bytes expected, bytes free.
    advice : str
        How to need less, e.g. ``"record fewer epochs with schedule='log'"``.
    stacklevel : int
        Of the warning, counted from the caller.
    """
    if nbytes > free:
        msg = (
            f"{what} is expected to take {format_bytes(nbytes)} but only {format_bytes(free)} are free; "
            f"recording will stop with an error when the disk is full ({advice})"
        )
        warnings.warn(msg, ResourceWarning, stacklevel=stacklevel + 1)
        print(f"hud: warning: {msg}", file=sys.stderr)
